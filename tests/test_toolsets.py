"""The toolsets over recorded incidents: envelopes, caps, grouping, redaction, availability."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from sre_graph.render import to_json, to_markdown
from sre_graph.runner import investigate
from sre_graph.tools.output import DEFAULT_MAX_CHARS
from sre_graph.tools.replay import load_incident
from sre_graph.tools.toolsets import ToolResult, build_toolsets, offered_tools, unavailable

REPO = Path(__file__).resolve().parent.parent
INCIDENT = REPO / "evals" / "incidents" / "db-shop-orders-email-collscan"

CALLS = {
    "search_logs": {"min_severity": "WARN"},
    "aggregate_logs": {"group_by": "severity"},
    "search_traces": {"errors_only": True},
    "get_trace": {"trace_id": "0"},
    "service_overview": {"service": "checkout", "since_minutes": 15},
    "list_services": {},
    "query_metric": {"name": "http.server.duration.p99"},
    "list_pods": {"namespace": "shop"},
    "describe_pod": {"namespace": "shop", "name": "nope"},
    "pod_logs": {"namespace": "shop", "name": "nope"},
    "list_events": {"warnings_only": False},
    "rollout_history": {"namespace": "shop", "name": "orders-api"},
    "list_nodes": {},
    "service_endpoints": {"namespace": "shop", "name": "checkout"},
    "network_policies_for": {"namespace": "shop", "name": "nope"},
    "hpa_status": {},
    "server_status": {},
    "current_ops": {},
    "slow_queries": {"min_millis": 500},
    "index_stats": {"ns": "shop.orders"},
    "replication_status": {},
    "collection_stats": {"ns": "shop.orders"},
}


def _tools(folder: Path, **kwargs):
    return {t.name: t for t in offered_tools(build_toolsets(load_incident(folder).sources(), **kwargs))}


def test_every_tool_returns_the_envelope():
    tools = _tools(INCIDENT)
    assert set(tools) == set(CALLS), "every tool of the issue is offered, and no other"
    statuses = {}
    for name, args in CALLS.items():
        content, artifact = tools[name].func(**args)
        result = ToolResult.model_validate_json(content)
        assert result == artifact
        assert result.source in ("signoz", "kubernetes", "mongodb")
        assert result.query and result.evidence_id.startswith(("sz-", "k8s-", "mdb-"))
        statuses[name] = result.status
    assert statuses["slow_queries"] == "success" and "COLLSCAN" in tools["slow_queries"].func(min_millis=500)[0]
    assert statuses["describe_pod"] == "no_data"
    assert statuses["rollout_history"] == "success"


def test_tool_descriptions_are_written_for_a_model():
    for tool in _tools(INCIDENT).values():
        assert len(tool.description) > 60, tool.name
        schema = tool.args_schema.model_json_schema()
        assert schema.get("additionalProperties") is False, f"{tool.name} must reject unknown arguments"


def test_arguments_cannot_switch_redaction_off():
    tools = _tools(INCIDENT)
    with pytest.raises(ValidationError):
        tools["search_logs"].invoke({"min_severity": "WARN", "redact": False})


def test_unavailable_source_is_not_offered_and_is_named(tmp_path):
    folder = tmp_path / "case"
    shutil.copytree(INCIDENT, folder)
    meta = (folder / "incident.yaml").read_text().replace("unavailable: []", "unavailable: [mongodb]")
    (folder / "incident.yaml").write_text(meta)
    toolsets = build_toolsets(load_incident(folder).sources())
    by_name = {t.name: t for t in toolsets}
    assert by_name["mongodb"].status == "failed" and "unavailable" in by_name["mongodb"].reason
    assert not {"server_status", "slow_queries"} & {t.name for t in offered_tools(toolsets)}
    assert any(u.startswith("mongodb:") for u in unavailable(toolsets))
    report = investigate(incident_dir=folder)
    assert any(u.startswith("mongodb") for u in report.unavailable_sources)


def _minimal_incident(folder: Path, now: datetime) -> None:
    folder.mkdir(parents=True)
    alert = {"alert_id": "t-1", "service_name": "api", "severity": "high", "message": "api errors",
             "timestamp": (now - timedelta(minutes=5)).isoformat(), "labels": {"namespace": "prod"}}
    (folder / "alert.json").write_text(json.dumps(alert))
    (folder / "incident.yaml").write_text(
        f"id: {folder.name}\ntitle: t\ndifficulty: easy\nnow: '{now.isoformat()}'\nexpected:\n  domain: application\n"
        "  root_cause: unknown\n")


def _word(i: int) -> str:
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[r]
        if not i:
            return letters


def test_a_huge_log_is_capped_on_whole_lines_and_grouped(tmp_path):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    folder = tmp_path / "huge"
    _minimal_incident(folder, now)
    logs = folder / "kubernetes" / "logs" / "prod" / "api-1"
    logs.mkdir(parents=True)
    lines = []
    for i in range(50_000):
        ts = (now - timedelta(seconds=50_000 - i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        timeout = f"request {i} failed: upstream timeout after {i % 7 + 1}000ms"
        text = timeout if i % 10 else f"cache miss for {_word(i)}"
        lines.append(f"{ts} {text}")
    (logs / "api.log").write_text("\n".join(lines) + "\n")
    (folder / "kubernetes" / "pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": "api-1", "namespace": "prod", "labels": {"app": "api"}},
         "spec": {"containers": [{"name": "api"}]}, "status": {"phase": "Running"}}]}))
    tools = _tools(folder)
    content, result = tools["pod_logs"].func(namespace="prod", name="api-1", tail=50_000)
    assert len(result.data) <= DEFAULT_MAX_CHARS + 200
    assert result.omitted > 0 and f"{result.omitted} more record(s) left out" in result.data
    shown = result.data.splitlines()[:-1]
    assert any(line.startswith("×45000 ") for line in shown), "the 45,000 timeouts collapse into one counted group"
    for line in shown:
        assert line.endswith("000ms") or line.split()[-1].isalpha(), f"a record was cut: {line!r}"
    small = _tools(folder, max_chars=500)["pod_logs"].func(namespace="prod", name="api-1", tail=50_000)[1]
    assert len(small.data) < 700 and small.omitted > result.omitted


SECRETS = [
    "hunter2-Pa55word!", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-2048-4096-abcdefghijklmnop", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.dGhpcyBpcyBhIHNpZ25hdHVyZQ",
    "mongoPassw0rd", "redisS3cret", "AIzaSyA-1234567890abcdefghijklmnopqrstu", "glpat-abcdefghij1234567890",
    "SG.abcdefghijklmnop.qrstuvwxyz0123456789ABCD", "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345", "MIIEowIBAAKCAQEA7bq98nfsecretkeymaterial",
    "bearer-token-value-123456", "s3cr3t-client-value", "db-admin-pass-7731", "apikey-live-99887766",
    "sessionid-abcdef123456", "amqp-pass-4242",
]


def _planted_incident(folder: Path, now: datetime) -> None:
    _minimal_incident(folder, now)
    k8s = folder / "kubernetes"
    k8s.mkdir()
    pod = {"metadata": {"name": "api-1", "namespace": "prod", "labels": {"app": "api"}},
           "spec": {"nodeName": "n1", "containers": [{
               "name": "api", "image": "api:1",
               "args": [f"--db-password={SECRETS[0]}", f"--api-key={SECRETS[18]}"],
               "env": [{"name": "STRIPE_SECRET_KEY", "value": SECRETS[1]},
                       {"name": "AWS_ACCESS_KEY_ID", "value": SECRETS[2]},
                       {"name": "AWS_SECRET_ACCESS_KEY", "value": SECRETS[3]},
                       {"name": "GITHUB_TOKEN", "value": SECRETS[4]},
                       {"name": "MONGO_URL", "value": f"mongodb://app:{SECRETS[7]}@mongo:27017/db"},
                       {"name": "REDIS_PASSWORD", "value": SECRETS[8]},
                       {"name": "LOG_LEVEL", "value": "info"}]}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "api", "ready": True, "restartCount": 0,
                                                                "state": {"running": {}}}]}}
    (k8s / "pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod]}))
    logs = k8s / "logs" / "prod" / "api-1"
    logs.mkdir(parents=True)
    ts = (now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    log_lines = [
        f"connecting to amqp://guest:{SECRETS[20]}@rabbit:5672/",
        f"slack webhook token {SECRETS[5]} rejected",
        f"Authorization: Bearer {SECRETS[6]}",
        f"google key={SECRETS[9]} quota exceeded",
        f"-----BEGIN RSA PRIVATE KEY-----\n{SECRETS[14]}\n-----END RSA PRIVATE KEY-----",
        f'{{"level":"error","password":"{SECRETS[17]}","msg":"login failed"}}',
    ]
    (logs / "api.log").write_text("".join(f"{ts} {line}\n" for line in log_lines))
    signoz = folder / "signoz"
    signoz.mkdir()
    rows = [{"timestamp": ts, "data": {"body": f"gitlab push with {SECRETS[10]}", "severity_text": "ERROR",
                                       "resources_string": {"service.name": "api", "k8s.namespace.name": "prod"},
                                       "attributes_string": {"sendgrid": SECRETS[11], "session_id": SECRETS[19]}}},
            {"timestamp": ts, "data": {"body": f"npm token={SECRETS[12]} openai key {SECRETS[13]}",
                                       "severity_text": "WARN",
                                       "resources_string": {"service.name": "api", "k8s.namespace.name": "prod"}}}]
    (signoz / "logs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    span = {"timestamp": ts, "data": {"trace_id": "t1", "span_id": "s1", "service.name": "api", "name": "POST /pay",
                                      "duration_nano": 5e8, "has_error": True, "response_status_code": "500",
                                      "http_url": f"https://user:{SECRETS[16]}@psp.example.com/pay?token={SECRETS[15]}",
                                      "status_message": f"Bearer {SECRETS[15]} denied"}}
    (signoz / "traces.jsonl").write_text(json.dumps(span) + "\n")
    mongo = folder / "mongodb"
    mongo.mkdir()
    op = {"opid": 7, "op": "command", "ns": "admin.$cmd", "secs_running": 120, "appName": "api",
          "command": {"createUser": "ops", "pwd": SECRETS[17], "note": f"password={SECRETS[0]}"}}
    (mongo / "currentOp.json").write_text(json.dumps({"inprog": [op]}))
    (mongo / "serverStatus.json").write_text(json.dumps({"host": f"mongodb://root:{SECRETS[7]}@mongo:27017"}))


def test_no_planted_secret_leaves_a_tool_or_the_report(tmp_path):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    folder = tmp_path / "secrets"
    _planted_incident(folder, now)
    assert len(SECRETS) >= 20
    raw = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    assert all(s in raw for s in SECRETS), "every secret is planted in the recorded data"
    tools = _tools(folder)
    outputs = []
    calls = {**CALLS, "pod_logs": {"namespace": "prod", "name": "api-1"},
             "describe_pod": {"namespace": "prod", "name": "api-1"}, "get_trace": {"trace_id": "t1"},
             "search_logs": {"since_minutes": 60}, "search_traces": {}}
    for name, args in calls.items():
        if name in tools:
            outputs.append(tools[name].func(**args)[0])
    report = investigate(incident_dir=folder)
    outputs += [to_json(report), to_markdown(report)]
    text = "\n".join(outputs)
    assert "[REDACTED]" in text
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets leaked: {leaked}"
    assert "LOG_LEVEL" in text or "api-1" in text, "redaction must not blank ordinary data"
