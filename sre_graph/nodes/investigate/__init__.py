"""The domain investigators: one node per domain, each running its deterministic runbook.

A model-driven loop (when configured) digs further from the runbook's evidence;
in ``rules`` mode the runbook's findings are the investigator's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from sre_graph.context import Context, as_context, resolve_sources
from sre_graph.nodes.investigate import application, database, infrastructure, network
from sre_graph.nodes.investigate.common import Investigation
from sre_graph.state import InvestigatorInput, typed

RUNBOOKS: dict[str, tuple[Callable[[Investigation], None], ...]] = {
    "network": network.STEPS,
    "database": database.STEPS,
    "infrastructure": infrastructure.STEPS,
    "application": application.STEPS,
}


def run_runbook(domain: str, state: InvestigatorInput, context: Context | None) -> dict[str, Any]:
    """Run one domain's runbook and return the state update."""
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
    return {
        "domains_investigated": [domain],
        "evidence": inv.evidence,
        "findings": inv.findings,
        "checked": inv.checked,
        "unavailable": [f"{name}: {reason}" for name, reason in sorted(inv.unavailable.items())],
        "tool_calls": inv.tool_calls,
    }


def make_investigator(domain: str) -> Callable[..., dict[str, Any]]:
    """The node function for one domain."""

    def investigate(state: InvestigatorInput, runtime: Runtime[Context]) -> dict[str, Any]:
        return run_runbook(domain, state, as_context(runtime.context))

    investigate.__name__ = f"investigate_{domain}"
    investigate.__doc__ = f"Investigate the {domain} domain with its runbook."
    return investigate
