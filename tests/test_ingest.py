"""Alert intake: shape detection, field mapping and error reporting for every payload kind."""

from __future__ import annotations

import copy
import doctest
import json
import pickle
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sre_graph.ingest
from sre_graph.ingest import AlertValidationError, detect_kind, parse_alert, parse_alerts
from sre_graph.ingest.alertmanager import service_from_labels, strip_pod_hash
from sre_graph.ingest.slack import clean_text, service_from_text, severity_from_text
from sre_graph.models import Severity

# --------------------------------------------------------------------- payloads

ALERTMANAGER_BODY: dict[str, Any] = {
    "receiver": "sre-graph",
    "status": "firing",
    "alerts": [
        {
            "status": "resolved",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "namespace": "shop",
                "pod": "cart-7f9c6d8b5-q2w4z",
                "severity": "warning",
            },
            "annotations": {
                "description": "Pod shop/cart-7f9c6d8b5-q2w4z is in waiting state (reason: CrashLoopBackOff).",
                "summary": "Pod is crash looping.",
            },
            "startsAt": "2026-03-14T09:50:00Z",
            "endsAt": "2026-03-14T10:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "5f2b8c1d9e7a3b40",
        },
        {
            "status": "firing",
            "labels": {
                "alertname": "HighRequestLatency",
                "namespace": "shop",
                "service": "checkout",
                "pod": "checkout-6b7c9d5f4-x8k2p",
                "severity": "critical",
            },
            "annotations": {
                "summary": "checkout p99 latency above 1s",
                "description": "p99 latency is 2.31s for the last 5 minutes.",
            },
            "startsAt": "2026-03-14T10:02:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "c1a9e0b7d3f24e61",
        },
    ],
    "groupLabels": {"namespace": "shop"},
    "commonLabels": {"namespace": "shop", "cluster": "prod-eu1"},
    "commonAnnotations": {"runbook_url": "https://runbooks.example.com/latency", "summary": "common summary"},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}:{namespace="shop"}',
    "truncatedAlerts": 0,
}

SIGNOZ_BODY: dict[str, Any] = {
    "receiver": "sre-graph-webhook",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "Orders API error rate",
                "ruleId": "0195f6c2-7a1e-7c3b-9f1a-2d4e6b8c0a12",
                "ruleSource": "http://signoz:8080/alerts/edit?ruleId=0195f6c2",
                "service.name": "orders-api",
                "severity": "error",
                "threshold": "5",
            },
            "annotations": {
                "description": "Error rate of orders-api is 12.4% (threshold 5%).",
                "summary": "",
                "related_logs": "http://signoz:8080/logs/logs-explorer?compositeQuery=...",
                "related_traces": "http://signoz:8080/traces-explorer?compositeQuery=...",
            },
            "startsAt": "2026-03-14T10:04:30Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://signoz:8080/alerts/edit?ruleId=0195f6c2",
            "fingerprint": "8e1d2c3b4a596877",
        }
    ],
    "groupLabels": {"alertname": "Orders API error rate"},
    "commonLabels": {"alertname": "Orders API error rate", "ruleId": "0195f6c2-7a1e-7c3b-9f1a-2d4e6b8c0a12"},
    "commonAnnotations": {},
    "externalURL": "http://signoz:8080",
    "version": "4",
    "groupKey": '{}/{ruleId="0195f6c2-7a1e-7c3b-9f1a-2d4e6b8c0a12"}:{alertname="Orders API error rate"}',
}

SLACK_BODY: dict[str, Any] = {
    "token": "verification-token-unused",
    "team_id": "T01TEAM",
    "api_app_id": "A01APP",
    "event": {
        "type": "app_mention",
        "user": "U02HUMAN",
        "text": "<@U07BOT123> p1 latency spiking on checkout-api since 10:02, "
        "see <https://grafana.example.com/d/abc|dashboard> namespace=shop",
        "ts": "1773482520.000200",
        "channel": "C0123ABC",
        "event_ts": "1773482520.000200",
        "team": "T01TEAM",
    },
    "type": "event_callback",
    "event_id": "Ev08ABCDEF",
    "event_time": 1773482520,
}

GENERIC_BODY: dict[str, Any] = {
    "alert_id": "ext-4711",
    "service_name": "payments",
    "severity": "High",
    "message": "payment authorisations failing with 502",
    "timestamp": "2026-03-14T10:05:00+01:00",
    "labels": {"namespace": "billing", "replicas": 3, "canary": True, "gone": None},
    "annotations": {"dashboard": "https://grafana.example.com/d/pay"},
}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to leave the machine."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def body(template: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a payload, safe to mutate."""
    return copy.deepcopy(template)


# --------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (ALERTMANAGER_BODY, "alertmanager"),
        (SIGNOZ_BODY, "signoz"),
        (SLACK_BODY, "slack"),
        (SLACK_BODY["event"], "slack"),
        (GENERIC_BODY, "generic"),
        ({"hello": "world"}, "generic"),
    ],
    ids=["alertmanager", "signoz", "slack-envelope", "slack-bare-event", "generic", "unknown"],
)
def test_detect_kind(payload: dict[str, Any], kind: str) -> None:
    """Each payload shape is told apart."""
    assert detect_kind(payload) == kind


def test_signoz_detected_by_annotations_or_top_level_rule_id() -> None:
    """SigNoz marks other than a ruleId label are enough; their absence means Alertmanager."""
    by_annotation = body(ALERTMANAGER_BODY)
    by_annotation["alerts"][1]["annotations"]["related_traces"] = "http://signoz:8080/traces-explorer"
    assert detect_kind(by_annotation) == "signoz"
    top_level = body(ALERTMANAGER_BODY)
    top_level["ruleId"] = "42"
    assert detect_kind(top_level) == "signoz"
    assert parse_alert(top_level).labels["ruleId"] == "42"


# --------------------------------------------------------------------- alertmanager


def test_alertmanager_parse_alerts_returns_every_alert() -> None:
    """Both alerts of the group come back, in order, with their own status and fingerprint."""
    alerts = parse_alerts(ALERTMANAGER_BODY)
    assert [a.status for a in alerts] == ["resolved", "firing"]
    assert [a.alert_id for a in alerts] == ["5f2b8c1d9e7a3b40", "c1a9e0b7d3f24e61"]
    assert [a.fingerprint for a in alerts] == ["5f2b8c1d9e7a3b40", "c1a9e0b7d3f24e61"]
    assert {a.source for a in alerts} == {"alertmanager"}


def test_alertmanager_parse_alert_maps_the_first_firing_alert() -> None:
    """The firing alert (second in the body) is the one to investigate, fully mapped."""
    alert = parse_alert(json.dumps(ALERTMANAGER_BODY).encode())
    assert alert.alert_id == "c1a9e0b7d3f24e61"
    assert alert.status == "firing"
    assert alert.service_name == "checkout"
    assert alert.severity is Severity.critical
    assert alert.priority == "P0"
    assert alert.timestamp == datetime(2026, 3, 14, 10, 2, 0, 123456, tzinfo=UTC)
    assert alert.message == "checkout p99 latency above 1s — p99 latency is 2.31s for the last 5 minutes."
    assert alert.labels["cluster"] == "prod-eu1"  # from commonLabels
    assert alert.namespace == "shop"
    assert alert.annotations["runbook_url"] == "https://runbooks.example.com/latency"  # from commonAnnotations
    assert alert.annotations["summary"] == "checkout p99 latency above 1s"  # the alert's own wins
    assert alert.title == "HighRequestLatency on checkout"


def test_alertmanager_resolved_alert_mapping() -> None:
    """Service from a pod name loses the generated suffix; ``warning`` is medium."""
    resolved = parse_alerts(ALERTMANAGER_BODY)[0]
    assert resolved.service_name == "cart"
    assert resolved.severity is Severity.medium
    assert resolved.priority == "P2"
    assert resolved.timestamp == datetime(2026, 3, 14, 9, 50, tzinfo=UTC)


def test_alertmanager_all_resolved_falls_back_to_first() -> None:
    """With nothing firing, the first alert is returned."""
    payload = body(ALERTMANAGER_BODY)
    payload["alerts"][1]["status"] = "resolved"
    assert parse_alert(payload).alert_id == "5f2b8c1d9e7a3b40"


def test_alertmanager_id_falls_back_to_alertname_and_severity_to_medium() -> None:
    """Without a fingerprint the alertname identifies the alert; no severity label means medium."""
    payload = body(ALERTMANAGER_BODY)
    del payload["alerts"][1]["fingerprint"]
    del payload["alerts"][1]["labels"]["severity"]
    alert = parse_alert(payload)
    assert alert.alert_id == "HighRequestLatency"
    assert alert.severity is Severity.medium
    assert len(alert.fingerprint) == 16  # derived by the model


def test_alertmanager_service_from_common_labels_and_status_from_group() -> None:
    """An alert with no service label takes it from commonLabels; a missing status is the group's."""
    payload = body(ALERTMANAGER_BODY)
    payload["alerts"] = [payload["alerts"][1]]
    labels = payload["alerts"][0]["labels"]
    del labels["service"], labels["pod"]
    del payload["alerts"][0]["status"]
    payload["commonLabels"]["app_kubernetes_io_name"] = "storefront"
    payload["status"] = "resolved"
    alert = parse_alert(payload)
    assert alert.service_name == "storefront"
    assert alert.status == "resolved"


def test_alertmanager_values_coerced_to_str() -> None:
    """Non-string label values become strings; null values are dropped."""
    payload = body(ALERTMANAGER_BODY)
    payload["alerts"][1]["labels"].update({"replicas": 3, "canary": False, "owner": None})
    alert = parse_alert(payload)
    assert alert.labels["replicas"] == "3"
    assert alert.labels["canary"] == "false"
    assert "owner" not in alert.labels


@pytest.mark.parametrize(
    ("labels", "service"),
    [
        ({"app": "web", "service.name": "api"}, "api"),
        ({"job": "kube-state-metrics", "service_name": "ledger"}, "ledger"),
        ({"pod": "mongo-0", "container": "mongod"}, "mongod"),
        ({"deployment": "search", "pod": "search-5d8f7b9c6-abcde"}, "search"),
        ({"pod": "node-exporter-x8k2p"}, "node-exporter"),
        ({"alertname": "Watchdog"}, None),
    ],
)
def test_service_label_order(labels: dict[str, str], service: str | None) -> None:
    """The most specific service label wins."""
    assert service_from_labels(labels) == service


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("checkout-6b7c9d5f4-x8k2p", "checkout"),
        ("payments-api-79cd5b6f8d-zq4tw", "payments-api"),
        ("fluent-bit-7hx9k", "fluent-bit"),
        ("mongo-0", "mongo-0"),
        ("my-app-redis", "my-app-redis"),
        ("checkout", "checkout"),
    ],
)
def test_strip_pod_hash(pod: str, workload: str) -> None:
    """Generated suffixes go; StatefulSet ordinals and ordinary words stay."""
    assert strip_pod_hash(pod) == workload


def test_alertmanager_without_service_label_is_unknown_service() -> None:
    """An alert naming no service still parses, as ``unknown-service``."""
    payload = body(ALERTMANAGER_BODY)
    payload["alerts"] = [{"labels": {"alertname": "Watchdog"}, "startsAt": "2026-03-14T10:00:00Z"}]
    alert = parse_alert(payload)
    assert alert.service_name == "unknown-service"
    assert alert.status == "firing"


# --------------------------------------------------------------------- signoz


def test_signoz_mapping() -> None:
    """SigNoz's ``service.name``, ``error`` severity and explorer links are mapped."""
    alert = parse_alert(SIGNOZ_BODY)
    assert alert.source == "signoz"
    assert alert.alert_id == "8e1d2c3b4a596877"
    assert alert.service_name == "orders-api"
    assert alert.severity is Severity.critical
    assert alert.priority == "P0"
    assert alert.timestamp == datetime(2026, 3, 14, 10, 4, 30, tzinfo=UTC)
    assert alert.message == "Error rate of orders-api is 12.4% (threshold 5%)."
    assert alert.labels["ruleId"] == "0195f6c2-7a1e-7c3b-9f1a-2d4e6b8c0a12"
    assert alert.labels["threshold"] == "5"
    assert alert.annotations["related_logs"].startswith("http://signoz:8080/logs/")


# --------------------------------------------------------------------- slack


def test_slack_app_mention_mapping() -> None:
    """The mention is parsed into service, severity, namespace, and the thread to reply in."""
    alert = parse_alert(SLACK_BODY)
    assert alert.source == "slack"
    assert alert.alert_id == "slack-C0123ABC-1773482520.000200"
    assert alert.message == "p1 latency spiking on checkout-api since 10:02, see dashboard namespace=shop"
    assert alert.service_name == "checkout-api"
    assert alert.severity is Severity.high
    assert alert.priority == "P1"
    assert alert.namespace == "shop"
    assert alert.labels["channel"] == "C0123ABC"
    assert alert.labels["user"] == "U02HUMAN"
    assert alert.labels["thread_ts"] == "1773482520.000200"
    assert abs(alert.timestamp - datetime(2026, 3, 14, 10, 2, tzinfo=UTC)) < timedelta(milliseconds=1)
    assert alert.status == "firing"


def test_slack_reply_in_existing_thread_and_bare_event() -> None:
    """A bare event in a thread keeps the thread's ts for the reply."""
    event = body(SLACK_BODY)["event"]
    event.update(type="message", thread_ts="1773482400.000100", text="service=ledger sev1 down")
    alert = parse_alert(event)
    assert alert.labels["thread_ts"] == "1773482400.000100"
    assert alert.service_name == "ledger"
    assert alert.severity is Severity.critical


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("checkout is slow service=payments", "payments"),
        ("Service: payments is erroring", "payments"),
        ("look at svc/payments please", "payments"),
        ("5xx on orders-api for 10 minutes", "orders-api"),
        ("errors for the last hour in ledger", "ledger"),
        ("latency in Production", "unknown-service"),
        ("something is wrong", "unknown-service"),
        ("errors in prod", "unknown-service"),
    ],
)
def test_slack_service_from_text(text: str, service: str) -> None:
    """A service token wins, then a service-like word after on/in/for; else unknown-service."""
    assert service_from_text(text) == service


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("CRITICAL checkout down", Severity.critical),
        ("sev1 checkout down", Severity.critical),
        ("p0: checkout down", Severity.critical),
        ("sev2 checkout slow", Severity.high),
        ("high error rate", Severity.high),
        ("P1 checkout slow", Severity.high),
        ("p3 cosmetic", Severity.low),
        ("low priority: logs noisy", Severity.low),
        ("highly unusual traffic", Severity.medium),
        ("checkout slow", Severity.medium),
    ],
)
def test_slack_severity_from_text(text: str, severity: Severity) -> None:
    """Severity words, most severe first; medium when none."""
    assert severity_from_text(text) is severity


def test_slack_clean_text() -> None:
    """Mentions, broadcasts and link markup become plain text."""
    raw = "<!here> <@U1|bot> see <https://x.example/a> and <https://y.example|graph> in <#C1|ops> a &lt; b"
    assert clean_text(raw) == "see https://x.example/a and graph in #ops a < b"


# --------------------------------------------------------------------- generic


def test_generic_mapping() -> None:
    """The generic body maps field for field, with severity in any case and labels coerced."""
    alert = parse_alert(json.dumps(GENERIC_BODY))
    assert alert.source == "generic"
    assert alert.alert_id == "ext-4711"
    assert alert.service_name == "payments"
    assert alert.severity is Severity.high
    assert alert.priority == "P1"
    assert alert.timestamp == datetime(2026, 3, 14, 9, 5, tzinfo=UTC)
    assert alert.labels == {"namespace": "billing", "replicas": "3", "canary": "true"}
    assert alert.annotations == {"dashboard": "https://grafana.example.com/d/pay"}
    assert alert.status == "firing"


def test_generic_timestamp_defaults_to_now() -> None:
    """Without a timestamp the alert is dated at receipt, in UTC."""
    payload = body(GENERIC_BODY)
    del payload["timestamp"]
    before = datetime.now(UTC)
    alert = parse_alert(payload)
    assert before <= alert.timestamp <= datetime.now(UTC)
    assert alert.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("given", "severity", "priority"),
    [
        ("critical", Severity.critical, "P0"),
        ("PAGE", Severity.critical, "P0"),
        ("p0", Severity.critical, "P0"),
        ("Error", Severity.critical, "P0"),
        ("fatal", Severity.critical, "P0"),
        ("high", Severity.high, "P1"),
        ("Major", Severity.high, "P1"),
        ("p1", Severity.high, "P1"),
        ("medium", Severity.medium, "P2"),
        ("WARNING", Severity.medium, "P2"),
        ("warn", Severity.medium, "P2"),
        ("P2", Severity.medium, "P2"),
        ("low", Severity.low, "P3"),
        ("info", Severity.low, "P3"),
        ("minor", Severity.low, "P3"),
        ("none", Severity.low, "P3"),
        ("p3", Severity.low, "P3"),
    ],
)
def test_severity_aliases_and_priority(given: str, severity: Severity, priority: str) -> None:
    """Every alias maps the same way for generic bodies and Alertmanager labels."""
    generic = body(GENERIC_BODY)
    generic["severity"] = given
    webhook = body(ALERTMANAGER_BODY)
    webhook["alerts"][1]["labels"]["severity"] = given
    for alert in (parse_alert(generic), parse_alert(webhook)):
        assert alert.severity is severity
        assert alert.priority == priority


# --------------------------------------------------------------------- errors


def test_generic_error_names_every_bad_field() -> None:
    """One error lists every problem with its path, in plain words."""
    payload = body(GENERIC_BODY)
    payload.update(severity="urgent", timestamp="yesterday", labels=["a"], service_name="  ")
    del payload["message"]
    with pytest.raises(AlertValidationError) as info:
        parse_alert(payload)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.errors == [
        ("service_name", "must not be empty"),
        ("severity", "unknown severity 'urgent' (expected critical, high, medium, low)"),
        ("message", "missing"),
        ("timestamp", "not a timestamp ('yesterday')"),
        ("labels", "expected an object (got array)"),
    ]
    assert str(error) == (
        "invalid alert: service_name: must not be empty; "
        "severity: unknown severity 'urgent' (expected critical, high, medium, low); "
        "message: missing; timestamp: not a timestamp ('yesterday'); labels: expected an object (got array)"
    )
    assert "Input should" not in str(error) and "pydantic" not in str(error)


def test_alertmanager_error_names_bad_fields_across_alerts() -> None:
    """Problems in different alerts are all reported, each with its alert index."""
    payload = body(ALERTMANAGER_BODY)
    payload["alerts"][0]["startsAt"] = "yesterday"
    payload["alerts"][1]["labels"]["severity"] = "urgent"
    payload["alerts"][1]["annotations"] = "not a map"
    with pytest.raises(AlertValidationError) as info:
        parse_alert(payload)
    assert info.value.errors == [
        ("alerts[0].startsAt", "not a timestamp ('yesterday')"),
        ("alerts[1].annotations", "expected an object (got string)"),
        ("alerts[1].labels.severity", "unknown severity 'urgent' (expected critical, high, medium, low)"),
    ]
    assert str(info.value).startswith("invalid alert: alerts[0].startsAt: not a timestamp ('yesterday'); ")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"alerts": []}, [("alerts", "empty: the webhook carries no alert")]),
        ({"alerts": {"a": 1}}, [("alerts", "expected an array of alerts (got object)")]),
        ({"alerts": ["x"]}, [("alerts[0]", "expected an object (got string)")]),
        (
            {"alerts": [{"labels": {}, "status": "pending"}]},
            [
                ("alerts[0]", "needs a fingerprint or labels.alertname to identify it"),
                ("alerts[0].startsAt", "missing"),
                ("alerts[0].status", "unknown status 'pending' (expected firing or resolved)"),
            ],
        ),
    ],
)
def test_alertmanager_structural_errors(change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """A webhook without usable alerts says exactly what is wrong."""
    payload = body(ALERTMANAGER_BODY)
    payload.update(change)
    with pytest.raises(AlertValidationError) as info:
        parse_alerts(payload)
    assert info.value.errors == expected


def test_slack_error_names_every_bad_field() -> None:
    """A Slack event missing its text and with a bad ts names both, under ``event.``."""
    payload = body(SLACK_BODY)
    payload["event"].update(type="reaction_added", ts="soon")
    del payload["event"]["text"]
    with pytest.raises(AlertValidationError) as info:
        parse_alert(payload)
    assert info.value.errors == [
        ("event.type", "unsupported Slack event 'reaction_added' (expected app_mention or message)"),
        ("event.text", "missing"),
        ("event.ts", "not a timestamp ('soon')"),
    ]


def test_slack_mention_only_is_rejected() -> None:
    """A message that is only a mention carries no request."""
    payload = body(SLACK_BODY)
    payload["event"]["text"] = "<@U07BOT123>  "
    with pytest.raises(AlertValidationError, match=r"event\.text: empty"):
        parse_alert(payload)


@pytest.mark.parametrize("raw", [b"<html>502 Bad Gateway</html>", "", "{'single': 'quotes'}", b"\xff\xfe\xfa"])
def test_non_json_body(raw: str | bytes) -> None:
    """Bodies that are not JSON are rejected with the decoder's reason."""
    with pytest.raises(AlertValidationError) as info:
        parse_alert(raw)
    assert str(info.value).startswith("invalid alert: body is not JSON: ")
    assert info.value.errors[0][0] == ""


def test_json_that_is_not_an_object() -> None:
    """A JSON array is JSON but not an alert."""
    with pytest.raises(AlertValidationError, match=r"^invalid alert: body is not a JSON object \(got array\)$"):
        parse_alert("[1, 2]")


def test_unknown_shape_names_the_generic_fields() -> None:
    """A payload of no known shape says which generic fields to send."""
    with pytest.raises(AlertValidationError) as info:
        parse_alert({"text_without_type": "checkout broken", "level": "bad"})
    paths = [path for path, _ in info.value.errors]
    assert paths == ["", "alert_id", "service_name", "severity", "message"]
    assert "no known alert shape" in str(info.value)
    assert all(message == "missing" for _, message in info.value.errors[1:])


def test_error_survives_pickling() -> None:
    """The error keeps its field list across a process boundary."""
    error = AlertValidationError([("severity", "unknown severity 'x' (expected critical, high, medium, low)")])
    clone = pickle.loads(pickle.dumps(error))
    assert clone.errors == error.errors
    assert str(clone) == str(error)


def test_module_docstring_example_runs() -> None:
    """The usage example in the package docstring is correct."""
    result = doctest.testmod(sre_graph.ingest, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
