"""Prometheus metrics of the service, on a registry of its own (one per app, so apps and tests never share counts)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sre_graph.models import Report

DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
"""Seconds: a replayed investigation takes well under a second, a live one with a model minutes."""


class Metrics:
    """The service's counters, gauges and histograms.

    Attributes:
        registry: The registry ``/metrics`` renders.
        alerts_processed: Investigations finished, by ``status`` (``success`` or ``failed``) and ``agent_type``
            (the domain the report concluded: network, database, infrastructure, application, or ``none``).
        processing_seconds: Wall time of each investigation, from a worker picking it up to its report.
        active_alerts: Investigations queued or running right now.
        tool_calls: Data-source calls made by finished investigations.
        model_tokens: Model tokens spent, by ``model`` and ``kind`` (``prompt`` or ``completion``).
        alerts_received: Alerts received, by ``source`` and ``result`` (accepted, deduplicated, resolved, ignored).
        slack_deliveries: Reports posted to Slack, by ``status`` (``success`` or ``failed``).
    """

    def __init__(self) -> None:
        """Create every metric on a fresh registry."""
        self.registry = CollectorRegistry()
        self.alerts_processed = Counter(
            "sre_agent_alerts_processed", "Investigations finished, by outcome and concluded domain.",
            ["status", "agent_type"], registry=self.registry)
        self.processing_seconds = Histogram(
            "sre_agent_alert_processing_duration_seconds", "Wall time of one investigation, in seconds.",
            buckets=DURATION_BUCKETS, registry=self.registry)
        self.active_alerts = Gauge(
            "sre_agent_active_alerts", "Investigations queued or running.", registry=self.registry)
        self.tool_calls = Counter(
            "sre_agent_tool_calls", "Data-source calls made by finished investigations.", registry=self.registry)
        self.model_tokens = Counter(
            "sre_agent_model_tokens", "Model tokens spent by finished investigations.", ["model", "kind"],
            registry=self.registry)
        self.alerts_received = Counter(
            "sre_agent_alerts_received", "Alerts received, by source and what became of them.", ["source", "result"],
            registry=self.registry)
        self.slack_deliveries = Counter(
            "sre_agent_slack_deliveries", "Reports posted to Slack, by outcome.", ["status"], registry=self.registry)

    def investigation_finished(self, report: Report | None, seconds: float, *, error: bool) -> None:
        """Count one finished investigation: its outcome, its duration, and the calls and tokens it spent."""
        self.processing_seconds.observe(seconds)
        if error or report is None:
            self.alerts_processed.labels(status="failed", agent_type="none").inc()
            return
        self.alerts_processed.labels(status="success", agent_type=report.domain or "none").inc()
        self.tool_calls.inc(max(0, report.tool_calls))
        for usage in (getattr(report, "tokens", None) or {}).values():
            for kind in ("prompt", "completion"):
                count = usage.get(f"{kind}_tokens", 0)
                if count > 0:
                    self.model_tokens.labels(model=report.model, kind=kind).inc(count)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
