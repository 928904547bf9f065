"""The domain investigators: one node per domain, each running its deterministic runbook.

A model-driven loop (when configured) digs further from the runbook's evidence;
in ``rules`` mode the runbook's findings are the investigator's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from sre_graph.context import Context, as_context, resolve_sources
from sre_graph.llm import MODEL_RETRY, ModelUnavailable, fallback_or_retry, resolve_model
from sre_graph.nodes.investigate import application, database, infrastructure, network
from sre_graph.nodes.investigate.agent import investigate_with_model
from sre_graph.nodes.investigate.common import Investigation
from sre_graph.settings import load_settings
from sre_graph.state import InvestigatorInput, typed
from sre_graph.tools.toolsets import build_toolsets, offered_tools, unavailable

RUNBOOKS: dict[str, tuple[Callable[[Investigation], None], ...]] = {
    "network": network.STEPS,
    "database": database.STEPS,
    "infrastructure": infrastructure.STEPS,
    "application": application.STEPS,
}


def run_runbook(domain: str, state: InvestigatorInput, context: Context | None, runtime: Any = None) -> dict[str, Any]:
    """Run one domain's runbook (and the model's investigation when one is configured); return the update."""
    state = typed(state)
    sources = resolve_sources(context)
    inv = Investigation(state["parsed_alert"], state["classification"], sources, domain)
    for step in RUNBOOKS[domain]:
        try:
            step(inv)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
            # Recorded data can be shaped in ways a step did not foresee: say so, keep the other steps.
            name = getattr(step, "__name__", "step").lstrip("_")
            inv.unavailable.setdefault(f"{domain} analyzer {name}", f"{type(exc).__name__}: {exc}")
    update: dict[str, Any] = {
        "domains_investigated": [domain],
        "evidence": inv.evidence,
        "findings": inv.findings,
        "checked": inv.checked,
        "unavailable": [f"{name}: {reason}" for name, reason in sorted(inv.unavailable.items())],
        "tool_calls": inv.tool_calls,
    }
    model = resolve_model(context) if context is not None else None
    if model is not None:
        _with_model(model, domain, state, context, sources, inv, update, runtime)
    return update


MODEL_ONLY_CONFIDENCE = 0.5
"""Cap on a model finding that no deterministic analyzer corroborates."""


def _with_model(model: Any, domain: str, state: InvestigatorInput, context: Any, sources: Any, inv: Investigation,
                update: dict[str, Any], runtime: Any) -> None:
    """Let the model dig further from the runbook's findings; fall back to the runbook alone if it fails."""
    settings = getattr(context, "settings", None) or load_settings()
    toolsets = build_toolsets(sources, max_chars=settings.tool_output_chars)
    try:
        findings, evidence, calls, usage = investigate_with_model(
            model, offered_tools(toolsets), domain, state["parsed_alert"], inv.now, inv.findings, inv.evidence,
            max_tool_calls=settings.max_tool_calls, max_tokens=settings.max_model_tokens)
    except ModelUnavailable as exc:
        note = fallback_or_retry(exc, runtime, MODEL_RETRY.max_attempts)
        update["model_notes"] = [f"investigate_{domain}: model failed ({note}); the runbook's findings stand"]
        return
    known = {**inv.evidence, **evidence}
    for finding in findings:
        match = next((f for f in inv.findings if f.root_cause == finding.root_cause), None)
        stamps = [known[e].timestamp for e in finding.evidence_ids if e in known]
        times = [t for t in stamps if t]
        finding.onset = min(times) if times else (match.onset if match else None)
        if match is not None:
            finding.subject, finding.objects, finding.explains = match.subject, match.objects, match.explains
        else:
            # The model's own hypothesis, with no analyzer behind it: it can add to the picture, not overrule it.
            finding.confidence = min(finding.confidence, MODEL_ONLY_CONFIDENCE)
    update["findings"] = inv.findings + findings
    update["evidence"] = known
    update["tool_calls"] = inv.tool_calls + calls
    update["unavailable"] = sorted(set(update["unavailable"]) | set(unavailable(toolsets)))
    if usage:
        update["usage"] = {f"investigate_{domain}": usage}


def make_investigator(domain: str) -> Callable[..., dict[str, Any]]:
    """The node function for one domain."""

    def investigate(state: InvestigatorInput, runtime: Runtime[Context]) -> dict[str, Any]:
        return run_runbook(domain, state, as_context(runtime.context), runtime)

    investigate.__name__ = f"investigate_{domain}"
    investigate.__doc__ = f"Investigate the {domain} domain with its runbook."
    return investigate
