"""Group alerts into incidents, so that each incident is investigated once however many alerts it raises.

An alert joins an *open* incident (status ``open`` or ``investigating``) when it carries the incident's
fingerprint, or when it has the same ``alertname`` and service as an open incident created within the
dedup window. A resolved alert is stored on the incident with its fingerprint, and marks the incident
resolved once every fingerprint on it has resolved. Anything else opens a new incident.

Find-or-create runs under one lock, so concurrent requests (a storm of the same alert) cannot open two
incidents for it, and through :meth:`IncidentStore.open_or_join`, whose unique index on the active
fingerprint keeps replicas sharing one store from opening two either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sre_graph.models import Alert
from sre_graph.server.store import Incident, IncidentStore, alert_record, alertname_of, now_ms

OPEN_STATUSES: frozenset[str] = frozenset({"open", "investigating"})
"""Incident statuses new alerts may join."""

Outcome = Literal["accepted", "deduplicated", "resolved", "ignored"]


@dataclass(frozen=True)
class SlackThread:
    """Where a report goes in Slack: a channel and, for requests made in a thread, that thread."""

    channel: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class Intake:
    """What became of one alert."""

    status: Outcome
    """``accepted`` (a new incident), ``deduplicated`` (joined an open one), ``resolved`` (a resolved alert
    stored on its incident) or ``ignored`` (a resolved alert with no open incident)."""
    fingerprint: str
    incident_id: str | None = None
    analysis_id: str | None = None
    reason: str = ""

    @property
    def starts_investigation(self) -> bool:
        """A new incident: its investigation must be started."""
        return self.status == "accepted"


def latest_status_by_fingerprint(alerts: list[dict[str, Any]]) -> dict[str, str]:
    """The last status each fingerprint reported, in arrival order."""
    latest: dict[str, str] = {}
    for record in alerts:
        if record.get("fingerprint"):
            latest[str(record["fingerprint"])] = str(record.get("status") or "firing")
    return latest


class IncidentGrouper:
    """Find-or-create incidents for alerts, race-free."""

    def __init__(self, store: IncidentStore, *, window: timedelta, clock: Callable[[], datetime] = now_ms) -> None:
        """Group into ``store``; alerts join by alert name and service within ``window``."""
        self._store = store
        self._window = window
        self._clock = clock
        self.lock = threading.Lock()
        """Held around find-or-create and around status changes that must not interleave with it."""

    def ingest(self, alert: Alert, *, slack: SlackThread | None = None) -> Intake:
        """Store one alert on its incident, opening one when no open incident matches.

        Blocking (store I/O); call it from a worker thread, never on the event loop.

        Args:
            alert: The parsed alert.
            slack: Where the report should go, for alerts that came from Slack.

        Returns:
            What became of the alert.
        """
        now = self._clock()
        with self.lock:
            if alert.status == "resolved":
                return self._resolve(alert, alert_record(alert, now))
            candidate = Incident.from_alert(
                alert, status="investigating", received_at=now,
                slack={"channel": slack.channel, "thread_ts": slack.thread_ts or ""} if slack else None)
            candidate.timeline[-1]["event"] += f" (from {alert.source}); investigation queued"
            incident, created = self._store.open_or_join(candidate, within=self._window)
        return Intake("accepted" if created else "deduplicated", alert.fingerprint, incident.incident_id,
                      incident.analysis_id)

    def _resolve(self, alert: Alert, record: dict[str, Any]) -> Intake:
        """A resolved alert: stored on the open incident that carries its fingerprint, which it may resolve."""
        incident = self._store.find_open(fingerprint=alert.fingerprint, alertname=alertname_of(record),
                                         service=alert.service_name)
        known = latest_status_by_fingerprint(incident.alerts) if incident is not None else {}
        if incident is None or alert.fingerprint not in known:
            return Intake("ignored", alert.fingerprint, reason="no open incident carries this alert's fingerprint")
        still_firing = sorted(fp for fp, status in {**known, alert.fingerprint: "resolved"}.items()
                              if status != "resolved")
        if still_firing:
            self._store.add_alert(incident.incident_id, record, event=f"alert resolved: {alert.title} "
                                  f"({len(still_firing)} of the incident's alerts still firing)")
        else:
            self._store.add_alert(incident.incident_id, record)
            self._store.set_status(incident.incident_id, "resolved",
                                   event=f"alert resolved: {alert.title}; every alert of the incident has resolved")
        return Intake("resolved", alert.fingerprint, incident.incident_id, incident.analysis_id)
