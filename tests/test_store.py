"""The incident store: one contract for SQLite (a real file) and MongoDB (mongomock), the commands sent on the wire.

Data semantics run against both backends; SQLite is also stormed from threads and from two
connections; MongoStore's commands are read off a wire-protocol server (mockupdb) that pymongo
really talks to.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from mockupdb import Matcher, MockupDB
from pymongo.errors import ServerSelectionTimeoutError

from sre_graph.models import Alert, Report, Severity
from sre_graph.server.store import (
    EVENT_TTL,
    Incident,
    IncidentExists,
    IncidentNotFound,
    IncidentStore,
    MongoStore,
    OpenIncidentExists,
    SQLiteStore,
    alert_record,
    now_ms,
    open_store,
)
from sre_graph.settings import Settings

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT_MS = 1500


def make_alert(name: str = "HighErrorRate", service: str = "orders-api", *, n: int = 0,
               status: str = "firing", fingerprint: str = "") -> Alert:
    """A parsed alert with dotted label keys (as SigNoz sends them) and a timestamp."""
    return Alert(alert_id=f"{name}-{n}", service_name=service, severity=Severity.high, status=status,
                 timestamp=T0 + timedelta(seconds=n), message="5xx above 5%", fingerprint=fingerprint,
                 labels={"alertname": name, "k8s.namespace.name": "shop", "n": str(n)},
                 annotations={"summary": "errors <up> & climbing"})


def make_incident(alert: Alert | None = None, **fields: Any) -> Incident:
    """An incident opened by ``alert`` (status ``investigating`` unless given)."""
    return Incident.from_alert(alert or make_alert(), **fields)


@pytest.fixture(params=["sqlite", "mongomock"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentStore]:
    """Each backend in turn: SQLite on a temporary file, MongoStore over mongomock."""
    backend: IncidentStore
    if request.param == "sqlite":
        backend = SQLiteStore(tmp_path / "sub" / "incidents.db")
    else:
        backend = MongoStore(mongomock.MongoClient(), db="sre_graph_test")
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def real_report() -> Report:
    """The report of a real run over a recorded incident."""
    from sre_graph.runner import investigate

    report = investigate(incident_dir=REPO / "evals" / "incidents" / "net-orders-inventory-netpol")
    assert report is not None
    return report


# --------------------------------------------------------------------- the contract, on both backends


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, IncidentStore)


def test_create_then_get_round_trips_every_field(store, real_report):
    alert = make_alert()
    incident = make_incident(alert, slack={"channel": "C1", "thread_ts": "1.2"})
    incident.report = real_report.model_dump(mode="json")
    incident.tokens = {"prompt": 10, "completion": 5, "total": 15, "cost": 0.25}
    assert store.create(incident) == incident
    got = store.get(incident.incident_id)
    assert got == incident
    assert got.alerts[0]["labels"]["k8s.namespace.name"] == "shop", "dotted label keys survive"
    assert Alert.model_validate({k: v for k, v in got.alerts[0].items() if k != "received_at"}) == alert
    assert Report.model_validate(got.report) == real_report
    assert got.alertname == "HighErrorRate" and got.status == "investigating" and got.namespace == "shop"
    assert got.created_at.tzinfo is not None and got.created_at.microsecond % 1000 == 0
    assert store.get("inc-missing") is None


def test_defaults_for_a_bare_incident(store):
    incident = Incident(fingerprint="fp", service="svc", severity="low", priority="P3", title="t")
    store.create(incident)
    got = store.get(incident.incident_id)
    assert got.status == "open" and got.alerts == [] and got.timeline == [] and got.report is None
    assert got.tokens == {"prompt": 0, "completion": 0, "total": 0, "cost": 0.0}
    assert got.updated_at == got.created_at and got.incident_id.startswith("inc-") and got.analysis_id


def test_a_taken_id_is_refused(store):
    incident = make_incident()
    store.create(incident)
    twin = make_incident(make_alert(fingerprint="other"), incident_id=incident.incident_id)
    with pytest.raises(IncidentExists) as info:
        store.create(twin)
    assert info.value.incident_id == incident.incident_id


def test_one_active_incident_per_fingerprint(store):
    first = store.create(make_incident())
    with pytest.raises(OpenIncidentExists) as info:
        store.create(make_incident())
    assert info.value.incident_id == first.incident_id
    store.create(make_incident(status="resolved"))  # inactive ones may repeat the fingerprint
    store.set_status(first.incident_id, "resolved")
    second = store.create(make_incident())
    assert store.find_open(first.fingerprint).incident_id == second.incident_id
    with pytest.raises(OpenIncidentExists) as info:
        store.set_status(first.incident_id, "open")  # reopening would make two
    assert info.value.incident_id == second.incident_id
    assert store.get(first.incident_id).status == "resolved"


def test_find_open_by_fingerprint_ignores_finished_incidents(store):
    alert = make_alert()
    assert store.find_open(alert.fingerprint) is None
    incident = store.create(make_incident(alert))
    assert store.find_open(alert.fingerprint).incident_id == incident.incident_id
    store.set_status(incident.incident_id, "open")
    assert store.find_open(alert.fingerprint).incident_id == incident.incident_id
    store.set_status(incident.incident_id, "failed", error="boom")
    assert store.find_open(alert.fingerprint) is None
    assert store.find_open("unknown-fingerprint") is None
    assert store.find_open() is None


def test_find_open_by_alertname_and_service_within_a_window(store):
    old = store.create(make_incident(make_alert(n=1), created_at=now_ms() - timedelta(hours=2)))
    assert store.find_open(None, "HighErrorRate", "orders-api").incident_id == old.incident_id
    assert store.find_open(None, "HighErrorRate", "orders-api", within=timedelta(minutes=30)) is None
    recent = store.create(make_incident(make_alert(n=2), created_at=now_ms() - timedelta(minutes=5)))
    got = store.find_open("no-such-fingerprint", "HighErrorRate", "orders-api", timedelta(minutes=30))
    assert got.incident_id == recent.incident_id, "falls back to name and service, newest first"
    assert store.find_open(None, "HighErrorRate", "payments", timedelta(minutes=30)) is None
    assert store.find_open(None, "OtherAlert", "orders-api", timedelta(minutes=30)) is None
    assert store.find_open(old.fingerprint, "OtherAlert", "x").incident_id == old.incident_id, "fingerprint first"


def test_add_alert_appends_with_received_at_and_an_optional_event(store):
    incident = store.create(make_incident())
    time.sleep(0.002)
    store.add_alert(incident.incident_id, alert_record(make_alert(n=1)))
    store.add_alert(incident.incident_id, make_alert(n=2).model_dump(), event="second alert")  # python-mode dump
    store.add_alert(incident.incident_id, {"alert_id": "x", "received_at": "2025-01-01T00:00:00.000Z"})
    got = store.get(incident.incident_id)
    assert [a["alert_id"] for a in got.alerts] == ["HighErrorRate-0", "HighErrorRate-1", "HighErrorRate-2", "x"]
    assert all(a["received_at"] for a in got.alerts)
    assert got.alerts[2]["timestamp"] == "2025-03-01T12:00:02Z", "datetimes are stored as RFC 3339 strings"
    assert got.alerts[3]["received_at"] == "2025-01-01T00:00:00.000Z", "a given received_at is kept"
    assert [e["event"] for e in got.timeline] == ["alert received: HighErrorRate on orders-api", "second alert"]
    assert got.updated_at > incident.updated_at


def test_set_status_returns_the_result_and_records_the_change(store):
    incident = store.create(make_incident())
    failed = store.set_status(incident.incident_id, "failed", error="model endpoint unreachable")
    assert failed.status == "failed" and failed.error == "model endpoint unreachable"
    assert failed.timeline[-1]["event"] == "status: failed (model endpoint unreachable)"
    assert failed == store.get(incident.incident_id)
    retried = store.set_status(incident.incident_id, "investigating", event="retry requested by @oncall")
    assert retried.status == "investigating" and retried.error is None, "a new status clears the error"
    assert retried.timeline[-1]["event"] == "retry requested by @oncall"
    stamps = [e["timestamp"] for e in retried.timeline]
    assert stamps == sorted(stamps) and all(s.endswith("Z") for s in stamps)


def test_set_report_stores_report_tokens_and_a_timeline_entry(store, real_report):
    incident = store.create(make_incident())
    store.set_report(incident.incident_id, real_report.model_dump(mode="json"), tokens={"prompt": 1200, "total": 1500})
    got = store.get(incident.incident_id)
    assert Report.model_validate(got.report) == real_report
    assert got.tokens == {"prompt": 1200, "completion": 0, "total": 1500, "cost": 0.0}
    assert got.timeline[-1]["event"].startswith(f"report ready: {real_report.root_cause_title}")
    assert got.status == "investigating", "the caller decides the status"
    store.set_report(incident.incident_id, {"root_cause": "unknown"})
    assert store.get(incident.incident_id).tokens["total"] == 1500, "tokens=None keeps the usage"


def test_timeline_and_slack(store):
    incident = store.create(make_incident())
    store.append_timeline(incident.incident_id, "posted to Slack")
    store.set_slack(incident.incident_id, "C0123", "1712345678.000100")
    got = store.get(incident.incident_id)
    assert got.timeline[-1]["event"] == "posted to Slack"
    assert got.slack == {"channel": "C0123", "thread_ts": "1712345678.000100"}


@pytest.mark.parametrize("call", [
    lambda s: s.add_alert("inc-nope", {"alert_id": "a"}),
    lambda s: s.set_status("inc-nope", "resolved"),
    lambda s: s.set_status("inc-nope", "open"),
    lambda s: s.set_report("inc-nope", {}),
    lambda s: s.append_timeline("inc-nope", "x"),
    lambda s: s.set_slack("inc-nope", "C", "1.0"),
], ids=["add_alert", "set_status-resolved", "set_status-open", "set_report", "append_timeline", "set_slack"])
def test_mutators_reject_an_unknown_id(store, call):
    with pytest.raises(IncidentNotFound) as info:
        call(store)
    assert info.value.incident_id == "inc-nope" and "inc-nope" in str(info.value)


def test_list_filters_and_orders_newest_first(store):
    made = []
    for i in range(6):
        incident = make_incident(make_alert(n=i, service="orders-api" if i % 2 else "payments", fingerprint=f"f{i}"),
                                 created_at=T0 + timedelta(minutes=i), status="open" if i < 4 else "resolved")
        made.append(store.create(incident).incident_id)
    assert [i.incident_id for i in store.list()] == made[::-1]
    assert [i.incident_id for i in store.list(limit=2)] == [made[5], made[4]]
    assert [i.incident_id for i in store.list(status="resolved")] == [made[5], made[4]]
    assert [i.incident_id for i in store.list(service="orders-api")] == [made[5], made[3], made[1]]
    assert [i.incident_id for i in store.list(status="open", service="payments")] == [made[2], made[0]]
    window = store.list(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4))
    assert [i.incident_id for i in window] == [made[3], made[2], made[1]], "since inclusive, until exclusive"
    naive = store.list(since=(T0 + timedelta(minutes=5)).replace(tzinfo=None))
    assert [i.incident_id for i in naive] == [made[5]], "naive datetimes are UTC"
    assert store.list(service="nobody") == []
    for bad in ({"limit": 0}, {"limit": 1001}, {"status": "closed"}):
        with pytest.raises(ValueError):
            store.list(**bad)


def test_seen_event_records_once(store):
    assert store.seen_event("Ev01") is False
    assert store.seen_event("Ev01") is True
    assert store.seen_event("Ev01") is True
    assert store.seen_event("Ev02") is False


def test_open_or_join_starts_once_and_groups_the_rest(store):
    first, created = store.open_or_join(make_incident(make_alert(n=0, fingerprint="fp"),
                                                      created_at=now_ms() - timedelta(minutes=2)))
    assert created
    joined, created = store.open_or_join(make_incident(make_alert(n=1, fingerprint="fp")))
    assert not created and joined.incident_id == first.incident_id
    assert [a["alert_id"] for a in joined.alerts] == ["HighErrorRate-0", "HighErrorRate-1"]
    assert joined.timeline[-1]["event"] == "alert joined: HighErrorRate (firing)"
    other = make_incident(make_alert(n=2, fingerprint="different"), created_at=now_ms() - timedelta(minutes=1))
    assert store.open_or_join(other)[1], "another fingerprint without a window opens its own incident"
    grouped, created = store.open_or_join(make_incident(make_alert(n=3, fingerprint="third")),
                                          within=timedelta(minutes=10))
    assert not created and grouped.incident_id == other.incident_id, "same name and service: the newest"
    store.set_status(first.incident_id, "resolved")
    store.set_status(other.incident_id, "resolved")
    assert store.open_or_join(make_incident(make_alert(n=4, fingerprint="fp")))[1], "a resolved one is not joined"


def test_from_alert_builds_the_incident_fields():
    alert = make_alert()
    incident = Incident.from_alert(alert, received_at=T0, incident_id="inc-x")
    assert (incident.incident_id, incident.fingerprint, incident.service, incident.namespace) == (
        "inc-x", alert.fingerprint, "orders-api", "shop")
    assert (incident.severity, incident.priority, incident.title) == ("high", "P1", "HighErrorRate on orders-api")
    assert incident.created_at == T0 and incident.alerts[0]["received_at"] == "2025-03-01T12:00:00.000Z"
    assert incident.timeline == [{"timestamp": "2025-03-01T12:00:00.000Z",
                                  "event": "alert received: HighErrorRate on orders-api"}]


# --------------------------------------------------------------------- SQLite specifics


def test_sqlite_loses_no_alert_under_concurrency(tmp_path):
    store = SQLiteStore(tmp_path / "incidents.db")
    ids = [store.create(make_incident(make_alert(fingerprint=f"fp-{i}"))).incident_id for i in range(50)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for n in range(k, 1000, 8):
                store.add_alert(ids[n % 50], {"alert_id": f"a-{n}"}, event=f"alert {n}" if n % 3 == 0 else None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = [a["alert_id"] for i in ids for a in store.get(i).alerts if a["alert_id"].startswith("a-")]
    assert sorted(stored) == sorted(f"a-{n}" for n in range(1000))
    for i, incident_id in enumerate(ids):
        incident = store.get(incident_id)
        assert len(incident.alerts) == 1 + 20
        assert len(incident.timeline) == 1 + sum(1 for n in range(i, 1000, 50) if n % 3 == 0)
    store.close()


def test_sqlite_storm_from_two_connections_opens_each_incident_once(tmp_path):
    """1,000 alerts with 50 fingerprints, from 8 threads over two connections (as two processes would)."""
    path = tmp_path / "incidents.db"
    stores = [SQLiteStore(path), SQLiteStore(path)]
    created: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        store = stores[k % 2]
        try:
            for n in range(k, 1000, 8):
                incident, new = store.open_or_join(make_incident(make_alert(n=n, fingerprint=f"fp-{n % 50}")))
                if new:
                    with lock:
                        created.append(incident.incident_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(created) == 50
    incidents = stores[0].list(limit=1000)
    assert len(incidents) == 50 and {i.incident_id for i in incidents} == set(created)
    assert sum(len(i.alerts) for i in incidents) == 1000
    assert all(len(i.alerts) == 20 for i in incidents)
    for store in stores:
        store.close()


def test_sqlite_file_persists_uses_wal_and_indexes(tmp_path):
    path = tmp_path / "deep" / "incidents.db"
    with SQLiteStore(path) as store:
        incident = store.create(make_incident())
        store.seen_event("Ev1")
    with SQLiteStore(path) as store:
        assert store.get(incident.incident_id) == incident
        assert store.seen_event("Ev1") is True
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"incidents_status_created", "incidents_service_created", "incidents_created",
                "incidents_fingerprint_status", "incidents_one_active_per_fingerprint"} <= indexes
        plan = " ".join(str(r[-1]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM incidents WHERE status = 'open' ORDER BY created_at DESC LIMIT 10"))
        assert "incidents_status_created" in plan, plan
        plan = " ".join(str(r[-1]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM incidents WHERE fingerprint = 'f' AND status IN ('open', 'failed')"))
        assert "fingerprint" in plan, plan
    finally:
        conn.close()


def test_sqlite_forgets_event_ids_after_the_ttl(tmp_path):
    with SQLiteStore(tmp_path / "i.db", event_ttl=timedelta(milliseconds=50)) as store:
        assert store.seen_event("Ev1") is False
        assert store.seen_event("Ev1") is True
        time.sleep(0.1)
        assert store.seen_event("Ev1") is False


def test_open_store_defaults_to_sqlite_at_the_configured_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store(Settings())
    try:
        assert isinstance(store, SQLiteStore) and (tmp_path / ".sre-graph" / "incidents.db").is_file()
    finally:
        store.close()
    monkeypatch.setenv("SRE_GRAPH_STORE_PATH", str(tmp_path / "elsewhere" / "x.db"))
    store = open_store()
    try:
        assert isinstance(store, SQLiteStore) and (tmp_path / "elsewhere" / "x.db").is_file()
    finally:
        store.close()


# --------------------------------------------------------------------- MongoStore on the wire (mockupdb)


HANDSHAKE = {"ismaster", "hello", "ping", "endsessions", "killcursors", "buildinfo"}


class FakeMongod:
    """Records the commands MongoStore sends and answers them as mongod would, keeping just enough state."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.events: set[str] = set()

    def respond(self, request: Any) -> Any:
        doc = dict(request.doc)
        name = next(iter(doc))
        if name.lower() in ("ismaster", "hello"):
            return False  # auto_ismaster answers
        if name.lower() in HANDSHAKE:
            return request.ok()
        self.commands.append(doc)
        if name == "createIndexes":
            return request.ok(createdCollectionAutomatically=True, numIndexesBefore=1,
                              numIndexesAfter=1 + len(doc["indexes"]))
        if name == "insert" and doc["insert"] == "slack_events":
            event_id = doc["documents"][0]["event_id"]
            if event_id in self.events:
                return request.ok(n=0, writeErrors=[{"index": 0, "code": 11000, "errmsg": (
                    f"E11000 duplicate key error collection: sre_graph.slack_events index: event_id_unique dup key: "
                    f"{{ event_id: \"{event_id}\" }}")}])
            self.events.add(event_id)
            return request.ok(n=1)
        if name == "insert":
            for document in doc["documents"]:
                self.incidents[document["incident_id"]] = dict(document)
            return request.ok(n=len(doc["documents"]))
        if name == "update":
            found = sum(1 for u in doc["updates"] if u["q"].get("incident_id") in self.incidents)
            return request.ok(n=found, nModified=found)
        if name == "findAndModify":
            stored = self.incidents.get(doc["query"]["incident_id"])
            if stored is None:
                return request.ok(value=None, lastErrorObject={"n": 0, "updatedExisting": False})
            stored.update(doc["update"].get("$set", {}))
            for key, value in doc["update"].get("$push", {}).items():
                stored[key] = [*stored.get(key, []), value]
            for key in doc["update"].get("$unset", {}):
                stored.pop(key, None)
            value = {k: v for k, v in stored.items() if k not in ("_id", "open_fingerprint")}
            return request.ok(value=value, lastErrorObject={"n": 1, "updatedExisting": True})
        return request.command_err(code=59, errmsg=f"no such command: '{name}'", codeName="CommandNotFound")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if next(iter(c)) == name]


@pytest.fixture(scope="module")
def mongod() -> Iterator[tuple[MockupDB, dict[str, FakeMongod]]]:
    """One wire-protocol MongoDB on loopback for the module; each test scripts it with a fresh fake."""
    script: dict[str, FakeMongod] = {}
    server = MockupDB(auto_ismaster={"maxWireVersion": 21})
    server.autoresponds(Matcher(), lambda request: script["fake"].respond(request))
    server.run()
    try:
        yield server, script
    finally:
        server.stop()


@pytest.fixture
def wire(mongod: tuple[MockupDB, dict[str, FakeMongod]]) -> tuple[MockupDB, FakeMongod]:
    """The wire-protocol server, answering from a :class:`FakeMongod` that starts empty."""
    server, script = mongod
    script["fake"] = FakeMongod()
    return server, script["fake"]


def test_mongo_creates_its_indexes_on_startup(wire):
    server, fake = wire
    store = MongoStore(server.uri, timeout_ms=TIMEOUT_MS)
    store.close()
    by_collection = {c["createIndexes"]: c for c in fake.named("createIndexes")}
    assert set(by_collection) == {"incidents", "slack_events"}
    assert all(c["$db"] == "sre_graph" for c in by_collection.values())
    incidents = {tuple(dict(i["key"]).items()): i for i in by_collection["incidents"]["indexes"]}
    assert incidents[(("incident_id", 1),)]["unique"] is True
    for key in ((("fingerprint", 1), ("status", 1)), (("service", 1), ("created_at", -1)),
                (("status", 1), ("created_at", -1))):
        assert key in incidents, key
    active = incidents[(("open_fingerprint", 1),)]
    assert active["unique"] is True and active["sparse"] is True
    events = {tuple(dict(i["key"]).items()): i for i in by_collection["slack_events"]["indexes"]}
    assert events[(("event_id", 1),)]["unique"] is True
    assert events[(("seen_at", 1),)]["expireAfterSeconds"] == int(EVENT_TTL.total_seconds())


def test_mongo_sends_insert_push_find_and_modify_and_detects_duplicate_events(wire):
    server, fake = wire
    store = MongoStore(f"{server.uri}/ops", timeout_ms=TIMEOUT_MS)
    incident = make_incident()
    store.create(incident)
    store.add_alert(incident.incident_id, alert_record(make_alert(n=1)), event="joined")
    resolved = store.set_status(incident.incident_id, "resolved", event="alert resolved")
    assert store.seen_event("Ev0001") is False
    assert store.seen_event("Ev0001") is True, "a duplicate key means a Slack retry"
    store.close()

    assert {c["$db"] for c in fake.commands} == {"ops"}, "the URL's database"
    (insert,) = [c for c in fake.named("insert") if c["insert"] == "incidents"]
    (document,) = insert["documents"]
    assert isinstance(document["_id"], ObjectId) and document["incident_id"] == incident.incident_id
    assert document["status"] == "investigating" and document["open_fingerprint"] == incident.fingerprint
    assert isinstance(document["created_at"], datetime), "a BSON date, so range queries use the index"
    assert document["alerts"][0]["alert_id"] == "HighErrorRate-0"

    (update,) = fake.named("update")
    assert update["update"] == "incidents"
    (statement,) = update["updates"]
    assert dict(statement["q"]) == {"incident_id": incident.incident_id}
    assert not statement.get("upsert") and not statement.get("multi")
    push = statement["u"]["$push"]
    assert push["alerts"]["alert_id"] == "HighErrorRate-1" and push["alerts"]["received_at"]
    assert push["timeline"]["event"] == "joined"
    assert set(statement["u"]["$set"]) == {"updated_at"}

    (modify,) = fake.named("findAndModify")
    assert modify["findAndModify"] == "incidents" and dict(modify["query"]) == {"incident_id": incident.incident_id}
    assert modify["new"] is True and not modify.get("upsert")
    assert modify["update"]["$set"]["status"] == "resolved" and modify["update"]["$set"]["error"] is None
    assert modify["update"]["$push"]["timeline"]["event"] == "alert resolved"
    assert dict(modify["update"]["$unset"]) == {"open_fingerprint": ""}, "a resolved incident frees its fingerprint"
    assert resolved.status == "resolved" and resolved.incident_id == incident.incident_id
    assert [a["alert_id"] for a in resolved.alerts] == ["HighErrorRate-0"]

    events = [c for c in fake.named("insert") if c["insert"] == "slack_events"]
    assert [c["documents"][0]["event_id"] for c in events] == ["Ev0001", "Ev0001"]
    assert isinstance(events[0]["documents"][0]["seen_at"], datetime)


def test_mongo_reports_an_unknown_incident_from_the_write_results(wire):
    server, fake = wire
    store = MongoStore(server.uri, timeout_ms=TIMEOUT_MS)
    try:
        with pytest.raises(IncidentNotFound):
            store.add_alert("inc-nope", {"alert_id": "a"})
        with pytest.raises(IncidentNotFound):
            store.set_status("inc-nope", "failed", error="x")
    finally:
        store.close()
    assert [next(iter(c)) for c in fake.commands if "createIndexes" not in c] == ["update", "findAndModify"]


def test_open_store_picks_mongodb_when_the_url_is_set(wire, monkeypatch):
    server, fake = wire
    monkeypatch.setenv("SRE_GRAPH_MONGODB_URL", server.uri)
    store = open_store()
    try:
        assert isinstance(store, MongoStore) and store.db.name == "sre_graph"
    finally:
        store.close()
    assert len(fake.named("createIndexes")) == 2


def test_mongo_unreachable_fails_within_the_timeout():
    from tests.conftest import free_port

    started = time.monotonic()
    with pytest.raises(ServerSelectionTimeoutError):
        MongoStore(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", timeout_ms=300)
    assert time.monotonic() - started < 3
