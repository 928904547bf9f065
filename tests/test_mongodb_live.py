"""LiveMongo through real pymongo against a wire-protocol MongoDB (mockupdb) on loopback.

The mock answers each command the way mongod does, from an incident's ``mongodb/`` files: the
profiler ``find`` and ``currentOp`` apply the filters pymongo sent, ``$indexStats`` and
``listCollections`` answer with cursors, a standalone server refuses ``replSetGetStatus`` with
``NoReplicationEnabled``. Every LiveMongo answer must equal the replay's for the same call.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from mockupdb import Matcher, MockupDB

from sre_graph.tools.base import SourceUnavailable
from sre_graph.tools.mongodb import LiveMongo, normalise_extended_json
from sre_graph.tools.replay import SnapshotMongo, load_incident

INCIDENTS = Path(__file__).resolve().parent.parent / "evals" / "incidents"
PARITY_INCIDENTS = ["db-shop-orders-email-collscan", "db-catalog-secondary-lag-stale-reads"]
TIMEOUT_MS = 300
HANDSHAKE = {"ismaster", "hello", "ping", "endsessions", "killcursors", "buildinfo", "getlasterror"}


# --------------------------------------------------------------------- a tiny query matcher


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op == "$eq":
        return actual == wanted
    if op == "$ne":
        return actual != wanted
    if op == "$in":
        return actual in wanted
    if actual is None:
        return False
    try:
        return {"$gte": actual >= wanted, "$gt": actual > wanted, "$lte": actual <= wanted,
                "$lt": actual < wanted}[op]
    except TypeError:
        return False


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    """MongoDB query semantics for the operators LiveMongo sends (missing fields fail ``$gte``...)."""
    for key, condition in query.items():
        actual = doc
        for part in key.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
            if not all(_compare(actual, op, wanted) for op, wanted in condition.items()):
                return False
        elif actual != condition:
            return False
    return True


# --------------------------------------------------------------------- mongod, scripted from the files


class FakeMongod:
    """Answers pymongo's commands from an incident's ``mongodb/`` folder."""

    GENERIC = ("maxTimeMS", "$db", "lsid", "$clusterTime", "$readPreference", "comment", "txnNumber",
               "apiVersion", "$audit", "$client")

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "mongodb"
        self.commands: list[dict[str, Any]] = []
        self.hang: set[str] = set()
        self.errors: dict[str, tuple[int, str, str]] = {}
        self.namespaces = SnapshotMongo(folder, datetime.max).namespaces()
        profile = self.folder / "profile.jsonl"
        lines = profile.read_text().splitlines() if profile.exists() else []
        self.profile = [json_util.loads(line) for line in lines if line.strip()]

    def load(self, name: str) -> Any:
        path = self.folder / name
        return json_util.loads(path.read_text()) if path.exists() else None

    def respond(self, request: Any) -> bool:
        doc = dict(request.doc)
        name = next(iter(doc))
        lowered = name.lower()
        if lowered in ("ismaster", "hello"):
            return False  # MockupDB's auto_ismaster answers the handshake
        if lowered not in HANDSHAKE:
            self.commands.append(doc)
        if name in self.hang:
            return False  # never answered: the client must give up on its own
        if name in self.errors:
            code, code_name, message = self.errors[name]
            return request.command_err(code=code, errmsg=message, codeName=code_name)
        db = doc.get("$db", "admin")
        if lowered in ("ping", "endsessions", "killcursors"):
            return request.ok()
        if name == "serverStatus":
            return request.reply(self.load("serverStatus.json"))
        if name == "currentOp":
            query = {k: v for k, v in doc.items() if k not in ("currentOp", "$all", *self.GENERIC)}
            reply = self.load("currentOp.json") or {"inprog": [], "ok": 1}
            return request.reply({**reply, "inprog": [op for op in reply["inprog"] if matches(op, query)]})
        if name == "replSetGetStatus":
            reply = self.load("replSetGetStatus.json")
            if reply is None:
                return request.command_err(code=76, errmsg="not running with --replSet",
                                           codeName="NoReplicationEnabled")
            return request.reply(reply)
        if name == "collStats":
            reply = self.load(f"collStats/{db}.{doc['collStats']}.json")
            if reply is None:
                return request.command_err(code=26, errmsg=f"ns not found {db}.{doc['collStats']}",
                                           codeName="NamespaceNotFound")
            return request.reply(reply)
        if name == "aggregate" and doc.get("pipeline") == [{"$indexStats": {}}]:
            batch = self.load(f"indexStats/{db}.{doc['aggregate']}.json") or []
            return request.reply({"cursor": {"id": 0, "ns": f"{db}.{doc['aggregate']}", "firstBatch": batch}})
        if name == "find" and doc["find"] == "system.profile":
            entries = [e for e in self.profile if str(e.get("ns", "")).split(".", 1)[0] == db
                       and matches(e, doc.get("filter") or {})]
            for key, direction in reversed(list((doc.get("sort") or {}).items())):
                entries.sort(key=lambda e, key=key: e.get(key) or datetime.min, reverse=direction == -1)
            if doc.get("limit"):
                entries = entries[:doc["limit"]]
            return request.reply({"cursor": {"id": 0, "ns": f"{db}.system.profile", "firstBatch": entries}})
        if name == "listDatabases":
            dbs = sorted({ns.split(".", 1)[0] for ns in self.namespaces} | {"admin", "config", "local"})
            return request.reply({"databases": [{"name": d} for d in dbs], "ok": 1})
        if name == "listCollections":
            names = sorted(ns.split(".", 1)[1] for ns in self.namespaces if ns.split(".", 1)[0] == db)
            batch = [{"name": n, "type": "collection"} for n in names if matches({"name": n, "type": "collection"},
                                                                               doc.get("filter") or {})]
            return request.reply({"cursor": {"id": 0, "ns": f"{db}.$cmd.listCollections", "firstBatch": batch}})
        return request.command_err(code=59, errmsg=f"no such command: '{name}'", codeName="CommandNotFound")


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[MockupDB, dict[str, FakeMongod]]]:
    """One wire-protocol server for the module; each test scripts it with its incident's files."""
    script: dict[str, FakeMongod] = {}
    server = MockupDB(auto_ismaster={"maxWireVersion": 21})
    server.autoresponds(Matcher(), lambda request: script["fake"].respond(request))
    server.run()
    yield server, script
    server.stop()


@pytest.fixture
def mongod(request: pytest.FixtureRequest, wire) -> Iterator[tuple[LiveMongo, FakeMongod, Any]]:
    """LiveMongo against the server scripted from one incident (``request.param``)."""
    server, script = wire
    incident = load_incident(INCIDENTS / request.param)
    script["fake"] = FakeMongod(incident.path)
    live = LiveMongo(server.uri, timeout_ms=TIMEOUT_MS)
    try:
        yield live, script["fake"], incident
    finally:
        live.close()


def _calls(incident, snapshot: SnapshotMongo) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "server_status", {}
    yield "repl_status", {}
    yield "namespaces", {}
    for secs, lock in itertools.product([None, 0, 1, 3, 400], [None, True, False]):
        yield "current_op", {"min_secs_running": secs, "waiting_for_lock": lock}
    namespaces = snapshot.namespaces()
    for ns in [*namespaces, "nope.missing"]:
        yield "index_stats", {"ns": ns}
        yield "coll_stats", {"ns": ns}
    for millis, since, ns, limit in itertools.product(
            [100, 0, 1000], [None, incident.now - timedelta(minutes=30)], [None, *namespaces[:2]], [200, 5]):
        yield "slow_queries", {"min_millis": millis, "since": since, "ns": ns, "limit": limit}


# --------------------------------------------------------------------- parity


@pytest.mark.parametrize("mongod", PARITY_INCIDENTS, indirect=True)
def test_live_answers_what_the_replay_answers(mongod):
    live, fake, incident = mongod
    snapshot = SnapshotMongo(incident.path, incident.now)
    checked = 0
    for method, call in _calls(incident, snapshot):
        expected = getattr(snapshot, method)(**call)
        live_call = {**call, "until": incident.now} if method == "slow_queries" else call
        got = getattr(live, method)(**live_call)
        assert got == expected, f"{method}({call})"
        checked += bool(expected)
    assert checked > 20, "the calls should mostly find data"


@pytest.mark.parametrize("mongod", PARITY_INCIDENTS[:1], indirect=True)
def test_commands_carry_max_time_ms_and_the_right_filters(mongod):
    live, fake, incident = mongod
    live.server_status()
    live.current_op(min_secs_running=5, waiting_for_lock=True)
    live.current_op(waiting_for_lock=False)
    since = incident.now - timedelta(minutes=30)
    live.slow_queries(min_millis=250, since=since, ns="shop.orders", limit=7, until=incident.now)
    live.slow_queries()
    live.index_stats("shop.orders")
    live.coll_stats("shop.orders")
    live.repl_status()
    live.namespaces()
    assert fake.commands, "commands should have reached the server"
    for command in fake.commands:
        assert command.get("maxTimeMS") == TIMEOUT_MS, command
    by_name: dict[str, list[dict[str, Any]]] = {}
    for command in fake.commands:
        by_name.setdefault(next(iter(command)), []).append(command)
    first, second = by_name["currentOp"]
    assert first["secs_running"] == {"$gte": 5} and first["waitingForLock"] is True and "$all" not in first
    assert second["waitingForLock"] == {"$ne": True} and "secs_running" not in second
    profile = by_name["find"][0]
    assert profile["$db"] == "shop" and profile["find"] == "system.profile"
    assert profile["filter"]["millis"] == {"$gte": 250} and profile["filter"]["ns"] == "shop.orders"
    assert set(profile["filter"]["ts"]) == {"$gte", "$lte"}
    assert abs(profile["filter"]["ts"]["$gte"] - since.replace(tzinfo=None)) < timedelta(milliseconds=1)
    assert dict(profile["sort"]) == {"ts": -1} and profile["limit"] == 7
    assert {c["$db"] for c in by_name["find"][1:]} == {"shop"}, "no ns: every user database's profiler"
    assert by_name["aggregate"][0]["pipeline"] == [{"$indexStats": {}}]
    assert by_name["listDatabases"][0]["nameOnly"] is True
    writes = {"insert", "update", "delete", "findAndModify", "drop", "create", "createIndexes", "killOp"}
    assert not writes & set(by_name), "LiveMongo only reads"


@pytest.mark.parametrize("mongod", [p.parent.name for p in sorted(INCIDENTS.glob("*/mongodb"))], indirect=True)
def test_every_recorded_incident_agrees_up_to_extended_json_spelling(mongod):
    """Files may spell values canonically (``{"$numberLong": "60"}``); live answers are relaxed."""
    live, fake, incident = mongod
    snapshot = SnapshotMongo(incident.path, incident.now)
    for method, call in _calls(incident, snapshot):
        expected = normalise_extended_json(getattr(snapshot, method)(**call))
        got = getattr(live, method)(**({**call, "until": incident.now} if method == "slow_queries" else call))
        assert got == expected, f"{method}({call})"


# --------------------------------------------------------------------- failures


@pytest.mark.parametrize("mongod", PARITY_INCIDENTS[:1], indirect=True)
def test_a_command_without_reply_times_out(mongod):
    live, fake, _ = mongod
    fake.hang = {"serverStatus", "find"}
    for call in (live.server_status, lambda: live.slow_queries(ns="shop.orders")):
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as info:
            call()
        elapsed = time.monotonic() - started
        assert info.value.source == "mongodb" and "within" in info.value.reason
        assert elapsed < 4 * TIMEOUT_MS / 1000, f"gave up after {elapsed:.2f} s"


@pytest.mark.parametrize("mongod", PARITY_INCIDENTS[:1], indirect=True)
def test_server_errors_become_source_unavailable(mongod):
    live, fake, _ = mongod
    fake.errors["serverStatus"] = (13, "Unauthorized", "not authorized on admin to execute command")
    with pytest.raises(SourceUnavailable, match="not authorised to run serverStatus"):
        live.server_status()
    fake.errors["currentOp"] = (50, "MaxTimeMSExpired", "operation exceeded time limit")
    with pytest.raises(SourceUnavailable, match=re.escape(f"exceeded maxTimeMS={TIMEOUT_MS}")):
        live.current_op()
    fake.errors["replSetGetStatus"] = (13, "Unauthorized", "not authorized")
    with pytest.raises(SourceUnavailable, match="not authorised"):
        live.repl_status()
    fake.errors["aggregate"] = (8000, "AtlasError", "CMD_NOT_ALLOWED: $indexStats")
    with pytest.raises(SourceUnavailable, match="AtlasError"):
        live.index_stats("shop.orders")


def test_unreachable_server_and_bad_url_are_source_unavailable():
    from tests.conftest import free_port

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="no server reachable"):
        LiveMongo(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", timeout_ms=200).server_status()
    assert time.monotonic() - started < 3
    with pytest.raises(SourceUnavailable, match="invalid connection settings"):
        LiveMongo("mysql://127.0.0.1:1/", timeout_ms=200).namespaces()
