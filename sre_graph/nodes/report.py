"""report: write the root-cause analysis from the ranked findings."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from sre_graph import taxonomy
from sre_graph.context import Context, as_context
from sre_graph.models import Evidence, Finding, Report, TimelineEntry, utcnow
from sre_graph.nodes.verify import CONCLUSIVE, follows
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
    unavailable = list(state.get("unavailable") or [])
    checked = list(state.get("checked") or [])

    if leader is None:
        root_cause, entry = taxonomy.UNKNOWN, taxonomy.get(taxonomy.UNKNOWN)
        domain = classification.domains[0] if classification.domains else None
        best = ranked[0] if ranked else None
        looked_at = sorted({c.split(":")[0] for c in checked})
        statement = ("The evidence does not decide a root cause. "
                     + (f"The strongest lead was: {best.statement} (score {best.score:.2f}, below the "
                        f"{CONCLUSIVE:.2f} needed to conclude)." if best else "No anomaly was found in what was "
                                                                             "checked.")
                     + f" Checked {len(checked)} queries across {', '.join(looked_at) or 'no source'}.")
        cited_ids = [e for f in ranked[:3] for e in f.evidence_ids]
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


def report(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the report into state."""
    context = as_context(runtime.context)
    return {"report": build_report(state, model=context.model)}


__all__ = ["build_report", "report", "iso"]
