"""A real Kubernetes API server on loopback, loaded with a recorded incident, for the live-source tests.

What runs (``start_cluster``):

- etcd (Debian's ``etcd-server``) on free loopback ports with a throw-away data directory;
- kube-apiserver v1.20.2 (built by ``scripts/provision-kube.sh``) with RBAC, a static token file
  (an admin in ``system:masters``, and ``nobody``, a user with no permissions), a service-account
  key pair for real ServiceAccount tokens, and TLS certificates from a throw-away CA;
- a fake kubelet: a small HTTPS server that answers ``/containerLogs/<ns>/<pod>/<container>`` from an
  incident's ``kubernetes/logs`` folder the way the kubelet does (``previous``, ``tailLines``,
  ``timestamps``, ``sinceSeconds``, ``sinceTime``, ``limitBytes``);
- an HTTP CONNECT proxy on a unix socket, configured as the API server's ``cluster`` egress: the API
  server dials the kubelet of a pod's node at the address recorded in the node's status (for example
  ``10.224.0.4:10250``) and the proxy hands every such connection to the fake kubelet. Nodes are
  therefore loaded exactly as recorded; nothing is rewritten to point at loopback.

There are no controllers, scheduler or kubelet, so nothing changes what the loader writes:
``load_incident_into_cluster`` creates every object of ``kubernetes/*.json`` through the API and
then writes the recorded ``status`` through the ``/status`` subresource.

Which fields the API server preserves (``compare_lists`` / ``preserved_diff``): everything recorded,
except the metadata the server owns (``uid``, ``resourceVersion``, ``creationTimestamp``,
``generation``, ``managedFields``, ``selfLink``) and the few fields newer than v1.20, which it
drops on write (``NOT_SERVED_BY_1_20``: pods' ``status.hostIPs``, services'
``spec.internalTrafficPolicy``). The server may add fields the recording left out (defaults such
as ``terminationMessagePath``): a live object matches a recorded one when every recorded field is
there with the same value. What JSON from the API cannot tell apart counts as equal: a recorded
``null``/``[]``/``{}`` and an absent field (Go's ``omitempty``), and two spellings of one quantity
(``33554432Ki`` is stored as ``32Gi``). HorizontalPodAutoscalers are served as
``autoscaling/v2beta2`` by 1.20 (``autoscaling/v2`` arrived in 1.23, with the same schema), so
their ``apiVersion`` is compared on the group only.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

REPO = Path(__file__).resolve().parent.parent
PROVISION = REPO / "scripts" / "provision-kube.sh"
RBAC = REPO / "deploy" / "rbac.yaml"
VERSION = "v1.20.2"
SERVICE_CIDR = "172.16.0.0/12"
"""Service cluster IPs the server accepts. Recorded services keep their ``clusterIP``, so this must
contain them: the loaded incidents use 172.20.0.0/16 (the largest range 1.20 allows is a /12)."""

AGENT_SA = ("sre-graph", "sre-graph")
"""The ServiceAccount ``deploy/rbac.yaml`` binds to the read-only ClusterRole (namespace, name)."""

ADMISSION_OFF = (
    # Every plugin that would change what the loader writes (tolerations, taints, priorities,
    # service accounts, defaults from other objects) or needs a controller that is not running.
    "ServiceAccount,DefaultTolerationSeconds,TaintNodesByCondition,Priority,DefaultStorageClass,"
    "StorageObjectInUseProtection,RuntimeClass,DefaultIngressClass,MutatingAdmissionWebhook,"
    "ValidatingAdmissionWebhook,LimitRanger,PersistentVolumeClaimResize,CertificateApproval,"
    "CertificateSigning,CertificateSubjectRestriction,ResourceQuota"
)


# --------------------------------------------------------------------- binaries and processes


class KubeSetupError(RuntimeError):
    """The API server could not be provisioned or started; the message carries the output."""


def cache_dir() -> Path:
    """Where ``scripts/provision-kube.sh`` caches the kube-apiserver binary."""
    return Path(os.environ.get("SRE_GRAPH_CACHE") or Path.home() / ".cache" / "sre-graph")


def apiserver_binary(*, provision: bool = True) -> Path:
    """The cached kube-apiserver; runs ``scripts/provision-kube.sh`` (minutes: it builds) when missing."""
    binary = cache_dir() / f"kube-apiserver-{VERSION}"
    if binary.is_file() and os.access(binary, os.X_OK) and shutil.which("etcd") and shutil.which("openssl"):
        return binary
    if not provision:
        raise KubeSetupError(f"{binary} missing (run {PROVISION})")
    proc = subprocess.run(["bash", str(PROVISION)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KubeSetupError(f"{PROVISION} failed with {proc.returncode}:\n{proc.stderr[-6000:]}")
    lines = proc.stdout.strip().splitlines()
    binary = Path(lines[-1]) if lines else binary
    if not binary.is_file():
        raise KubeSetupError(f"{PROVISION} succeeded but {binary} does not exist:\n{proc.stderr[-3000:]}")
    if not shutil.which("etcd"):
        raise KubeSetupError(f"{PROVISION} succeeded but etcd is not on PATH")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process started by this module (its own process group), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def tail(path: Path, chars: int = 5000) -> str:
    """The end of a log file, for failure messages."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KubeSetupError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a serving certificate for 127.0.0.1/localhost, and a service-account key pair."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "3", "-subj", "/CN=sre-graph-test-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "3", "-extfile", "san.ext", cwd=folder)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)
    return {name: folder / name for name in ("ca.crt", "server.crt", "server.key", "sa.key", "sa.pub")}


def write_kubeconfig(path: Path, server: str, *, token: str, ca_file: Path | None, user: str) -> Path:
    """A kubeconfig with one cluster, one token user and one current context."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
    }))
    return path


# --------------------------------------------------------------------- the fake kubelet


def _line_time(line: str) -> datetime | None:
    head = line.split(" ", 1)[0]
    if not head[:1].isdigit():
        return None
    try:
        return datetime.fromisoformat(_trim_nanos(head.replace("Z", "+00:00")))
    except ValueError:
        return None


def _trim_nanos(text: str) -> str:
    """RFC 3339 with nanoseconds → at most microseconds, which ``fromisoformat`` reads."""
    if "." not in text:
        return text
    head, rest = text.split(".", 1)
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    zone = rest[len(digits):]
    return f"{head}.{digits[:6].ljust(6, '0')}{zone}"


class FakeKubelet:
    """An HTTPS server answering the kubelet's ``/containerLogs`` endpoint from recorded log files.

    ``logs_root`` is an incident's ``kubernetes/logs`` folder (``<ns>/<pod>/<container>[.previous].log``,
    lines as ``kubectl logs --timestamps`` prints them); ``extra`` adds logs in memory, keyed by
    ``(namespace, pod, container, previous)``. ``requests`` records every path+query served.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self.logs_root: Path | None = None
        self.extra: dict[tuple[str, str, str, bool], str] = {}
        self.requests: list[str] = []
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                kubelet.requests.append(self.path)
                try:
                    status, text = kubelet.answer(self.path)
                except Exception as exc:  # noqa: BLE001 (a bug here must reach the test as a 500, not a hang)
                    status, text = 500, f"fake kubelet failed: {exc!r}"
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-kubelet", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def _read(self, namespace: str, pod: str, container: str, previous: bool) -> str | None:
        key = (namespace, pod, container, previous)
        if key in self.extra:
            return self.extra[key]
        if self.logs_root is None:
            return None
        path = self.logs_root / namespace / pod / f"{container}{'.previous' if previous else ''}.log"
        return path.read_text() if path.is_file() else None

    def answer(self, raw_path: str) -> tuple[int, str]:
        """The status and body the kubelet would send for one ``/containerLogs`` request."""
        url = urlsplit(raw_path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if len(parts) != 4 or parts[0] != "containerLogs":
            return 404, "404 page not found\n"
        _, namespace, pod, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        previous = query.get("previous") == "true"
        text = self._read(namespace, pod, container, previous)
        if text is None:
            if previous:
                return 400, f'previous terminated container "{container}" in pod "{pod}" not found'
            return 404, f'container "{container}" in pod "{pod}" not found'
        lines = text.splitlines()
        cutoff = None
        if query.get("sinceSeconds"):
            cutoff = datetime.now(UTC) - timedelta(seconds=int(query["sinceSeconds"]))
        elif query.get("sinceTime"):
            cutoff = datetime.fromisoformat(_trim_nanos(query["sinceTime"].replace("Z", "+00:00")))
        if cutoff is not None:
            lines = [ln for ln in lines if (ts := _line_time(ln)) is None or ts >= cutoff]
        if query.get("tailLines"):
            count = int(query["tailLines"])
            lines = lines[-count:] if count else []
        if query.get("timestamps") != "true":  # the files hold the timestamps the kubelet would add
            lines = [ln.split(" ", 1)[1] if _line_time(ln) and " " in ln else ln for ln in lines]
        body = "".join(f"{ln}\n" for ln in lines)
        if query.get("limitBytes"):
            body = body.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return 200, body


class ConnectProxy:
    """The API server's ``cluster`` egress: an HTTP CONNECT proxy on a unix socket.

    Every tunnel, whatever node address it asks for, is connected to the fake kubelet; ``targets``
    records the ``host:port`` the API server asked for (the address recorded in the node's status).
    """

    def __init__(self, socket_path: Path, kubelet_port: int) -> None:
        self.socket_path = socket_path
        self.kubelet_port = kubelet_port
        self.targets: list[str] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(socket_path))
        self._listener.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, name="egress-proxy", daemon=True).start()

    def close(self) -> None:
        """Stop accepting tunnels."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            request, _, rest = head.partition(b"\r\n\r\n")
            method, target = (request.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            if method != b"CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.targets.append(target.decode())
            try:
                upstream = socket.create_connection(("127.0.0.1", self.kubelet_port), timeout=10)
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                upstream.settimeout(None)
                pump = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                pump.start()
                _pipe(conn, upstream)
                pump.join(timeout=10)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------- the cluster


@dataclass
class KubeCluster:
    """A running etcd + kube-apiserver (+ fake kubelet and egress proxy)."""

    url: str
    """``https://127.0.0.1:<port>``."""
    admin_kubeconfig: Path
    """Token of ``admin`` in ``system:masters``."""
    agent_kubeconfig: Path
    """A real token of the ServiceAccount ``sre-graph/sre-graph``, bound by ``deploy/rbac.yaml``."""
    nobody_kubeconfig: Path
    """An authenticated user with no role at all."""
    ca_file: Path
    workdir: Path
    kubelet: FakeKubelet
    proxy: ConnectProxy
    apiserver_log: Path
    etcd_log: Path
    baseline: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """Objects of each kind the API server creates by itself (``default/kubernetes``, …): not the incident's."""
    hpa_version: str = "autoscaling/v2"
    """The HorizontalPodAutoscaler group version the server serves (``autoscaling/v2beta2`` on 1.20)."""
    timings: dict[str, float] = field(default_factory=dict)
    loaded: str | None = None
    """The incident currently loaded (its folder name)."""

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """An official-client ``ApiClient`` for a kubeconfig (the admin's by default)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.admin_kubeconfig))


def _wait_http(url: str, *, deadline: float, proc: subprocess.Popen[bytes], log: Path, what: str,
               context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None,
               expect: bytes = b"") -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KubeSetupError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        try:
            probe = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(probe, timeout=2, context=context) as response:
                body = response.read()
                if response.status == 200 and expect in body:
                    return
                last = body.decode(errors="replace")[:300]
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise KubeSetupError(f"{what} not ready at {url}: {last}\n{tail(log)}")


@contextlib.contextmanager
def start_cluster(workdir: Path, *, startup_timeout: float = 90.0) -> Iterator[KubeCluster]:
    """Start etcd, kube-apiserver, the fake kubelet and the egress proxy; yield them; stop them all."""
    started = time.monotonic()
    binary = apiserver_binary()
    timings = {"provision_s": round(time.monotonic() - started, 2)}
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(workdir / "pki")
    admin_token, nobody_token = os.urandom(16).hex(), os.urandom(16).hex()
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{admin_token},admin,admin-uid,"system:masters"\n{nobody_token},nobody,nobody-uid\n')
    tokens.chmod(0o600)
    sock_dir = Path(tempfile.mkdtemp(prefix="kube-egress-"))  # unix socket paths must stay short
    kubelet = FakeKubelet(certs["server.crt"], certs["server.key"])
    proxy = ConnectProxy(sock_dir / "proxy.sock", kubelet.port)
    egress = workdir / "egress.yaml"
    egress.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
        "egressSelections": [{"name": "cluster", "connection": {
            "proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": str(proxy.socket_path)}}}}],
    }))
    procs: list[subprocess.Popen[bytes]] = []
    etcd_log, apiserver_log = workdir / "etcd.log", workdir / "kube-apiserver.log"
    try:
        client_port, peer_port = free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        with etcd_log.open("ab") as out:
            etcd = subprocess.Popen(
                ["etcd", "--name", "sre-graph-test", "--data-dir", str(workdir / "etcd"),
                 "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                 "--initial-cluster", f"sre-graph-test={peer_url}", "--log-level", "warn"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(etcd)
        _wait_http(f"{etcd_url}/health", deadline=time.monotonic() + 30, proc=etcd, log=etcd_log, what="etcd",
                   expect=b"true")
        timings["etcd_ready_s"] = round(time.monotonic() - t0, 2)

        port = free_port()
        url = f"https://127.0.0.1:{port}"
        with apiserver_log.open("ab") as out:
            apiserver = subprocess.Popen(
                [str(binary), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", f"--secure-port={port}",
                 "--insecure-port=0", f"--cert-dir={workdir / 'pki'}",
                 f"--tls-cert-file={certs['server.crt']}", f"--tls-private-key-file={certs['server.key']}",
                 f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
                 f"--service-account-key-file={certs['sa.pub']}",
                 f"--service-account-signing-key-file={certs['sa.key']}",
                 "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                 f"--service-cluster-ip-range={SERVICE_CIDR}",
                 f"--disable-admission-plugins={ADMISSION_OFF}", "--endpoint-reconciler-type=none",
                 f"--egress-selector-config-file={egress}", "--allow-privileged=true", "--event-ttl=24h",
                 "--kubelet-timeout=10s", "--profiling=false", "--v=1",
                 # Keeps services' spec.ipFamilies / ipFamilyPolicy (alpha in 1.20, on by default from 1.21).
                 "--feature-gates=IPv6DualStack=true"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(apiserver)
        context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
        _wait_http(f"{url}/readyz", deadline=time.monotonic() + startup_timeout, proc=apiserver,
                   log=apiserver_log, what="kube-apiserver", context=context,
                   headers={"Authorization": f"Bearer {admin_token}"}, expect=b"ok")
        timings["apiserver_ready_s"] = round(time.monotonic() - t0, 2)

        admin = write_kubeconfig(workdir / "admin.kubeconfig", url, token=admin_token, ca_file=certs["ca.crt"],
                                 user="admin")
        nobody = write_kubeconfig(workdir / "nobody.kubeconfig", url, token=nobody_token,
                                  ca_file=certs["ca.crt"], user="nobody")
        cluster = KubeCluster(url=url, admin_kubeconfig=admin, agent_kubeconfig=admin, nobody_kubeconfig=nobody,
                              ca_file=certs["ca.crt"], workdir=workdir, kubelet=kubelet, proxy=proxy,
                              apiserver_log=apiserver_log, etcd_log=etcd_log, timings=timings)
        with contextlib.closing(cluster.api_client()) as api:
            apply_manifest(api, RBAC)
            token = service_account_token(api, *AGENT_SA)
            cluster.hpa_version = served_hpa_version(api)
            cluster.baseline = {kind: {_identity(o) for o in list_raw(api, kind, cluster.hpa_version)}
                                for kind in KIND_API}
        cluster.agent_kubeconfig = write_kubeconfig(workdir / "agent.kubeconfig", url, token=token,
                                                    ca_file=certs["ca.crt"], user="sre-graph")
        timings["cluster_ready_s"] = round(time.monotonic() - t0, 2)
        yield cluster
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        proxy.close()
        kubelet.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
        shutil.rmtree(workdir / "etcd", ignore_errors=True)


# --------------------------------------------------------------------- talking to the API server


def request(api: Any, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
            content_type: str = "application/json") -> Any:
    """One API request through the official client's transport and auth; the JSON reply.

    Raises the client's ``ApiException`` (status, reason, body) on an error status.
    """
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, post = api.param_serialize(
        method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
        auth_settings=["BearerToken"])
    response = api.call_api(method, url, headers, body, post, _request_timeout=30)
    response.read()
    text = response.data.decode(errors="replace")
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=text, data=None)
    return json.loads(text) if text else None


KIND_API: dict[str, tuple[str, str, bool]] = {
    # kind: (group version path, resource, namespaced); "hpa" takes the served autoscaling version.
    "nodes": ("/api/v1", "nodes", False),
    "configmaps": ("/api/v1", "configmaps", True),
    "services": ("/api/v1", "services", True),
    "endpoints": ("/api/v1", "endpoints", True),
    "deployments": ("/apis/apps/v1", "deployments", True),
    "replicasets": ("/apis/apps/v1", "replicasets", True),
    "pods": ("/api/v1", "pods", True),
    "hpa": ("", "horizontalpodautoscalers", True),
    "networkpolicies": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "events": ("/api/v1", "events", True),
}
"""Every kind of ``KubernetesPort.list``, in the order the loader creates them."""

STATUS_KINDS = {"nodes", "services", "deployments", "replicasets", "pods", "hpa"}
"""Kinds whose ``status`` is a subresource: create drops it, ``PUT …/status`` writes it."""

SERVER_OWNED_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                         "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
"""Metadata the API server sets itself, whatever the client sends: not preserved, never compared."""


def served_hpa_version(api: Any) -> str:
    """``autoscaling/v2`` when served (1.23+), else ``autoscaling/v2beta2``."""
    group = request(api, "GET", "/apis/autoscaling")
    versions = [v["groupVersion"] for v in group.get("versions", [])]
    for want in ("autoscaling/v2", "autoscaling/v2beta2"):
        if want in versions:
            return want
    raise KubeSetupError(f"the API server serves no HPA version with metrics: {versions}")


def _collection(kind: str, namespace: str | None, hpa_version: str) -> str:
    base, resource, namespaced = KIND_API[kind]
    if kind == "hpa":
        base = f"/apis/{hpa_version}"
    if namespaced and namespace:
        return f"{base}/namespaces/{quote(namespace, safe='')}/{resource}"
    return f"{base}/{resource}"


def list_raw(api: Any, kind: str, hpa_version: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every object of a kind, as the server's JSON."""
    return request(api, "GET", _collection(kind, namespace, hpa_version))["items"]


def _identity(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def apply_manifest(api: Any, path: Path) -> None:
    """Create (or replace) every object of a YAML manifest: the Namespace, ServiceAccount and RBAC kinds."""
    paths = {
        "Namespace": "/api/v1/namespaces",
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    }
    from kubernetes.client.exceptions import ApiException

    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        if doc["kind"] not in paths:
            raise KubeSetupError(f"{path}: cannot apply kind {doc['kind']}")
        collection = paths[doc["kind"]].format(ns=doc["metadata"].get("namespace", "default"))
        try:
            request(api, "POST", collection, body=doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = request(api, "GET", f"{collection}/{doc['metadata']['name']}")
            doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
            request(api, "PUT", f"{collection}/{doc['metadata']['name']}", body=doc)


def service_account_token(api: Any, namespace: str, name: str, *, seconds: int = 6 * 3600) -> str:
    """A real, signed token of a ServiceAccount (the TokenRequest API, as a projected volume gets it)."""
    reply = request(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    })
    return reply["status"]["token"]


# --------------------------------------------------------------------- loading an incident


def _prepare(obj: dict[str, Any], kind: str, hpa_version: str) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    meta = body.setdefault("metadata", {})
    for key in SERVER_OWNED_METADATA:
        meta.pop(key, None)
    if kind == "hpa":
        body["apiVersion"] = hpa_version
    return body


def _load_kind_file(incident_dir: Path, kind: str) -> list[dict[str, Any]]:
    path = incident_dir / "kubernetes" / f"{kind}.json"
    if not path.exists():
        return []
    return json.loads(path.read_text()).get("items") or []


def clear_cluster(api: Any, cluster: KubeCluster) -> None:
    """Delete every object of the port's kinds that the server did not create itself (no grace period)."""
    from kubernetes.client.exceptions import ApiException

    for kind in reversed(list(KIND_API)):
        for obj in list_raw(api, kind, cluster.hpa_version):
            ident = _identity(obj)
            if ident in cluster.baseline.get(kind, set()):
                continue
            namespace, name = ident
            path = f"{_collection(kind, namespace or None, cluster.hpa_version)}/{quote(name, safe='')}"
            try:
                request(api, "DELETE", path, query={"gracePeriodSeconds": 0})
            except ApiException as exc:
                if exc.status != 404:
                    raise
    cluster.kubelet.logs_root = None
    cluster.kubelet.extra.clear()
    cluster.kubelet.requests.clear()
    cluster.proxy.targets.clear()
    cluster.loaded = None


def load_incident_into_cluster(api: Any, incident_dir: Path, *, cluster: KubeCluster | None = None) -> dict[str, int]:
    """Create a recorded incident's ``kubernetes/`` objects in a real API server; returns counts per kind.

    Namespaces are created as needed; every object is POSTed without the server-owned metadata, then
    its recorded ``status`` is written through the ``/status`` subresource (nodes, services,
    deployments, replicasets, pods, HPAs). Events keep their ``count``, ``firstTimestamp`` and
    ``lastTimestamp``. With ``cluster``, the fake kubelet starts serving the incident's logs.
    Errors are raised as the client's ``ApiException``, naming the object that was refused.
    """
    from kubernetes.client.exceptions import ApiException

    hpa_version = cluster.hpa_version if cluster else served_hpa_version(api)
    objects = {kind: _load_kind_file(incident_dir, kind) for kind in KIND_API}
    namespaces = sorted({o["metadata"]["namespace"] for kind, items in objects.items() if KIND_API[kind][2]
                         for o in items if o.get("metadata", {}).get("namespace")})
    existing = {n["metadata"]["name"] for n in request(api, "GET", "/api/v1/namespaces")["items"]}
    for namespace in namespaces:
        if namespace not in existing:
            request(api, "POST", "/api/v1/namespaces",
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    counts: dict[str, int] = {}
    for kind, items in objects.items():
        for obj in items:
            body = _prepare(obj, kind, hpa_version)
            namespace, name = _identity(body)
            collection = _collection(kind, namespace or None, hpa_version)
            try:
                created = request(api, "POST", collection, body=body)
            except ApiException as exc:
                if exc.status == 409 and cluster and (namespace, name) in cluster.baseline.get(kind, set()):
                    current = request(api, "GET", f"{collection}/{quote(name, safe='')}")
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    created = request(api, "PUT", f"{collection}/{quote(name, safe='')}", body=body)
                else:
                    exc.reason = f"{exc.reason} ({kind} {namespace}/{name} from {incident_dir.name})"
                    raise
            if kind in STATUS_KINDS and obj.get("status") is not None:
                created["status"] = copy.deepcopy(obj["status"])
                try:
                    request(api, "PUT", f"{collection}/{quote(name, safe='')}/status", body=created)
                except ApiException as exc:
                    exc.reason = f"{exc.reason} (status of {kind} {namespace}/{name} from {incident_dir.name})"
                    raise
            counts[kind] = counts.get(kind, 0) + 1
    if cluster is not None:
        cluster.kubelet.logs_root = incident_dir / "kubernetes" / "logs"
        cluster.loaded = incident_dir.name
    return counts


# --------------------------------------------------------------------- comparing live and recorded


NOT_SERVED_BY_1_20: dict[str, tuple[tuple[str, ...], ...]] = {
    # Fields newer than the v1.20 API server: it drops them on write, so they cannot be compared here.
    "pods": (("status", "hostIPs"),),  # 1.28
    "services": (("spec", "internalTrafficPolicy"),),  # 1.21
}


def without_server_metadata(obj: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """An object without what is not preserved: the metadata the server owns, fields newer than the
    server (``NOT_SERVED_BY_1_20``), and the HPA version (reduced to the group)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for key in SERVER_OWNED_METADATA:
        meta.pop(key, None)
    if str(out.get("apiVersion", "")).startswith("autoscaling/"):
        out["apiVersion"] = "autoscaling"
    for path in NOT_SERVED_BY_1_20.get(kind or "", ()):
        parent = out
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return out


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": Decimal("1e-9"),
           "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "P": 10**15, "E": 10**18}


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity's value (``33554432Ki`` == ``32Gi``), or ``None`` if not one."""
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if not match:
        return None
    number, suffix = Decimal(match[1]), match[2] or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_SUFFIX[suffix])


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def preserved_diff(recorded: Any, live: Any, path: str = "") -> list[str]:
    """Where ``live`` differs from ``recorded`` on the fields recorded (fields only in ``live`` are defaults).

    What the API's JSON cannot tell apart counts as equal: a recorded ``null``, ``[]`` or ``{}`` and an
    absent field (Go's ``omitempty``), and two spellings of one quantity (the server writes
    ``33554432Ki`` as ``32Gi``). Lists must have the same length and match element by element.
    """
    if isinstance(recorded, dict):
        if not isinstance(live, dict):
            return [f"{path or '.'}: recorded an object, live has {live!r}"]
        out = []
        for key, value in recorded.items():
            if key not in live:
                if not _empty(value):
                    out.append(f"{path}.{key}: recorded {json.dumps(value)[:120]}, missing live")
            else:
                out.extend(preserved_diff(value, live[key], f"{path}.{key}"))
        return out
    if isinstance(recorded, list):
        if not isinstance(live, list) or len(live) != len(recorded):
            return [f"{path}: recorded {len(recorded)} items, live has {json.dumps(live)[:200]}"]
        out = []
        for index, (a, b) in enumerate(zip(recorded, live, strict=True)):
            out.extend(preserved_diff(a, b, f"{path}[{index}]"))
        return out
    if recorded != live:
        same_quantity = quantity(recorded) is not None and quantity(recorded) == quantity(live)
        if not same_quantity:
            return [f"{path}: recorded {recorded!r}, live {live!r}"]
    return []


def compare_lists(recorded: list[dict[str, Any]], live: list[dict[str, Any]], *, kind: str,
                  server_owned: set[tuple[str, str]] | None = None) -> list[str]:
    """Differences between a snapshot answer and a live answer: identities, then preserved fields.

    ``server_owned`` are objects the API server made itself (``KubeCluster.baseline``), which a
    recording does not hold: they are left out of the live side unless the recording has them too.
    """
    server_owned = server_owned or set()
    rec = {_identity(o): o for o in recorded}
    liv = {_identity(o): o for o in live if _identity(o) not in server_owned or _identity(o) in rec}
    problems = []
    if len(rec) != len(recorded) or len(liv) != len([o for o in live if _identity(o) in liv]):
        problems.append("duplicate namespace/name in an answer")
    missing, extra = sorted(set(rec) - set(liv)), sorted(set(liv) - set(rec))
    if missing:
        problems.append(f"missing live: {missing}")
    if extra:
        problems.append(f"only live: {extra}")
    for ident in sorted(set(rec) & set(liv)):
        diff = preserved_diff(without_server_metadata(rec[ident], kind), without_server_metadata(liv[ident], kind))
        problems.extend(f"{ident[0]}/{ident[1]}{d}" for d in diff)
    return problems
