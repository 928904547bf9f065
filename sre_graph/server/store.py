"""The incident store: one interface, with an embedded SQLite file or MongoDB behind it.

An incident groups the alerts that share a fingerprint (or an alert name and a service within a
window), and records the investigation's status, timeline, report and token usage. Both backends
keep one invariant that makes storms safe: at most one *active* (``open`` or ``investigating``)
incident per fingerprint, enforced by a unique index, so :meth:`IncidentStore.open_or_join` starts
each incident once even when several processes share the store.

Lifecycle: ``investigating`` while the graph runs, ``open`` once a report exists and the alert still
fires, ``resolved`` when the alert resolves, ``failed`` (with ``error``) when the investigation failed.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

import pymongo
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import to_jsonable_python
from pymongo import IndexModel, MongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from sre_graph.models import Alert
from sre_graph.settings import Settings, load_settings

Status = Literal["open", "investigating", "resolved", "failed"]
ACTIVE: tuple[Status, ...] = ("open", "investigating")
"""Statuses of an incident that new alerts with its fingerprint join."""
DEFAULT_STORE_PATH = ".sre-graph/incidents.db"
"""The SQLite file when neither ``SRE_GRAPH_MONGODB_URL`` nor ``SRE_GRAPH_STORE_PATH`` is set."""
EVENT_TTL = timedelta(days=1)
"""How long a Slack event id is remembered (Slack retries within minutes)."""
MAX_LIST = 1000


# --------------------------------------------------------------------- time and ids


def utc_ms(value: datetime) -> datetime:
    """``value`` as aware UTC truncated to milliseconds (MongoDB's precision, so both backends agree)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    aware = aware.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def now_ms() -> datetime:
    """The current time, aware UTC, millisecond precision."""
    return utc_ms(datetime.now(UTC))


def stamp(value: datetime | None = None) -> str:
    """RFC 3339 UTC with milliseconds and a ``Z`` (fixed width, so strings sort as times)."""
    return utc_ms(value or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_incident_id() -> str:
    """A fresh incident id, short enough to type in ``/sre status``; also the LangGraph thread id."""
    return f"inc-{uuid.uuid4().hex[:16]}"


def zero_tokens() -> dict[str, int | float]:
    """Token usage before any model call."""
    return {"prompt": 0, "completion": 0, "total": 0, "cost": 0.0}


def alertname_of(alert: Mapping[str, Any]) -> str:
    """The alert name of a stored alert record: its ``alertname`` label, else its id (as the fingerprint does)."""
    labels = alert.get("labels") or {}
    return str(labels.get("alertname") or alert.get("alert_id") or "")


def alert_record(alert: Alert, received_at: datetime | None = None) -> dict[str, Any]:
    """An alert as the store keeps it: ``Alert.model_dump(mode="json")`` plus ``received_at``."""
    return {**alert.model_dump(mode="json"), "received_at": stamp(received_at)}


def timeline_event(event: str, at: datetime | None = None) -> dict[str, str]:
    """One timeline entry: ``{"timestamp": RFC 3339, "event": text}``."""
    return {"timestamp": stamp(at), "event": event}


# --------------------------------------------------------------------- errors


class IncidentNotFound(KeyError):
    """No incident has this id."""

    def __init__(self, incident_id: str) -> None:
        """Name the missing incident."""
        super().__init__(incident_id)
        self.incident_id = incident_id

    def __str__(self) -> str:
        """A readable message (``KeyError`` would quote the bare id)."""
        return f"no incident {self.incident_id!r}"


class IncidentConflict(ValueError):
    """A write would break a uniqueness rule of the store."""

    def __init__(self, message: str, incident_id: str | None) -> None:
        """Say what conflicts, and with which incident."""
        super().__init__(message)
        self.incident_id = incident_id
        """The incident already holding the key, when known."""


class IncidentExists(IncidentConflict):
    """An incident with this id already exists."""


class OpenIncidentExists(IncidentConflict):
    """Another incident with this fingerprint is already active (open or investigating)."""


# --------------------------------------------------------------------- the incident


class Incident(BaseModel):
    """One incident: the alerts it groups, the investigation's status and timeline, the report."""

    incident_id: str = Field(default_factory=new_incident_id)
    """Also the LangGraph thread id of the investigation."""
    fingerprint: str
    alertname: str = ""
    """The alert name used for grouping by name and service; taken from the first alert when not given."""
    service: str
    namespace: str | None = None
    severity: str
    priority: str
    title: str
    status: Status = "open"
    created_at: datetime
    updated_at: datetime
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    """``Alert.model_dump(mode="json")`` plus ``received_at``, oldest first."""
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    """``{"timestamp", "event"}`` entries, oldest first."""
    report: dict[str, Any] | None = None
    """``Report.model_dump(mode="json")`` once the investigation finished."""
    error: str | None = None
    """Why the investigation failed (status ``failed``)."""
    tokens: dict[str, int | float] = Field(default_factory=zero_tokens)
    """Model usage: ``prompt``, ``completion``, ``total`` tokens and ``cost``."""
    analysis_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    slack: dict[str, str] | None = None
    """``{"channel", "thread_ts"}`` of the Slack thread the incident reports to."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("created_at") is None:
            data["created_at"] = now_ms()
        if data.get("updated_at") is None:
            data["updated_at"] = data["created_at"]
        if not data.get("alertname") and data.get("alerts"):
            data["alertname"] = alertname_of(data["alerts"][0])
        return data

    @field_validator("created_at", "updated_at")
    @classmethod
    def _ms(cls, value: datetime) -> datetime:
        return utc_ms(value)

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> Any:
        return {**zero_tokens(), **value} if isinstance(value, Mapping) else value

    @property
    def active(self) -> bool:
        """Whether new alerts with this fingerprint join the incident."""
        return self.status in ACTIVE

    @classmethod
    def from_alert(
        cls, alert: Alert, *, status: Status = "investigating", received_at: datetime | None = None, **fields: Any
    ) -> Incident:
        """A new incident opened by ``alert``, with the alert and a first timeline entry.

        Args:
            alert: The parsed alert.
            status: The initial status (``investigating`` when the investigation starts at once).
            received_at: When the alert arrived; now by default.
            **fields: Any other :class:`Incident` field (``incident_id``, ``analysis_id``, ``slack``...).
        """
        at = utc_ms(received_at) if received_at else now_ms()
        values: dict[str, Any] = {
            "fingerprint": alert.fingerprint, "alertname": alertname_of(alert.model_dump()),
            "service": alert.service_name, "namespace": alert.namespace, "severity": alert.severity.value,
            "priority": alert.priority, "title": alert.title, "status": status, "created_at": at,
            "alerts": [alert_record(alert, at)], "timeline": [timeline_event(f"alert received: {alert.title}", at)],
        }
        return cls(**{**values, **fields})


def _status_event(status: Status, error: str | None) -> str:
    return f"status: {status}" + (f" ({error})" if error else "")


def _report_event(report: Mapping[str, Any]) -> str:
    cause = report.get("root_cause_title") or report.get("root_cause") or "unknown"
    confidence = report.get("confidence")
    return f"report ready: {cause}" + (f" (confidence {confidence:.0%})" if isinstance(confidence, float) else "")


def _joined_event(alert: Mapping[str, Any]) -> str:
    return f"alert joined: {alertname_of(alert) or 'alert'} ({alert.get('status', 'firing')})"


def _jsonable(value: Any) -> Any:
    """Plain JSON types (datetimes as RFC 3339 strings): what both backends store inside documents."""
    return to_jsonable_python(value)


def _with_received_at(alert: Mapping[str, Any]) -> dict[str, Any]:
    return _jsonable({**alert, "received_at": alert.get("received_at") or stamp()})


# --------------------------------------------------------------------- the interface


@runtime_checkable
class IncidentStore(Protocol):
    """Where incidents live; every method is safe to call from several threads at once.

    Mutators raise :class:`IncidentNotFound` for an unknown id.
    """

    def create(self, incident: Incident) -> Incident:
        """Store a new incident.

        Raises:
            IncidentExists: The id is taken.
            OpenIncidentExists: The incident is active and another active incident has its fingerprint.
        """
        ...

    def get(self, incident_id: str) -> Incident | None:
        """The incident with this id, or ``None``."""
        ...

    def find_open(
        self,
        fingerprint: str | None = None,
        alertname: str | None = None,
        service: str | None = None,
        within: timedelta | None = None,
    ) -> Incident | None:
        """The newest active incident with this fingerprint; failing that, with this alert name and service.

        Args:
            fingerprint: Match the alert fingerprint (any age).
            alertname: With ``service``: match alert name and service instead, when no fingerprint matches.
            service: See ``alertname``.
            within: Only match by alert name and service incidents created this recently.
        """
        ...

    def open_or_join(self, incident: Incident, *, within: timedelta | None = None) -> tuple[Incident, bool]:
        """Atomically join ``incident``'s alerts to the matching active incident, or create ``incident``.

        Matching is :meth:`find_open` with the incident's fingerprint (and its alert name and service when
        ``within`` is given). Returns the incident and whether it was created (start an investigation).
        """
        ...

    def add_alert(self, incident_id: str, alert: dict[str, Any], *, event: str | None = None) -> None:
        """Append an alert record (``received_at`` added when missing), and a timeline event if given."""
        ...

    def set_status(
        self, incident_id: str, status: Status, *, error: str | None = None, event: str | None = None
    ) -> Incident:
        """Change the status, replace ``error`` (``None`` clears it) and append a timeline event; returns the result.

        Raises:
            OpenIncidentExists: Reactivating it would give its fingerprint a second active incident.
        """
        ...

    def set_report(
        self, incident_id: str, report: dict[str, Any], tokens: dict[str, int | float] | None = None
    ) -> None:
        """Store the report (and the token usage, when given) and note it in the timeline."""
        ...

    def append_timeline(self, incident_id: str, event: str) -> None:
        """Append a timeline event stamped now."""
        ...

    def set_slack(self, incident_id: str, channel: str, thread_ts: str) -> None:
        """Remember the Slack thread the incident reports to."""
        ...

    def list(
        self,
        status: Status | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Incident]:
        """Incidents newest first, created in ``[since, until)``, at most ``limit`` (1 to 1000)."""
        ...

    def seen_event(self, event_id: str) -> bool:
        """Record a Slack event id; ``True`` when it was already recorded (a retry to ignore). Atomic."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class _BaseStore:
    """What both backends share: grouping on top of the primitives, and context-manager support."""

    def create(self, incident: Incident) -> Incident:
        raise NotImplementedError

    def get(self, incident_id: str) -> Incident | None:
        raise NotImplementedError

    def find_open(
        self,
        fingerprint: str | None = None,
        alertname: str | None = None,
        service: str | None = None,
        within: timedelta | None = None,
    ) -> Incident | None:
        raise NotImplementedError

    def add_alert(self, incident_id: str, alert: dict[str, Any], *, event: str | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def open_or_join(self, incident: Incident, *, within: timedelta | None = None) -> tuple[Incident, bool]:
        """See :meth:`IncidentStore.open_or_join`."""
        by_name = within is not None
        for _attempt in range(5):
            existing = self.find_open(incident.fingerprint, incident.alertname if by_name else None,
                                      incident.service if by_name else None, within)
            if existing is not None:
                for alert in incident.alerts:
                    self.add_alert(existing.incident_id, alert, event=_joined_event(alert))
                return self.get(existing.incident_id) or existing, False
            try:
                return self.create(incident), True
            except OpenIncidentExists:
                continue  # another writer opened it between our look and our insert: join theirs
        raise OpenIncidentExists(f"could not open or join an incident for {incident.fingerprint}", None)

    @staticmethod
    def _check_list_args(status: str | None, limit: int) -> None:
        if status is not None and status not in ("open", "investigating", "resolved", "failed"):
            raise ValueError(f"unknown status {status!r}")
        if not 1 <= limit <= MAX_LIST:
            raise ValueError(f"limit must be between 1 and {MAX_LIST}, got {limit}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------- SQLite


_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    alertname TEXT NOT NULL DEFAULT '',
    service TEXT NOT NULL,
    namespace TEXT,
    severity TEXT NOT NULL,
    priority TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'investigating', 'resolved', 'failed')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    alerts TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(alerts)),
    timeline TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(timeline)),
    report TEXT CHECK (report IS NULL OR json_valid(report)),
    error TEXT,
    tokens TEXT NOT NULL CHECK (json_valid(tokens)),
    analysis_id TEXT NOT NULL,
    slack TEXT CHECK (slack IS NULL OR json_valid(slack))
);
CREATE INDEX IF NOT EXISTS incidents_status_created ON incidents (status, created_at);
CREATE INDEX IF NOT EXISTS incidents_service_created ON incidents (service, created_at);
CREATE INDEX IF NOT EXISTS incidents_created ON incidents (created_at);
CREATE INDEX IF NOT EXISTS incidents_fingerprint_status ON incidents (fingerprint, status);
CREATE INDEX IF NOT EXISTS incidents_alertname_service ON incidents (alertname, service, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_active_per_fingerprint
    ON incidents (fingerprint) WHERE status IN ('open', 'investigating');
CREATE TABLE IF NOT EXISTS slack_events (
    event_id TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS slack_events_seen ON slack_events (seen_at);
"""

_COLUMNS = ("incident_id", "fingerprint", "alertname", "service", "namespace", "severity", "priority", "title",
            "status", "created_at", "updated_at", "alerts", "timeline", "report", "error", "tokens", "analysis_id",
            "slack")
_JSON_COLUMNS = {"alerts", "timeline", "report", "tokens", "slack"}
_TIME_COLUMNS = {"created_at", "updated_at"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SQLiteStore(_BaseStore):
    """Incidents in an embedded SQLite file (WAL mode), safe across threads and processes.

    One connection behind a lock serves every thread; each change is a single statement or an
    ``IMMEDIATE`` transaction, so concurrent writers (threads or processes) never lose an update.
    """

    def __init__(self, path: str | os.PathLike[str], *, event_ttl: timedelta = EVENT_TTL) -> None:
        """Open (and create) the store.

        Args:
            path: The database file (its folder is created), or ``":memory:"``.
            event_ttl: How long :meth:`seen_event` remembers an event id.
        """
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.event_ttl = event_ttl
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested uses join the outer one), holding the lock throughout."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    @staticmethod
    def _row(incident: Incident) -> dict[str, Any]:
        data = incident.model_dump(mode="json")
        for key in _JSON_COLUMNS:
            data[key] = None if data[key] is None else _dumps(data[key])
        for key in _TIME_COLUMNS:
            data[key] = stamp(getattr(incident, key))
        return {key: data[key] for key in _COLUMNS}

    @staticmethod
    def _incident(row: sqlite3.Row) -> Incident:
        data = {key: row[key] for key in _COLUMNS}
        for key in _JSON_COLUMNS:
            data[key] = None if data[key] is None else json.loads(data[key])
        return Incident.model_validate(data)

    def _active_id(self, fingerprint: str) -> str | None:
        row = self._conn.execute("SELECT incident_id FROM incidents WHERE fingerprint = ? AND status IN (?, ?)",
                                 (fingerprint, *ACTIVE)).fetchone()
        return row["incident_id"] if row else None

    def create(self, incident: Incident) -> Incident:
        """See :meth:`IncidentStore.create`."""
        row = self._row(incident)
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM incidents WHERE incident_id = ?", (incident.incident_id,)).fetchone():
                raise IncidentExists(f"incident {incident.incident_id!r} exists", incident.incident_id)
            if incident.active and (other := self._active_id(incident.fingerprint)):
                raise OpenIncidentExists(f"incident {other!r} is already active for {incident.fingerprint}", other)
            conn.execute(f"INSERT INTO incidents ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                         [row[key] for key in _COLUMNS])
        return incident

    def get(self, incident_id: str) -> Incident | None:
        """See :meth:`IncidentStore.get`."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return self._incident(row) if row else None

    def find_open(
        self,
        fingerprint: str | None = None,
        alertname: str | None = None,
        service: str | None = None,
        within: timedelta | None = None,
    ) -> Incident | None:
        """See :meth:`IncidentStore.find_open`."""
        queries: list[tuple[str, list[Any]]] = []
        if fingerprint:
            queries.append(("fingerprint = ?", [fingerprint]))
        if alertname and service:
            clause, args = "alertname = ? AND service = ?", [alertname, service]
            if within is not None:
                clause, args = clause + " AND created_at >= ?", [*args, stamp(now_ms() - within)]
            queries.append((clause, args))
        with self._lock:
            for clause, args in queries:
                row = self._conn.execute(
                    f"SELECT * FROM incidents WHERE {clause} AND status IN (?, ?) "
                    "ORDER BY created_at DESC, incident_id DESC LIMIT 1", [*args, *ACTIVE]).fetchone()
                if row:
                    return self._incident(row)
        return None

    def open_or_join(self, incident: Incident, *, within: timedelta | None = None) -> tuple[Incident, bool]:
        """See :meth:`IncidentStore.open_or_join`: one ``IMMEDIATE`` transaction."""
        with self._tx():
            return super().open_or_join(incident, within=within)

    def _update(self, incident_id: str, assignments: str, args: list[Any], event: str | None) -> None:
        """``UPDATE`` one incident, appending ``event`` to its timeline in the same statement."""
        if event is not None:
            assignments += ", timeline = json_insert(timeline, '$[#]', json(?))"
            args = [*args, _dumps(timeline_event(event))]
        with self._lock:
            cursor = self._conn.execute(f"UPDATE incidents SET updated_at = ?, {assignments} WHERE incident_id = ?",
                                        [stamp(), *args, incident_id])
        if cursor.rowcount == 0:
            raise IncidentNotFound(incident_id)

    def add_alert(self, incident_id: str, alert: dict[str, Any], *, event: str | None = None) -> None:
        """See :meth:`IncidentStore.add_alert`."""
        self._update(incident_id, "alerts = json_insert(alerts, '$[#]', json(?))",
                     [_dumps(_with_received_at(alert))], event)

    def set_status(
        self, incident_id: str, status: Status, *, error: str | None = None, event: str | None = None
    ) -> Incident:
        """See :meth:`IncidentStore.set_status`."""
        with self._tx() as conn:
            current = self.get(incident_id)
            if current is None:
                raise IncidentNotFound(incident_id)
            if status in ACTIVE and not current.active:
                other = self._active_id(current.fingerprint)
                if other:
                    raise OpenIncidentExists(f"incident {other!r} is already active for {current.fingerprint}",
                                             other)
            self._update(incident_id, "status = ?, error = ?", [status, error], event or _status_event(status, error))
            row = conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return self._incident(row)

    def set_report(
        self, incident_id: str, report: dict[str, Any], tokens: dict[str, int | float] | None = None
    ) -> None:
        """See :meth:`IncidentStore.set_report`."""
        assignments, args = "report = json(?)", [_dumps(_jsonable(report))]
        if tokens is not None:
            assignments, args = assignments + ", tokens = json(?)", [*args, _dumps({**zero_tokens(), **tokens})]
        self._update(incident_id, assignments, args, _report_event(report))

    def append_timeline(self, incident_id: str, event: str) -> None:
        """See :meth:`IncidentStore.append_timeline`."""
        self._update(incident_id, "incident_id = incident_id", [], event)

    def set_slack(self, incident_id: str, channel: str, thread_ts: str) -> None:
        """See :meth:`IncidentStore.set_slack`."""
        self._update(incident_id, "slack = json(?)", [_dumps({"channel": channel, "thread_ts": thread_ts})], None)

    def list(
        self,
        status: Status | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Incident]:
        """See :meth:`IncidentStore.list`."""
        self._check_list_args(status, limit)
        clauses, args = [], []
        for clause, value in (("status = ?", status), ("service = ?", service),
                              ("created_at >= ?", since and stamp(since)), ("created_at < ?", until and stamp(until))):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM incidents {where} ORDER BY created_at DESC, incident_id DESC LIMIT ?",
                [*args, limit]).fetchall()
        return [self._incident(row) for row in rows]

    def seen_event(self, event_id: str) -> bool:
        """See :meth:`IncidentStore.seen_event`."""
        now = now_ms()
        with self._tx() as conn:
            conn.execute("DELETE FROM slack_events WHERE seen_at < ?", (stamp(now - self.event_ttl),))
            cursor = conn.execute("INSERT OR IGNORE INTO slack_events (event_id, seen_at) VALUES (?, ?)",
                                  (event_id, stamp(now)))
        return cursor.rowcount == 0

    def close(self) -> None:
        """See :meth:`IncidentStore.close`."""
        with self._lock:
            self._conn.close()


# --------------------------------------------------------------------- MongoDB


def _naive(value: datetime) -> datetime:
    """UTC without tzinfo: what BSON stores, so every driver and mock compares alike."""
    return utc_ms(value).replace(tzinfo=None)


_PROJECTION = {"_id": False, "open_fingerprint": False}
_NEWEST = [("created_at", pymongo.DESCENDING), ("incident_id", pymongo.DESCENDING)]


class MongoStore(_BaseStore):
    """Incidents in MongoDB: collections ``incidents`` and ``slack_events`` (ids expire by a TTL index).

    Appends are ``$push`` updates and status changes ``findAndModify``, so concurrent writers never
    lose an update. An active incident also carries ``open_fingerprint``, under a unique sparse
    index: the database itself refuses a second active incident for a fingerprint.
    """

    def __init__(
        self,
        url_or_client: str | MongoClient[dict[str, Any]],
        db: str | None = None,
        *,
        timeout_ms: int = 10_000,
        event_ttl: timedelta = EVENT_TTL,
    ) -> None:
        """Connect and create the indexes.

        Args:
            url_or_client: A MongoDB URL (the store then owns and closes the client) or a ready client.
            db: The database; defaults to the URL's database, else ``sre_graph``.
            timeout_ms: Server selection, connect and socket timeout for a client built from a URL.
            event_ttl: How long :meth:`seen_event` remembers an event id.
        """
        self._owns_client = isinstance(url_or_client, str)
        if isinstance(url_or_client, str):
            self.client: MongoClient[dict[str, Any]] = MongoClient(
                url_or_client, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                socketTimeoutMS=timeout_ms, appname="sre-graph")
            name = db or self.client.get_default_database(default="sre_graph").name
        else:
            self.client = url_or_client
            name = db or "sre_graph"
        self.db = self.client[name]
        self.incidents = self.db["incidents"]
        self.slack_events = self.db["slack_events"]
        self.incidents.create_indexes([
            IndexModel([("incident_id", pymongo.ASCENDING)], unique=True, name="incident_id_unique"),
            IndexModel([("fingerprint", pymongo.ASCENDING), ("status", pymongo.ASCENDING)],
                       name="fingerprint_status"),
            IndexModel([("service", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)],
                       name="service_created_at"),
            IndexModel([("status", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)],
                       name="status_created_at"),
            IndexModel([("created_at", pymongo.DESCENDING)], name="created_at"),
            IndexModel([("alertname", pymongo.ASCENDING), ("service", pymongo.ASCENDING),
                        ("created_at", pymongo.DESCENDING)], name="alertname_service_created_at"),
            IndexModel([("open_fingerprint", pymongo.ASCENDING)], unique=True, sparse=True,
                       name="one_active_per_fingerprint"),
        ])
        self.slack_events.create_indexes([
            IndexModel([("event_id", pymongo.ASCENDING)], unique=True, name="event_id_unique"),
            IndexModel([("seen_at", pymongo.ASCENDING)], expireAfterSeconds=int(event_ttl.total_seconds()),
                       name="seen_at_ttl"),
        ])

    @staticmethod
    def _incident(doc: Mapping[str, Any]) -> Incident:
        return Incident.model_validate({k: v for k, v in doc.items() if k not in ("_id", "open_fingerprint")})

    def create(self, incident: Incident) -> Incident:
        """See :meth:`IncidentStore.create`."""
        doc = incident.model_dump(mode="json")
        doc["created_at"], doc["updated_at"] = _naive(incident.created_at), _naive(incident.updated_at)
        if incident.active:
            doc["open_fingerprint"] = incident.fingerprint
        try:
            self.incidents.insert_one(doc)
        except DuplicateKeyError:
            if self.get(incident.incident_id) is not None:
                raise IncidentExists(f"incident {incident.incident_id!r} exists", incident.incident_id) from None
            other = self.find_open(incident.fingerprint)
            raise OpenIncidentExists(f"an incident is already active for {incident.fingerprint}",
                                     other.incident_id if other else None) from None
        return incident

    def get(self, incident_id: str) -> Incident | None:
        """See :meth:`IncidentStore.get`."""
        doc = self.incidents.find_one({"incident_id": incident_id}, _PROJECTION)
        return self._incident(doc) if doc else None

    def find_open(
        self,
        fingerprint: str | None = None,
        alertname: str | None = None,
        service: str | None = None,
        within: timedelta | None = None,
    ) -> Incident | None:
        """See :meth:`IncidentStore.find_open`."""
        queries: list[dict[str, Any]] = []
        if fingerprint:
            queries.append({"fingerprint": fingerprint})
        if alertname and service:
            query: dict[str, Any] = {"alertname": alertname, "service": service}
            if within is not None:
                query["created_at"] = {"$gte": _naive(now_ms() - within)}
            queries.append(query)
        for query in queries:
            doc = self.incidents.find_one({**query, "status": {"$in": list(ACTIVE)}}, _PROJECTION, sort=_NEWEST)
            if doc:
                return self._incident(doc)
        return None

    def _update(self, incident_id: str, update: dict[str, Any], event: str | None) -> None:
        update.setdefault("$set", {})["updated_at"] = _naive(now_ms())
        if event is not None:
            update.setdefault("$push", {})["timeline"] = timeline_event(event)
        if self.incidents.update_one({"incident_id": incident_id}, update).matched_count == 0:
            raise IncidentNotFound(incident_id)

    def add_alert(self, incident_id: str, alert: dict[str, Any], *, event: str | None = None) -> None:
        """See :meth:`IncidentStore.add_alert`."""
        self._update(incident_id, {"$push": {"alerts": _with_received_at(alert)}}, event)

    def set_status(
        self, incident_id: str, status: Status, *, error: str | None = None, event: str | None = None
    ) -> Incident:
        """See :meth:`IncidentStore.set_status`."""
        update: dict[str, Any] = {
            "$set": {"status": status, "error": error, "updated_at": _naive(now_ms())},
            "$push": {"timeline": timeline_event(event or _status_event(status, error))},
        }
        if status not in ACTIVE:
            update["$unset"] = {"open_fingerprint": ""}
        filter_: dict[str, Any] = {"incident_id": incident_id}
        fingerprint = ""
        if status in ACTIVE:
            current = self.incidents.find_one(filter_, {"fingerprint": True, "_id": False})
            if current is None:
                raise IncidentNotFound(incident_id)
            fingerprint = update["$set"]["open_fingerprint"] = current["fingerprint"]
        try:
            doc = self.incidents.find_one_and_update(filter_, update, projection=_PROJECTION,
                                                     return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            other = self.find_open(fingerprint)
            raise OpenIncidentExists(f"an incident is already active for {fingerprint}",
                                     other.incident_id if other else None) from None
        if doc is None:
            raise IncidentNotFound(incident_id)
        return self._incident(doc)

    def set_report(
        self, incident_id: str, report: dict[str, Any], tokens: dict[str, int | float] | None = None
    ) -> None:
        """See :meth:`IncidentStore.set_report`."""
        fields: dict[str, Any] = {"report": report}
        if tokens is not None:
            fields["tokens"] = {**zero_tokens(), **tokens}
        self._update(incident_id, {"$set": _jsonable(fields)}, _report_event(report))

    def append_timeline(self, incident_id: str, event: str) -> None:
        """See :meth:`IncidentStore.append_timeline`."""
        self._update(incident_id, {}, event)

    def set_slack(self, incident_id: str, channel: str, thread_ts: str) -> None:
        """See :meth:`IncidentStore.set_slack`."""
        self._update(incident_id, {"$set": {"slack": {"channel": channel, "thread_ts": thread_ts}}}, None)

    def list(
        self,
        status: Status | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Incident]:
        """See :meth:`IncidentStore.list`."""
        self._check_list_args(status, limit)
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        if service is not None:
            query["service"] = service
        created: dict[str, datetime] = {}
        if since is not None:
            created["$gte"] = _naive(since)
        if until is not None:
            created["$lt"] = _naive(until)
        if created:
            query["created_at"] = created
        cursor = self.incidents.find(query, _PROJECTION).sort(_NEWEST).limit(limit)
        return [self._incident(doc) for doc in cursor]

    def seen_event(self, event_id: str) -> bool:
        """See :meth:`IncidentStore.seen_event`."""
        try:
            self.slack_events.insert_one({"event_id": event_id, "seen_at": _naive(now_ms())})
        except DuplicateKeyError:
            return True
        return False

    def close(self) -> None:
        """See :meth:`IncidentStore.close`; a client passed in stays open."""
        if self._owns_client:
            self.client.close()


# --------------------------------------------------------------------- choosing one


def open_store(settings: Settings | None = None, *, path: str | os.PathLike[str] | None = None) -> IncidentStore:
    """The configured store: MongoDB when ``SRE_GRAPH_MONGODB_URL`` is set, else the embedded SQLite file.

    Args:
        settings: Configuration (``settings.mongodb_url`` is ``SRE_GRAPH_MONGODB_URL``); the environment by default.
        path: The SQLite file; defaults to ``SRE_GRAPH_STORE_PATH``, else ``.sre-graph/incidents.db``.
    """
    settings = settings or load_settings()
    url = settings.mongodb_url.get_secret_value() if settings.mongodb_url is not None else ""
    if url:
        return MongoStore(url)
    return SQLiteStore(path or os.environ.get("SRE_GRAPH_STORE_PATH", DEFAULT_STORE_PATH))
