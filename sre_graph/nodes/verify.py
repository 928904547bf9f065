"""verify: keep only findings backed by evidence in state, rank them, and decide on another round.

Ranking follows how an SRE weighs candidates: a mechanism (a limit hit, an
expired certificate) beats a symptom (refused connections); a finding that
explains other findings beats the findings it explains; the cause must fit the
time line (started before the alert, not days before it); and independent
sources count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel

from sre_graph import taxonomy
from sre_graph.context import Context, as_context
from sre_graph.llm import MODEL_RETRY, ModelUnavailable, fallback_or_retry, resolve_model, structured
from sre_graph.models import Finding, RuledOut
from sre_graph.nodes.investigate.common import STALE_AFTER, ago
from sre_graph.nodes.route import INVESTIGATORS
from sre_graph.prompts import render, untrusted
from sre_graph.state import IncidentState, typed

CONCLUSIVE = 0.7
"""Below this, the leading finding is not enough: the conclusion is ``unknown``."""


def merge_duplicates(findings: list[Finding]) -> list[Finding]:
    """One finding per root cause and object: findings of the same root cause that share an object (or a subject)
    are the same thing seen from several places; their evidence is pooled under the most confident one."""
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: -f.confidence):
        same = next((m for m in merged if m.root_cause == finding.root_cause and (
            (m.subject or m.statement) == (finding.subject or finding.statement)
            or (not m.steady and not finding.steady and set(m.objects) & set(finding.objects)))), None)
        if same is None:
            merged.append(finding.model_copy(deep=True))
            continue
        same.evidence_ids = list(dict.fromkeys(same.evidence_ids + finding.evidence_ids))
        same.keywords = list(dict.fromkeys(same.keywords + finding.keywords))
        same.explains = list(dict.fromkeys(same.explains + finding.explains))
        same.remediation = list(dict.fromkeys(same.remediation + finding.remediation))
        same.objects = list(dict.fromkeys(same.objects + finding.objects))
        same.relevance = max(same.relevance, finding.relevance)
        onsets = [o for o in (same.onset, finding.onset) if o]
        same.onset = min(onsets) if onsets else None
    return merged


def follows(cause: Finding, effect: Finding) -> bool:
    """Whether ``effect`` could be a consequence of ``cause`` by the time line (a symptom cannot precede its cause)."""
    if cause.onset is None or effect.onset is None:
        return True
    return effect.onset >= cause.onset - timedelta(minutes=2)


LINK_BONUS = 0.15


def shares_object(a: Finding, b: Finding) -> str | None:
    """An object both findings involve (a service, pod, node, collection...), if any."""
    common = [o for o in a.objects if o in b.objects]
    return common[0] if common else None


def link_causes(findings: list[Finding]) -> list[Finding]:
    """Tie causes to the effects they explain on the same object and time line.

    A finding that explains another one, involves the same object and started no later ranks at least
    ``LINK_BONUS`` above it; the effect is marked as a consequence. Mutual explanations are skipped.
    """
    updated = {id(f): f for f in findings}
    pairs = []
    for cause in findings:
        if cause.confidence < 0.25 or cause.steady:
            continue
        for effect in findings:
            if effect is cause or effect.root_cause not in cause.explains or cause.root_cause in effect.explains:
                continue
            shared = shares_object(cause, effect)
            if shared and follows(cause, effect):
                pairs.append((cause, effect, shared))
    for _ in range(5):  # propagate up chains (A explains B explains C) until stable
        changed = False
        for cause, effect, shared in pairs:
            current_cause, current_effect = updated[id(cause)], updated[id(effect)]
            note = f"explains the {effect.root_cause} on {shared}"
            consequence = f"a consequence of {cause.root_cause} on {shared}"
            if consequence not in current_effect.rank_notes:
                current_effect = current_effect.model_copy(update={
                    "score": round(current_effect.score - LINK_BONUS, 3),
                    "rank_notes": current_effect.rank_notes + [consequence]})
                updated[id(effect)] = current_effect
                changed = True
            if effect.relevance < 0.9:
                # the effect does not touch the alerted service: it cannot lift its cause above the rest
                continue
            target = round(current_effect.score + 2 * LINK_BONUS, 3)
            if target > current_cause.score or note not in current_cause.rank_notes:
                updated[id(cause)] = current_cause.model_copy(update={
                    "score": max(current_cause.score, target),
                    "rank_notes": current_cause.rank_notes + ([note] if note not in current_cause.rank_notes else [])})
                changed = changed or target > current_cause.score
        if not changed:
            break
    return list(updated.values())


GRADUAL = frozenset({"memory_leak", "resource_leak", "tls_certificate_expired", "replication_lag", "storage_full",
                     "cache_pressure", "node_pressure"})
"""Causes that build up: they may begin long before the first symptom."""
TRIGGER_WINDOW = timedelta(minutes=30)



COMPETING_MARGIN = 0.25
CHANGE_CAUSES = frozenset({"error_spike_after_deploy", "config_error", "bad_rollout"})


def competing(leader: Finding, ranked: list[Finding], first_symptom: datetime) -> Finding | None:
    """A second explanation as strong as the leader that the evidence does not tie to it: both mechanisms on the
    alerted service's path, both begun before the first symptoms, neither explaining the other. When one exists
    the time line does not single out a cause, and the honest conclusion is ``unknown``."""
    if taxonomy.get(leader.root_cause).depth < 3 or leader.relevance < 0.9:
        return None
    for other in ranked[1:]:
        if other.score < leader.score - COMPETING_MARGIN:
            return None
        if (other.root_cause == leader.root_cause or taxonomy.get(other.root_cause).depth < 3 or other.steady
                or other.relevance < 0.9 or other.confidence < 0.5):
            continue
        if {leader.root_cause, other.root_cause} & CHANGE_CAUSES:
            # A deploy or config change explains a mechanism only inside the workload it changed.
            related = bool(shares_object(leader, other))
        else:
            related = (other.root_cause in leader.explains or leader.root_cause in other.explains
                       or bool(shares_object(leader, other)))
        began = all(f.onset is not None and f.onset <= first_symptom + timedelta(minutes=5) for f in (leader, other))
        if not related and began:
            return other
    return None


def symptom_onset(findings: list[Finding], alert_time: datetime) -> datetime:
    """When the symptoms began: the earliest onset of a symptom-level finding (refused calls, timeouts, a failing
    dependency), else the alert's start."""
    onsets = [f.onset for f in findings if f.onset and taxonomy.get(f.root_cause).depth == 1
              and f.confidence >= 0.4 and not f.steady and alert_time - STALE_AFTER < f.onset <= alert_time]
    return min(onsets, default=alert_time)


def score(finding: Finding, others: list[Finding], evidence: dict[str, Any], alert_time: datetime,
          first_symptom: datetime | None = None) -> Finding:
    """Score one finding against the others and the alert's time line; record why."""
    notes: list[str] = []
    value = finding.confidence
    depth = taxonomy.get(finding.root_cause).depth
    value += 0.08 * depth
    sources = {evidence[e].source for e in finding.evidence_ids if e in evidence}
    if len(sources) > 1:
        value += 0.08 * (len(sources) - 1)
        notes.append(f"supported by {len(sources)} independent sources ({', '.join(sorted(sources))})")
    first_symptom = first_symptom or alert_time
    if finding.onset is not None:
        if finding.onset > alert_time + timedelta(minutes=10):
            value -= 0.3
            notes.append(f"began {ago(alert_time, finding.onset)} after the alert fired")
        elif finding.onset < alert_time - STALE_AFTER:
            value -= 0.4
            notes.append(f"began {ago(finding.onset, alert_time)} before the alert: too old to "
                         "explain it")
        elif first_symptom - TRIGGER_WINDOW <= finding.onset <= first_symptom + timedelta(minutes=5):
            value += 0.15
            notes.append(f"began {ago(finding.onset, first_symptom)} before the first symptoms"
                         if finding.onset <= first_symptom else "began with the first symptoms")
        elif finding.onset < first_symptom and finding.root_cause in GRADUAL:
            value += 0.1
            notes.append(f"built up from {ago(finding.onset, alert_time)} before the alert")
        elif finding.onset < first_symptom:
            notes.append(f"began {ago(finding.onset, first_symptom)} before the first symptoms, with nothing "
                         "in between")
        else:
            value += 0.05
            notes.append(f"began {ago(first_symptom, finding.onset)} after the first symptoms")
    strong_others = [o for o in others if o is not finding and o.confidence >= 0.3]
    explained = sorted({o.root_cause for o in strong_others if o.root_cause in finding.explains
                        and o.root_cause != finding.root_cause and follows(finding, o)})
    if explained:
        value += min(0.05 * len(explained), 0.1)
        notes.append(f"explains the {', '.join(explained)} also observed")
    explained_by = sorted({o.root_cause for o in strong_others if finding.root_cause in o.explains
                           and o.root_cause != finding.root_cause and o.confidence >= finding.confidence * 0.8
                           and follows(o, finding)})
    if explained_by:
        value -= 0.1
        notes.append(f"could itself be a consequence of {', '.join(explained_by)}")
    return finding.model_copy(update={"score": round(value, 3), "rank_notes": notes})


def verify(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Drop unsupported findings, rank the rest, and ask for another round if nothing decides."""
    state = typed(state)
    context = as_context(runtime.context)
    evidence = state.get("evidence") or {}
    alert = state["parsed_alert"]
    dropped: list[str] = []
    supported: list[Finding] = []
    rejected = set(state.get("rejected_claims") or [])
    for finding in state.get("findings") or []:
        if finding.statement in rejected:
            continue
        missing = [e for e in finding.evidence_ids if e not in evidence]
        if not finding.evidence_ids or missing:
            dropped.append(f"{finding.root_cause}: '{finding.statement[:120]}' cites evidence that was never "
                           f"gathered ({', '.join(missing) or 'no evidence ids'})")
            continue
        supported.append(finding)
    merged = merge_duplicates(supported)
    first_symptom = symptom_onset(merged, alert.timestamp)
    scored = [score(f, merged, evidence, alert.timestamp, first_symptom) for f in merged]
    ranked = sorted(link_causes(scored), key=lambda f: -f.score)
    update: dict[str, Any] = {}
    model = resolve_model(context)
    lost_leader = False
    if model is not None and ranked:
        original_leader = ranked[0]
        ranked, removed, note, usage = model_check(model, ranked, evidence, runtime)
        if note:
            update["model_notes"] = [note]
        if usage:
            update["usage"] = {"verify": usage}
        if removed:
            update["rejected_claims"] = [f.statement for f, _ in removed]
            dropped += [f"{f.root_cause}: '{f.statement[:160]}' is not supported by its evidence ({why})"
                        for f, why in removed]
            lost_leader = any(f is original_leader for f, _ in removed)
            update["lost_leader_domain"] = original_leader.domain if lost_leader else None

    ruled_out: list[RuledOut] = []
    leader = ranked[0] if ranked else None
    rival = competing(leader, ranked, first_symptom) if leader else None
    update["competing"] = [leader, rival] if leader and rival else []
    for finding in ranked[1:] if leader else []:
        reasons = [n for n in finding.rank_notes if "too old" in n or "after the alert" in n or "consequence" in n
                   or "background" in n or "noise" in n]
        if leader and finding.root_cause in leader.explains:
            reasons.append(f"explained by the leading cause ({leader.root_cause})")
        if finding.confidence < 0.3 and not reasons:
            reasons.append("weak signal (" + finding.statement[:100] + ")")
        if reasons and len(ruled_out) < 8:
            ruled_out.append(RuledOut(root_cause=finding.root_cause, statement=finding.statement,
                                      reason="; ".join(reasons), evidence_ids=finding.evidence_ids[:3]))

    round_ = state.get("round", 1)
    done = set(state.get("domains_investigated") or [])
    remaining = [d for d in INVESTIGATORS if d not in done]
    # A second round looks at every domain not checked yet: the cause is often outside the alert's domain, and a
    # leading hypothesis is only as good as the alternatives it was weighed against.
    wanted = remaining
    domain = update.pop("lost_leader_domain", None)
    if lost_leader and domain and not state.get("recheck_done"):
        # The leading hypothesis lost its support: one more targeted round in its domain, then conclude.
        wanted = list(dict.fromkeys([domain, *wanted]))
        update["recheck_done"] = True
    next_domains = wanted if round_ < context.max_rounds + (1 if update.get("recheck_done") else 0) else []
    return {**update, "ranked": ranked, "ruled_out": ruled_out, "dropped": list(dict.fromkeys(dropped)),
            "next_domains": next_domains,
            "round": round_ + 1 if next_domains else round_}


class ClaimCheck(BaseModel):
    """The model's verdict on one claim."""

    index: int
    supported: bool
    reason: str = ""


class ClaimChecks(BaseModel):
    """Verdicts for every claim."""

    checks: list[ClaimCheck]


CHECKED_CLAIMS = 4


def model_check(model: Any, ranked: list[Finding], evidence: dict[str, Any],
                runtime: Any) -> tuple[list[Finding], list[tuple[Finding, str]], str, dict[str, int]]:
    """Ask the model whether each leading claim's cited evidence supports it; remove those it does not."""
    claims = ranked[:CHECKED_CLAIMS] + [f for f in ranked[CHECKED_CLAIMS:] if f.subject == "model"][:CHECKED_CLAIMS]
    cited = {e for f in claims for e in f.evidence_ids}
    prompt = render(
        "verify",
        claims="\n".join(f"{i}. [{f.root_cause}] {f.statement} (cites {', '.join(f.evidence_ids)})"
                         for i, f in enumerate(claims)),
        evidence=untrusted("evidence", "\n".join(
            f"[{ev.id}] {ev.source} `{ev.query}`: {ev.summary}\n{ev.excerpt[:600]}"
            for ev in (evidence[e] for e in sorted(cited) if e in evidence))))
    try:
        verdict, usage = structured(model, ClaimChecks, prompt)
    except ModelUnavailable as exc:
        note = fallback_or_retry(exc, runtime, MODEL_RETRY.max_attempts)
        return ranked, [], f"verify: model check failed ({note}); only the mechanical evidence-id check ran", {}
    removed: list[tuple[Finding, str]] = []
    for check in verdict.checks:
        if 0 <= check.index < len(claims) and not check.supported:
            removed.append((claims[check.index], check.reason or "the model found no support"))
    removed_ids = {id(f) for f, _ in removed}
    return [f for f in ranked if id(f) not in removed_ids], removed, "", usage
