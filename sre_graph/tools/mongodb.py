"""MongoDB: diagnostic commands and the profiler, read-only, every command time-bounded."""

from __future__ import annotations

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


class LiveMongo:
    """pymongo against a server; ``maxTimeMS`` on every command."""

    def __init__(self, url: str, *, timeout_ms: int = 5000, profile_dbs: list[str] | None = None) -> None:
        import pymongo

        self._client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms,
                                                connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms * 2)
        self._max_ms = timeout_ms
        self._dbs = profile_dbs

    def _admin(self, command: dict[str, Any]) -> dict[str, Any]:
        from bson import json_util
        from pymongo.errors import OperationFailure, PyMongoError

        try:
            reply = self._client.admin.command({**command, "maxTimeMS": self._max_ms})
        except OperationFailure:
            raise
        except PyMongoError as exc:
            raise SourceUnavailable("mongodb", f"{type(exc).__name__}: {exc}") from exc
        return json_util.loads(json_util.dumps(reply, json_options=json_util.RELAXED_JSON_OPTIONS))

    def _databases(self) -> list[str]:
        if self._dbs is not None:
            return self._dbs
        names = self._admin({"listDatabases": 1, "nameOnly": True}).get("databases", [])
        return [d["name"] for d in names if d["name"] not in ("admin", "local", "config")]

    def server_status(self):
        return self._admin({"serverStatus": 1})

    def current_op(self, *, min_secs_running=None, waiting_for_lock=None):
        command: dict[str, Any] = {"currentOp": 1, "active": True}
        if min_secs_running is not None:
            command["secs_running"] = {"$gte": min_secs_running}
        if waiting_for_lock is not None:
            command["waitingForLock"] = waiting_for_lock
        return self._admin(command).get("inprog", [])

    def slow_queries(self, *, min_millis=100, since=None, ns=None, limit=200):
        from pymongo.errors import PyMongoError

        query: dict[str, Any] = {"millis": {"$gte": min_millis}}
        if since is not None:
            query["ts"] = {"$gte": since}
        if ns:
            query["ns"] = ns
        entries: list[dict] = []
        try:
            for db in ([ns.split(".", 1)[0]] if ns else self._databases()):
                cursor = self._client[db]["system.profile"].find(query).sort("ts", -1).limit(limit)
                entries.extend(cursor.max_time_ms(self._max_ms))
        except PyMongoError as exc:
            raise SourceUnavailable("mongodb", f"{type(exc).__name__}: {exc}") from exc
        return entries

    def repl_status(self):
        from pymongo.errors import OperationFailure

        try:
            return self._admin({"replSetGetStatus": 1})
        except OperationFailure:
            return None

    def index_stats(self, ns):
        from pymongo.errors import PyMongoError

        db, _, coll = ns.partition(".")
        try:
            return list(self._client[db][coll].aggregate([{"$indexStats": {}}], maxTimeMS=self._max_ms))
        except PyMongoError as exc:
            raise SourceUnavailable("mongodb", f"{type(exc).__name__}: {exc}") from exc

    def coll_stats(self, ns):
        from pymongo.errors import PyMongoError

        db, _, coll = ns.partition(".")
        try:
            return self._client[db].command({"collStats": coll, "maxTimeMS": self._max_ms})
        except PyMongoError as exc:
            raise SourceUnavailable("mongodb", f"{type(exc).__name__}: {exc}") from exc

    def namespaces(self):
        out = []
        for db in self._databases():
            out.extend(f"{db}.{c}" for c in self._client[db].list_collection_names() if not c.startswith("system."))
        return out
