"""The real ChatOpenAI client over the wire, against a loopback server speaking OpenAI's chat-completions API.

Everything between sre-graph and the model is real: ``build_chat_model`` builds ``ChatOpenAI``, which talks
HTTP to :mod:`tests.openai_server`; tool calls, structured output (function calling), usage fields, errors,
timeouts and malformed bodies arrive as an OpenAI-compatible server would send them. The client's own retries
are off (``model_max_retries=0``): what retries is the graph's ``RetryPolicy``, and the tests count the
requests the server saw.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sre_graph.llm import build_chat_model, structured
from sre_graph.nodes.classify import ModelClassification
from sre_graph.render import to_markdown
from sre_graph.runner import investigate
from sre_graph.settings import Settings
from tests.fake_model import stage as fake_stage
from tests.openai_server import Recorded, Reply, completion, error, malformed, serve, stall, tool_call

INCIDENT = Path(__file__).resolve().parent.parent / "evals" / "incidents" / "net-orders-inventory-netpol"
EXPECTED = "network_policy_block"
USAGE = {"classify": (101, 11), "investigate": (202, 22), "verify": (303, 33), "report": (404, 44)}
"""Distinct usage per stage, so the report's token tally can be traced back to the server's answers."""
EVIDENCE_ID = re.compile(r'"evidence_id":\s*"([a-z0-9]+-[0-9a-f]{8})"')
LISTED_ID = re.compile(r"^\[([a-z0-9]+-[0-9a-f]{8})\] ", re.MULTILINE)
"""An evidence line of the report prompt (not the example id in the instructions)."""
TIMEOUT = 1.0
"""``model_timeout`` of the timeout tests (the others allow 10 s, so a slow CI machine does not time out)."""


# --------------------------------------------------------------------- reading requests


def text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def stage(body: dict[str, Any]) -> str:
    """The node a request comes from (the same markers as the scripted-model tests)."""
    return fake_stage([SimpleNamespace(content=text(body["messages"][0]))])


def domain(body: dict[str, Any]) -> str | None:
    """The investigator's domain, from its system prompt."""
    found = re.search(r"investigating one domain \((\w+)\)", text(body["messages"][0]))
    return found.group(1) if found else None


def node(body: dict[str, Any]) -> str:
    """The graph node a request comes from, as the report's token tally names it."""
    st = stage(body)
    return f"investigate_{domain(body)}" if st == "investigate" else st


def forced(body: dict[str, Any]) -> str | None:
    """The function ``tool_choice`` forces (structured output), if any."""
    choice = body.get("tool_choice")
    return choice["function"]["name"] if isinstance(choice, dict) else None


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def by_node(server: Any) -> Counter[str]:
    return Counter(node(r.body) for r in server.chat_requests)


# --------------------------------------------------------------------- the cooperative model


class Model:
    """A script for the server: a model that does its job at every stage, unless told otherwise.

    ``override[stage](body)`` may answer instead (an error, a stall, garbage); returning ``None`` falls through
    to the cooperative answer. Thread-safe: investigators run in parallel.
    """

    def __init__(self, **override: Any) -> None:
        self.override = override
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        st = stage(body)
        with self.lock:
            self.seen[st] += 1
            nth = self.seen[st]
        hook = self.override.get(st)
        if hook is not None:
            answer = hook(body, nth)
            if answer is not None:
                return answer
        return getattr(self, st)(body)

    def reply(self, body: dict[str, Any], st: str, *, content: str | None = None,
              calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return completion(body["model"], content=content, tool_calls=calls, usage=USAGE[st])

    def classify(self, body: dict[str, Any]) -> dict[str, Any]:
        assert forced(body) == "ModelClassification"
        return self.reply(body, "classify", calls=[tool_call("ModelClassification", {
            "domains": ["network", "infrastructure"], "confidence": {"network": 0.9, "infrastructure": 0.4},
            "severity": "high", "service": "orders-api", "namespace": "orders"})])

    def investigate(self, body: dict[str, Any]) -> dict[str, Any]:
        if forced(body) == "ModelFindings":
            ids = [i for m in tool_messages(body) for i in EVIDENCE_ID.findall(text(m))]
            findings = [{"root_cause": EXPECTED, "evidence_ids": ids[:1], "confidence": 0.8,
                         "statement": f"A NetworkPolicy in inventory drops traffic from orders [{ids[0]}]."}
                        ] if ids and domain(body) == "network" else []
            return self.reply(body, "investigate", calls=[tool_call("ModelFindings", {"findings": findings})])
        if not tool_messages(body):
            assert "list_events" in tool_names(body), tool_names(body)
            return self.reply(body, "investigate", calls=[tool_call("list_events", {"namespace": "inventory"})])
        return self.reply(body, "investigate", content="I have what I need.")

    def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        claims = [line for line in text(body["messages"][0]).splitlines() if re.match(r"^\d+\. \[", line)]
        return self.reply(body, "verify", calls=[tool_call("ClaimChecks", {"checks": [
            {"index": int(c.split(".")[0]), "supported": True, "reason": "the cited evidence shows it"}
            for c in claims]})])

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = LISTED_ID.findall(text(body["messages"][0]))
        return self.reply(body, "report", calls=[tool_call("Narrative", {
            "summary": "orders-api cannot reach inventory-api. A new NetworkPolicy blocks it.",
            "root_cause_statement": f"The restrict-ingress NetworkPolicy drops orders traffic [{ids[0]}].",
            "impact": "Orders fail with 5xx.", "remediation": ["Fix the networkpolicy restrict-ingress",
                                                               "Add a test for the path"]})])


def settings_for(url: str, **extra: Any) -> Settings:
    return Settings(**{"model": "test-model", "base_url": f"{url}/v1", "api_key": "test", "model_timeout": 10.0,
                       "model_max_retries": 0, **extra})


def run(server: Any, **extra: Any) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """Investigate the incident against the server; return the report and each node's updates."""
    updates: dict[str, list[dict[str, Any]]] = {}
    report = investigate(incident_dir=INCIDENT, settings=settings_for(server.url, **extra),
                         progress=lambda name, update: updates.setdefault(name, []).append(update))
    assert not server.script_errors, server.script_errors
    assert report is not None
    return report, updates


def usage_sent(requests: list[Recorded]) -> dict[str, dict[str, int]]:
    """The usage the server reported, per node, over the requests it answered with a completion."""
    out: dict[str, dict[str, int]] = {}
    for r in requests:
        if r.status == 200 and isinstance(r.reply, dict) and "usage" in r.reply:
            slot = out.setdefault(node(r.body), {"prompt_tokens": 0, "completion_tokens": 0})
            slot["prompt_tokens"] += r.reply["usage"]["prompt_tokens"]
            slot["completion_tokens"] += r.reply["usage"]["completion_tokens"]
    return out


# --------------------------------------------------------------------- the happy path


def test_a_whole_investigation_over_the_wire():
    with serve(Model()) as server:
        report, updates = run(server)
        requests = server.chat_requests
    assert report.root_cause == EXPECTED
    assert not report.model_notes, report.model_notes
    assert [u["classification"].method for u in updates["classify"]] == ["model"]
    assert report.summary.startswith("orders-api cannot reach inventory-api")
    assert "restrict-ingress NetworkPolicy drops orders traffic [" in report.root_cause_statement
    assert report.remediation[0] == "Fix the networkpolicy restrict-ingress"
    assert not [d for d in report.dropped_claims if d.startswith("report:")], report.dropped_claims

    # every request is a valid chat completion request from the real client
    for r in requests:
        assert r.status == 200, (r.status, r.reply)
        assert r.headers["authorization"] == "Bearer test"
        assert r.body["model"] == "test-model" and r.body["temperature"] == 0
        assert r.body["max_completion_tokens"] == 2048 and "max_tokens" not in r.body

    # per stage: classify and report once; each investigator a tool turn, a closing turn, a findings request
    counts = by_node(server)
    investigators = sorted(k for k in counts if k.startswith("investigate_"))
    assert {"investigate_network", "investigate_infrastructure"} <= set(investigators), "the model's domains ran"
    assert counts["classify"] == 1 and counts["report"] == 1
    assert all(counts[k] == 3 for k in investigators), counts
    assert counts["verify"] == len(updates["verify"]) >= 1
    assert sum(counts.values()) == len(requests)

    # the tool results went back to the server as role "tool" messages, fenced as untrusted data
    closing = [r.body for r in requests if stage(r.body) == "investigate" and tool_messages(r.body)
               and not forced(r.body)]
    assert len(closing) == len(investigators)
    for body in closing:
        asked = next(m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
        (call,) = asked["tool_calls"]
        assert call["function"]["name"] == "list_events"
        assert json.loads(call["function"]["arguments"]) == {"namespace": "inventory"}
        (answer,) = tool_messages(body)
        assert answer["tool_call_id"] == call["id"]
        assert text(answer).startswith('<untrusted-data source="kubernetes tool list_events">'), text(answer)[:80]
        assert EVIDENCE_ID.search(text(answer)), "the tool result carries its evidence id for the model to cite"

    # the model's finding cites the tool's evidence, which reached the report
    cited = {e.id for e in report.evidence}
    network_findings = next(r for r in requests if node(r.body) == "investigate_network"
                            and forced(r.body) == "ModelFindings")
    tool_id = EVIDENCE_ID.search(text(tool_messages(network_findings.body)[0])).group(1)
    assert tool_id in cited

    # token accounting is exactly the server's usage fields, summed per node
    assert report.tokens == usage_sent(requests)
    assert report.tokens["classify"] == {"prompt_tokens": 101, "completion_tokens": 11}
    assert report.tokens["investigate_network"] == {"prompt_tokens": 3 * 202, "completion_tokens": 3 * 22}
    assert "tokens:" in to_markdown(report)


def test_token_cost_uses_the_configured_prices():
    with serve(Model()) as server:
        report, _ = run(server, price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
    prompt = sum(v["prompt_tokens"] for v in report.tokens.values())
    completion_tokens = sum(v["completion_tokens"] for v in report.tokens.values())
    assert prompt and completion_tokens
    assert report.cost == pytest.approx(prompt / 1000 * 0.5 + completion_tokens / 1000 * 2.0)


def test_structured_output_by_function_calling_parses():
    def script(body):
        return completion(body["model"], usage=(42, 7), tool_calls=[tool_call("ModelClassification", {
            "domains": ["database"], "confidence": {"database": 0.7}, "severity": "critical",
            "service": "checkout"})])

    with serve(script) as server:
        model = build_chat_model(settings_for(server.url, model_max_tokens=256))
        out, usage = structured(model, ModelClassification, "classify this")
        (request,) = server.chat_requests
    assert out == ModelClassification(domains=["database"], confidence={"database": 0.7}, severity="critical",
                                      service="checkout")
    assert usage == {"prompt_tokens": 42, "completion_tokens": 7}
    body = request.body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "ModelClassification"}}
    assert body["parallel_tool_calls"] is False and body["max_completion_tokens"] == 256
    (tool,) = body["tools"]
    schema = tool["function"]["parameters"]
    assert schema["type"] == "object" and set(schema["required"]) >= {"domains", "severity", "service"}
    assert schema["properties"]["domains"]["items"]["enum"] == ["network", "database", "infrastructure",
                                                                "application"]
    assert body["messages"] == [{"role": "user", "content": "classify this"}]


def test_the_server_rejects_what_openai_rejects():
    """The server is strict where the API is: a client bug would show as a 400, not pass silently."""
    import openai

    with serve() as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0, timeout=5)
        bad = [
            {"messages": [{"role": "user", "content": "x"}], "extra_body": {"bogus": 1}},
            {"messages": []},
            {"messages": [{"role": "tool", "content": "x", "tool_call_id": "call_1"}]},
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"},
            {"messages": [{"role": "user", "content": "x"}], "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
             "tool_choice": {"type": "function", "function": {"name": "g"}}},
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 5},
            {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0},
        ]
        for kwargs in bad:
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="test-model", **kwargs)
            assert caught.value.body["message"], kwargs
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
        assert [m.id for m in client.models.list()] == ["test-model"]
        answer = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "ok" and answer.usage.total_tokens == 15


def test_the_cli_flags_against_an_openai_compatible_server(subprocess_env):
    """``sre-graph investigate --model <name> --base-url URL``, as docs/models.md shows it, in a child process."""
    env = {**subprocess_env, "SRE_GRAPH_API_KEY": "test", "SRE_GRAPH_MODEL_MAX_RETRIES": "0"}
    with serve(Model()) as server:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "sre-graph"), "investigate", str(INCIDENT), "--model", "test-model",
             "--base-url", f"{server.url}/v1", "--format", "json", "-q"],
            env=env, capture_output=True, text=True, timeout=180, check=False)
        counts = by_node(server)
        errors = list(server.script_errors)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not errors, errors
    report = json.loads(proc.stdout)
    assert report["root_cause"] == EXPECTED and report["model"] == "test-model"
    assert not report["model_notes"], report["model_notes"]
    assert report["tokens"]["classify"] == {"prompt_tokens": 101, "completion_tokens": 11}
    assert counts["classify"] == 1 and counts["report"] == 1 and counts["investigate_network"] == 3


def test_azure_openai_from_the_environment(monkeypatch):
    """``SRE_GRAPH_AZURE_ENDPOINT`` switches to Azure's route: the deployment (``--model``) in the path, the
    ``api-version`` query and the ``api-key`` header."""
    with serve(Model()) as server:
        for key, value in {"MODEL": "test-model", "AZURE_ENDPOINT": server.url, "AZURE_API_VERSION": "2024-10-21",
                           "API_KEY": "test", "MODEL_MAX_RETRIES": "0", "MODEL_TIMEOUT": "5"}.items():
            monkeypatch.setenv(f"SRE_GRAPH_{key}", value)
        report = investigate(incident_dir=INCIDENT)
        requests = server.chat_requests
        errors = list(server.script_errors)
    assert not errors, errors
    assert report is not None and report.root_cause == EXPECTED and not report.model_notes, report.model_notes
    assert {r.path for r in requests} == {"/openai/deployments/test-model/chat/completions"}
    assert all(r.status == 200 for r in requests), [(r.status, r.reply) for r in requests if r.status != 200]
    assert all(r.query["api-version"] == ["2024-10-21"] and r.headers["api-key"] == "test" for r in requests)
    assert report.tokens == usage_sent(requests)


# --------------------------------------------------------------------- failures


def always(reply_fn):
    return lambda body, nth: reply_fn()


FAILURES = {
    "500": (lambda: error(500, "The server had an error while processing your request.", type="server_error"),
            ("InternalServerError", "OpenAIAPIError")),
    "429": (lambda: error(429, "Rate limit reached for test-model: requests per min. Please try again in 1s.",
                          type="requests", code="rate_limit_exceeded", retry_after=1),
            ("RateLimitError", "OpenAIRateLimitError")),
    "timeout": (lambda: stall(5 * TIMEOUT), ("APITimeoutError", "OpenAITimeoutError")),
}
"""How to fail, and the exception names the note may carry (openai's, or langchain-openai's subclasses)."""


def noted(notes: list[str], prefix: str, names: tuple[str, ...]) -> bool:
    return any(note.startswith(f"{prefix} ({name}:") for note in notes for name in names)


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_classify_failure_retries_once_then_falls_back(kind):
    make, names = FAILURES[kind]
    with serve(Model(classify=always(make))) as server:
        started = time.monotonic()
        report, updates = run(server, **({"model_timeout": TIMEOUT} if kind == "timeout" else {}))
        elapsed = time.monotonic() - started
        counts = by_node(server)
        statuses = [r.status for r in server.chat_requests if stage(r.body) == "classify"]
        abandoned = [r.abandoned for r in server.chat_requests if stage(r.body) == "classify"]
    assert counts["classify"] == 2, "the RetryPolicy ran classify once more, then it fell back"
    if kind == "timeout":
        assert statuses == [None, None] and all(abandoned), "the client hung up before the stalled answer"
    else:
        assert statuses == [int(kind)] * 2
    assert elapsed >= 1.0, "RetryPolicy waits initial_interval (1 s) between the attempts"
    assert updates["classify"][-1]["classification"].method == "rules (model failed)"
    assert noted(report.model_notes, "classify: model failed", names), report.model_notes
    assert "used the rules classifier" in report.model_notes[0]
    assert "Model fallbacks" in to_markdown(report)
    # the rest of the run still used the model, and concluded
    assert counts["report"] == 1 and any(k.startswith("investigate_") for k in counts)
    assert report.root_cause == EXPECTED
    assert "classify" not in report.tokens, "a request without an answer has no usage"


def test_a_transient_failure_that_clears_on_retry_leaves_no_note():
    def first_fails(body, nth):
        return error(503, "The engine is currently overloaded, please try again later.") if nth == 1 else None

    with serve(Model(classify=first_fails)) as server:
        report, updates = run(server)
        statuses = [r.status for r in server.chat_requests if stage(r.body) == "classify"]
    assert statuses == [503, 200]
    assert [u["classification"].method for u in updates["classify"]] == ["model"]
    assert not report.model_notes
    assert report.tokens["classify"] == {"prompt_tokens": 101, "completion_tokens": 11}


def test_an_investigator_5xx_keeps_the_runbook_findings():
    def fail_network(body, nth):
        return error(502, "Bad gateway") if domain(body) == "network" else None

    with serve(Model(investigate=fail_network)) as server:
        report, _ = run(server)
        counts = by_node(server)
    assert counts["investigate_network"] == 2, "the first turn failed twice (node retry), then the runbook stood"
    assert counts["investigate_infrastructure"] == 3
    assert noted(report.model_notes, "investigate_network: model failed", FAILURES["500"][1]), report.model_notes
    assert "runbook's findings stand" in report.model_notes[0]
    assert report.root_cause == EXPECTED, "the network runbook's finding still decides"
    assert "investigate_network" not in report.tokens


def test_a_rate_limited_verify_keeps_the_mechanical_check():
    with serve(Model(verify=always(FAILURES["429"][0]))) as server:
        report, updates = run(server)
        counts = by_node(server)
    assert counts["verify"] == 2 * len(updates["verify"]), "each verify pass: one retry, then the fallback"
    assert noted(report.model_notes, "verify: model check failed", FAILURES["429"][1]), report.model_notes
    assert report.root_cause == EXPECTED
    assert "verify" not in report.tokens


def test_a_report_timeout_keeps_the_engine_wording():
    with serve(Model(report=always(FAILURES["timeout"][0]))) as server:
        report, _ = run(server, model_timeout=TIMEOUT)
        counts = by_node(server)
    assert counts["report"] == 2
    assert noted(report.model_notes, "report: model failed", FAILURES["timeout"][1]), report.model_notes
    assert report.root_cause == EXPECTED and report.root_cause_statement
    assert not report.summary.startswith("orders-api cannot reach"), "the engine's summary stands"
    assert "report" not in report.tokens


MALFORMED = {
    "arguments are not JSON": lambda body, nth: completion(body["model"], tool_calls=[
        tool_call("ModelClassification", '{"domains": ["network"], "severity": ')]),
    "arguments miss the schema": lambda body, nth: completion(body["model"], tool_calls=[
        tool_call("ModelClassification", {"domains": "network", "severity": "apocalyptic"})]),
    "no tool call at all": lambda body, nth: completion(body["model"], content="It is probably the network."),
    "body is truncated JSON": lambda body, nth: malformed(),
    "body is an HTML page": lambda body, nth: malformed("<html><body>502 Bad Gateway</body></html>",
                                                        content_type="text/html"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_classify_falls_back_without_retry(case):
    with serve(Model(classify=MALFORMED[case])) as server:
        report, updates = run(server)
        counts = by_node(server)
    assert counts["classify"] == 1, "malformed output is not retried"
    assert updates["classify"][-1]["classification"].method == "rules (model failed)"
    notes = "\n".join(report.model_notes)
    assert "classify: model failed (" in notes and "used the rules classifier" in notes, notes
    assert report.root_cause == EXPECTED


def test_a_malformed_reply_in_the_tool_loop_falls_back_without_retry():
    def garbage_for_network(body, nth):
        return malformed() if domain(body) == "network" and not forced(body) else None

    with serve(Model(investigate=garbage_for_network)) as server:
        report, _ = run(server)
        counts = by_node(server)
    assert counts["investigate_network"] == 1
    assert "investigate_network: model failed (malformed" in "\n".join(report.model_notes), report.model_notes
    assert report.root_cause == EXPECTED


def test_a_report_that_misses_its_schema_falls_back_without_retry():
    def half(body, nth):
        return completion(body["model"], tool_calls=[tool_call("Narrative", {"summary": "only this"})])

    with serve(Model(report=half)) as server:
        report, _ = run(server)
        counts = by_node(server)
    assert counts["report"] == 1
    assert "report: model failed (malformed model output" in "\n".join(report.model_notes)
    assert report.summary != "only this"


def test_a_tool_call_with_broken_arguments_is_answered_and_the_loop_goes_on():
    """Bad arguments from the model get an error tool message back (as OpenAI requires every call to be answered);
    the model can then correct itself."""

    def sloppy(body, nth):
        if forced(body) or domain(body) != "network":
            return None
        if not tool_messages(body):
            return completion(body["model"], usage=USAGE["investigate"],
                              tool_calls=[tool_call("list_events", '{"namespace": inventory}')])
        if len(tool_messages(body)) == 1:
            assert text(tool_messages(body)[0]).startswith("error:"), text(tool_messages(body)[0])
            return completion(body["model"], usage=USAGE["investigate"],
                              tool_calls=[tool_call("list_events", {"namespace": "inventory"})])
        return None

    with serve(Model(investigate=sloppy)) as server:
        report, _ = run(server)
        network = [r for r in server.chat_requests if node(r.body) == "investigate_network"]
    assert all(r.status == 200 for r in network), [(r.status, r.reply) for r in network if r.status != 200]
    assert len(network) == 4, "bad call, corrected call, closing turn, findings"
    assert not report.model_notes, report.model_notes
    assert report.root_cause == EXPECTED


def test_the_tool_budget_holds_on_the_wire_and_its_turns_are_counted():
    """Past ``max_tool_calls`` the model is asked without tools; a reply that calls tools anyway is cut short,
    and its tokens still count."""

    def greedy(body, nth):
        if forced(body) or domain(body) != "network":
            return None
        return completion(body["model"], usage=USAGE["investigate"],
                          tool_calls=[tool_call("list_events", {"namespace": "inventory"})])

    with serve(Model(investigate=greedy)) as server:
        report, _ = run(server, max_tool_calls=1)
        network = [r.body for r in server.chat_requests if node(r.body) == "investigate_network"]
    assert [bool(b.get("tools")) for b in network] == [True, False, True], "turn 2 is past the budget: no tools"
    assert forced(network[-1]) == "ModelFindings"
    assert len(tool_messages(network[-1])) == 1, "one tool call ran; the over-budget call was dropped"
    assert report.tokens["investigate_network"] == {"prompt_tokens": 3 * 202, "completion_tokens": 3 * 22}
    assert report.root_cause == EXPECTED
