"""The model-driven investigator: a tool-calling loop (a small LangGraph subgraph) seeded with the runbook.

The model reads the runbook's findings and evidence, calls read-only tools (several per turn run in
parallel), and finally states findings that cite evidence ids. Tool output reaches the model only fenced as
untrusted data. The loop stops at the tool-call and token budgets.
"""

from __future__ import annotations

import operator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from sre_graph import taxonomy
from sre_graph.llm import MODEL_ERRORS, ModelUnavailable, as_unavailable, structured, usage_of
from sre_graph.models import Alert, Evidence, Finding
from sre_graph.prompts import render, untrusted
from sre_graph.timeutil import iso
from sre_graph.tools.toolsets import ToolResult


class ModelFinding(BaseModel):
    """One finding as the model states it."""

    root_cause: str = Field(description="A taxonomy id.")
    statement: str = Field(description="The claim, citing evidence ids in square brackets.")
    evidence_ids: list[str] = Field(description="Ids of the evidence the claim rests on.")
    confidence: float = Field(ge=0, le=1)


class ModelFindings(BaseModel):
    """The model's findings for one domain."""

    findings: list[ModelFinding] = Field(default_factory=list)


class AgentState(TypedDict):
    """The loop's state."""

    messages: Annotated[list[AnyMessage], add_messages]
    tool_calls: Annotated[int, operator.add]
    tokens: Annotated[int, operator.add]


def build_agent(model: BaseChatModel, tools: list[BaseTool], *, max_tool_calls: int, max_tokens: int) -> Any:
    """The tool-calling loop as a compiled subgraph."""
    bound = model.bind_tools(tools) if tools else model
    by_name = {t.name: t for t in tools}

    def agent(state: AgentState) -> dict[str, Any]:
        over = state.get("tool_calls", 0) >= max_tool_calls or state.get("tokens", 0) >= max_tokens
        try:
            reply = (model if over or not tools else bound).invoke(state["messages"])
        except MODEL_ERRORS as exc:
            raise as_unavailable(exc) from exc
        except (ValueError, KeyError, TypeError) as exc:  # a body that is not a chat completion
            raise ModelUnavailable(f"malformed model output: {str(exc)[:200]}") from exc
        usage = usage_of(reply)
        if over and isinstance(reply, AIMessage) and (reply.tool_calls or reply.invalid_tool_calls):
            reply = AIMessage(content=reply.content or "Budget reached; concluding.", id=reply.id,
                              usage_metadata=reply.usage_metadata)
        return {"messages": [reply], "tokens": sum(usage.values())}

    def run_tools(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        last = state["messages"][-1]
        left = max(max_tool_calls - state.get("tool_calls", 0), 0)
        # Calls whose arguments are not JSON: answered with the error (OpenAI requires every call answered),
        # so the model can correct itself; they count against the budget.
        invalid = [ToolMessage(content=f"error: the arguments are not valid JSON: {c.get('args')!r}",
                               tool_call_id=c["id"], name=c.get("name") or "unknown", status="error")
                   for c in getattr(last, "invalid_tool_calls", []) or [] if c.get("id")][:left]
        calls = list(getattr(last, "tool_calls", []) or [])[: left - len(invalid)]

        def one(call: dict[str, Any]) -> ToolMessage:
            tool = by_name.get(call["name"])
            if tool is None:
                return ToolMessage(content=f"error: no tool named {call['name']!r}; available: {sorted(by_name)}",
                                   tool_call_id=call["id"], name=call["name"], status="error")
            try:
                # Through invoke, with the node's config (pool threads do not inherit it): a tool run in the trace.
                done = tool.invoke({**call, "type": "tool_call"}, config)
            except (ValueError, TypeError) as exc:  # bad arguments from the model: tell it, do not crash
                return ToolMessage(content=f"error: invalid arguments: {exc}", tool_call_id=call["id"],
                                   name=call["name"], status="error")
            result = done.artifact
            return ToolMessage(content=untrusted(f"{result.source} tool {call['name']}", str(done.content)),
                               artifact=result, tool_call_id=call["id"], name=call["name"])

        with ThreadPoolExecutor(max_workers=max(len(calls), 1)) as pool:
            messages = list(pool.map(one, calls))
        answered = {m.tool_call_id for m in messages + invalid}
        every = [*(getattr(last, "tool_calls", []) or []), *(getattr(last, "invalid_tool_calls", []) or [])]
        skipped = [ToolMessage(content="error: tool-call budget exhausted", tool_call_id=c["id"],
                               name=c.get("name") or "unknown", status="error")
                   for c in every if c.get("id") and c["id"] not in answered]
        return {"messages": invalid + messages + skipped, "tool_calls": len(calls) + len(invalid)}

    def route(state: AgentState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls) else END

    graph = StateGraph(AgentState)
    graph.add_node("agent", agent)
    graph.add_node("tools", run_tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name="investigator")


def _seed(findings: list[Finding], evidence: dict[str, Evidence]) -> str:
    lines = []
    for f in sorted(findings, key=lambda f: -f.confidence)[:8]:
        lines.append(f"- {f.root_cause} (confidence {f.confidence:.2f}): {f.statement} cites {f.evidence_ids}")
    lines.append("Evidence:")
    for ev in list(evidence.values())[:25]:
        lines.append(f"- [{ev.id}] {ev.source} `{ev.query}` at {iso(ev.timestamp)}: {ev.summary}")
    return "\n".join(lines) if findings else "No finding yet.\n" + "\n".join(lines[1:])


def investigate_with_model(
    model: BaseChatModel,
    tools: list[BaseTool],
    domain: str,
    alert: Alert,
    now: Any,
    seed_findings: list[Finding],
    seed_evidence: dict[str, Evidence],
    *,
    max_tool_calls: int,
    max_tokens: int,
) -> tuple[list[Finding], dict[str, Evidence], int, dict[str, int]]:
    """Run the loop; return the model's findings, the evidence its tools produced, tool calls made, usage."""
    prompt = render(
        "investigate", domain=domain, service=alert.service_name, namespace=alert.namespace or "unknown",
        alert_time=iso(alert.timestamp), now=iso(now),
        alert=untrusted("alert", alert.model_dump_json(include={"message", "labels", "annotations"})),
        seed=untrusted("runbook findings", _seed(seed_findings, seed_evidence)), max_tool_calls=str(max_tool_calls),
        root_causes=", ".join(sorted(taxonomy.ROOT_CAUSE_IDS)))
    agent = build_agent(model, tools, max_tool_calls=max_tool_calls, max_tokens=max_tokens)
    state = agent.invoke({"messages": [SystemMessage(prompt), HumanMessage(f"Investigate the {domain} domain.")],
                          "tool_calls": 0, "tokens": 0}, {"recursion_limit": 2 * max_tool_calls + 6})
    evidence: dict[str, Evidence] = {}
    for message in state["messages"]:
        result = getattr(message, "artifact", None)
        if isinstance(message, ToolMessage) and isinstance(result, ToolResult) and result.status != "error":
            first = (result.data or "").splitlines()[0][:200] if result.data else "no data"
            evidence[result.evidence_id] = Evidence(
                id=result.evidence_id, source=result.source, query=result.query,  # type: ignore[arg-type]
                summary=f"{result.records} record(s): {first}", excerpt=(result.data or "")[:1500])
    usage = usage_of([m for m in state["messages"] if isinstance(m, AIMessage)])
    ask = state["messages"] + [HumanMessage(render("investigate_findings", domain=domain,
                                                   root_causes=", ".join(sorted(taxonomy.ROOT_CAUSE_IDS))))]
    try:
        answer, more = structured(model, ModelFindings, ask)
    except ModelUnavailable:
        raise
    for key, value in more.items():
        usage[key] = usage.get(key, 0) + value
    findings = []
    for f in answer.findings:
        if f.root_cause not in taxonomy.ROOT_CAUSE_IDS or f.root_cause == taxonomy.UNKNOWN:
            continue
        domain_of_cause = taxonomy.domain_of(f.root_cause)
        if domain_of_cause is None:  # only ``unknown`` has none, skipped above
            continue
        findings.append(Finding(domain=domain_of_cause, root_cause=f.root_cause,
                                statement=f.statement, evidence_ids=f.evidence_ids, confidence=f.confidence,
                                subject="model", keywords=[], objects=[], explains=[]))
    return findings, evidence, int(state.get("tool_calls", 0)), usage
