"""Background investigations: a bounded pool of worker threads, one LangGraph thread per incident.

Each investigation runs ``runner(alert_payload, thread_id=incident_id)`` (by default
:func:`sre_graph.runner.investigate` on the configured checkpointer), then stores the report, posts it
to Slack when a channel is known and a bot token is configured, and sets the incident ``open``. Any
exception marks the incident ``failed`` with the error: an investigation is never silently lost. At
shutdown, investigations still queued are marked failed too.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sre_graph.models import Report
from sre_graph.server.dedup import IncidentGrouper
from sre_graph.server.metrics import Metrics
from sre_graph.server.store import IncidentStore
from sre_graph.settings import Settings

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """Investigates one alert payload on the LangGraph thread ``thread_id``; returns the report."""

    def __call__(self, alert: dict[str, Any], *, thread_id: str) -> Report | None:
        """Run the investigation."""
        ...


class Notifier(Protocol):
    """Posts reports to Slack (:class:`sre_graph.server.slack.SlackNotifier`)."""

    def post_report(self, channel: str, report: Report, *, thread_ts: str | None = None,
                    link: str | None = None) -> str:
        """Post the report; returns the message ``ts``."""
        ...


def default_runner(settings: Settings) -> Runner:
    """The production runner: :func:`sre_graph.runner.investigate` with the settings' sources and checkpointer.

    With ``settings.replay_dir`` set (demo only) every alert is investigated against that recorded
    incident instead of live sources; requests can never choose a folder.
    """

    def run(alert: dict[str, Any], *, thread_id: str) -> Report | None:
        from sre_graph.runner import investigate

        return investigate(alert, incident_dir=settings.replay_dir, settings=settings, thread_id=thread_id,
                           redis_url=settings.redis_url)

    return run


@dataclass(frozen=True)
class Job:
    """One queued investigation."""

    incident_id: str
    payload: dict[str, Any]
    """The alert payload as the runner takes it (one alert)."""


def _error_message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class InvestigationPool:
    """Runs investigations in the background with bounded concurrency."""

    def __init__(self, *, store: IncidentStore, grouper: IncidentGrouper, runner: Runner, metrics: Metrics,
                 max_workers: int, notifier: Notifier | None = None, default_channel: str | None = None,
                 public_url: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """Set up the pool; threads start on the first submission.

        Args:
            store: Where incidents live.
            grouper: Its lock orders the final status change against alerts arriving meanwhile.
            runner: Investigates one alert payload.
            metrics: Counts outcomes, durations, tool calls and tokens.
            max_workers: Investigations run at once; the rest wait in the queue.
            notifier: Posts reports to Slack; ``None`` disables delivery.
            default_channel: Slack channel for incidents that did not come from Slack.
            public_url: The service's external URL, for the link under a Slack report.
            clock: Monotonic seconds (durations).
        """
        self._store = store
        self._grouper = grouper
        self._runner = runner
        self._metrics = metrics
        self._notifier = notifier
        self._default_channel = default_channel
        self._public_url = public_url.rstrip("/") if public_url else None
        self._clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers,
                                                               thread_name_prefix="sre-graph-investigation")
        self._futures: dict[concurrent.futures.Future[None], Job] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.started = 0
        """Investigations started since the pool was created."""

    # ------------------------------------------------------------------ public

    def submit(self, incident_id: str, payload: dict[str, Any]) -> None:
        """Queue an investigation (thread-safe, returns at once).

        Raises:
            RuntimeError: The pool is shut down.
        """
        job = Job(incident_id, payload)
        with self._lock:
            if self._closed:
                raise RuntimeError("the investigation pool is shut down")
            self._metrics.active_alerts.inc()
            future = self._executor.submit(self._run, job)
            self._futures[future] = job
        future.add_done_callback(self._forget)

    @property
    def pending(self) -> int:
        """Investigations queued or running."""
        with self._lock:
            return len(self._futures)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted investigation has finished; ``False`` on timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                futures = list(self._futures)
            if not futures:
                return True
            remaining = None if deadline is None else max(0.0, deadline - self._clock())
            done, _ = concurrent.futures.wait(futures, timeout=remaining)
            if len(done) < len(futures) and deadline is not None and self._clock() >= deadline:
                return False

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop taking work, wait up to ``grace`` seconds, then mark investigations never started as failed."""
        with self._lock:
            self._closed = True
        self.wait_idle(grace)
        with self._lock:
            futures = dict(self._futures)
        for future, job in futures.items():
            if future.cancel():
                self._fail(job.incident_id, "the service stopped before the investigation started")
                self._metrics.active_alerts.dec()
        self._executor.shutdown(wait=False, cancel_futures=True)
        running = [job.incident_id for future, job in futures.items() if not future.cancelled()]
        if running:
            logger.warning("stopping with %d investigation(s) still running: %s", len(running), ", ".join(running))

    # ------------------------------------------------------------------ the work

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._futures.pop(future, None)

    def _run(self, job: Job) -> None:
        """One investigation, start to finish; every failure ends as a ``failed`` incident."""
        with self._lock:
            self.started += 1
        begin = self._clock()
        report: Report | None = None
        error: str | None = None
        try:
            self._store.append_timeline(job.incident_id, "investigation started")
            report = self._runner(job.payload, thread_id=job.incident_id)
            if report is None:
                error = "the investigation stopped before writing a report"
        except Exception as exc:  # noqa: BLE001 - the boundary of a background job: record, never lose
            logger.exception("investigation of incident %s failed", job.incident_id)
            error = _error_message(exc)
        seconds = self._clock() - begin
        try:
            if error is not None or report is None:
                self._fail(job.incident_id, error or "no report")
            else:
                self._finish(job.incident_id, report, seconds)
        except Exception:  # noqa: BLE001 - the store itself failed: nothing left to record it in but the log
            logger.exception("could not record the outcome of incident %s", job.incident_id)
        finally:
            self._metrics.investigation_finished(report, seconds, error=error is not None)
            self._metrics.active_alerts.dec()

    def _fail(self, incident_id: str, error: str) -> None:
        with self._grouper.lock:
            self._store.set_status(incident_id, "failed", error=error, event=f"investigation failed: {error}")

    def _finish(self, incident_id: str, report: Report, seconds: float) -> None:
        tokens = _token_totals(report)
        self._store.set_report(incident_id, report.model_dump(mode="json"), tokens=tokens)
        self._deliver(incident_id, report)
        with self._grouper.lock:  # an alert may have resolved the incident meanwhile: keep that
            incident = self._store.get(incident_id)
            if incident is not None and incident.status == "investigating":
                self._store.set_status(incident_id, "open", event=f"investigation finished in {seconds:.1f} s: "
                                                                  f"root cause {report.root_cause}")

    def _deliver(self, incident_id: str, report: Report) -> None:
        """Post the report to Slack: the request's thread, else the configured channel."""
        if self._notifier is None:
            return
        incident = self._store.get(incident_id)
        slack = (incident.slack if incident is not None else None) or {}
        channel = slack.get("channel") or self._default_channel
        if not channel:
            return
        thread_ts = slack.get("thread_ts") or None
        link = f"{self._public_url}/api/v1/incidents/{incident_id}" if self._public_url else None
        from sre_graph.server.slack import SlackDeliveryError

        try:
            ts = self._notifier.post_report(channel, report, thread_ts=thread_ts, link=link)
        except SlackDeliveryError as exc:
            self._metrics.slack_deliveries.labels(status="failed").inc()
            logger.error("posting incident %s to Slack %s failed: %s", incident_id, channel, exc)
            self._store.append_timeline(incident_id, f"Slack delivery to {channel} failed: {exc}")
            return
        self._metrics.slack_deliveries.labels(status="success").inc()
        self._store.set_slack(incident_id, channel, thread_ts or ts)
        self._store.append_timeline(incident_id, f"report posted to Slack {channel}"
                                                 + (f" in thread {thread_ts}" if thread_ts else ""))


def _token_totals(report: Report) -> dict[str, float]:
    """Prompt, completion and total tokens of a report, and their cost (zero in rules mode)."""
    usage = getattr(report, "tokens", None) or {}
    prompt = sum(int(v.get("prompt_tokens", 0)) for v in usage.values())
    completion = sum(int(v.get("completion_tokens", 0)) for v in usage.values())
    return {"prompt": prompt, "completion": completion, "total": prompt + completion,
            "cost": float(getattr(report, "cost", 0.0) or 0.0)}
