"""route: fan out to the domain investigators with ``Send``, one task per domain."""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.types import Send

from sre_graph.state import IncidentState

INVESTIGATORS = {
    "network": "investigate_network",
    "database": "investigate_database",
    "infrastructure": "investigate_infrastructure",
    "application": "investigate_application",
}


def _sends(state: IncidentState, domains: Sequence[str]) -> list[Send]:
    return [Send(INVESTIGATORS[d], {"parsed_alert": state["parsed_alert"],
                                    "classification": state["classification"],
                                    "round": state.get("round", 1), "domain": d}) for d in domains]


def route_first_round(state: IncidentState) -> list[Send]:
    """Round 1: the domains the classifier picked."""
    return _sends(state, state["classification"].domains)


def route_after_verify(state: IncidentState) -> list[Send] | str:
    """Another round for the domains verify asked for, or on to the report."""
    next_domains = state.get("next_domains") or []
    return _sends(state, next_domains) if next_domains else "report"
