"""The service's response bodies (their own module, so the app file also loads by path, as LangGraph does)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AlertOutcome(BaseModel):
    """What became of one alert of a request."""

    fingerprint: str
    status: Literal["accepted", "deduplicated", "resolved", "ignored"]
    incident_id: str | None = None
    analysis_id: str | None = None
    reason: str = ""


class IntakeResponse(BaseModel):
    """The answer to an alert: the incident it opened or joined (for grouped webhooks, the first firing alert's)."""

    status: Literal["accepted", "deduplicated", "resolved", "ignored"]
    incident_id: str | None = None
    analysis_id: str | None = None
    alerts: list[AlertOutcome] = Field(default_factory=list)
    """Every alert of the request, in payload order."""


class IncidentSummary(BaseModel):
    """An incident without its alerts, timeline and report."""

    incident_id: str
    analysis_id: str
    fingerprint: str
    alertname: str
    service: str
    namespace: str | None = None
    severity: str
    priority: str
    title: str
    status: str
    created_at: datetime
    updated_at: datetime
    alert_count: int
    root_cause: str | None = None
    """The report's root cause, once there is a report."""
    error: str | None = None


class IncidentList(BaseModel):
    """Incidents, newest first."""

    incidents: list[IncidentSummary]
    count: int
