"""The HTTP service: alert webhooks, the Slack app, the incidents API, health and metrics.

Run it with ``sre-graph serve``, ``uvicorn sre_graph.server.app:app``, or inside the LangGraph server
(``langgraph.json`` names ``app`` as its ``http.app``). The module-level :data:`app` is cheap to import:
settings, the incident store, the worker pool and the Slack client are opened in its lifespan.

Routes:
    ``POST /api/v1/alerts``, ``/api/v1/webhooks/alertmanager``, ``/api/v1/webhooks/signoz``: accept,
    deduplicate, answer ``202 {"status", "incident_id", "analysis_id"}`` at once, investigate in the
    background. ``POST /api/v1/slack/events`` and ``/api/v1/slack/commands``: the Slack app.
    ``GET /api/v1/incidents`` and ``/api/v1/incidents/{id}``. ``GET /health``, ``/ready``, ``/metrics``
    (also ``/api/v1/metrics``: the LangGraph server keeps ``/metrics`` for its own), OpenAPI at ``/docs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from sre_graph.ingest import AlertValidationError, detect_kind, load_payload, parse_alerts
from sre_graph.ingest import signoz as signoz_ingest
from sre_graph.ingest import slack as slack_ingest
from sre_graph.models import Alert
from sre_graph.server.auth import Authenticator, Principal, require_reader, require_webhook, require_writer
from sre_graph.server.dedup import IncidentGrouper, Intake, SlackThread
from sre_graph.server.health import checks_for, run_checks
from sre_graph.server.metrics import Metrics
from sre_graph.server.schemas import AlertOutcome, IncidentList, IncidentSummary, IntakeResponse
from sre_graph.server.store import Incident, IncidentStore, open_store
from sre_graph.server.worker import InvestigationPool, Notifier, Runner, default_runner
from sre_graph.settings import Settings, load_settings

logger = logging.getLogger("sre_graph.server")

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (1 MiB); Alertmanager groups of hundreds of alerts fit easily."""
SHUTDOWN_GRACE_SECONDS = 10.0
"""How long shutdown waits for running investigations before marking queued ones failed."""
NO_RETRY = {"X-Slack-No-Retry": "1"}
"""Tells Slack not to retry a request that will never succeed."""


# --------------------------------------------------------------------------- the service


class Service:
    """Everything one app runs with: settings, auth, the store, grouping, the worker pool, metrics."""

    def __init__(self, settings: Settings, *, store: IncidentStore, notifier: Notifier | None, runner: Runner,
                 owns_store: bool) -> None:
        """Wire the parts together (the store is already open)."""
        self.settings = settings
        self.auth = Authenticator(settings)
        self.store = store
        self.notifier = notifier
        self.metrics = Metrics()
        self.grouper = IncidentGrouper(store, window=timedelta(minutes=settings.dedup_window_minutes))
        self.pool = InvestigationPool(
            store=store, grouper=self.grouper, runner=runner, metrics=self.metrics,
            max_workers=settings.max_concurrent_investigations, notifier=notifier,
            default_channel=settings.slack_channel, public_url=settings.public_url)
        self._owns_store = owns_store
        self.ready = False

    @classmethod
    def open(cls, settings: Settings | None, *, store: IncidentStore | None = None,
             notifier: Notifier | None = None, runner: Runner | None = None) -> Service:
        """Resolve settings and open what was not given (blocking: run it off the event loop)."""
        settings = settings or load_settings()
        owns_store = store is None
        if store is None:
            store = open_store(settings)
        if notifier is None and settings.slack_bot_token is not None:
            from sre_graph.server.slack import SlackNotifier

            notifier = SlackNotifier(settings.slack_bot_token.get_secret_value(), base_url=settings.slack_base_url)
        return cls(settings, store=store, notifier=notifier, runner=runner or default_runner(settings),
                   owns_store=owns_store)

    def warn_about_configuration(self) -> None:
        """Log what an operator must know at startup: open access, demo replay, missing Slack settings."""
        if self.auth.open:
            logger.warning("no authentication is configured: the API and the webhooks are open to anyone who can "
                           "reach this server (set SRE_GRAPH_API_KEYS or SRE_GRAPH_JWT_SECRET, and "
                           "SRE_GRAPH_WEBHOOK_SECRET)")
        if self.settings.replay_dir:
            logger.warning("SRE_GRAPH_REPLAY_DIR is set: every alert is investigated against the recorded "
                           "incident %s, not live sources (demo only)", self.settings.replay_dir)
        if self.settings.slack_signing_secret is None and not self.auth.open:
            logger.warning("SRE_GRAPH_SLACK_SIGNING_SECRET is not set: the Slack routes refuse every request")
        if self.notifier is None and self.settings.slack_channel:
            logger.warning("SRE_GRAPH_SLACK_CHANNEL is set without SRE_GRAPH_SLACK_BOT_TOKEN: reports are not posted")

    def close(self) -> None:
        """Stop the pool (queued investigations are marked failed), then close what this service opened."""
        self.ready = False
        self.pool.shutdown(SHUTDOWN_GRACE_SECONDS)
        if self._owns_store:
            self.store.close()

    def intake(self, alerts: Sequence[Alert], payloads: Sequence[dict[str, Any]], source: str,
               slack: SlackThread | None = None) -> list[Intake]:
        """Group each alert into its incident and start the investigations of new incidents (blocking).

        Args:
            alerts: The parsed alerts.
            payloads: For each alert, the payload its investigation runs on (that alert alone).
            source: The route's source, for metrics.
            slack: Where reports go, for alerts that came from Slack.
        """
        results = []
        for alert, payload in zip(alerts, payloads, strict=True):
            result = self.grouper.ingest(alert, slack=slack)
            self.metrics.alerts_received.labels(source=source, result=result.status).inc()
            if result.starts_investigation and result.incident_id:
                try:
                    self.pool.submit(result.incident_id, payload)
                except RuntimeError as exc:  # shutting down: say so on the incident rather than lose it
                    self.store.set_status(result.incident_id, "failed", error=str(exc),
                                          event=f"investigation not started: {exc}")
            results.append(result)
        return results

    def verify_slack(self, request: Request, body: bytes) -> None:
        """Check Slack's request signature.

        Raises:
            HTTPException: 401 when the signature is missing, wrong or stale, or signing is not configured.
        """
        secret = self.settings.slack_signing_secret
        if secret is None:
            if self.auth.open:
                return
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Slack request signing is not configured on this "
                                                              "server (set SRE_GRAPH_SLACK_SIGNING_SECRET)")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if not timestamp or not signature:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Slack signature: X-Slack-Request-Timestamp "
                                                              "and X-Slack-Signature headers are required")
        from sre_graph.server.slack import SlackSignatureError, verify_slack_signature

        try:
            verify_slack_signature(secret.get_secret_value(), timestamp, body, signature)
        except SlackSignatureError as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid Slack signature: {exc.reason}") from None


def service_of(request: Request) -> Service:
    """The app's :class:`Service`.

    Raises:
        HTTPException: 503 before the lifespan has started it.
    """
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting")
    return service


# --------------------------------------------------------------------------- request helpers


def unprocessable(exc: AlertValidationError, headers: Mapping[str, str] | None = None) -> HTTPException:
    """A 422 whose ``detail`` names every bad field, in FastAPI's shape (``loc``, ``msg``, ``type``)."""
    detail = [{"loc": ["body", path] if path else ["body"], "field": path or "body", "msg": message,
               "type": "value_error"} for path, message in exc.errors]
    return HTTPException(422, detail=detail, headers=dict(headers or {}))


async def read_body(request: Request) -> bytes:
    """The raw body, refusing anything over :data:`MAX_BODY_BYTES` with 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body over {MAX_BODY_BYTES} bytes")
    return body


async def read_json(request: Request, headers: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """The body as a JSON object; 422 naming the problem otherwise."""
    try:
        return load_payload(await read_body(request))
    except AlertValidationError as exc:
        raise unprocessable(exc, headers) from None


def per_alert_payloads(body: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """One payload per alert for its own investigation: a grouped webhook narrowed to that alert."""
    raw = body.get("alerts")
    if isinstance(raw, list) and len(raw) == count:
        return [{**body, "alerts": [alert]} for alert in raw]
    return [dict(body)] * count


def respond(results: list[Intake], alerts: Sequence[Alert]) -> IntakeResponse:
    """The intake answer: the first firing alert's incident on top, every alert's outcome below."""
    primary = next((i for i, alert in enumerate(alerts) if alert.status == "firing"), 0)
    first = results[primary]
    return IntakeResponse(
        status=first.status, incident_id=first.incident_id, analysis_id=first.analysis_id,
        alerts=[AlertOutcome(fingerprint=r.fingerprint, status=r.status, incident_id=r.incident_id,
                             analysis_id=r.analysis_id, reason=r.reason) for r in results])


async def accept(request: Request, alerts: list[Alert], body: Mapping[str, Any], source: str) -> IntakeResponse:
    """Group the alerts of a webhook or API body and start what needs investigating."""
    service = service_of(request)
    results = await run_in_threadpool(service.intake, alerts, per_alert_payloads(body, len(alerts)), source)
    return respond(results, alerts)


def _json_body(example: dict[str, Any], description: str) -> dict[str, Any]:
    """OpenAPI for routes that read the raw body (to report every bad field at once)."""
    return {"requestBody": {"required": True, "description": description, "content": {
        "application/json": {"schema": {"type": "object"}, "example": example}}}}


GENERIC_EXAMPLE = {"alert_id": "a1", "service_name": "checkout", "severity": "high",
                   "message": "p99 latency 2s", "labels": {"namespace": "shop"}}
ALERTMANAGER_EXAMPLE = {"version": "4", "status": "firing", "receiver": "sre-graph", "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "orders-api", "severity": "critical",
                                    "namespace": "orders"},
     "annotations": {"summary": "orders-api 5xx above 2%"}, "startsAt": "2026-03-03T15:46:10Z",
     "fingerprint": "e2a19c04b77d3f10"}]}


# --------------------------------------------------------------------------- routes

router = APIRouter()


@router.post("/api/v1/alerts", tags=["alerts"], summary="Investigate an alert (generic body)", status_code=202,
             response_model=IntakeResponse,
             openapi_extra=_json_body(GENERIC_EXAMPLE, "sre-graph's generic body; Alertmanager, SigNoz and "
                                                       "Slack payloads are recognised too."))
async def post_alert(request: Request, _: Principal = Depends(require_writer)) -> IntakeResponse:  # noqa: B008
    """Accept an alert, deduplicate it, and investigate it in the background."""
    body = await read_json(request)
    try:
        alerts = parse_alerts(body)
    except AlertValidationError as exc:
        raise unprocessable(exc) from None
    return await accept(request, alerts, body, alerts[0].source)


def _require_alerts_field(body: Mapping[str, Any], what: str) -> None:
    if detect_kind(body) not in ("alertmanager", "signoz"):
        raise unprocessable(AlertValidationError([("alerts", f"missing: not {what} webhook body")]))


@router.post("/api/v1/webhooks/alertmanager", tags=["alerts"], summary="Alertmanager webhook", status_code=202,
             response_model=IntakeResponse,
             openapi_extra=_json_body(ALERTMANAGER_EXAMPLE, "An Alertmanager v4 webhook body."))
async def post_alertmanager(request: Request, _: Principal = Depends(require_webhook)) -> IntakeResponse:  # noqa: B008
    """Accept an Alertmanager notification (one incident per fingerprint)."""
    body = await read_json(request)
    _require_alerts_field(body, "an Alertmanager")
    try:
        alerts = parse_alerts(body)
    except AlertValidationError as exc:
        raise unprocessable(exc) from None
    return await accept(request, alerts, body, "alertmanager")


@router.post("/api/v1/webhooks/signoz", tags=["alerts"], summary="SigNoz alert webhook", status_code=202,
             response_model=IntakeResponse,
             openapi_extra=_json_body(ALERTMANAGER_EXAMPLE, "A SigNoz alert webhook body (Alertmanager-shaped)."))
async def post_signoz(request: Request, _: Principal = Depends(require_webhook)) -> IntakeResponse:  # noqa: B008
    """Accept a SigNoz alert notification."""
    body = await read_json(request)
    _require_alerts_field(body, "a SigNoz")
    try:
        alerts = signoz_ingest.parse_alerts(body)
    except AlertValidationError as exc:
        raise unprocessable(exc) from None
    return await accept(request, alerts, body, "signoz")


def _ignored(reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "ignored", "reason": reason, **extra})


def _skip_reason(event: Mapping[str, Any]) -> str | None:
    """Why a Slack event starts nothing, or ``None`` when it asks for an investigation."""
    if event.get("bot_id") or event.get("bot_profile"):
        return "message from a bot"
    if event.get("subtype"):
        return f"message subtype {event.get('subtype')!r}"
    if event.get("type") not in slack_ingest.EVENT_TYPES:
        return f"event type {event.get('type')!r} starts nothing"
    if event.get("type") == "message" and event.get("channel_type") != "im":
        return "channel messages need a mention of the app"
    return None


@router.post("/api/v1/slack/events", tags=["slack"], summary="Slack Events API",
             openapi_extra=_json_body({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV"},
                                      "Signed by Slack (X-Slack-Signature, X-Slack-Request-Timestamp)."))
async def slack_events(request: Request) -> JSONResponse:
    """Slack events: the URL check, and ``app_mention`` / direct-message events that ask for an investigation.

    Answers within Slack's 3 seconds; the investigation runs in the background and its report is posted
    in the thread of the message. A retry of an event already received starts nothing.
    """
    service = service_of(request)
    raw = await read_body(request)
    service.verify_slack(request, raw)
    try:
        body = load_payload(raw)
    except AlertValidationError as exc:
        raise unprocessable(exc, NO_RETRY) from None
    kind = body.get("type")
    if kind == "url_verification":
        challenge = body.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise unprocessable(AlertValidationError([("challenge", "missing")]), NO_RETRY)
        return JSONResponse({"challenge": challenge})
    if kind != "event_callback":
        return _ignored(f"payload type {kind!r} starts nothing")
    event = body.get("event")
    if not isinstance(event, Mapping):
        raise unprocessable(AlertValidationError([("event", "expected an object")]), NO_RETRY)
    reason = _skip_reason(event)
    if reason:
        return _ignored(reason)
    try:
        alert = slack_ingest.parse_event(body)
    except AlertValidationError as exc:
        raise unprocessable(exc, NO_RETRY) from None
    event_id = str(body.get("event_id") or alert.alert_id)
    retry = request.headers.get("X-Slack-Retry-Num")
    if await run_in_threadpool(service.store.seen_event, event_id):
        return _ignored("event already received (Slack retry)", event_id=event_id, retry=retry)
    thread = SlackThread(alert.labels["channel"], alert.labels.get("thread_ts") or alert.labels.get("ts"))
    results = await run_in_threadpool(service.intake, [alert], [dict(body)], "slack", thread)
    answer = respond(results, [alert]).model_dump()
    return JSONResponse({**answer, "event_id": event_id})


COMMAND_HELP = ("Usage: `/sre investigate <what is wrong, e.g. checkout 5xx since 10:02 service=checkout>` "
                "or `/sre status [incident id]`")


def _ephemeral(text: str) -> JSONResponse:
    return JSONResponse({"response_type": "ephemeral", "text": text})


def _incident_line(incident: Incident) -> str:
    report = incident.report or {}
    line = f"`{incident.incident_id}` *{incident.title}* · {incident.priority} · {incident.status}"
    if report:
        line += f" · root cause: {report.get('root_cause_title') or report.get('root_cause')}"
        if isinstance(report.get("confidence"), float):
            line += f" ({report['confidence']:.0%})"
    if incident.error:
        line += f" · error: {incident.error}"
    return line


@router.post("/api/v1/slack/commands", tags=["slack"], summary="Slack slash command /sre",
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                            "text": {"type": "string"},
                                                            "channel_id": {"type": "string"},
                                                            "user_id": {"type": "string"}}}}}}})
async def slack_commands(request: Request) -> JSONResponse:
    """``/sre investigate <text or alert link>`` starts an investigation; ``/sre status [incident]`` reports."""
    service = service_of(request)
    raw = await read_body(request)
    service.verify_slack(request, raw)
    try:
        form = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise unprocessable(AlertValidationError([("", "body is not UTF-8 form data")]), NO_RETRY) from None
    missing = [(key, "missing") for key in ("command", "channel_id") if not form.get(key)]
    if missing:
        raise unprocessable(AlertValidationError(missing), NO_RETRY)
    verb, _, rest = form.get("text", "").strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "investigate":
        return await _command_investigate(service, rest, form)
    if verb == "status":
        return await _command_status(service, rest)
    return _ephemeral(COMMAND_HELP)


async def _command_investigate(service: Service, text: str, form: Mapping[str, str]) -> JSONResponse:
    if not text:
        return _ephemeral("Say what to investigate. " + COMMAND_HELP)
    event = {"type": "message", "text": text, "ts": f"{time.time():.6f}", "channel": form["channel_id"]}
    if form.get("user_id"):
        event["user"] = form["user_id"]
    try:
        alert = slack_ingest.parse_event(event)
    except AlertValidationError as exc:
        return _ephemeral(f"Cannot investigate that: {exc}")
    results = await run_in_threadpool(service.intake, [alert], [event], "slack", SlackThread(form["channel_id"]))
    result = results[0]
    if result.status == "deduplicated":
        text = f"Already investigating this: incident `{result.incident_id}`."
    else:
        text = (f"Investigating *{alert.title}*: incident `{result.incident_id}`. The report will be posted here.")
    return JSONResponse({"response_type": "in_channel", "text": text, "incident_id": result.incident_id})


async def _command_status(service: Service, incident_id: str) -> JSONResponse:
    if incident_id:
        incident = await run_in_threadpool(service.store.get, incident_id)
        if incident is None:
            return _ephemeral(f"No incident `{incident_id}`.")
        return _ephemeral(_incident_line(incident))
    active = [*await run_in_threadpool(service.store.list, "investigating", None, None, None, 10),
              *await run_in_threadpool(service.store.list, "open", None, None, None, 10)]
    if not active:
        return _ephemeral("No open incidents.")
    return _ephemeral("\n".join(_incident_line(incident) for incident in active))


@router.get("/api/v1/incidents", tags=["incidents"], response_model=IncidentList)
async def list_incidents(
    request: Request,
    status_: Literal["open", "investigating", "resolved", "failed"] | None = Query(None, alias="status"),  # noqa: B008
    service: str | None = Query(None, description="Only this service."),  # noqa: B008
    since: datetime | None = Query(None, description="Created at or after (RFC 3339; naive is UTC)."),  # noqa: B008
    until: datetime | None = Query(None, description="Created before (RFC 3339; naive is UTC)."),  # noqa: B008
    limit: int = Query(100, ge=1, le=1000),  # noqa: B008
    _: Principal = Depends(require_reader),  # noqa: B008
) -> IncidentList:
    """Incidents, newest first, filtered by status, service and creation time."""
    store = service_of(request).store
    incidents = await run_in_threadpool(store.list, status_, service, since, until, limit)
    summaries = [IncidentSummary(**incident.model_dump(exclude={"alerts", "timeline", "report", "tokens", "slack"}),
                                 alert_count=len(incident.alerts),
                                 root_cause=(incident.report or {}).get("root_cause")) for incident in incidents]
    return IncidentList(incidents=summaries, count=len(summaries))


@router.get("/api/v1/incidents/{incident_id}", tags=["incidents"])
async def get_incident(request: Request, incident_id: str,
                       _: Principal = Depends(require_reader)) -> dict[str, Any]:  # noqa: B008
    """One incident: status, alerts, timeline, report, token usage, Slack thread."""
    incident = await run_in_threadpool(service_of(request).store.get, incident_id)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    return incident.model_dump(mode="json")


@router.get("/health", tags=["operations"])
async def health(request: Request) -> JSONResponse:
    """Check each configured dependency for real; 503 naming the failing ones."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        return JSONResponse({"status": "starting", "failing": ["service"], "checks": {}}, status_code=503)
    results = await run_checks(checks_for(service.settings, service.store))
    failing = [r.name for r in results if not r.ok]
    body = {"status": "unhealthy" if failing else "ok", "failing": failing,
            "checks": {r.name: {"ok": r.ok, "detail": r.detail, "latency_ms": r.latency_ms} for r in results}}
    return JSONResponse(body, status_code=503 if failing else 200)


@router.get("/ready", tags=["operations"])
async def ready(request: Request) -> JSONResponse:
    """200 once the service has started (store open, workers up) and until it stops."""
    service = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        return JSONResponse({"status": "not ready"}, status_code=503)
    return JSONResponse({"status": "ready", "pending_investigations": service.pool.pending})


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this service."""
    content, media_type = service_of(request).metrics.render()
    return Response(content, media_type=media_type)


router.add_api_route("/metrics", metrics, methods=["GET"], tags=["operations"], response_class=Response)
router.add_api_route("/api/v1/metrics", metrics, methods=["GET"], tags=["operations"], response_class=Response,
                     summary="Metrics (the path that works behind the LangGraph server too)")


# --------------------------------------------------------------------------- the app


def create_app(settings: Settings | None = None, *, store: IncidentStore | None = None,
               notifier: Notifier | None = None, runner: Runner | None = None) -> FastAPI:
    """Build the service.

    Nothing is opened here: the lifespan resolves settings (the environment when ``settings`` is
    ``None``), opens the store, starts the worker pool and, with a bot token, the Slack client.

    Args:
        settings: Configuration; read from the environment at startup when ``None``.
        store: An :class:`~sre_graph.server.store.IncidentStore` to use (and leave open); by default
            ``open_store(settings)``, closed at shutdown.
        notifier: Posts reports to Slack; by default a ``SlackNotifier`` when a bot token is configured.
        runner: Investigates one alert payload (``runner(payload, thread_id=incident_id)``); by default
            :func:`sre_graph.runner.investigate` with the settings' sources and checkpointer.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(Service.open, settings, store=store, notifier=notifier, runner=runner)
        service.warn_about_configuration()
        app.state.service = service
        service.ready = True
        logger.info("sre-graph service ready (%d concurrent investigations, store %s)",
                    service.settings.max_concurrent_investigations, type(service.store).__name__)
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="sre-graph",
        summary="Alert webhooks, a Slack app and an incidents API around the sre-graph investigation graph.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app


app = create_app()
"""The service configured from the environment, for ``uvicorn sre_graph.server.app:app`` and ``langgraph.json``."""
