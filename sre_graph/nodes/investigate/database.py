"""Database runbook: the profiler, in-progress operations, replication, connections, cache, storage."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sre_graph.nodes.investigate.common import STALE_AFTER, Investigation, ago
from sre_graph.nodes.investigate.logscan import log_signals
from sre_graph.nodes.investigate.signals import steady_since, volume_factor
from sre_graph.timeutil import iso, parse_time

if TYPE_CHECKING:
    from sre_graph.tools.mongodb import MongoPort

SLOW_MS = 100


def _filter_fields(command: dict[str, Any]) -> list[str]:
    for key in ("filter", "query", "q"):
        value = command.get(key)
        if isinstance(value, dict):
            return [k for k in value if not k.startswith("$")] or [
                k for clause in value.get("$and", []) if isinstance(clause, dict) for k in clause]
    for stage in command.get("pipeline") or []:
        if isinstance(stage, dict) and isinstance(stage.get("$match"), dict):
            return [k for k in stage["$match"] if not k.startswith("$")]
    return []


def _index_covers(indexes: list[dict[str, Any]], fields: list[str]) -> str | None:
    for index in indexes:
        keys = list((index.get("key") or (index.get("spec") or {}).get("key") or {}).keys())
        if keys and fields and keys[0] in fields:
            return index.get("name")
    return None


def _index_stats(ns: str) -> Callable[[MongoPort], list[dict[str, Any]]]:
    """The ``$indexStats`` call on one collection, for :meth:`Investigation.ask`."""
    return lambda port: port.index_stats(ns)


def _profiler(inv: Investigation) -> None:
    since = inv.alert_time - timedelta(hours=3)
    entries = inv.ask("mongodb", f"db.system.profile.find({{millis: {{$gte: {SLOW_MS}}}, ts: {{$gte: {iso(since)}}}}})",
                      lambda p: p.slow_queries(min_millis=SLOW_MS, since=since, limit=1000), []) or []
    groups: dict[tuple[str, str, tuple[str, ...]], list[dict]] = defaultdict(list)
    for entry in entries:
        command = entry.get("command") or {}
        fields = tuple(sorted(_filter_fields(command)))
        groups[(entry.get("ns", ""), str(entry.get("planSummary", "")), fields)].append(entry)
    for (ns, plan, fields), items in groups.items():
        docs = sum(float(e.get("docsExamined") or 0) for e in items)
        returned = sum(float(e.get("nreturned") or 0) for e in items)
        keys = sum(float(e.get("keysExamined") or 0) for e in items)
        millis = sorted(float(e.get("millis") or 0) for e in items)
        times = sorted(t for t in (parse_time(e.get("ts")) for e in items) if t)
        ratio = docs / max(returned, 1)
        in_window = [t for t in times if t >= inv.window_start]
        query = f"db.system.profile.find({{ns: '{ns}', millis: {{$gte: {SLOW_MS}}}}})"
        summary = (f"{len(items)} slow operations on {ns} ({plan or 'no plan'}), filter on "
                   f"{', '.join(fields) or 'no fields'}: median {millis[len(millis) // 2]:.0f} ms, "
                   f"docsExamined {docs:.0f} vs nreturned {returned:.0f} (×{ratio:.0f}), keysExamined {keys:.0f}")
        sample = json.dumps({k: items[-1].get(k) for k in ("op", "ns", "command", "planSummary", "docsExamined",
                                                           "keysExamined", "nreturned", "millis", "ts")},
                            default=str)[:800]
        ev = inv.add_evidence("mongodb", query, f"{plan}|{','.join(fields)}", summary, sample,
                              times[0] if times else None, times[-1] if times else None)
        if not in_window:
            continue
        scan = "COLLSCAN" in plan or (ratio >= 100 and docs >= 10_000 and keys < docs / 10)
        if not scan:
            if millis[len(millis) // 2] >= 1000:
                inv.propose("long_running_operation", f"Queries on {ns} take {millis[len(millis) // 2]:.0f} ms "
                            f"(median of {len(items)}) with plan {plan}.", [ev], 0.3, onset=in_window[0],
                            subject=ns, keywords=[ns.split(".", 1)[-1]])
            continue
        evidence = [ev]
        indexes = inv.ask("mongodb", f"db.{ns.split('.', 1)[-1]}.aggregate([{{$indexStats: {{}}}}]) on "
                          f"{ns.split('.', 1)[0]}", _index_stats(ns), []) or []
        covered = _index_covers(indexes, list(fields))
        if indexes:
            names = ", ".join(i.get("name", "?") for i in indexes)
            evidence.append(inv.add_evidence(
                "mongodb", f"$indexStats on {ns}", "indexes",
                f"Indexes on {ns}: {names}" + ("" if covered else f"; none leads with {', '.join(fields)}"),
                json.dumps([{"name": i.get("name"), "key": i.get("key"), "accesses": i.get("accesses")}
                            for i in indexes], default=str)[:800]))
        collection = ns.split(".", 1)[-1]
        apps = sorted({str(e.get("appName")) for e in items if e.get("appName")})
        weight = client_relevance(inv, apps)
        if collection in read_collections(inv):
            weight = 1.0  # a scan on data the alerted service reads competes with it, whoever runs the scan
        volume = min(len(in_window), 30) / 60
        confidence = (0.45 + volume + (0.1 if not covered and indexes else 0) + (0.1 if ratio >= 1000 else 0)) * weight
        steady = steady_since(times, inv.alert_time, inv.now)
        if steady:
            confidence *= 0.4
        onset = in_window[0]
        inv.propose("missing_index",
                    f"Queries on {ns} filtering on {', '.join(fields) or 'unindexed fields'} run as {plan or 'scans'}"
                    f": they examine {ratio:.0f} documents for each one returned "
                    f"({len(in_window)} slow operations since {iso(onset)}, median {millis[len(millis) // 2]:.0f} ms)"
                    + ("" if covered else "; no index covers the filter")
                    + (f"; issued by {', '.join(apps)}" if apps else "")
                    + (f"; at a steady rate since {iso(times[0])}, well before the alert: a background condition, "
                       "not what changed" if steady else "") + ".",
                    evidence, confidence, onset=onset, subject=ns, objects=[collection, *apps], steady=steady,
                    keywords=[collection, "COLLSCAN" if "COLLSCAN" in plan else plan, *fields[:2]],
                    remediation=[f"db.{collection}.createIndex({{{', '.join(f'{f}: 1' for f in fields)}}})"
                                 if fields else f"Add an index for the slow query on {ns}"],
                    explains=["upstream_timeout", "long_running_operation", "cache_pressure", "lock_contention",
                              "connection_exhaustion", "dependency_outage", "error_spike_after_deploy"])


def jobs_started_near(inv: Investigation, when: Any, slack: timedelta = timedelta(minutes=5)) -> list[tuple[str, str]]:
    """Batch pods (Jobs, CronJobs) that started within ``slack`` before ``when`` (or a minute after): a database
    operation that began then was most likely theirs. Returns (pod name, evidence id)."""
    found = []
    for pod in inv.pods():
        meta = pod.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        if not any(o.get("kind") in ("Job", "CronJob") for o in owners):
            continue
        start = parse_time((pod.get("status") or {}).get("startTime")) or parse_time(meta.get("creationTimestamp"))
        if start is None or not (when - slack <= start <= when + timedelta(minutes=1)):
            continue
        name = meta.get("name", "")
        phase = (pod.get("status") or {}).get("phase")
        ev = inv.add_evidence("kubernetes", f"kubectl get pods -n {meta.get('namespace')} {name} -o json", "job",
                              f"Job pod {meta.get('namespace')}/{name} started at {iso(start)} ({phase}), "
                              f"{(when - start).total_seconds():.0f} s before the operation began", "", start)
        found.append((name, ev))
    return found


WRITE_OPS = {"insert", "update", "remove", "delete", "findAndModify", "bulkWrite"}


def busiest_clients(inv: Investigation, *, writes_only: bool = False) -> list[tuple[str, int]]:
    """Applications with the most in-progress operations (``appName``, else the client address)."""
    ops = inv.ask("mongodb", "db.currentOp({active: true})", lambda p: p.current_op(), []) or []
    counts: dict[str, int] = {}
    for op in ops:
        if writes_only and op.get("op") not in WRITE_OPS:
            continue
        name = str(op.get("appName") or op.get("client") or "")
        if name:
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def read_collections(inv: Investigation) -> set[str]:
    """Collections the alerted service and what it calls read, from their database spans' statements."""
    if "read_collections" in inv._cache:
        return inv._cache["read_collections"]
    related = inv.related_services()
    found: set[str] = set()
    for row in inv.traces(start=inv.window_start):
        span = row.get("data") or {}
        if span.get("service.name") not in related or not span.get("db_statement"):
            continue
        try:
            statement = json.loads(str(span["db_statement"]))
        except ValueError:
            continue
        if isinstance(statement, dict) and statement:
            first = next(iter(statement.values()))
            if isinstance(first, str):
                found.add(first)
    inv._cache["read_collections"] = found
    return found


def client_relevance(inv: Investigation, apps: list[str]) -> float:
    """How close the database clients (``appName``) are to the alert; 0.8 when they are not named."""
    if not apps:
        return 0.8
    return max(inv.relevance(app) for app in apps)


def _current_ops(inv: Investigation) -> None:
    ops = inv.ask("mongodb", "db.currentOp({active: true})", lambda p: p.current_op(), []) or []
    if inv.available("mongodb"):
        longest = max((float(op.get("secs_running") or 0) for op in ops), default=0)
        inv.add_evidence("mongodb", "db.currentOp({active: true})", "summary",
                         f"{len(ops)} active operations, the longest running {longest:.0f} s, "
                         f"{sum(1 for op in ops if op.get('waitingForLock'))} waiting for a lock", "", inv.now,
                         healthy=True)
    waiting = [op for op in ops if op.get("waitingForLock")]
    long_ops = [op for op in ops if float(op.get("secs_running") or 0) >= 60 and not op.get("waitingForLock")]
    long_ops.sort(key=lambda op: -float(op.get("secs_running") or 0))
    for op in long_ops[:3]:
        secs = float(op.get("secs_running") or 0)
        started = inv.now - timedelta(seconds=secs)
        command = op.get("command") or {}
        desc = " ".join(str(v) for v in (op.get("appName"), op.get("client")) if v)
        fsync = "fsynclock" in str(op.get("desc", "")).lower() or bool(command.get("fsync") and command.get("lock"))
        kind = "fsyncLock" if fsync else next(iter(command), op.get("op") or op.get("desc") or "op")
        where = op.get("ns") or ("the whole server" if fsync or not op.get("ns") else "")
        label = f"{op.get('opid')} ({kind} on {where})"
        jobs = jobs_started_near(inv, started)
        job_names = [j for j, _ in jobs]
        ev = inv.add_evidence("mongodb", "db.currentOp({active: true, secs_running: {$gte: 60}})",
                              str(op.get("opid")), f"Operation {label} running for {secs:.0f} s, since {iso(started)}"
                              + (f", from {desc}" if desc else "") + ("; writes are blocked while the server is "
                                                                      "fsync-locked" if fsync else ""),
                              json.dumps({k: op.get(k) for k in ("opid", "op", "ns", "desc", "command", "secs_running",
                                                                 "planSummary", "locks", "client", "appName")},
                                         default=str)[:800], started)
        evidence = [ev] + [e for _, e in jobs]
        same_db = str(op.get("ns", "")).split(".")[0]
        blocked = [w for w in waiting if fsync or not op.get("ns") or w.get("ns", "").split(".")[0] == same_db]
        by = f"; it began as {', '.join(job_names)} started" if job_names else ""
        if blocked:
            evw = inv.add_evidence("mongodb", "db.currentOp({waitingForLock: true})", "waiting",
                                   f"{len(blocked)} operations waiting for a lock behind operation {op.get('opid')}",
                                   "\n".join(json.dumps({k: w.get(k) for k in ("opid", "op", "ns", "secs_running",
                                                                                "appName")}, default=str)
                                             for w in blocked[:5]), started)
            inv.propose("lock_contention", f"Operation {label}, running {secs:.0f} s, holds locks that "
                        f"{len(blocked)} other operations wait for" + by + ".", [*evidence, evw],
                        0.65 + min(len(blocked), 10) / 50, onset=started, subject=str(op.get("ns") or kind),
                        keywords=[str(op.get("ns", "")).split(".", 1)[-1], "waitingForLock", kind, *job_names],
                        objects=[*job_names, *(j.rsplit("-", 2)[0] for j in job_names)],
                        remediation=[(f"Stop {job_names[0]} and release the lock ("
                                      + ("db.fsyncUnlock()" if fsync else f"db.killOp({op.get('opid')})") + ")")
                                     if job_names else ("db.fsyncUnlock()" if fsync else
                                                        f"db.killOp({op.get('opid')}) if the operation is not needed")],
                        explains=["long_running_operation", "upstream_timeout", "connection_exhaustion",
                                  "dependency_outage", "replication_lag"])
        inv.propose("long_running_operation", f"Operation {label} has been running for {secs:.0f} s since "
                    f"{iso(started)}" + (f" ({op.get('planSummary')})" if op.get("planSummary") else "") + by + ".",
                    evidence, 0.45 + min(secs, 1800) / 6000 + (0.05 if blocked else 0), onset=started,
                    subject=str(op.get("ns") or kind), keywords=[str(op.get("ns", "")).split(".", 1)[-1], str(kind),
                                                                 *job_names],
                    objects=[*job_names, *(j.rsplit("-", 2)[0] for j in job_names)],
                    remediation=[f"db.killOp({op.get('opid')}) and add maxTimeMS to such operations"],
                    explains=["upstream_timeout", "cache_pressure", "replication_lag", "dependency_outage"])
    if waiting and not long_ops:
        ev = inv.add_evidence("mongodb", "db.currentOp({waitingForLock: true})", "waiting-only",
                              f"{len(waiting)} operations waiting for a lock",
                              "\n".join(json.dumps(w, default=str)[:200] for w in waiting[:5]))
        inv.propose("lock_contention", f"{len(waiting)} operations are waiting for locks on "
                    f"{', '.join(sorted({str(w.get('ns')) for w in waiting}))}.", [ev], 0.45 + len(waiting) / 100,
                    onset=inv.alert_time, subject=str(waiting[0].get("ns")),
                    keywords=["waitingForLock"], explains=["upstream_timeout"])


def _replication(inv: Investigation) -> None:
    status = inv.ask("mongodb", "rs.status()", lambda p: p.repl_status(), None)
    if not status or not status.get("members"):
        return
    members = status["members"]
    primary = next((m for m in members if m.get("stateStr") == "PRIMARY"), None)
    inv.add_evidence("mongodb", "rs.status()", "summary",
                     f"Replica set {status.get('set', '')}: " + ", ".join(
                         f"{m.get('name')} {m.get('stateStr')}" for m in members)
                     + (f"; primary elected {iso(parse_time(primary.get('electionDate')))}" if primary
                        and primary.get("electionDate") else ""), "", parse_time(status.get("date")), healthy=True)
    excerpt = "\n".join(f"{m.get('name')} {m.get('stateStr')} optime {iso(parse_time(m.get('optimeDate')))} "
                        f"health {m.get('health')}" + (f" electionDate {iso(parse_time(m.get('electionDate')))}"
                                                       if m.get("electionDate") else "") for m in members)
    if primary is not None:
        election = parse_time(primary.get("electionDate"))
        if election and inv.alert_time - timedelta(hours=2) <= election <= inv.now:
            ev = inv.add_evidence("mongodb", "rs.status()", "election",
                                  f"{primary.get('name')} became PRIMARY at {iso(election)}", excerpt, election)
            inv.propose("failover", f"The replica set failed over: {primary.get('name')} was elected primary at "
                        f"{iso(election)}, {ago(election, inv.alert_time)} before the alert.", [ev], 0.7,
                        onset=election, subject=str(status.get("set", "")), keywords=["PRIMARY", "election"],
                        explains=["connection_refused", "upstream_timeout", "dependency_outage"])
        primary_time = parse_time(primary.get("optimeDate"))
        for member in members:
            if member is primary or member.get("stateStr") != "SECONDARY" or primary_time is None:
                continue
            optime = parse_time(member.get("optimeDate"))
            if optime is None:
                continue
            lag = (primary_time - optime).total_seconds()
            if lag < 30:
                continue
            ev = inv.add_evidence("mongodb", "rs.status()", f"lag:{member.get('name')}",
                                  f"Secondary {member.get('name')} is {lag:.0f} s behind the primary "
                                  f"(optime {iso(optime)} vs {iso(primary_time)})", excerpt, optime)
            writers = busiest_clients(inv, writes_only=True)[:2]
            evidence = [ev]
            if writers:
                evidence.append(inv.add_evidence(
                    "mongodb", "db.currentOp({active: true, op: {$in: writes}})", "writers",
                    "Writes in progress on the primary by " + ", ".join(f"{n} ({c} ops)" for n, c in writers), "",
                    inv.now))
            inv.propose("replication_lag", f"Secondary {member.get('name')} lags the primary by {lag:.0f} s"
                        + (f"; the primary is busy with writes from {', '.join(n for n, _ in writers)}"
                           if writers else "") + ".",
                        evidence, min(0.5 + lag / 600, 0.9), onset=optime, subject=str(member.get("name")),
                        keywords=[str(member.get("name")).split(":")[0], "lag", *[n for n, _ in writers]],
                        objects=[str(member.get("name")).split(":")[0], *[n for n, _ in writers]],
                        remediation=[f"Throttle or pause the bulk writer ({writers[0][0]}) until the secondaries "
                                     "catch up" if writers else "Reduce the write load until the secondaries catch up",
                                     "Read from the primary (or with maxStalenessSeconds) while the secondaries lag"],
                        explains=["upstream_timeout", "dependency_outage", "error_spike_after_deploy"])
    elif any(m.get("stateStr") in ("SECONDARY", "RECOVERING") for m in members):
        ev = inv.add_evidence("mongodb", "rs.status()", "no-primary", "The replica set has no PRIMARY", excerpt)
        inv.propose("failover", "The replica set has no primary member.", [ev], 0.7, onset=inv.alert_time,
                    subject=str(status.get("set", "")), keywords=["PRIMARY"],
                    explains=["connection_refused", "upstream_timeout", "dependency_outage"])


def _server_status(inv: Investigation) -> None:
    status = inv.ask("mongodb", "db.serverStatus()", lambda p: p.server_status(), {}) or {}
    if not status:
        return
    conns = status.get("connections") or {}
    current, available = float(conns.get("current") or 0), float(conns.get("available") or 0)
    queue = ((status.get("globalLock") or {}).get("currentQueue") or {})
    inv.add_evidence("mongodb", "db.serverStatus()", "summary",
                     f"MongoDB {status.get('host', '')} up {float(status.get('uptime') or 0) / 3600:.0f} h: "
                     f"{current:.0f} connections ({available:.0f} available), global lock queue "
                     f"{queue.get('total', 0)}, asserts {json.dumps(status.get('asserts') or {})[:120]}",
                     "", parse_time(status.get("localTime")), healthy=True)
    if current and current / max(current + available, 1) >= 0.9:
        ev = inv.add_evidence("mongodb", "db.serverStatus().connections", "connections",
                              f"{current:.0f} connections open, {available:.0f} available "
                              f"({current / (current + available):.0%} of the limit)", json.dumps(conns)[:400],
                              parse_time(status.get("localTime")))
        clients = busiest_clients(inv)[:3]
        inv.propose("connection_exhaustion", f"MongoDB has {current:.0f} connections open with only "
                    f"{available:.0f} left ({current / (current + available):.0%} of its limit)"
                    + (f"; the busiest clients are {', '.join(f'{n} ({c} ops)' for n, c in clients)}"
                       if clients else "") + ".", [ev], 0.7,
                    onset=None, subject=str(status.get("host", "mongodb")),
                    keywords=["connections", *[n for n, _ in clients[:1]]],
                    objects=[str(status.get("host", "mongodb")).split(":")[0], *[n for n, _ in clients[:1]]],
                    remediation=[f"Cap the connection pool (maxPoolSize) of {clients[0][0]} so that replicas × pool "
                                 "size stays under the server's limit" if clients else
                                 "Cap the clients' connection pools (maxPoolSize)"],
                    explains=["upstream_timeout", "connection_refused", "dependency_outage", "probe_failure",
                              "crash_loop"])
    cache = (status.get("wiredTiger") or {}).get("cache") or {}
    size = float(cache.get("maximum bytes configured") or 0)
    used = float(cache.get("bytes currently in the cache") or 0)
    dirty = float(cache.get("tracked dirty bytes in the cache") or 0)
    app_evict = float(cache.get("pages evicted by application threads") or 0)
    if size and (used / size >= 0.95 or dirty / size >= 0.2) and (app_evict > 0 or dirty / size >= 0.2):
        ev = inv.add_evidence("mongodb", "db.serverStatus().wiredTiger.cache", "cache",
                              f"WiredTiger cache {used / size:.0%} full, dirty {dirty / size:.0%}, "
                              f"{app_evict:.0f} pages evicted by application threads",
                              json.dumps({k: cache.get(k) for k in (
                                  "maximum bytes configured", "bytes currently in the cache",
                                  "tracked dirty bytes in the cache", "pages evicted by application threads")}))
        inv.propose("cache_pressure", f"The WiredTiger cache is {used / size:.0%} full ({dirty / size:.0%} dirty) "
                    f"and application threads are evicting pages ({app_evict:.0f}).", [ev], 0.55,
                    subject=str(status.get("host", "mongodb")), keywords=["cache", "WiredTiger"],
                    explains=["upstream_timeout", "long_running_operation", "dependency_outage"])
    queue = ((status.get("globalLock") or {}).get("currentQueue") or {})
    queued = float(queue.get("total") or 0)
    if queued >= 20:
        ev = inv.add_evidence("mongodb", "db.serverStatus().globalLock", "queue",
                              f"{queued:.0f} operations queued for the global lock "
                              f"(readers {queue.get('readers')}, writers {queue.get('writers')})",
                              json.dumps(status.get("globalLock"), default=str)[:400])
        inv.propose("lock_contention", f"{queued:.0f} operations are queued on MongoDB's global lock.", [ev], 0.4,
                    subject=str(status.get("host", "mongodb")), keywords=["lock"], explains=["upstream_timeout"])


def _client_logs(inv: Investigation) -> None:
    """What the database's clients log: pool exhaustion, primary changes, full disks, time limits."""
    for signal in log_signals(inv):
        sig = signal.group.signature
        if sig.name not in ("pool", "failover", "disk", "maxtime", "lock") or signal.group.count < 2:
            continue
        if signal.chronic or (signal.group.last and signal.group.last < inv.alert_time - STALE_AFTER):
            continue
        base = {"pool": 0.45, "failover": 0.4, "disk": 0.65, "maxtime": 0.3, "lock": 0.35}[sig.name]
        weight = inv.relevance(signal.group.service)
        inv.propose(sig.root_cause, f"{signal.group.service} logged {signal.group.count} lines with {sig.label} "
                    f"since {iso(signal.group.first)}: {signal.group.samples[0][:160]}", [signal.evidence_id],
                    (base + min(signal.group.count, 20) / 100) * weight * volume_factor(signal.group.count),
                    onset=signal.group.first,
                    subject=signal.group.target or signal.group.service,
                    keywords=[signal.group.service], explains=["upstream_timeout", "dependency_outage"])


STEPS = (_profiler, _current_ops, _replication, _server_status, _client_logs)
"""The runbook: each step reads one kind of signal."""
