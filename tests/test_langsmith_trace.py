"""LangSmith tracing: with ``LANGSMITH_TRACING=true`` and the endpoint at a loopback server, the run's trace arrives.

The loopback server answers what the langsmith client asks of a LangSmith API: ``GET /info`` (whose
``batch_ingest_config.use_multipart_endpoint`` picks the ingest endpoint) and ``POST /runs/multipart``
(multipart/form-data, one part per ``post.<id>``/``patch.<id>`` run and per ``<op>.<id>.<field>``) or
``POST /runs/batch`` (``{"post": [...], "patch": [...]}``). Both are exercised. Runs are merged by id.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from sre_graph.runner import investigate
from tests.fake_model import ScriptedChatModel, call, stage

INCIDENT = Path(__file__).resolve().parent.parent / "evals" / "incidents" / "net-orders-inventory-netpol"
GRAPH_NODES = {"intake", "classify", "verify", "report"}


class LangSmithStub:
    """Records the runs the langsmith client sends; ``multipart`` picks the ingest endpoint it advertises."""

    def __init__(self, multipart: bool) -> None:
        self.multipart = multipart
        self.paths: list[str] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.api_keys: set[str] = set()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def info(self) -> dict[str, Any]:
        return {"version": "0.10.0", "license_expiration_time": None, "instance_flags": {},
                "batch_ingest_config": {"use_multipart_endpoint": self.multipart, "scale_up_qsize_trigger": 1000,
                                        "scale_up_nthreads_limit": 16, "scale_down_nempty_trigger": 4,
                                        "size_limit": 100, "size_limit_bytes": 20_971_520}}

    def _merge(self, op: str, run_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            run = self.runs.setdefault(run_id, {"id": run_id, "ops": []})
            run["ops"].append(op)
            for key, value in fields.items():
                if key == "extra" and isinstance(value, dict):
                    extra = run.setdefault("extra", {})
                    for k, v in value.items():
                        extra[k] = {**extra.get(k, {}), **v} if isinstance(v, dict) else v
                else:
                    run[key] = value

    def ingest_batch(self, body: bytes) -> None:
        data = json.loads(body)
        for op in ("post", "patch"):
            for run in data.get(op) or []:
                self._merge(op, run["id"], run)

    def ingest_multipart(self, content_type: str, body: bytes) -> None:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        assert message.is_multipart(), content_type
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            op, run_id, *field = name.split(".")
            if op not in ("post", "patch"):
                continue  # attachments, feedback
            value = json.loads(part.get_payload(decode=True))
            self._merge(op, run_id, {field[0]: value} if field else value)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with stub.lock:
                    stub.paths.append(f"{self.command} {path}")
                    stub.api_keys.add(self.headers.get("x-api-key") or "")
                status, answer = 200, {}
                try:
                    if self.headers.get("content-encoding"):
                        raise ValueError(f"compressed body ({self.headers['content-encoding']}) not decoded")
                    if path == "/info":
                        answer = stub.info()
                    elif path == "/runs/batch":
                        stub.ingest_batch(body)
                        status = 202
                    elif path == "/runs/multipart":
                        stub.ingest_multipart(self.headers["content-type"], body)
                        status = 202
                except (ValueError, KeyError, AssertionError) as exc:
                    stub.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                    status, answer = 422, {"detail": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve  # noqa: N815

        return Handler


def _reset_langsmith() -> None:
    """Forget the cached environment and client, so tracing follows the environment of this moment."""
    from langsmith import run_trees, utils

    utils.get_env_var.cache_clear()
    utils.get_tracer_project.cache_clear()
    run_trees._CLIENT = None  # noqa: SLF001


@pytest.fixture(params=[True, False], ids=["multipart", "batch"])
def langsmith(request: pytest.FixtureRequest) -> Iterator[LangSmithStub]:
    """A LangSmith stub on loopback with tracing pointed at it, for one test."""
    from langchain_core.tracers.langchain import wait_for_all_tracers

    stub = LangSmithStub(multipart=request.param)
    thread = threading.Thread(target=stub.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for key in ("LANGCHAIN_TRACING_V2", "LANGCHAIN_ENDPOINT", "LANGCHAIN_API_KEY", "LANGSMITH_RUNS_ENDPOINTS",
                        "LANGSMITH_OTEL_ENABLED", "LANGSMITH_OTEL_ONLY"):
                env.delenv(key, raising=False)
            env.setenv("LANGSMITH_TRACING", "true")
            env.setenv("LANGSMITH_ENDPOINT", stub.url)
            env.setenv("LANGSMITH_API_KEY", "test")
            env.setenv("LANGSMITH_PROJECT", "sre-graph-tests")
            _reset_langsmith()
            try:
                yield stub
            finally:
                wait_for_all_tracers()
    finally:
        _reset_langsmith()
        stub.httpd.shutdown()
        stub.httpd.server_close()


def flush(stub: LangSmithStub) -> dict[str, dict[str, Any]]:
    from langchain_core.tracers.langchain import wait_for_all_tracers

    wait_for_all_tracers()
    assert not stub.errors, stub.errors
    assert stub.runs, f"no runs arrived; requests: {stub.paths}"
    return stub.runs


def metadata(run: dict[str, Any]) -> dict[str, Any]:
    return (run.get("extra") or {}).get("metadata") or {}


def expected_incident_id() -> str:
    """The id the report carries: the parsed alert's id."""
    from sre_graph.ingest import parse_alert

    return parse_alert(json.loads((INCIDENT / "alert.json").read_text())).alert_id


def check_trace(stub: LangSmithStub, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What every trace must show; returns the graph-node runs."""
    ingest = "POST /runs/multipart" if stub.multipart else "POST /runs/batch"
    assert ingest in stub.paths and stub.api_keys == {"test"}, (stub.paths, stub.api_keys)
    roots = [r for r in runs.values() if not r.get("parent_run_id")]
    assert [r["name"] for r in roots] == ["sre-graph investigation"], [r.get("name") for r in roots]
    (root,) = roots
    assert {r["trace_id"] for r in runs.values()} == {root["id"]}, "one trace per investigation"
    assert root.get("end_time") and "post" in root["ops"] and "patch" in root["ops"], "the run was closed"
    assert root.get("session_name") == "sre-graph-tests"
    incident = expected_incident_id()
    assert metadata(root)["incident_id"] == incident
    assert "sre-graph" in root.get("tags", [])

    nodes = [r for r in runs.values() if r.get("parent_run_id") == root["id"] and metadata(r).get("langgraph_node")]
    names = {r["name"] for r in nodes}
    assert GRAPH_NODES <= names, sorted(names)
    investigators = {n for n in names if n.startswith("investigate_")}
    assert "investigate_network" in investigators, sorted(names)
    for run in nodes:
        assert metadata(run)["langgraph_node"] == run["name"]
        assert metadata(run)["incident_id"] == incident, (run["name"], metadata(run))
        assert metadata(run)["thread_id"] == metadata(root)["thread_id"]
    return nodes


def test_rules_run_traces_every_node(langsmith):
    report = investigate(incident_dir=INCIDENT)
    runs = flush(langsmith)
    nodes = check_trace(langsmith, runs)
    assert report is not None
    final = next(r for r in nodes if r["name"] == "report")
    assert final["outputs"]["report"]["root_cause"] == report.root_cause, "node outputs are in the trace"
    assert metadata(final)["model"] == "rules"
    assert not [r for r in runs.values() if r.get("run_type") in ("llm", "tool")], "rules mode calls no model"


def _script(messages, bound):
    st = stage(messages)
    if st == "classify":
        return AIMessage("", tool_calls=[call("ModelClassification", {
            "domains": ["network"], "severity": "high", "service": "orders-api"})])
    if st == "investigate":
        if "ModelFindings" in bound:
            return AIMessage("", tool_calls=[call("ModelFindings", {"findings": []})])
        if not any(m.type == "tool" for m in messages):
            return AIMessage("", tool_calls=[call("list_events", {"namespace": "inventory"})])
        return AIMessage("done")
    if st == "verify":
        return AIMessage("", tool_calls=[call("ClaimChecks", {"checks": []})])
    return AIMessage("", tool_calls=[call("Narrative", {"summary": "s", "root_cause_statement": "r", "impact": "i",
                                                         "remediation": ["x"]})])


def test_model_run_traces_model_calls_and_tool_calls(langsmith):
    model = ScriptedChatModel(script=_script)
    report = investigate(incident_dir=INCIDENT, chat_model=model)
    runs = flush(langsmith)
    check_trace(langsmith, runs)
    assert report is not None and report.tokens
    llm_runs = [r for r in runs.values() if r.get("run_type") == "llm"]
    assert len(llm_runs) == model.counts["total"], "every model call is a run"
    incident = expected_incident_id()
    assert all(metadata(r).get("incident_id") == incident for r in llm_runs)
    tool_runs = [r for r in runs.values() if r.get("run_type") == "tool"]
    assert [r["name"] for r in tool_runs] == ["list_events"] * len(tool_runs) and tool_runs, \
        sorted({(r.get("name"), r.get("run_type")) for r in runs.values()})
    (tool_run, *_) = tool_runs
    assert tool_run["inputs"] == {"namespace": "inventory"} or "inventory" in json.dumps(tool_run["inputs"])
    assert metadata(tool_run).get("incident_id") == incident
    parent = runs[tool_run["parent_run_id"]]
    assert parent["name"] == "tools", "the tool run sits under the investigator's tools step"
    loop = {r["name"] for r in runs.values() if metadata(r).get("langgraph_node") in ("agent", "tools")}
    assert {"agent", "tools"} <= loop, "the investigator's tool loop is in the trace"


def test_trace_incident_id_matches_the_report(langsmith):
    report = investigate(incident_dir=INCIDENT)
    runs = flush(langsmith)
    root = next(r for r in runs.values() if not r.get("parent_run_id"))
    assert metadata(root)["incident_id"] == report.incident_id
