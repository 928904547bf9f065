"""intake: turn whatever payload arrived into an :class:`Alert`."""

from __future__ import annotations

from typing import Any

from sre_graph.ingest import parse_alert
from sre_graph.models import Alert
from sre_graph.state import IncidentState, typed


def intake(state: IncidentState) -> dict[str, Any]:
    """Parse the input payload (any supported shape); an already-parsed alert passes through."""
    state = typed(state)
    alert = state.get("parsed_alert")
    if alert is None:
        alert = parse_alert(state.get("alert") or {})
    if not isinstance(alert, Alert):
        alert = Alert.model_validate(alert)
    return {"parsed_alert": alert, "round": 0}
