"""report: write the root-cause analysis from the ranked findings."""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from sre_graph import taxonomy
from sre_graph.context import Context, as_context
from sre_graph.llm import MODEL_RETRY, ModelUnavailable, cost, fallback_or_retry, resolve_model, structured
from sre_graph.models import Evidence, Finding, Report, TimelineEntry, utcnow
from sre_graph.nodes.verify import CONCLUSIVE, follows
from sre_graph.prompts import render, untrusted
from sre_graph.settings import load_settings
from sre_graph.state import IncidentState, typed
from sre_graph.timeutil import iso

MAX_EVIDENCE = 10


def _supporting(leader: Finding, ranked: list[Finding]) -> list[Finding]:
    """Findings the leader explains: the causal chain shown under it."""
    corroborating = [f for f in ranked if f is not leader and f.root_cause == leader.root_cause and f.score >= 0.35
                     and not f.steady][:2]
    effects = [f for f in ranked if f is not leader and f.root_cause in leader.explains and f.score >= 0.35
               and follows(leader, f)][:4]
    return corroborating + effects


def build_report(state: IncidentState, model: str = "rules") -> Report:
    """Assemble the :class:`Report` from state (deterministic)."""
    state = typed(state)
    alert = state["parsed_alert"]
    classification = state["classification"]
    evidence: dict[str, Evidence] = state.get("evidence") or {}
    ranked: list[Finding] = state.get("ranked") or []
    leader = ranked[0] if ranked and ranked[0].score >= CONCLUSIVE else None
    rivals = list(state.get("competing") or [])
    if leader is not None and len(rivals) == 2:
        leader = None
    unavailable = list(state.get("unavailable") or [])
    checked = list(state.get("checked") or [])

    if leader is None:
        root_cause, entry = taxonomy.UNKNOWN, taxonomy.get(taxonomy.UNKNOWN)
        domain = classification.domains[0] if classification.domains else None
        best = ranked[0] if ranked else None
        looked_at = sorted({c.split(":")[0] for c in checked})
        if len(rivals) == 2:
            lead = (f"Two explanations compete and the time line does not separate them: "
                    f"{rivals[0].statement} ({rivals[0].root_cause}) and {rivals[1].statement} "
                    f"({rivals[1].root_cause}). Each began before the symptoms and neither explains the other.")
        elif best:
            lead = (f"The strongest lead was: {best.statement} (score {best.score:.2f}, below the "
                    f"{CONCLUSIVE:.2f} needed to conclude).")
        else:
            lead = "No anomaly was found in what was checked."
        statement = ("The evidence does not decide a root cause. " + lead
                     + f" Checked {len(checked)} queries across {', '.join(looked_at) or 'no source'}.")
        cited_ids = [e for f in (rivals or ranked[:3]) for e in f.evidence_ids]
        cited_ids += [e.id for e in evidence.values() if e.healthy][:6]
        confidence = 0.0
        remediation = list(entry.remediation)
        chain: list[Finding] = []
    else:
        root_cause, entry = leader.root_cause, taxonomy.get(leader.root_cause)
        domain = entry.domain
        statement = leader.statement
        chain = _supporting(leader, ranked)
        cited_ids = leader.evidence_ids + [e for f in chain for e in f.evidence_ids]
        runner_up = next((f.score for f in ranked[1:] if f.root_cause != leader.root_cause), 0.0)
        margin = min(max(leader.score - runner_up, 0.0) / 0.5, 1.0)
        confidence = round(min(0.35 + 0.35 * leader.confidence + 0.3 * margin, 0.97), 2)
        remediation = list(dict.fromkeys(leader.remediation + list(entry.remediation)))
    cited = [evidence[e] for e in dict.fromkeys(cited_ids) if e in evidence][:MAX_EVIDENCE]

    timeline = [TimelineEntry(timestamp=alert.timestamp, event=f"Alert fired: {alert.title}")]
    for ev in cited:
        if ev.timestamp:
            timeline.append(TimelineEntry(timestamp=ev.timestamp, event=ev.summary, evidence_id=ev.id))
    timeline.sort(key=lambda t: t.timestamp)

    sources_down = sorted({u.split(":")[0] for u in unavailable})
    if leader is not None:
        summary = (f"{alert.priority} {alert.title}: root cause {entry.title.lower()} ({root_cause}). "
                   f"{leader.statement}")
        if chain:
            summary += " It explains " + ", ".join(sorted({f.root_cause for f in chain})) + " seen alongside."
    else:
        summary = f"{alert.priority} {alert.title}: root cause unknown; the evidence does not decide."
    if sources_down:
        summary += f" Not available: {', '.join(sources_down)}; the conclusion rests on the other sources."
    impact = (f"{alert.service_name}" + (f" in {alert.namespace}" if alert.namespace else "")
              + f" ({alert.severity.value}, {alert.priority}): {alert.message or alert.title}")
    return Report(
        incident_id=alert.alert_id, title=alert.title, service=alert.service_name, namespace=alert.namespace,
        severity=alert.severity, priority=alert.priority, alert_time=alert.timestamp, generated_at=utcnow(),
        summary=summary, domain=domain, root_cause=root_cause, root_cause_title=entry.title,
        root_cause_statement=statement, confidence=confidence, evidence=cited, timeline=timeline, impact=impact,
        remediation=remediation, ruled_out=list(state.get("ruled_out") or []), checked=checked,
        unavailable_sources=unavailable, dropped_claims=list(state.get("dropped") or []), model=model,
        rounds=state.get("round", 1), tool_calls=state.get("tool_calls", 0),
    )


class Narrative(BaseModel):
    """What the model writes into the report; everything else stays as the engine decided."""

    summary: str = Field(description="Two sentences for the on-call engineer.")
    root_cause_statement: str = Field(description="The root cause in plain words, citing evidence ids in brackets.")
    impact: str
    remediation: list[str] = Field(description="Specific steps, in order.")


_CITATION = re.compile(r"\[([a-z0-9]+-[0-9a-f]{8})\]")


def _cites_only(text: str, known: set[str]) -> bool:
    return all(ref in known for ref in _CITATION.findall(text))


def _keep_cited(text: str, known: set[str]) -> tuple[str, list[str]]:
    """Drop sentences that cite evidence ids the report does not hold."""
    kept: list[str] = []
    dropped: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        (kept if _cites_only(sentence, known) else dropped).append(sentence)
    return " ".join(kept), dropped


def report(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the report: the engine's conclusion, in the model's words when one is configured."""
    context = as_context(runtime.context)
    settings = context.settings or load_settings()
    state = typed(state)
    usage_total = dict(state.get("usage") or {})
    notes = list(state.get("model_notes") or [])
    base = build_report(state, model=context.model)
    model = resolve_model(context)
    update: dict[str, Any] = {}
    if model is not None:
        known = {e.id for e in base.evidence}
        prompt = render(
            "report", root_cause=base.root_cause, root_cause_title=base.root_cause_title,
            findings=untrusted("verified findings", base.root_cause_statement),
            evidence=untrusted("evidence", "\n".join(f"[{e.id}] {e.source} `{e.query}`: {e.summary}"
                                                      for e in base.evidence)))
        try:
            narrative, usage = structured(model, Narrative, prompt)
        except ModelUnavailable as exc:
            notes.append(f"report: model failed ({fallback_or_retry(exc, runtime, MODEL_RETRY.max_attempts)}); "
                         "the engine's wording stands")
        else:
            statement, dropped = _keep_cited(narrative.root_cause_statement, known)
            summary, dropped_summary = _keep_cited(narrative.summary, known)
            dropped += dropped_summary
            base = base.model_copy(update={
                "summary": summary or base.summary, "root_cause_statement": statement or base.root_cause_statement,
                "impact": narrative.impact or base.impact,
                "remediation": [r for r in narrative.remediation if _cites_only(r, known)] or base.remediation,
                "dropped_claims": base.dropped_claims + [f"report: '{d[:160]}' cites evidence the report does not "
                                                         "hold" for d in dropped]})
            if usage:
                usage_total.setdefault("report", {})
                for key, value in usage.items():
                    usage_total["report"][key] = usage_total["report"].get(key, 0) + value
                update["usage"] = {"report": usage}
    final = base.model_copy(update={"tokens": usage_total, "cost": cost(usage_total, settings),
                                    "model_notes": notes})
    return {**update, "report": final}


__all__ = ["build_report", "report", "iso"]
