"""LiveSignoz against a loopback SigNoz v5 server answers exactly what the replay answers.

The server (``tests/signoz_server.py``) is built from SigNoz's Go types and validates every request
body, so these tests prove both the wire shapes LiveSignoz sends and the row shapes it returns.
"""

from __future__ import annotations

import collections
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_graph.timeutil import parse_time
from sre_graph.tools.base import SourceUnavailable
from sre_graph.tools.replay import SnapshotSignoz, load_incident
from sre_graph.tools.signoz import LiveSignoz
from tests.signoz_server import SignozServer

INCIDENTS = Path(__file__).resolve().parent.parent / "evals" / "incidents"
PARITY_INCIDENTS = ["db-shop-orders-email-collscan", "db-payments-ledger-validate-lock"]


@pytest.fixture(params=PARITY_INCIDENTS)
def pair(request: pytest.FixtureRequest):
    """(live port on a loopback server, replay port, incident) for one incident."""
    incident = load_incident(INCIDENTS / request.param)
    with SignozServer(incident.path) as server:
        live = LiveSignoz(server.url, server.api_key, timeout=10, backoff=0.01, clock=lambda: incident.now)
        try:
            yield live, SnapshotSignoz(incident.path, incident.now), incident, server
        finally:
            live.close()


def _windows(incident) -> list[tuple[Any, Any]]:
    now = incident.now
    return [(now - timedelta(hours=2), now), (now - timedelta(minutes=25), now - timedelta(minutes=5))]


def _canonical_series(series: list[dict[str, Any]]) -> list[tuple]:
    """Series as SigNoz leaves their order open: label order follows the group-by, series order is free."""
    return sorted((tuple(sorted(((lab["key"]["name"], lab["value"]) for lab in s["labels"]))),
                   tuple((v["timestamp"], v["value"]) for v in s["values"])) for s in series)


def _ns(row: dict[str, Any]) -> int:
    head, _, fraction = row["timestamp"].rstrip("Z").partition(".")
    return int(parse_time(head + "Z").timestamp()) * 10**9 + int(
        fraction.ljust(9, "0")[:9])


def _replay(method, call: dict[str, Any], *, newest_first: bool = True) -> list[dict[str, Any]]:
    """The replay's answer, ordered by the full nanosecond timestamp.

    SnapshotSignoz sorts on ``parse_time``, which keeps microseconds, so rows a few hundred
    nanoseconds apart keep file order there; SigNoz (and LiveSignoz) order by the nanosecond
    ``timestamp`` column. Sorting the replay's full answer by nanoseconds, then cutting at ``limit``,
    is a no-op once the replay sorts at full precision.
    """
    limit = call.get("limit")
    rows = method(**{**call, "limit": 10**9}) if limit is not None else method(**call)
    rows = sorted(rows, key=_ns, reverse=newest_first)
    return rows[:limit] if limit is not None else rows


def _top(values, n=1):
    return [v for v, _ in collections.Counter(v for v in values if v).most_common(n)]


# --------------------------------------------------------------------- parity


def test_logs_parity(pair):
    live, snap, incident, server = pair
    rows = snap.search_logs(start=incident.now - timedelta(hours=3), end=incident.now, limit=10**6)
    services = _top([(r["data"].get("resources_string") or {}).get("service.name") for r in rows], 3)
    namespaces = _top([(r["data"].get("resources_string") or {}).get("k8s.namespace.name") for r in rows], 2)
    error_words = _top([str(r["data"].get("body", "")).split()[0] for r in rows
                        if r["data"].get("severity_text") in ("ERROR", "WARN") and r["data"].get("body")], 2)
    calls: list[dict[str, Any]] = []
    for start, end in _windows(incident):
        calls += [
            {"start": start, "end": end, "limit": 300},
            {"start": start, "end": end, "min_severity": "WARN", "limit": 500},
            {"start": start, "end": end, "min_severity": "INFO", "limit": 200},
            {"start": start, "end": end, "min_severity": "error", "limit": 500},
        ]
        calls += [{"start": start, "end": end, "service": s, "limit": 400} for s in services]
        calls += [{"start": start, "end": end, "namespace": ns, "min_severity": "WARNING", "limit": 400}
                  for ns in namespaces]
        calls += [{"start": start, "end": end, "contains": w.upper(), "limit": 100} for w in error_words]
    for call in calls:
        expected = _replay(snap.search_logs, call)
        got = live.search_logs(**call)
        assert got == expected, f"search_logs({call}) differs: {len(got)} live rows vs {len(expected)} replay rows"
    assert all(snap.search_logs(**c) for c in calls[1:4]), "the severity calls should find something"
    body = server.bodies()[1]
    assert body["requestType"] == "raw" and body["schemaVersion"] == "v1"
    spec = body["compositeQuery"]["queries"][0]["spec"]
    assert spec["signal"] == "logs" and spec["filter"]["expression"].startswith("severity_text IN ('WARN'")


def test_traces_parity(pair):
    live, snap, incident, server = pair
    spans = snap.search_traces(start=incident.now - timedelta(hours=3), end=incident.now, limit=10**6)
    services = _top([s["data"].get("service.name") for s in spans], 4)
    for start, end in _windows(incident):
        for call in [{"limit": 300}, {"errors_only": True, "limit": 500}, {"min_duration_ms": 250, "limit": 500},
                     {"min_duration_ms": 0.1, "limit": 50}, *({"service": s, "limit": 400} for s in services),
                     {"service": services[0], "errors_only": True, "min_duration_ms": 100, "limit": 1000}]:
            expected = _replay(snap.search_traces, {"start": start, "end": end, **call})
            assert live.search_traces(start=start, end=end, **call) == expected, call
    spec = server.bodies()[0]["compositeQuery"]["queries"][0]["spec"]
    assert {f["name"] for f in spec["selectFields"]} >= {"trace_id", "service.name", "db.system", "peer.service"}


def test_get_trace_parity(pair):
    live, snap, incident, _ = pair
    spans = snap.search_traces(start=incident.now - timedelta(hours=3), end=incident.now, limit=10**6)
    trace_ids = _top([s["data"]["trace_id"] for s in spans if s["data"].get("has_error")], 2)
    trace_ids += _top([s["data"]["trace_id"] for s in spans], 2)
    trace_ids.append("0" * 32)
    for trace_id in trace_ids:
        expected = _replay(lambda trace_id=trace_id: snap.get_trace(trace_id), {}, newest_first=False)
        assert live.get_trace(trace_id) == expected, trace_id
    assert live.get_trace(trace_ids[0]), "a recorded trace should have spans"


def test_metric_parity(pair):
    live, snap, incident, server = pair
    names = snap.metric_names()
    assert live.metric_names() == names
    assert names
    for start, end in _windows(incident):
        for name in names:
            expected = snap.query_metric(metric=name, start=start, end=end)
            got = live.query_metric(metric=name, start=start, end=end)
            assert _canonical_series(got) == _canonical_series([s for s in expected if s["values"]]), name
            first = expected[0]["labels"][0] if expected and expected[0]["labels"] else None
            if first:
                filters = {first["key"]["name"]: first["value"]}
                expected = snap.query_metric(metric=name, start=start, end=end, filters=filters)
                got = live.query_metric(metric=name, start=start, end=end, filters=filters)
                assert _canonical_series(got) == _canonical_series([s for s in expected if s["values"]])
    body = next(b for b in server.bodies() if b["requestType"] == "time_series")
    aggregation = body["compositeQuery"]["queries"][0]["spec"]["aggregations"][0]
    assert set(aggregation) == {"metricName", "timeAggregation", "spaceAggregation"}


def test_services_overview_and_aggregates_parity(pair):
    live, snap, incident, server = pair
    for start, end in _windows(incident):
        services = snap.list_services(start=start, end=end)
        assert live.list_services(start=start, end=end) == services
        assert services
        for service in services:
            assert live.service_overview(service=service, start=start, end=end) == snap.service_overview(
                service=service, start=start, end=end), service
        for call in [{"group_by": "service"}, {"group_by": "severity", "step_seconds": 300},
                     {"group_by": "severity", "service": services[0]},
                     {"group_by": "service", "min_severity": "WARN", "step_seconds": 120}]:
            assert live.aggregate_logs(start=start, end=end, **call) == snap.aggregate_logs(
                start=start, end=end, **call), call
    overview = next(b for b in server.bodies() if b["requestType"] == "scalar"
                    and len(b["compositeQuery"]["queries"][0]["spec"]["aggregations"]) == 4)
    spec = overview["compositeQuery"]["queries"][0]["spec"]
    assert [a["expression"] for a in spec["aggregations"]] == [
        "count()", "countIf(has_error = true OR response_status_code LIKE '5%')",
        "p50(duration_nano)", "p99(duration_nano)"]
    assert "isEntryPoint = true" in spec["filter"]["expression"]


def test_field_keys_parity(pair):
    live, snap, _, _ = pair
    for signal in ("logs", "traces", "metrics"):
        for search in ("", "k8s", "SERVICE"):
            assert live.field_keys(signal=signal, search=search) == snap.field_keys(signal=signal, search=search)
    with pytest.raises(ValueError, match="unknown signal"):
        live.field_keys(signal="events")


# --------------------------------------------------------------------- failures

INCIDENT = INCIDENTS / PARITY_INCIDENTS[0]


@pytest.fixture
def server():
    with SignozServer(INCIDENT) as running:
        yield running


def _live(server: SignozServer, **kwargs: Any) -> LiveSignoz:
    incident = load_incident(INCIDENT)
    options = {"timeout": 5.0, "backoff": 0.01, "clock": lambda: incident.now, **kwargs}
    return LiveSignoz(server.url, options.pop("api_key", server.api_key), **options)


def _window():
    now = load_incident(INCIDENT).now
    return {"start": now - timedelta(hours=1), "end": now}


def test_unauthorised_is_a_clear_failure(server):
    with pytest.raises(SourceUnavailable) as info:
        _live(server, api_key="wrong-key").search_logs(**_window())
    assert info.value.source == "signoz"
    assert "401" in info.value.reason and "not authorised (check the API key)" in info.value.reason
    assert len(server.requests) == 1, "a 401 is not retried"
    server.fail_with = 403
    with pytest.raises(SourceUnavailable, match="403.*not authorised"):
        _live(server).list_services(**_window())


def test_server_error_carries_signoz_message_and_is_not_retried(server):
    server.fail_with = 500
    with pytest.raises(SourceUnavailable) as info:
        _live(server).search_traces(**_window())
    assert "HTTP 500" in info.value.reason and "memory limit exceeded" in info.value.reason
    assert len(server.requests) == 1


def test_bad_request_is_not_retried_and_quotes_signoz(server):
    with pytest.raises(SourceUnavailable) as info:
        _live(server).query_metric(metric="http.server.duration.p99", group_by=[], space_aggregation="median",
                                   **_window())
    assert "HTTP 400" in info.value.reason and "invalid space aggregation" in info.value.reason
    assert len(server.requests) == 1


def test_503_then_200_is_retried(server):
    server.queue(503)
    live = _live(server)
    window = _window()
    rows = live.search_logs(**window, limit=50)
    snap = SnapshotSignoz(INCIDENT, load_incident(INCIDENT).now)
    assert rows and rows == _replay(snap.search_logs, {**window, "limit": 50})
    assert [r.path for r in server.requests] == ["/api/v5/query_range"] * 2
    assert server.requests[0].body == server.requests[1].body


def test_transient_errors_give_up_after_bounded_retries(server):
    server.queue(429, 502, 504, 503)
    with pytest.raises(SourceUnavailable) as info:
        _live(server, retries=2).search_logs(**_window())
    assert "HTTP 504" in info.value.reason and "after 3 attempts" in info.value.reason
    assert len(server.requests) == 3


def test_slow_server_hits_the_timeout(server):
    server.delay = 1.5
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out after 0.3 s"):
        _live(server, timeout=0.3).search_logs(**_window())
    assert time.monotonic() - started < 1.2
    assert len(server.requests) == 1, "a read timeout is not retried"


def test_unreachable_server_retries_connect_then_fails():
    from tests.conftest import free_port

    live = LiveSignoz(f"http://127.0.0.1:{free_port()}", "key", timeout=1, retries=2, backoff=0.01)
    with pytest.raises(SourceUnavailable, match="cannot connect .* after 3 attempt"):
        live.list_services(**_window())


# --------------------------------------------------------------------- the server enforces the v5 shape


def _post(server: SignozServer, body: Any, key: str | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v5/query_range", json=body,
                      headers={"SIGNOZ-API-KEY": key or server.api_key}, timeout=5)


GOOD = {"schemaVersion": "v1", "start": 1770100000000, "end": 1770110000000, "requestType": "raw",
        "compositeQuery": {"queries": [{"type": "builder_query", "spec": {"name": "A", "signal": "logs",
                                                                           "limit": 1}}]}}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b.update(query="x"), 'unknown field "query"'),
    (lambda b: b.pop("compositeQuery"), "at least one query is required"),
    (lambda b: b.update(requestType="table"), "invalid request type: table"),
    (lambda b: b["compositeQuery"]["queries"][0]["spec"].update(signal="events"), 'invalid signal "events"'),
    (lambda b: b["compositeQuery"].update(builderQueries={}), 'unknown field "builderQueries" in composite query'),
    (lambda b: b["compositeQuery"]["queries"][0].update(type="builder"), 'unknown query type "builder"'),
    (lambda b: b["compositeQuery"]["queries"][0]["spec"].update(dataSource="logs"), 'unknown field "dataSource"'),
    (lambda b: b.update(requestType="scalar"), "at least one aggregation is required"),
    (lambda b: b["compositeQuery"]["queries"][0]["spec"].update(limit=20000), "limit exceeds maximum"),
    (lambda b: b.update(end=b["start"]), "start time must be before end time"),
    (lambda b: b["compositeQuery"]["queries"][0]["spec"].update(filter={"expression": "service.name = "}),
     "found syntax errors"),
])
def test_server_rejects_malformed_requests_like_signoz(server, mutate, message):
    import copy

    body = copy.deepcopy(GOOD)
    mutate(body)
    response = _post(server, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["status"] == "error" and payload["error"]["code"] == "invalid_input"
    assert message in payload["error"]["message"] + " ".join(e["message"] for e in payload["error"].get("errors", []))


def test_server_answers_v5_shapes(server):
    ok = _post(server, GOOD).json()
    assert ok["status"] == "success" and ok["data"]["type"] == "raw"
    result = ok["data"]["data"]["results"][0]
    assert set(result) == {"queryName", "nextCursor", "rows"} and set(result["rows"][0]) == {"timestamp", "data"}
    assert set(ok["data"]["meta"]) == {"rowsScanned", "bytesScanned", "durationMs", "stepIntervals"}
    assert _post(server, GOOD, key="nope").status_code == 401
