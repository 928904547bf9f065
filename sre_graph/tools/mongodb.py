"""MongoDB: diagnostic commands and the profiler, read-only, every command time-bounded.

Replies come back as relaxed Extended JSON, the form ``mongosh`` prints and the incident format
records (``shared/INCIDENT_FORMAT.md``): dates as ``{"$date": "...Z"}``, 64-bit integers as plain
numbers, UUIDs as ``{"$uuid": "..."}``, timestamps as ``{"$timestamp": {"t", "i"}}``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime
from typing import Any, Protocol

from sre_graph.tools.base import SourceUnavailable


class MongoPort(Protocol):
    """What the engine asks of MongoDB. Replies come back as relaxed Extended JSON dicts."""

    def server_status(self) -> dict[str, Any]:
        """The ``serverStatus`` reply."""
        ...

    def current_op(self, *, min_secs_running: float | None = None, waiting_for_lock: bool | None = None) -> list[dict]:
        """In-progress operations (``currentOp.inprog``), filtered."""
        ...

    def slow_queries(self, *, min_millis: int = 100, since: datetime | None = None, ns: str | None = None,
                     limit: int = 200) -> list[dict]:
        """``system.profile`` entries at or above ``min_millis``, newest first."""
        ...

    def repl_status(self) -> dict[str, Any] | None:
        """The ``replSetGetStatus`` reply, or ``None`` when not a replica set."""
        ...

    def index_stats(self, ns: str) -> list[dict]:
        """``$indexStats`` for ``db.collection``."""
        ...

    def coll_stats(self, ns: str) -> dict[str, Any] | None:
        """``collStats`` for ``db.collection``."""
        ...

    def namespaces(self) -> list[str]:
        """Known ``db.collection`` names."""
        ...


# --------------------------------------------------------------------- Extended JSON

NOT_A_REPLICA_SET = 76
"""``NoReplicationEnabled``: ``replSetGetStatus`` on a standalone server."""
NAMESPACE_NOT_FOUND = 26
UNAUTHORIZED = 13
MAX_TIME_EXPIRED = 50
SYSTEM_DATABASES = ("admin", "local", "config")


_WHOLE_SECOND = re.compile(r"(T\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:?\d{2})$")


def _mongosh_spelling(obj: dict[str, Any]) -> Any:
    """Where ``json_util`` and ``mongosh`` spell a value differently, use ``mongosh``'s spelling."""
    if len(obj) != 1:
        return obj
    binary = obj.get("$binary")
    if isinstance(binary, dict) and binary.get("subType") == "04":
        return {"$uuid": str(uuid.UUID(bytes=base64.b64decode(binary["base64"])))}
    date = obj.get("$date")
    if isinstance(date, str):  # ISO dates always carry milliseconds (JavaScript's toISOString)
        return {"$date": _WHOLE_SECOND.sub(r"\1.000\2", date)}
    return obj


def relaxed_json(document: Any) -> Any:
    """A BSON reply (pymongo types) as relaxed Extended JSON built from plain dicts and lists.

    ``bson.json_util`` in relaxed mode, spelled as ``mongosh`` prints: UUIDs (binary subtype 4) as
    ``{"$uuid": ...}`` and ISO dates always with milliseconds.
    """
    from bson import json_util

    text = json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS)
    return json.loads(text, object_hook=_mongosh_spelling)


def normalise_extended_json(value: Any) -> Any:
    """Any Extended JSON (canonical parts such as ``{"$numberLong": "60"}`` included) in the relaxed form.

    Live replies go through :func:`relaxed_json`; recorded files can go through this so that replay
    and live agree on representation.
    """
    from bson import json_util

    return relaxed_json(json_util.loads(json.dumps(value)))


# --------------------------------------------------------------------- the live port


class LiveMongo:
    """pymongo against a server: only read commands, ``maxTimeMS`` on every one, a socket timeout below all.

    ``maxTimeMS`` lets the server abandon a slow command; the socket timeout (longer, by default twice
    ``timeout_ms``) ends the wait when the server never answers. Reads are not retried by the driver, so
    one call waits at most about the socket timeout. Every failure, including a bad URL, raises
    :class:`SourceUnavailable`; the client is created on first use.
    """

    def __init__(self, url: str, *, timeout_ms: int = 5000, socket_timeout_ms: int | None = None,
                 profile_dbs: list[str] | None = None, app_name: str = "sre-graph") -> None:
        """Prepare a client for ``url`` (``mongodb://`` or ``mongodb+srv://``).

        Args:
            url: Connection string; credentials belong to a read-only user.
            timeout_ms: ``maxTimeMS`` of each command, and the connect/server-selection timeout.
            socket_timeout_ms: How long to wait for a reply (default ``2 * timeout_ms``).
            profile_dbs: Databases whose ``system.profile`` to read (default: every non-system database).
            app_name: Shown in the server's ``currentOp`` and logs.
        """
        self._url = url
        self._max_ms = int(timeout_ms)
        self._socket_ms = int(socket_timeout_ms or 2 * timeout_ms)
        self._dbs = profile_dbs
        self._app_name = app_name
        self._client: Any = None

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ plumbing

    def _mongo(self) -> Any:
        if self._client is None:
            import pymongo
            from pymongo.errors import ConfigurationError, PyMongoError

            try:
                self._client = pymongo.MongoClient(
                    self._url, serverSelectionTimeoutMS=self._max_ms, connectTimeoutMS=self._max_ms,
                    socketTimeoutMS=self._socket_ms, appname=self._app_name, retryReads=False, connect=False)
            except (ConfigurationError, PyMongoError, ValueError, TypeError) as exc:
                raise SourceUnavailable("mongodb", f"invalid connection settings: {exc}") from exc
        return self._client

    def _failure(self, exc: Exception, what: str) -> SourceUnavailable:
        """A pymongo error as a reason an operator can act on."""
        from pymongo import errors

        if isinstance(exc, errors.ServerSelectionTimeoutError):
            reason = f"no server reachable within {self._max_ms} ms ({what}): {exc}"
        elif isinstance(exc, errors.NetworkTimeout):
            reason = f"no reply to {what} within {self._socket_ms} ms"
        elif isinstance(exc, errors.ExecutionTimeout):
            reason = f"{what} exceeded maxTimeMS={self._max_ms} on the server"
        elif isinstance(exc, errors.OperationFailure):
            name = (exc.details or {}).get("codeName") or f"code {exc.code}"
            message = (exc.details or {}).get("errmsg") or str(exc)
            if exc.code == UNAUTHORIZED:
                reason = f"not authorised to run {what} ({name}): {message}"
            else:
                reason = f"{what} failed ({name}): {message}"
        elif isinstance(exc, errors.ConnectionFailure):
            reason = f"connection lost during {what}: {exc}"
        else:
            reason = f"{what} failed: {type(exc).__name__}: {exc}"
        return SourceUnavailable("mongodb", reason)

    def _command(self, db: str, command: dict[str, Any], what: str, *, tolerate: tuple[int, ...] = ()) -> Any:
        """Run one read command with ``maxTimeMS``; ``None`` when it fails with a tolerated code."""
        from bson.errors import BSONError
        from pymongo.errors import OperationFailure, PyMongoError

        try:
            return self._mongo()[db].command({**command, "maxTimeMS": self._max_ms})
        except OperationFailure as exc:
            if exc.code in tolerate:
                return None
            raise self._failure(exc, what) from exc
        except (PyMongoError, BSONError) as exc:
            raise self._failure(exc, what) from exc

    def _databases(self) -> list[str]:
        if self._dbs is not None:
            return list(self._dbs)
        reply = self._command("admin", {"listDatabases": 1, "nameOnly": True, "authorizedDatabases": True},
                              "listDatabases")
        return sorted(d["name"] for d in reply.get("databases", []) if d.get("name") not in SYSTEM_DATABASES)

    # ------------------------------------------------------------ the port

    def server_status(self):
        """``db.adminCommand({serverStatus: 1})``."""
        return relaxed_json(self._command("admin", {"serverStatus": 1}, "serverStatus"))

    def current_op(self, *, min_secs_running=None, waiting_for_lock=None):
        """Active operations (``currentOp`` without ``$all``), filtered by the server."""
        command: dict[str, Any] = {"currentOp": 1}
        if min_secs_running is not None and min_secs_running > 0:
            command["secs_running"] = {"$gte": min_secs_running}
        if waiting_for_lock is True:
            command["waitingForLock"] = True
        elif waiting_for_lock is False:
            command["waitingForLock"] = {"$ne": True}
        return relaxed_json(self._command("admin", command, "currentOp").get("inprog", []))

    def slow_queries(self, *, min_millis=100, since=None, ns=None, limit=200, until: datetime | None = None):
        """``system.profile`` entries of ``ns``'s database (or every database), newest first across them."""
        from bson.errors import BSONError
        from pymongo.errors import PyMongoError

        query: dict[str, Any] = {"millis": {"$gte": min_millis}}
        if since is not None or until is not None:
            query["ts"] = {**({"$gte": since} if since is not None else {}),
                           **({"$lte": until} if until is not None else {})}
        if ns:
            query["ns"] = ns
        databases = [ns.split(".", 1)[0]] if ns else self._databases()
        entries: list[dict[str, Any]] = []
        for db in databases:
            try:
                cursor = (self._mongo()[db]["system.profile"].find(query).sort("ts", -1).limit(limit)
                          .max_time_ms(self._max_ms))
                entries.extend(cursor)
            except (PyMongoError, BSONError) as exc:
                raise self._failure(exc, f"find on {db}.system.profile") from exc
        entries.sort(key=lambda e: e.get("ts") or datetime.min, reverse=True)
        return relaxed_json(entries[:limit])

    def repl_status(self):
        """``replSetGetStatus``; ``None`` on a standalone server (``NoReplicationEnabled``)."""
        reply = self._command("admin", {"replSetGetStatus": 1}, "replSetGetStatus", tolerate=(NOT_A_REPLICA_SET,))
        return None if reply is None else relaxed_json(reply)

    def index_stats(self, ns):
        """``db.collection.aggregate([{$indexStats: {}}])``."""
        from bson.errors import BSONError
        from pymongo.errors import PyMongoError

        db, _, coll = ns.partition(".")
        try:
            return relaxed_json(list(self._mongo()[db][coll].aggregate([{"$indexStats": {}}],
                                                                       maxTimeMS=self._max_ms)))
        except (PyMongoError, BSONError) as exc:
            raise self._failure(exc, f"$indexStats on {ns}") from exc

    def coll_stats(self, ns):
        """``collStats``; ``None`` when the collection does not exist."""
        db, _, coll = ns.partition(".")
        reply = self._command(db, {"collStats": coll}, f"collStats on {ns}", tolerate=(NAMESPACE_NOT_FOUND,))
        return None if reply is None else relaxed_json(reply)

    def namespaces(self):
        """``db.collection`` of every collection the user may see (``system.*`` left out), sorted."""
        from bson.errors import BSONError
        from pymongo.errors import PyMongoError

        out: list[str] = []
        for db in self._databases():
            try:
                names = self._mongo()[db].list_collection_names(
                    filter={"type": "collection"}, nameOnly=True, authorizedCollections=True, maxTimeMS=self._max_ms)
            except (PyMongoError, BSONError) as exc:
                raise self._failure(exc, f"listCollections on {db}") from exc
            out.extend(f"{db}.{c}" for c in names if not c.startswith("system."))
        return sorted(out)
