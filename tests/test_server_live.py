"""The service as deployed: ``sre-graph serve`` (uvicorn) in a subprocess on a loopback port, driven with httpx.

One server runs with nothing configured (it must start and investigate on the embedded defaults); the
other with every credential, a real Redis 8 checkpointer, the demo replay folder and a loopback Slack
Web API that records what slack-sdk sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
INCIDENT = REPO / "evals" / "incidents" / "net-orders-inventory-netpol"
ALERT = json.loads((INCIDENT / "alert.json").read_text())
SRE_GRAPH = Path(sys.executable).parent / "sre-graph"

API_KEY = "live-api-key"
JWT_SECRET = "live-jwt-secret-" + "z" * 48
WEBHOOK_SECRET = "live-webhook-secret"
SLACK_SECRET = "live-slack-signing-secret"
SLACK_TOKEN = "xoxb-live-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def tail(path: Path, chars: int = 5000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


class Server:
    """A running ``sre-graph serve``."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path, cwd: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log
        self.cwd = cwd
        self.http = httpx.Client(base_url=url, timeout=10)

    def wait_for_report(self, incident_id: str, headers: dict[str, str], timeout: float = 120) -> dict[str, Any]:
        """Poll the incident until its investigation has ended (report stored, or failed)."""
        deadline = time.monotonic() + timeout
        incident: dict[str, Any] = {}
        while time.monotonic() < deadline:
            incident = self.http.get(f"/api/v1/incidents/{incident_id}", headers=headers).json()
            if incident.get("status") in ("open", "failed", "resolved") and (incident.get("report") or
                                                                              incident.get("error")):
                return incident
            time.sleep(0.2)
        pytest.fail(f"incident {incident_id} not finished after {timeout} s: {incident}\n{tail(self.log)}")


def start_server(tmp: Path, env: dict[str, str], extra_env: dict[str, str], *options: str) -> Server:
    """``sre-graph serve`` on a free loopback port, ready (``/ready`` answers 200)."""
    assert SRE_GRAPH.exists(), f"{SRE_GRAPH} is not installed (pip install -e '.[test]')"
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "serve.log"
    for _attempt in range(3):
        port = free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen([str(SRE_GRAPH), "serve", "--host", "127.0.0.1", "--port", str(port), *options],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
                                    env={**env, **extra_env})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return Server(url, proc, log, tmp)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        stop(proc)
    pytest.fail(f"sre-graph serve did not become ready:\n{tail(log)}")


# --------------------------------------------------------------------- a loopback Slack Web API


class SlackRecorder:
    """Answers slack-sdk's ``chat.postMessage`` like Slack and records each request."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                body = (json.loads(raw) if self.headers.get("Content-Type", "").startswith("application/json")
                        else {k: v[-1] for k, v in parse_qs(raw).items()})
                recorder.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                data = json.dumps({"ok": True, "channel": body.get("channel"),
                                   "ts": f"1772700000.{len(recorder.calls):06d}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.calls

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def slack_api() -> Iterator[SlackRecorder]:
    recorder = SlackRecorder()
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory, subprocess_env: dict[str, str], redis_server: str,
               slack_api: SlackRecorder) -> Iterator[Server]:
    """The service with every credential, Redis checkpoints, the demo replay and Slack delivery."""
    env = {
        "SRE_GRAPH_API_KEYS": API_KEY,
        "SRE_GRAPH_JWT_SECRET": JWT_SECRET,
        "SRE_GRAPH_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SRE_GRAPH_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SRE_GRAPH_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SRE_GRAPH_SLACK_BASE_URL": slack_api.url,
        "SRE_GRAPH_SLACK_CHANNEL": "C0ALERTS",
        "SRE_GRAPH_PUBLIC_URL": "https://sre.example.com",
        "SRE_GRAPH_REDIS_URL": redis_server,
        "SRE_GRAPH_REPLAY_DIR": str(INCIDENT),
        "SRE_GRAPH_MAX_CONCURRENT_INVESTIGATIONS": "2",
    }
    server = start_server(tmp_path_factory.mktemp("serve-configured"), subprocess_env, env)
    try:
        yield server
    finally:
        server.http.close()
        stop(server.proc)


KEY = {"X-API-Key": API_KEY}
HOOK = {"X-Webhook-Secret": WEBHOOK_SECRET}


def signed(body: bytes, at: float | None = None, secret: str = SLACK_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/json"}


def expired_token() -> str:
    return jwt.encode({"sub": "bob", "role": "admin", "exp": datetime.now(UTC) - timedelta(minutes=1)}, JWT_SECRET,
                      algorithm="HS256")


# --------------------------------------------------------------------- nothing configured


def test_serve_with_no_configuration_starts_and_investigates(tmp_path, subprocess_env):
    server = start_server(tmp_path, subprocess_env, {})
    try:
        health = server.http.get("/health")
        accepted = server.http.post("/api/v1/alerts", json={"alert_id": "a1", "service_name": "checkout",
                                                            "severity": "high", "message": "p99 latency 2s"})
        incident = server.wait_for_report(accepted.json()["incident_id"], {})
    finally:
        server.http.close()
        stop(server.proc)
    assert health.status_code == 200 and set(health.json()["checks"]) == {"store"}, health.text
    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted"
    assert incident["status"] == "open" and incident["report"]["root_cause"] == "unknown", \
        "no source is configured, so the report says what was unavailable"
    assert incident["report"]["unavailable_sources"]
    assert (tmp_path / ".sre-graph" / "incidents.db").is_file(), "the embedded SQLite store is the default"
    assert "no authentication is configured" in tail(server.log)


def test_serve_demo_investigates_the_bundled_demo_alert(tmp_path, subprocess_env):
    from sre_graph.cli import demo_dir

    server = start_server(tmp_path, subprocess_env, {}, "--demo")
    try:
        alert = json.loads((demo_dir() / "alert.json").read_text())
        accepted = server.http.post("/api/v1/webhooks/alertmanager", json=alert)
        incident = server.wait_for_report(accepted.json()["incident_id"], {})
    finally:
        server.http.close()
        stop(server.proc)
    assert accepted.status_code == 202
    assert incident["status"] == "open" and incident["report"]["root_cause"] == "network_policy_block"
    assert "SRE_GRAPH_REPLAY_DIR is set" in tail(server.log)


# --------------------------------------------------------------------- fully configured


def test_health_checks_the_store_and_redis(configured):
    response = configured.http.get("/health")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == {"store", "redis"} and checks["redis"]["detail"] == "PING answered"
    assert configured.http.get("/ready").json()["status"] == "ready"


def test_auth_failures_over_http(configured):
    http = configured.http
    cases = [
        (http.post("/api/v1/webhooks/alertmanager", json=ALERT), 401, "missing webhook secret"),
        (http.post("/api/v1/webhooks/alertmanager", json=ALERT, headers={"X-Webhook-Secret": "x"}), 401,
         "invalid webhook secret"),
        (http.post("/api/v1/alerts", json=ALERT), 401, "missing credentials"),
        (http.get("/api/v1/incidents", headers={"X-API-Key": "nope"}), 401, "invalid API key"),
        (http.get("/api/v1/incidents", headers={"Authorization": f"Bearer {expired_token()}"}), 401, "token expired"),
        (http.post("/api/v1/alerts", json=ALERT, headers={"Authorization": "Bearer " + jwt.encode(
            {"role": "viewer", "exp": time.time() + 60}, JWT_SECRET, algorithm="HS256")}), 403, "may not write"),
        (http.post("/api/v1/slack/events", content=b"{}", headers=signed(b"{}", secret="wrong")), 401,
         "bad signature"),
        (http.post("/api/v1/slack/events", content=b"{}", headers=signed(b"{}", at=time.time() - 900)), 401,
         "stale timestamp"),
    ]
    for response, code, message in cases:
        assert response.status_code == code and message in response.json()["detail"], response.text


def test_malformed_bodies_over_http_store_nothing(configured):
    before = configured.http.get("/api/v1/incidents", headers=KEY).json()["count"]
    bad = {**ALERT, "alerts": [{**ALERT["alerts"][0], "startsAt": "yesterday", "labels": "oops"}]}
    response = configured.http.post("/api/v1/webhooks/alertmanager", json=bad, headers=HOOK)
    not_json = configured.http.post("/api/v1/alerts", content=b"{", headers={**KEY, "Content-Type": "application/json"})
    after = configured.http.get("/api/v1/incidents", headers=KEY).json()["count"]
    assert response.status_code == 422
    assert {"alerts[0].startsAt", "alerts[0].labels"} <= {d["field"] for d in response.json()["detail"]}
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["detail"][0]["msg"]
    assert after == before


def test_the_demo_alert_is_investigated_on_a_langgraph_thread_in_redis(configured, redis_server, slack_api):
    accepted = configured.http.post("/api/v1/webhooks/alertmanager", json=ALERT, headers=HOOK)
    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted", accepted.text
    incident_id = accepted.json()["incident_id"]
    again = configured.http.post("/api/v1/webhooks/alertmanager", json=ALERT, headers=HOOK).json()
    assert again["status"] == "deduplicated" and again["incident_id"] == incident_id

    incident = configured.wait_for_report(incident_id, KEY)
    assert incident["status"] == "open", incident.get("error")
    assert incident["report"]["root_cause"] == "network_policy_block"
    assert len(incident["alerts"]) == 2

    from sre_graph.graph import build_graph
    from sre_graph.runner import checkpointer, run_config

    with checkpointer(redis_server) as saver:
        state = build_graph().compile(checkpointer=saver).get_state(run_config(incident_id))
    assert state.values, f"no checkpoint for thread {incident_id} in Redis"
    assert state.values["report"].root_cause == "network_policy_block" and state.next == ()

    deadline = time.monotonic() + 30
    while not (posted := [c for c in slack_api.calls if c["body"].get("channel") == "C0ALERTS"]):
        assert time.monotonic() < deadline, f"no report posted to the configured channel: {slack_api.calls}"
        time.sleep(0.1)
    assert not posted[0]["body"].get("thread_ts"), "an alert's first report starts a new message"
    incident = configured.http.get(f"/api/v1/incidents/{incident_id}", headers=KEY).json()
    assert incident["slack"]["channel"] == "C0ALERTS" and incident["slack"]["thread_ts"].startswith("1772700000.")


def test_slack_mention_is_answered_in_its_thread_and_retries_start_nothing(configured, slack_api):
    before = len(slack_api.calls)
    event = {"type": "event_callback", "event_id": "EvLIVE1", "team_id": "T0", "event": {
        "type": "app_mention", "channel": "C0ASK", "user": "U0ALICE", "ts": "1772552770.000555",
        "text": "<@U0BOT> orders-api is throwing 5xx service=orders-api namespace=orders"}}
    body = json.dumps(event).encode()
    begin = time.perf_counter()
    first = configured.http.post("/api/v1/slack/events", content=body, headers=signed(body))
    elapsed = time.perf_counter() - begin
    retry = configured.http.post("/api/v1/slack/events", content=body,
                                 headers={**signed(body), "X-Slack-Retry-Num": "1"})
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    assert elapsed < 3
    assert retry.status_code == 200 and retry.json()["status"] == "ignored"
    incident = configured.wait_for_report(first.json()["incident_id"], KEY)
    assert incident["status"] == "open"
    calls = [c for c in slack_api.wait_for(before + 1)[before:] if c["body"].get("channel") == "C0ASK"]
    assert len(calls) == 1, slack_api.calls
    call = calls[0]
    assert call["path"] == "/api/chat.postMessage" and call["auth"] == f"Bearer {SLACK_TOKEN}"
    assert call["body"]["thread_ts"] == "1772552770.000555"
    blocks = call["body"]["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert blocks[0]["type"] == "header" and "network_policy_block" in json.dumps(blocks)
    assert f"https://sre.example.com/api/v1/incidents/{incident['incident_id']}" in json.dumps(blocks)


def test_metrics_over_http(configured):
    text = configured.http.get("/metrics").text
    assert 'sre_agent_alerts_processed_total{agent_type="network",status="success"}' in text
    assert 'sre_agent_alerts_received_total{result="deduplicated",source="alertmanager"}' in text
    assert configured.http.get("/docs").status_code == 200


def test_sigterm_stops_the_server_cleanly(tmp_path, subprocess_env):
    server = start_server(tmp_path, subprocess_env, {})
    server.http.close()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=20)
    log = tail(server.log)
    assert code in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal once it has shut down
    assert "Application shutdown complete" in log and "Traceback" not in log
    assert os.path.exists(tmp_path / ".sre-graph" / "incidents.db")
