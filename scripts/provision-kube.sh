#!/usr/bin/env bash
# Provision a real Kubernetes API server for the live tests (tests/test_kubernetes_live.py).
#
#   ./scripts/provision-kube.sh        # prints the kube-apiserver path on its last line of stdout
#
# No package ships kube-apiserver, so it is built from Debian's `kubernetes` source package
# (v1.20.2) with Debian's Go, and cached at
#   ${SRE_GRAPH_CACHE:-$HOME/.cache/sre-graph}/kube-apiserver-v1.20.2
# etcd comes from Debian's etcd-server. Idempotent: when the binary is cached and etcd is
# installed it does nothing (a few milliseconds). The build takes about 8 minutes on 2 cores.
#
# Needs Debian 12 (bookworm) and root (or sudo) for apt-get. The deb-src line lives in a private
# apt configuration under the cache directory: the system's sources and package lists are untouched.
set -euo pipefail

VERSION=v1.20.2
CACHE=${SRE_GRAPH_CACHE:-$HOME/.cache/sre-graph}
BIN=$CACHE/kube-apiserver-$VERSION
WORK=$CACHE/build-kubernetes

log() { echo "provision-kube: $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else SUDO=(__need_root__); fi
fi

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${SUDO[0]:-}" = __need_root__ ]; then
    log "need root (or sudo) to apt-get install: ${missing[*]}"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

# etcd and openssl (the test certificates) are needed at run time whether or not the server is built.
run_time=()
command -v etcd >/dev/null 2>&1 || run_time+=(etcd-server)
command -v openssl >/dev/null 2>&1 || run_time+=(openssl)
[ ${#run_time[@]} -eq 0 ] || apt_install "${run_time[@]}"

if [ -x "$BIN" ]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time (a test run may call this while a developer's run is building).
exec 9>"$CACHE/.provision-kube.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if [ -x "$BIN" ]; then
  log "built by the other run: $BIN"
  echo "$BIN"
  exit 0
fi

apt_install golang-go etcd-server rsync make dpkg-dev xz-utils ca-certificates debian-archive-keyring openssl

# The Debian mirror this machine already uses (deb.debian.org when none is configured).
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
           | awk '$2 == "bookworm" {print $1; exit}')
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
             | awk '$1 == "deb" && / bookworm / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}')
fi
if [ -z "$mirror" ]; then  # deb822 stanzas: the URI of a "deb" stanza whose suites include bookworm
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
    function flush() { if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && uri != "" && !found) { print uri; found = 1 } types = suites = uri = "" }
    /^[[:space:]]*$/ { flush(); next }
    tolower($1) == "types:"  { $1 = ""; types = $0 " " }
    tolower($1) == "suites:" { $1 = ""; suites = $0 " " }
    tolower($1) == "uris:"   { uri = $2 }
    END { flush() }')
fi
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
log "Debian source mirror: $mirror"

# A private apt configuration: only a deb-src line, its own lists and cache.
APTDIR=$WORK/apt
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/parts" "$APTDIR/prefs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$keyring] $mirror bookworm main" > "$APTDIR/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APTDIR/sources.list"
  -o "Dir::Etc::SourceParts=$APTDIR/parts"
  -o "Dir::Etc::PreferencesParts=$APTDIR/prefs"
  -o "Dir::State::Lists=$APTDIR/lists"
  -o "Dir::Cache=$APTDIR/cache"
  -o "APT::Sandbox::User=root"
)

SRC=$WORK/src
tree=$(find "$SRC" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n1 || true)
if [ -z "$tree" ] || [ ! -f "$tree/.sre-graph-unpacked" ]; then
  rm -rf "$SRC"
  mkdir -p "$SRC"
  log "fetching the Debian source of kubernetes"
  apt-get "${APT_OPTS[@]}" update -q >&2
  (cd "$SRC" && apt-get "${APT_OPTS[@]}" source -q kubernetes >&2)
  tree=$(find "$SRC" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  [ -n "$tree" ] || { log "apt-get source kubernetes unpacked nothing under $SRC"; exit 1; }
  touch "$tree/.sre-graph-unpacked"
fi
log "source tree: $tree"

# `make` needs the tree on a GOPATH as k8s.io/kubernetes (a plain `go build` fails: "updates to go.mod needed").
mkdir -p "$tree/.go/src/k8s.io"
ln -sfn "$tree" "$tree/.go/src/k8s.io/kubernetes"
log "building cmd/kube-apiserver (about 8 minutes on 2 cores)"
start=$(date +%s)
(
  cd "$tree/.go/src/k8s.io/kubernetes"
  export GOPATH=$tree/.go CGO_ENABLED=0
  # Debian's Go 1.19 builds v1.20.2; a newer Go earlier on PATH may not.
  [ -x /usr/lib/go/bin/go ] && export PATH=/usr/lib/go/bin:$PATH
  export GOCACHE=${GOCACHE:-$CACHE/go-build}
  nice -n 10 make WHAT=cmd/kube-apiserver >&2
)
out=$(find "$tree/_output" -type f -name kube-apiserver -perm -u+x 2>/dev/null | head -n1)
[ -n "$out" ] || { log "build finished but no kube-apiserver binary under $tree/_output"; exit 1; }
"$out" --version >&2
cp "$out" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
log "built in $(( $(date +%s) - start )) s: $BIN"
# The source tree (~370 MB) and the Go build cache are only needed to build: drop them.
rm -rf "$WORK" "$CACHE/go-build"
echo "$BIN"
