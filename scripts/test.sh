#!/usr/bin/env bash
# The test command: make .venv (if missing), install the package with its test extras, run pytest.
#   ./scripts/test.sh [pytest args...]
# Needs only python3 (>= 3.11) and access to PyPI. PYTHON=/path/to/python3 picks the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
VPY=$VENV/bin/python

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "scripts/test.sh: $PYTHON must be Python 3.11 or newer" >&2
  exit 1
fi

if ! "$VPY" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  echo "scripts/test.sh: creating $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian without python3-venv has no ensurepip: make the venv bare and install pip with the system pip.
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV"
    "$PYTHON" -m pip --python "$VPY" install --quiet --disable-pip-version-check pip
  fi
fi

# Reinstall only when the project metadata changed (the install is editable: code changes need none).
stamp="$VENV/.sre-graph-test-install"
want=$({ cat pyproject.toml; "$VPY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "scripts/test.sh: installing -e '.[test]' into $VENV" >&2
  rm -f "$stamp"
  "$VPY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
fi

# Servers and tools the tests run for real (each step is idempotent and quick once done):
# a kube-apiserver built from Debian's source (cached), and Chromium for the eval report's browser test.
./scripts/provision-kube.sh >/dev/null
if ! command -v chromium >/dev/null 2>&1; then
  echo "scripts/test.sh: installing chromium (headless browser for the HTML report test)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

set +e
"$VPY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests" >&2
fi
exit "$status"
