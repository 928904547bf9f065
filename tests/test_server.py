"""The HTTP service through FastAPI's test client: every route, every auth failure, dedup, Slack, storm.

The incident store is the real SQLite one on a temporary file; investigations run through a fake runner
(recording its calls, optionally slow, blocked or failing) except where a test says otherwise. Slack
delivery goes through slack-sdk to a loopback server that records what it receives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from sre_graph.models import Report
from sre_graph.server import app as app_module
from sre_graph.server.app import Service, create_app
from sre_graph.server.slack import SlackDeliveryError
from sre_graph.server.store import SQLiteStore
from sre_graph.settings import Settings

REPO = Path(__file__).resolve().parent.parent
INCIDENT = REPO / "evals" / "incidents" / "net-orders-inventory-netpol"
ALERT = json.loads((INCIDENT / "alert.json").read_text())
FINGERPRINT = ALERT["alerts"][0]["fingerprint"]

JWT_SECRET = "test-jwt-secret-" + "x" * 64
API_KEY = "key-operator-1"
WEBHOOK_SECRET = "hook-secret"
SLACK_SECRET = "slack-signing-secret"


# --------------------------------------------------------------------- fakes and helpers


class FakeRunner:
    """Stands in for ``sre_graph.runner.investigate``: records calls; may wait on a gate, sleep or fail."""

    def __init__(self, report: Report | None, *, delay: float = 0.0, error: Exception | None = None,
                 gate: threading.Event | None = None) -> None:
        self.report = report
        self.delay = delay
        self.error = error
        self.gate = gate
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, alert: dict[str, Any], *, thread_id: str) -> Report | None:
        with self._lock:
            self.calls.append((thread_id, alert))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                assert self.gate.wait(20), "the test never opened the gate"
            if self.delay:
                time.sleep(self.delay)
            if self.error is not None:
                raise self.error
            return self.report
        finally:
            with self._lock:
                self.active -= 1

    @property
    def thread_ids(self) -> list[str]:
        return [thread_id for thread_id, _ in self.calls]


class FakeNotifier:
    """Records reports instead of posting them; can fail like Slack does."""

    def __init__(self, *, fail: bool = False) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = fail

    def post_report(self, channel: str, report: Report, *, thread_ts: str | None = None,
                    link: str | None = None) -> str:
        if self.fail:
            raise SlackDeliveryError("channel_not_found", status=200)
        self.posts.append({"channel": channel, "report": report, "thread_ts": thread_ts, "link": link})
        return "1772000000.000900"


@pytest.fixture(scope="session")
def report() -> Report:
    """A real report (the demo incident replayed), returned by the fake runners."""
    from sre_graph.runner import investigate

    result = investigate(incident_dir=INCIDENT)
    assert result is not None
    return result


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """The real SQLite store on a temporary file."""
    backend = SQLiteStore(tmp_path / "incidents.db")
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def running(settings: Settings, store: SQLiteStore, runner: Callable[..., Report | None],
            notifier: Any = None) -> Iterator[TestClient]:
    """A test client with the app's lifespan running (store, pool, auth)."""
    app = create_app(settings, store=store, notifier=notifier, runner=runner)
    with TestClient(app) as client:
        yield client


def service(client: TestClient) -> Service:
    return client.app.state.service  # type: ignore[attr-defined,no-any-return]


def idle(client: TestClient) -> None:
    assert service(client).pool.wait_idle(30), "investigations still running after 30 s"


def alertmanager(fingerprint: str = FINGERPRINT, *, alertname: str = "orders-api error rate",
                 service_name: str = "orders-api", status: str = "firing", n: int = 0) -> dict[str, Any]:
    """An Alertmanager body with one alert."""
    return {"version": "4", "status": status, "receiver": "sre-graph", "groupLabels": {"alertname": alertname},
            "alerts": [{"status": status, "fingerprint": fingerprint, "startsAt": "2026-03-03T15:46:10Z",
                        "labels": {"alertname": alertname, "service": service_name, "severity": "critical",
                                   "namespace": "orders", "n": str(n)},
                        "annotations": {"summary": f"{alertname} firing"}}]}


GENERIC = {"alert_id": "a1", "service_name": "checkout", "severity": "high", "message": "p99 latency 2s",
           "labels": {"alertname": "CheckoutLatency", "namespace": "shop"}}


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def token(role: str | None = "operator", *, expires_in: float | None = 300, key: Any = JWT_SECRET,
          algorithm: str = "HS256", **claims: Any) -> str:
    """A signed JWT; ``expires_in=None`` leaves out ``exp``, ``role=None`` the role."""
    payload: dict[str, Any] = {"sub": "alice", **claims}
    if role is not None:
        payload["role"] = role
    if expires_in is not None:
        payload["exp"] = datetime.now(UTC) + timedelta(seconds=expires_in)
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def secured(**overrides: Any) -> Settings:
    """Settings with every kind of credential configured."""
    values: dict[str, Any] = {"api_keys": [API_KEY, "key-operator-2"], "jwt_secret": JWT_SECRET,
                              "jwt_public_key": RSA_PUBLIC_PEM, "webhook_secret": WEBHOOK_SECRET,
                              "slack_signing_secret": SLACK_SECRET}
    return Settings(**{**values, **overrides})


def signed(body: bytes, *, secret: str = SLACK_SECRET, at: float | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for ``body``."""
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def mention(event_id: str = "Ev0001", *, ts: str = "1772552770.000100", channel: str = "C0INCIDENT",
            text: str = "<@U0BOT> orders-api 5xx since 15:46 service=orders-api namespace=orders sev1",
            thread_ts: str | None = None, event_type: str = "app_mention", **event: Any) -> bytes:
    """An Events API envelope carrying one message event."""
    inner: dict[str, Any] = {"type": event_type, "text": text, "ts": ts, "channel": channel, "user": "U0ALICE",
                             **event}
    if thread_ts:
        inner["thread_ts"] = thread_ts
    return json.dumps({"type": "event_callback", "team_id": "T0", "api_app_id": "A0", "event_id": event_id,
                       "event_time": 1772552770, "event": inner}).encode()


def slack_post(client: TestClient, path: str, body: bytes, *, content_type: str = "application/json",
               headers: dict[str, str] | None = None, **sign: Any) -> Any:
    return client.post(path, content=body, headers={"Content-Type": content_type, **signed(body, **sign),
                                                    **(headers or {})})


def command(text: str, *, channel: str = "C0OPS") -> bytes:
    return urlencode({"command": "/sre", "text": text, "channel_id": channel, "user_id": "U0BOB",
                      "team_id": "T0", "response_url": "https://hooks.slack.invalid/x"}).encode()


@contextmanager
def http_server(handler: Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, Any]]]) -> Iterator[str]:
    """A loopback HTTP server answering every request with ``handler(request) -> (status, json)``."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            code, body = handler(self)
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------- intake and the investigation


def test_alertmanager_webhook_accepts_at_once_and_investigates_in_the_background(store, report):
    gate = threading.Event()
    runner = FakeRunner(report, gate=gate)
    with running(Settings(), store, runner) as client:
        begin = time.perf_counter()
        response = client.post("/api/v1/webhooks/alertmanager", json=ALERT)
        assert time.perf_counter() - begin < 2, "the webhook must not wait for the investigation"
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "accepted" and body["incident_id"] and body["analysis_id"]
        incident_id = body["incident_id"]
        during = client.get(f"/api/v1/incidents/{incident_id}").json()
        assert during["status"] == "investigating" and during["report"] is None
        gate.set()
        idle(client)
        incident = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert runner.thread_ids == [incident_id], "one run, on the LangGraph thread named after the incident"
    assert runner.calls[0][1]["alerts"][0]["fingerprint"] == FINGERPRINT
    assert incident["status"] == "open"
    assert incident["analysis_id"] == body["analysis_id"]
    assert incident["report"]["root_cause"] == report.root_cause == "network_policy_block"
    assert incident["fingerprint"] == FINGERPRINT and incident["service"] == "orders-api"
    assert incident["tokens"]["total"] == 0
    events = [entry["event"] for entry in incident["timeline"]]
    assert any("investigation queued" in e for e in events) and "investigation started" in events
    assert any(e.startswith("report ready") for e in events) and any("investigation finished" in e for e in events)


def test_generic_and_signoz_routes(store, report):
    runner = FakeRunner(report)
    with running(Settings(), store, runner) as client:
        generic = client.post("/api/v1/alerts", json=GENERIC)
        signoz = client.post("/api/v1/webhooks/signoz", json=ALERT)
        idle(client)
        assert generic.status_code == signoz.status_code == 202
        assert generic.json()["status"] == signoz.json()["status"] == "accepted"
        first = client.get(f"/api/v1/incidents/{generic.json()['incident_id']}").json()
        second = client.get(f"/api/v1/incidents/{signoz.json()['incident_id']}").json()
    assert first["service"] == "checkout" and first["alerts"][0]["source"] == "generic"
    assert second["alerts"][0]["source"] == "signoz"
    assert runner.calls[0][1] == GENERIC, "a generic body is investigated as sent"
    assert len(runner.calls) == 2


def test_a_grouped_webhook_opens_one_incident_per_fingerprint(store, report):
    runner = FakeRunner(report)
    body = alertmanager("fp-a", alertname="DiskFull", service_name="db")
    body["alerts"].append(alertmanager("fp-b", alertname="NodeNotReady", service_name="node")["alerts"][0])
    with running(Settings(), store, runner) as client:
        response = client.post("/api/v1/webhooks/alertmanager", json=body)
        idle(client)
    answer = response.json()
    assert [a["fingerprint"] for a in answer["alerts"]] == ["fp-a", "fp-b"]
    assert {a["status"] for a in answer["alerts"]} == {"accepted"}
    assert answer["incident_id"] == answer["alerts"][0]["incident_id"]
    assert len({a["incident_id"] for a in answer["alerts"]}) == 2
    payloads = sorted((p["alerts"][0]["fingerprint"], len(p["alerts"])) for _, p in runner.calls)
    assert payloads == [("fp-a", 1), ("fp-b", 1)], "each investigation gets its own alert only"


def test_a_failed_investigation_is_marked_failed_with_its_error(store):
    runner = FakeRunner(None, error=RuntimeError("SigNoz answered 502 three times"))
    with running(Settings(), store, runner) as client:
        incident_id = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()["incident_id"]
        idle(client)
        incident = client.get(f"/api/v1/incidents/{incident_id}").json()
        metrics = client.get("/metrics").text
    assert incident["status"] == "failed"
    assert incident["error"] == "RuntimeError: SigNoz answered 502 three times"
    assert any("investigation failed: RuntimeError: SigNoz answered 502" in e["event"] for e in incident["timeline"])
    assert 'sre_agent_alerts_processed_total{agent_type="none",status="failed"} 1.0' in metrics
    assert "sre_agent_active_alerts 0.0" in metrics


def test_an_investigation_without_a_report_is_failed_too(store):
    with running(Settings(), store, FakeRunner(None)) as client:
        incident_id = client.post("/api/v1/alerts", json=GENERIC).json()["incident_id"]
        idle(client)
        incident = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert incident["status"] == "failed" and "stopped before writing a report" in incident["error"]


def test_a_new_alert_after_a_failure_opens_a_new_incident(store, report):
    runner = FakeRunner(None, error=ValueError("boom"))
    with running(Settings(), store, runner) as client:
        first = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()
        idle(client)
        runner.error, runner.report = None, report
        second = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()
        idle(client)
    assert second["status"] == "accepted" and second["incident_id"] != first["incident_id"]


def test_concurrency_is_bounded_by_the_setting(store, report):
    runner = FakeRunner(report, delay=0.05)
    with running(Settings(max_concurrent_investigations=2), store, runner) as client:
        for i in range(8):
            client.post("/api/v1/webhooks/alertmanager", json=alertmanager(f"fp-{i}", alertname=f"A{i}"))
        idle(client)
    assert len(runner.calls) == 8 and runner.max_active == 2


def test_shutdown_marks_queued_investigations_failed(store, report, monkeypatch):
    monkeypatch.setattr(app_module, "SHUTDOWN_GRACE_SECONDS", 0.2)
    gate = threading.Event()
    runner = FakeRunner(report, gate=gate)
    with running(Settings(max_concurrent_investigations=1), store, runner) as client:
        running_id = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1")).json()["incident_id"]
        queued_id = client.post("/api/v1/webhooks/alertmanager",
                                json=alertmanager("fp-2", alertname="Other")).json()["incident_id"]
        while not runner.calls:
            time.sleep(0.01)
        threading.Timer(1.0, gate.set).start()  # let the running one finish after shutdown has begun
    queued = store.get(queued_id)
    assert queued is not None and queued.status == "failed"
    assert queued.error == "the service stopped before the investigation started"
    assert runner.thread_ids == [running_id]
    gate.set()


# --------------------------------------------------------------------- dedup and resolution


def test_same_fingerprint_joins_the_open_incident(store, report):
    runner = FakeRunner(report)
    with running(Settings(), store, runner) as client:
        first = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()
        again = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()
        idle(client)
        after_report = client.post("/api/v1/webhooks/alertmanager", json=ALERT).json()
        idle(client)
        incident = client.get(f"/api/v1/incidents/{first['incident_id']}").json()
    assert first["status"] == "accepted"
    assert again["status"] == after_report["status"] == "deduplicated"
    assert again["incident_id"] == after_report["incident_id"] == first["incident_id"]
    assert again["analysis_id"] == first["analysis_id"]
    assert len(runner.calls) == 1 and len(incident["alerts"]) == 3


def test_same_alertname_and_service_within_the_window_joins(store, report):
    runner = FakeRunner(report)
    with running(Settings(dedup_window_minutes=30), store, runner) as client:
        first = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-pod-a")).json()
        second = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-pod-b")).json()
        other_service = client.post("/api/v1/webhooks/alertmanager",
                                    json=alertmanager("fp-pod-c", service_name="payments")).json()
        idle(client)
    assert second["status"] == "deduplicated" and second["incident_id"] == first["incident_id"]
    assert other_service["status"] == "accepted" and other_service["incident_id"] != first["incident_id"]
    assert len(runner.calls) == 2


def test_outside_the_window_the_same_alertname_opens_a_new_incident(store, report):
    runner = FakeRunner(report)
    with running(Settings(dedup_window_minutes=0), store, runner) as client:
        first = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-pod-a")).json()
        time.sleep(0.01)
        second = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-pod-b")).json()
        idle(client)
    assert second["status"] == "accepted" and second["incident_id"] != first["incident_id"]


def test_a_resolved_alert_resolves_its_incident(store, report):
    runner = FakeRunner(report)
    with running(Settings(), store, runner) as client:
        opened = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1")).json()
        idle(client)
        resolved = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1", status="resolved")).json()
        incident = client.get(f"/api/v1/incidents/{opened['incident_id']}").json()
        stray = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-never", status="resolved")).json()
        refire = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1")).json()
        idle(client)
    assert resolved["status"] == "resolved" and resolved["incident_id"] == opened["incident_id"]
    assert incident["status"] == "resolved" and [a["status"] for a in incident["alerts"]] == ["firing", "resolved"]
    assert stray["status"] == "ignored" and stray["incident_id"] is None and "no open incident" in \
        stray["alerts"][0]["reason"]
    assert refire["status"] == "accepted" and refire["incident_id"] != opened["incident_id"], \
        "after resolution the alert is a new incident"
    assert store.list(limit=10) and len(store.list(limit=10)) == 2, "the stray resolved alert stored nothing"


def test_an_incident_resolves_when_all_its_alerts_have(store, report):
    with running(Settings(), store, FakeRunner(report)) as client:
        first = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-a")).json()
        client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-b"))  # joins by alertname + service
        idle(client)
        client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-a", status="resolved"))
        half = client.get(f"/api/v1/incidents/{first['incident_id']}").json()
        client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-b", status="resolved"))
        done = client.get(f"/api/v1/incidents/{first['incident_id']}").json()
    assert half["status"] == "open" and "1 of the incident's alerts still firing" in half["timeline"][-1]["event"]
    assert done["status"] == "resolved" and len(done["alerts"]) == 4


def test_resolution_during_the_investigation_is_kept(store, report):
    gate = threading.Event()
    with running(Settings(), store, FakeRunner(report, gate=gate)) as client:
        incident_id = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1")).json()["incident_id"]
        client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-1", status="resolved"))
        gate.set()
        idle(client)
        incident = client.get(f"/api/v1/incidents/{incident_id}").json()
    assert incident["status"] == "resolved" and incident["report"]["root_cause"] == "network_policy_block"


def test_storm_1000_alerts_50_fingerprints_start_50_investigations_and_lose_none(store, report):
    runner = FakeRunner(report, delay=0.01)
    bodies = [alertmanager(f"storm-{i % 50:02d}", alertname=f"Storm{i % 50}", service_name=f"svc-{i % 50}", n=i)
              for i in range(1000)]
    with running(Settings(max_concurrent_investigations=8), store, runner) as client:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda b: client.post("/api/v1/webhooks/alertmanager", json=b), bodies))
        idle(client)
        metrics = client.get("/metrics").text
    assert all(a.status_code == 202 for a in answers), {a.status_code for a in answers}
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("accepted") == 50 and statuses.count("deduplicated") == 950
    assert len(runner.calls) == 50 and len(set(runner.thread_ids)) == 50
    incidents = store.list(limit=1000)
    assert len(incidents) == 50
    assert sorted(i.incident_id for i in incidents) == sorted(runner.thread_ids)
    stored = sorted(int(a["labels"]["n"]) for i in incidents for a in i.alerts)
    assert stored == list(range(1000)), "every alert is stored on its incident"
    assert all(len(i.alerts) == 20 and {a["fingerprint"] for a in i.alerts} == {i.fingerprint} for i in incidents)
    assert all(i.status == "open" and i.report for i in incidents)
    assert 'sre_agent_alerts_received_total{result="accepted",source="alertmanager"} 50.0' in metrics
    assert 'sre_agent_alerts_received_total{result="deduplicated",source="alertmanager"} 950.0' in metrics
    assert 'sre_agent_alerts_processed_total{agent_type="network",status="success"} 50.0' in metrics


# --------------------------------------------------------------------- malformed bodies: 422, nothing stored

BAD_BODIES = [
    pytest.param("/api/v1/alerts", b"{not json", "body", id="generic-not-json"),
    pytest.param("/api/v1/alerts", b"[1, 2]", "body", id="generic-array"),
    pytest.param("/api/v1/alerts", json.dumps({"alert_id": "a1", "severity": "urgent"}).encode(), "service_name",
                 id="generic-missing-fields"),
    pytest.param("/api/v1/alerts", json.dumps({**GENERIC, "severity": "urgent"}).encode(), "severity",
                 id="generic-bad-severity"),
    pytest.param("/api/v1/webhooks/alertmanager", json.dumps(GENERIC).encode(), "alerts", id="am-generic-body"),
    pytest.param("/api/v1/webhooks/alertmanager",
                 json.dumps({**ALERT, "alerts": [{**ALERT["alerts"][0], "startsAt": "yesterday"}]}).encode(),
                 "alerts[0].startsAt", id="am-bad-startsAt"),
    pytest.param("/api/v1/webhooks/alertmanager", json.dumps({**ALERT, "alerts": []}).encode(), "alerts",
                 id="am-no-alerts"),
    pytest.param("/api/v1/webhooks/signoz", json.dumps({"ruleId": "r1"}).encode(), "alerts", id="signoz-no-alerts"),
    pytest.param("/api/v1/webhooks/signoz",
                 json.dumps({**ALERT, "alerts": [ALERT["alerts"][0], "oops"]}).encode(), "alerts[1]",
                 id="signoz-bad-second-alert"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_BODIES)
def test_malformed_bodies_are_422_naming_the_field_and_store_nothing(store, report, path, body, field):
    runner = FakeRunner(report)
    with running(Settings(), store, runner) as client:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert field in [d["field"] for d in detail], detail
    assert all(d["loc"][0] == "body" and d["msg"] for d in detail)
    assert store.list(limit=10) == [] and runner.calls == []


def test_a_malformed_slack_event_is_422_without_retries_and_stores_nothing(store, report):
    runner = FakeRunner(report)
    with running(secured(), store, runner) as client:
        body = mention(text="<@U0BOT>")  # nothing but the mention
        response = slack_post(client, "/api/v1/slack/events", body)
        no_channel = json.loads(mention())
        del no_channel["event"]["channel"]
        missing = slack_post(client, "/api/v1/slack/events", json.dumps(no_channel).encode())
    assert response.status_code == 422 and response.headers["X-Slack-No-Retry"] == "1"
    assert response.json()["detail"][0]["field"] == "event.text"
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "event.channel"
    assert store.list(limit=10) == [] and runner.calls == []


def test_bad_query_parameters_are_422(store, report):
    with running(Settings(), store, FakeRunner(report)) as client:
        bad_status = client.get("/api/v1/incidents", params={"status": "sleeping"})
        bad_time = client.get("/api/v1/incidents", params={"since": "last tuesday"})
        bad_limit = client.get("/api/v1/incidents", params={"limit": 0})
    for response, field in ((bad_status, "status"), (bad_time, "since"), (bad_limit, "limit")):
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", field]


def test_an_oversized_body_is_413(store, report):
    with running(Settings(), store, FakeRunner(report)) as client:
        response = client.post("/api/v1/alerts", content=b"{" + b" " * (1 << 20) + b"}",
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and store.list(limit=10) == []


# --------------------------------------------------------------------- auth


def test_with_no_auth_configured_everything_is_open_and_a_warning_is_logged(store, report, caplog):
    with caplog.at_level("WARNING", logger="sre_graph.server"), running(Settings(), store, FakeRunner(report)) as c:
        assert c.post("/api/v1/alerts", json=GENERIC).status_code == 202
        assert c.post("/api/v1/webhooks/alertmanager", json=ALERT).status_code == 202
        assert c.get("/api/v1/incidents").status_code == 200
        idle(c)
    assert any("no authentication is configured" in r.getMessage() for r in caplog.records)


API_FAILURES = [
    pytest.param({}, 401, "missing credentials", id="missing"),
    pytest.param({"X-API-Key": "wrong"}, 401, "invalid API key", id="bad-api-key"),
    pytest.param(bearer("not-a-key"), 401, "neither a known API key nor a JWT", id="bad-bearer"),
    pytest.param({"Authorization": "Basic YWxpY2U6cHc="}, 401, "missing credentials", id="basic-auth"),
    pytest.param(bearer(token(expires_in=-60)), 401, "token expired", id="expired-jwt"),
    pytest.param(bearer(token(expires_in=None)), 401, "'exp'", id="jwt-without-exp"),
    pytest.param(bearer(token(key="another-secret-" + "y" * 64)), 401, "signature",
                 id="jwt-wrong-secret"),
    pytest.param(bearer(token(key=OTHER_RSA_KEY, algorithm="RS256")), 401, "signature", id="rs256-wrong-key"),
    pytest.param(bearer(token(algorithm="HS512")), 401, "'HS512' is not accepted", id="jwt-unaccepted-alg"),
    pytest.param(bearer(jwt.encode({"role": "admin", "exp": time.time() + 60}, None, algorithm="none")), 401,
                 "'none' is not accepted", id="jwt-alg-none"),
    pytest.param(bearer("a.b.c"), 401, "malformed JWT", id="jwt-garbage"),
    pytest.param(bearer(token(aud="someone-else")), 401, "invalid token", id="jwt-unexpected-audience"),
    pytest.param(bearer(token(role=None)), 403, "no 'role' claim", id="jwt-without-role"),
    pytest.param(bearer(token(role="root")), 403, "'root' is not one of", id="jwt-unknown-role"),
    pytest.param(bearer(token(role="viewer")), 403, "role 'viewer' may not write", id="viewer-cannot-post"),
]


@pytest.mark.parametrize(("headers", "code", "message"), API_FAILURES)
def test_api_auth_failures(store, report, headers, code, message):
    runner = FakeRunner(report)
    with running(secured(), store, runner) as client:
        response = client.post("/api/v1/alerts", json=GENERIC, headers=headers)
    assert response.status_code == code, response.text
    assert message in response.json()["detail"]
    if code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert store.list(limit=10) == [] and runner.calls == []


API_SUCCESSES = [
    pytest.param({"X-API-Key": API_KEY}, id="x-api-key"),
    pytest.param(bearer("key-operator-2"), id="api-key-as-bearer"),
    pytest.param(bearer(token("operator")), id="hs256-operator"),
    pytest.param(bearer(token("admin")), id="hs256-admin"),
    pytest.param(bearer(token("operator", key=RSA_KEY, algorithm="RS256")), id="rs256-operator"),
]


@pytest.mark.parametrize("headers", API_SUCCESSES)
def test_api_credentials_that_may_post(store, report, headers):
    with running(secured(), store, FakeRunner(report)) as client:
        response = client.post("/api/v1/alerts", json=GENERIC, headers=headers)
        idle(client)
    assert response.status_code == 202, response.text


def test_viewers_read_and_reads_need_credentials_too(store, report):
    with running(secured(), store, FakeRunner(report)) as client:
        incident_id = client.post("/api/v1/alerts", json=GENERIC, headers={"X-API-Key": API_KEY}).json()["incident_id"]
        idle(client)
        viewer = bearer(token("viewer"))
        assert client.get("/api/v1/incidents", headers=viewer).status_code == 200
        assert client.get(f"/api/v1/incidents/{incident_id}", headers=viewer).status_code == 200
        assert client.get("/api/v1/incidents", headers={"X-API-Key": API_KEY}).status_code == 200
        anonymous = client.get(f"/api/v1/incidents/{incident_id}")
        expired = client.get("/api/v1/incidents", headers=bearer(token("viewer", expires_in=-5)))
    assert anonymous.status_code == 401 and "missing credentials" in anonymous.json()["detail"]
    assert expired.status_code == 401 and expired.json()["detail"] == "token expired"


def test_audience_is_checked_when_configured(store, report):
    with running(secured(jwt_audience="sre-graph"), store, FakeRunner(report)) as client:
        right = client.get("/api/v1/incidents", headers=bearer(token("viewer", aud="sre-graph")))
        wrong = client.get("/api/v1/incidents", headers=bearer(token("viewer", aud="billing")))
    assert right.status_code == 200 and wrong.status_code == 401


def test_api_keys_from_the_environment(store, report, monkeypatch):
    monkeypatch.setenv("SRE_GRAPH_API_KEYS", "env-key-1, env-key-2")
    with running(Settings(), store, FakeRunner(report)) as client:
        ok = client.get("/api/v1/incidents", headers={"X-API-Key": "env-key-2"})
        bad = client.get("/api/v1/incidents", headers={"X-API-Key": "env-key-3"})
    assert ok.status_code == 200 and bad.status_code == 401


WEBHOOK_FAILURES = [
    pytest.param({}, "missing webhook secret", id="missing"),
    pytest.param({"X-Webhook-Secret": "nope"}, "invalid webhook secret", id="bad-header"),
    pytest.param(bearer("nope"), "invalid webhook secret", id="bad-bearer"),
    pytest.param(bearer(token("admin")), "invalid webhook secret", id="jwt-is-not-the-secret"),
]


@pytest.mark.parametrize("path", ["/api/v1/webhooks/alertmanager", "/api/v1/webhooks/signoz"])
@pytest.mark.parametrize(("headers", "message"), WEBHOOK_FAILURES)
def test_webhook_secret_failures(store, report, path, headers, message):
    runner = FakeRunner(report)
    with running(secured(), store, runner) as client:
        response = client.post(path, json=ALERT, headers=headers)
    assert response.status_code == 401 and message in response.json()["detail"]
    assert store.list(limit=10) == [] and runner.calls == []


@pytest.mark.parametrize("headers", [{"X-Webhook-Secret": WEBHOOK_SECRET}, bearer(WEBHOOK_SECRET)],
                         ids=["x-webhook-secret", "bearer"])
def test_webhook_secret_accepted(store, report, headers):
    with running(secured(), store, FakeRunner(report)) as client:
        response = client.post("/api/v1/webhooks/alertmanager", json=ALERT, headers=headers)
        idle(client)
    assert response.status_code == 202


def test_without_a_webhook_secret_the_webhooks_take_api_credentials(store, report):
    with running(secured(webhook_secret=None), store, FakeRunner(report)) as client:
        anonymous = client.post("/api/v1/webhooks/alertmanager", json=ALERT)
        viewer = client.post("/api/v1/webhooks/alertmanager", json=ALERT, headers=bearer(token("viewer")))
        keyed = client.post("/api/v1/webhooks/alertmanager", json=ALERT, headers={"X-API-Key": API_KEY})
        idle(client)
    assert anonymous.status_code == 401 and viewer.status_code == 403 and keyed.status_code == 202


SLACK_FAILURES = [
    pytest.param({"headers": {"X-Slack-Signature": "", "X-Slack-Request-Timestamp": ""}}, "missing Slack signature",
                 id="missing"),
    pytest.param({"secret": "not-the-secret"}, "bad signature", id="bad-signature"),
    pytest.param({"at": time.time() - 600}, "stale timestamp", id="stale"),
    pytest.param({"at": time.time() + 600}, "stale timestamp", id="future"),
]


@pytest.mark.parametrize("path", ["/api/v1/slack/events", "/api/v1/slack/commands"])
@pytest.mark.parametrize(("sign", "message"), SLACK_FAILURES)
def test_slack_signature_failures(store, report, path, sign, message):
    runner = FakeRunner(report)
    body = mention() if path.endswith("events") else command("investigate checkout down")
    with running(secured(), store, runner) as client:
        response = slack_post(client, path, body, **sign)
    assert response.status_code == 401 and message in response.json()["detail"]
    assert store.list(limit=10) == [] and runner.calls == []


def test_a_body_changed_after_signing_is_refused(store, report):
    with running(secured(), store, FakeRunner(report)) as client:
        body = mention()
        headers = signed(body)
        response = client.post("/api/v1/slack/events", content=body.replace(b"orders-api", b"payments"),
                               headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401 and "bad signature" in response.json()["detail"]


def test_slack_routes_refuse_everything_without_a_signing_secret_when_auth_is_on(store, report):
    with running(secured(slack_signing_secret=None), store, FakeRunner(report)) as client:
        response = slack_post(client, "/api/v1/slack/events", mention())
    assert response.status_code == 401 and "SRE_GRAPH_SLACK_SIGNING_SECRET" in response.json()["detail"]


# --------------------------------------------------------------------- Slack events and commands


def test_slack_url_verification(store, report):
    with running(secured(), store, FakeRunner(report)) as client:
        body = json.dumps({"type": "url_verification", "token": "x", "challenge": "ch4llenge"}).encode()
        response = slack_post(client, "/api/v1/slack/events", body)
    assert response.status_code == 200 and response.json() == {"challenge": "ch4llenge"}


def test_an_app_mention_is_acknowledged_fast_and_reported_in_its_thread(store, report):
    gate = threading.Event()
    runner = FakeRunner(report, gate=gate)
    notifier = FakeNotifier()
    settings = secured(public_url="https://sre.example.com/", slack_channel="C0ALERTS")
    with running(settings, store, runner, notifier) as client:
        begin = time.perf_counter()
        response = slack_post(client, "/api/v1/slack/events", mention(ts="1772552770.000100"))
        elapsed = time.perf_counter() - begin
        gate.set()
        idle(client)
        incident = client.get(f"/api/v1/incidents/{response.json()['incident_id']}",
                              headers={"X-API-Key": API_KEY}).json()
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert elapsed < 3, f"Slack needs an answer within 3 s, took {elapsed:.2f} s"
    assert runner.calls[0][1]["event"]["channel"] == "C0INCIDENT"
    assert incident["service"] == "orders-api" and incident["status"] == "open"
    assert incident["slack"] == {"channel": "C0INCIDENT", "thread_ts": "1772552770.000100"}
    assert notifier.posts == [{"channel": "C0INCIDENT", "report": report, "thread_ts": "1772552770.000100",
                               "link": f"https://sre.example.com/api/v1/incidents/{incident['incident_id']}"}]
    assert any("report posted to Slack C0INCIDENT in thread" in e["event"] for e in incident["timeline"])


def test_a_mention_inside_a_thread_answers_in_that_thread(store, report):
    notifier = FakeNotifier()
    with running(secured(), store, FakeRunner(report), notifier) as client:
        slack_post(client, "/api/v1/slack/events", mention(ts="1772552999.000200", thread_ts="1772552000.000100"))
        idle(client)
    assert notifier.posts[0]["thread_ts"] == "1772552000.000100"


def test_a_slack_retry_of_a_seen_event_starts_nothing(store, report):
    runner = FakeRunner(report)
    with running(secured(), store, runner, FakeNotifier()) as client:
        first = slack_post(client, "/api/v1/slack/events", mention("Ev42"))
        retry = slack_post(client, "/api/v1/slack/events", mention("Ev42"),
                           headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        idle(client)
    assert first.json()["status"] == "accepted"
    assert retry.status_code == 200 and retry.json()["status"] == "ignored"
    assert "retry" in retry.json()["reason"] and retry.json()["retry"] == "1"
    assert len(runner.calls) == 1 and len(store.list(limit=10)) == 1


@pytest.mark.parametrize(("extra", "reason"), [
    ({"bot_id": "B0BOT"}, "bot"),
    ({"subtype": "message_changed"}, "subtype"),
    ({"event_type": "message", "channel_type": "channel"}, "need a mention"),
    ({"event_type": "reaction_added"}, "starts nothing"),
], ids=["bot", "subtype", "channel-message", "other-event"])
def test_slack_events_that_start_nothing(store, report, extra, reason):
    runner = FakeRunner(report)
    with running(secured(), store, runner) as client:
        response = slack_post(client, "/api/v1/slack/events", mention(**extra))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert reason in response.json()["reason"]
    assert runner.calls == [] and store.list(limit=10) == []


def test_a_direct_message_starts_an_investigation(store, report):
    runner = FakeRunner(report)
    with running(secured(), store, runner) as client:
        response = slack_post(client, "/api/v1/slack/events",
                              mention(event_type="message", channel_type="im", channel="D0DM"))
        idle(client)
    assert response.json()["status"] == "accepted" and len(runner.calls) == 1


def test_slack_command_investigate_and_status(store, report):
    runner = FakeRunner(report)
    notifier = FakeNotifier()
    with running(secured(), store, runner, notifier) as client:
        started = slack_post(client, "/api/v1/slack/commands",
                             command("investigate checkout 5xx since 10:02 service=checkout sev1"),
                             content_type="application/x-www-form-urlencoded")
        idle(client)
        incident_id = started.json()["incident_id"]
        status_of = slack_post(client, "/api/v1/slack/commands", command(f"status {incident_id}"),
                               content_type="application/x-www-form-urlencoded")
        listing = slack_post(client, "/api/v1/slack/commands", command("status"),
                             content_type="application/x-www-form-urlencoded")
        unknown = slack_post(client, "/api/v1/slack/commands", command("status inc-nope"),
                             content_type="application/x-www-form-urlencoded")
        empty = slack_post(client, "/api/v1/slack/commands", command("investigate"),
                           content_type="application/x-www-form-urlencoded")
        helped = slack_post(client, "/api/v1/slack/commands", command("dance"),
                            content_type="application/x-www-form-urlencoded")
    assert started.status_code == 200
    assert started.json()["response_type"] == "in_channel" and incident_id in started.json()["text"]
    assert runner.calls[0][1]["text"] == "checkout 5xx since 10:02 service=checkout sev1"
    incident = store.get(incident_id)
    assert incident is not None and incident.service == "checkout" and incident.priority == "P0"
    assert notifier.posts[0]["channel"] == "C0OPS" and notifier.posts[0]["thread_ts"] is None
    assert incident.slack == {"channel": "C0OPS", "thread_ts": "1772000000.000900"}, \
        "the report's message becomes the incident's thread"
    assert status_of.json()["response_type"] == "ephemeral"
    assert incident_id in status_of.json()["text"] and "network_policy_block" not in status_of.json()["text"]
    assert "Traffic blocked by a NetworkPolicy" in status_of.json()["text"]
    assert incident_id in listing.json()["text"]
    assert "No incident `inc-nope`" in unknown.json()["text"]
    assert "Usage" in empty.json()["text"] and "Usage" in helped.json()["text"]


def test_a_slash_command_without_its_fields_is_422(store, report):
    with running(secured(), store, FakeRunner(report)) as client:
        body = urlencode({"text": "investigate x"}).encode()
        response = slack_post(client, "/api/v1/slack/commands", body,
                              content_type="application/x-www-form-urlencoded")
    assert response.status_code == 422
    assert {d["field"] for d in response.json()["detail"]} == {"command", "channel_id"}


def test_slack_delivery_failure_is_recorded_and_the_report_kept(store, report):
    with running(secured(slack_channel="C0ALERTS"), store, FakeRunner(report), FakeNotifier(fail=True)) as client:
        incident_id = client.post("/api/v1/webhooks/alertmanager", json=ALERT,
                                  headers={"X-Webhook-Secret": WEBHOOK_SECRET}).json()["incident_id"]
        idle(client)
        metrics = client.get("/metrics").text
    incident = store.get(incident_id)
    assert incident is not None and incident.status == "open" and incident.report is not None
    assert any("Slack delivery to C0ALERTS failed: Slack chat.postMessage failed: channel_not_found" in e["event"]
               for e in incident.timeline)
    assert 'sre_agent_slack_deliveries_total{status="failed"} 1.0' in metrics


@pytest.fixture
def slack_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback Slack Web API that records ``chat.postMessage`` calls and answers ``ok``."""
    calls: list[dict[str, Any]] = []

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode()
        if request.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(raw)
        else:
            body = {k: v[-1] for k, v in parse_qs(raw).items()}
        calls.append({"path": request.path, "auth": request.headers.get("Authorization"), "body": body})
        return 200, {"ok": True, "channel": body.get("channel"), "ts": f"1772600000.{len(calls):06d}"}

    with http_server(answer) as url:
        yield url + "/api/", calls


def test_reports_go_to_slack_through_slack_sdk(store, report, slack_api):
    url, calls = slack_api
    settings = secured(slack_bot_token="xoxb-test-token", slack_base_url=url, slack_channel="C0ALERTS",
                       public_url="https://sre.example.com")
    with running(settings, store, FakeRunner(report)) as client:  # the app builds its own SlackNotifier
        from_alert = client.post("/api/v1/webhooks/alertmanager", json=ALERT,
                                 headers={"X-Webhook-Secret": WEBHOOK_SECRET}).json()
        slack_post(client, "/api/v1/slack/events", mention("Ev7", ts="1772552770.000777", channel="C0ASK"))
        idle(client)
    assert [c["path"] for c in calls] == ["/api/chat.postMessage"] * 2
    assert {c["auth"] for c in calls} == {"Bearer xoxb-test-token"}
    by_channel = {c["body"]["channel"]: c["body"] for c in calls}
    assert by_channel["C0ALERTS"].get("thread_ts") is None
    assert by_channel["C0ASK"]["thread_ts"] == "1772552770.000777"
    blocks = by_channel["C0ASK"]["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    text = json.dumps(blocks)
    assert blocks[0]["type"] == "header" and "P0" in blocks[0]["text"]["text"]
    assert "network_policy_block" in text and "Remediation" in text
    link = f"https://sre.example.com/api/v1/incidents/{from_alert['incident_id']}"
    assert link in json.dumps(by_channel["C0ALERTS"]["blocks"])
    posted_ts = next(f"1772600000.{i:06d}" for i, c in enumerate(calls, 1) if c["body"]["channel"] == "C0ALERTS")
    incident = store.get(from_alert["incident_id"])
    assert incident is not None and incident.slack == {"channel": "C0ALERTS", "thread_ts": posted_ts}, \
        "later messages about the incident go in the thread of its report"


# --------------------------------------------------------------------- reading incidents


def test_incident_list_filters(store, report):
    with running(Settings(), store, FakeRunner(report)) as client:
        a = client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-a", service_name="orders")).json()
        b = client.post("/api/v1/webhooks/alertmanager",
                        json=alertmanager("fp-b", alertname="B", service_name="payments")).json()
        idle(client)
        client.post("/api/v1/webhooks/alertmanager", json=alertmanager("fp-b", alertname="B", service_name="payments",
                                                                        status="resolved"))
        everything = client.get("/api/v1/incidents").json()
        resolved = client.get("/api/v1/incidents", params={"status": "resolved"}).json()
        orders = client.get("/api/v1/incidents", params={"service": "orders"}).json()
        future = client.get("/api/v1/incidents", params={"since": "2999-01-01T00:00:00Z"}).json()
        past = client.get("/api/v1/incidents", params={"until": "2000-01-01T00:00:00"}).json()
        limited = client.get("/api/v1/incidents", params={"limit": 1}).json()
        missing = client.get("/api/v1/incidents/inc-0000")
    assert everything["count"] == 2 and [i["incident_id"] for i in everything["incidents"]] == [b["incident_id"],
                                                                                               a["incident_id"]]
    summary = everything["incidents"][1]
    assert summary["alert_count"] == 1 and summary["root_cause"] == "network_policy_block"
    assert "alerts" not in summary and "report" not in summary
    assert [i["incident_id"] for i in resolved["incidents"]] == [b["incident_id"]]
    assert [i["incident_id"] for i in orders["incidents"]] == [a["incident_id"]]
    assert future["count"] == past["count"] == 0 and limited["count"] == 1
    assert missing.status_code == 404 and "inc-0000" in missing.json()["detail"]


# --------------------------------------------------------------------- health, readiness, metrics, docs


def test_health_ready_metrics_and_docs_with_nothing_configured(store, report):
    with running(Settings(), store, FakeRunner(report)) as client:
        health = client.get("/health")
        ready = client.get("/ready")
        client.post("/api/v1/webhooks/alertmanager", json=ALERT)
        idle(client)
        metrics = client.get("/metrics")
        alias = client.get("/api/v1/metrics")
        docs = client.get("/docs")
        spec = client.get("/openapi.json").json()
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert set(health.json()["checks"]) == {"store"}, "only configured dependencies are checked"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in ("sre_agent_alerts_processed_total", "sre_agent_alert_processing_duration_seconds_bucket",
                 "sre_agent_active_alerts", "sre_agent_tool_calls_total", "sre_agent_model_tokens_total"):
        assert name in metrics.text or name.replace("_total", "") in metrics.text, name
    assert f"sre_agent_tool_calls_total {float(report.tool_calls)}" in metrics.text
    assert "sre_agent_alert_processing_duration_seconds_count 1.0" in metrics.text
    assert alias.text.splitlines()[0] == metrics.text.splitlines()[0]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/api/v1/alerts", "/api/v1/webhooks/alertmanager", "/api/v1/webhooks/signoz", "/api/v1/slack/events",
            "/api/v1/slack/commands", "/api/v1/incidents", "/api/v1/incidents/{incident_id}", "/health", "/ready",
            "/metrics"} <= set(spec["paths"])


def test_metrics_are_per_app(store, report, tmp_path):
    with running(Settings(), store, FakeRunner(report)) as first:
        first.post("/api/v1/webhooks/alertmanager", json=ALERT)
        idle(first)
        first_text = first.get("/metrics").text
    other = SQLiteStore(tmp_path / "other.db")
    with running(Settings(), other, FakeRunner(report)) as second:
        second_text = second.get("/metrics").text
    other.close()
    assert 'sre_agent_alerts_processed_total{agent_type="network",status="success"} 1.0' in first_text
    assert "sre_agent_alerts_processed_total{" not in second_text


def test_health_names_each_failing_dependency(store, report, tmp_path):
    def signoz(request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        assert request.path == "/api/v1/health" and request.headers.get("SIGNOZ-API-KEY") == "sz-key"
        return 200, {"status": "ok"}

    def model(request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        assert request.path == "/v1/models" and request.headers.get("Authorization") == "Bearer sk-test"
        return 503, {"error": "overloaded"}

    with http_server(signoz) as signoz_url, http_server(model) as model_url:
        settings = Settings(signoz_url=signoz_url, signoz_api_key="sz-key", model="gpt-test",
                            base_url=f"{model_url}/v1", api_key="sk-test",
                            redis_url=f"redis://127.0.0.1:{closed_port()}/0",
                            kubeconfig=str(tmp_path / "no-such-kubeconfig"))
        with running(settings, store, FakeRunner(report)) as client:
            begin = time.perf_counter()
            response = client.get("/health")
            elapsed = time.perf_counter() - begin
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unhealthy"
    assert sorted(body["failing"]) == ["kubernetes", "model", "redis"]
    assert body["checks"]["signoz"]["ok"] and body["checks"]["store"]["ok"]
    assert "503" in body["checks"]["model"]["detail"]
    assert "kubeconfig" in body["checks"]["kubernetes"]["detail"]
    assert elapsed < 5, f"health checks must time out quickly, took {elapsed:.1f} s"


def test_health_passes_when_every_configured_dependency_answers(store, report, tmp_path):
    seen: list[str] = []

    def api(request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        seen.append(request.path)
        if request.path.startswith("/api/v1/nodes"):
            assert request.headers.get("Authorization") == "Bearer kube-token"
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                         "items": [{"metadata": {"name": "node-1"}}]}
        if request.path == "/api/v1/health":
            return 200, {"status": "ok"}
        if request.path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": "gpt-test"}]}
        return 404, {}

    with http_server(api) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url}}],
            "users": [{"name": "test", "user": {"token": "kube-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
        settings = Settings(signoz_url=url, kubeconfig=str(kubeconfig), model="gpt-test", base_url=f"{url}/v1",
                            api_key="sk-test")
        with running(settings, store, FakeRunner(report)) as client:
            response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"store", "signoz", "kubernetes", "model"}
    assert body["checks"]["kubernetes"]["detail"] == "1 node(s) listed"
    assert {"/api/v1/health", "/v1/models"} <= set(seen) and any(p.startswith("/api/v1/nodes") for p in seen)


def test_health_pings_mongodb_for_real(store, report):
    from mockupdb import MockupDB

    server = MockupDB(auto_ismaster={"maxWireVersion": 21})
    server.autoresponds("ping")
    server.run()
    try:
        settings = Settings(mongodb_url=server.uri)
        with running(settings, store, FakeRunner(report)) as client:
            up = client.get("/health")
        server.stop()
        with running(Settings(mongodb_url=f"mongodb://127.0.0.1:{closed_port()}"), store,
                     FakeRunner(report)) as client:
            down = client.get("/health")
    finally:
        server.stop()
    assert up.status_code == 200 and up.json()["checks"]["mongodb"]["ok"]
    assert down.status_code == 503 and down.json()["failing"] == ["mongodb"]


def test_routes_before_startup_answer_503_not_500():
    app = create_app(Settings())
    client = TestClient(app)  # no `with`: the lifespan has not run
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 503
    assert client.get("/api/v1/incidents").status_code == 503


def test_the_module_level_app_is_cheap_to_import(tmp_path, subprocess_env):
    code = ("import time; t = time.perf_counter(); import sre_graph.server.app as m; "
            "print(type(m.app).__name__, round(time.perf_counter() - t, 2))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**subprocess_env, "SRE_GRAPH_REDIS_URL": "redis://127.0.0.1:1"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "FastAPI"
    assert list(tmp_path.iterdir()) == [], "importing the app must not open the store"


def test_serve_is_a_cli_command():
    from sre_graph.cli import build_parser

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 9000)
    assert build_parser().parse_args(["serve"]).port == 8000


def test_the_app_file_loads_by_path_as_the_langgraph_server_loads_it():
    """``langgraph.json`` names ``./sre_graph/server/app.py:app``; the server execs that file under another name."""
    import importlib.util

    config = json.loads((REPO / "langgraph.json").read_text())
    path, _, name = config["http"]["app"].partition(":")
    spec = importlib.util.spec_from_file_location("user_router_module", REPO / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = getattr(module, name)
    assert "/api/v1/webhooks/alertmanager" in app.openapi()["paths"]
