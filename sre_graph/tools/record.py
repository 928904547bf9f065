"""Record: write an incident folder from live sources, so a real incident becomes a replayable eval case.

The folder follows ``shared/INCIDENT_FORMAT.md``: each source's data in its native shape, the alert as
it arrived, and an ``incident.yaml`` whose ``expected`` block the user fills in once the root cause is
known. Everything recorded passes through redaction first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from sre_graph.models import Alert
from sre_graph.nodes.classify import classify_rules
from sre_graph.timeutil import iso
from sre_graph.tools.base import Sources, SourceUnavailable
from sre_graph.tools.kubernetes import KINDS

NAMESPACED = [k for k in KINDS if k != "nodes"]


def _scopes(namespaces: list[str]) -> list[str | None]:
    """The namespaces to read one by one, or ``[None]`` (all namespaces at once) when none are given."""
    return [*namespaces] or [None]


def _dump_list(path: Path, items: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1, default=str))


def _jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, default=str) + "\n")
            count += 1
    return count


def record_incident(
    alert_payload: dict[str, Any],
    alert: Alert,
    out: Path,
    sources: Sources,
    *,
    namespaces: list[str] | None = None,
    window: timedelta = timedelta(hours=3),
    log_tail: int = 2000,
) -> dict[str, Any]:
    """Write the incident folder for ``alert`` into ``out``; return a summary of what was recorded.

    Args:
        alert_payload: The alert exactly as it arrived (written as ``alert.json``).
        alert: The parsed alert (its namespace, service and start time scope the recording).
        out: The folder to write (created; must be empty or absent).
        sources: Live (or any) ports, already redacted.
        namespaces: Kubernetes namespaces to record; the alert's namespace by default.
        window: How far before the alert to record logs, traces, metrics and the profiler.
        log_tail: Lines per container log.
    """
    from sre_graph.context import redacted

    sources = redacted(sources)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    now = sources.now()
    start = alert.timestamp - window
    summary: dict[str, Any] = {"kubernetes": {}, "signoz": {}, "mongodb": {}, "failed": {}}
    namespaces = namespaces or [ns for ns in [alert.namespace] if ns]

    (out / "alert.json").write_text(json.dumps(alert_payload, indent=2))
    try:
        _record_kubernetes(out / "kubernetes", sources, namespaces, log_tail, summary)
    except SourceUnavailable as exc:
        summary["failed"]["kubernetes"] = exc.reason
    try:
        _record_signoz(out / "signoz", sources, start, now, namespaces, summary)
    except SourceUnavailable as exc:
        summary["failed"]["signoz"] = exc.reason
    try:
        _record_mongodb(out / "mongodb", sources, start, summary)
    except SourceUnavailable as exc:
        summary["failed"]["mongodb"] = exc.reason

    classification = classify_rules(alert)
    meta = {
        "id": out.name,
        "title": alert.title,
        "difficulty": "medium",
        "now": iso(now),
        "unavailable": sorted(set(summary["failed"]) | set(sources.unavailable)),
        "expected": {
            "domain": classification.domains[0],
            "root_cause": "unknown",
            "acceptable_root_causes": [],
            "forbidden_root_causes": [],
            "required_keywords": [],
            "required_evidence_sources": [],
            "remediation_keywords": [],
        },
    }
    header = ("# Recorded by `sre-graph record` from live sources.\n"
              "# Fill in `expected` with the root cause you established, then `sre-graph eval` scores it.\n")
    (out / "incident.yaml").write_text(header + yaml.safe_dump(meta, sort_keys=False))
    return summary


def _record_kubernetes(folder: Path, sources: Sources, namespaces: list[str], log_tail: int,
                       summary: dict[str, Any]) -> None:
    port = sources.kubernetes
    if port is None:
        raise SourceUnavailable("kubernetes", sources.unavailable.get("kubernetes", "not configured"))
    folder.mkdir()
    _dump_list(folder / "nodes.json", port.list("nodes"))
    pods: list[dict[str, Any]] = []
    for kind in NAMESPACED:
        items: list[dict[str, Any]] = []
        for ns in _scopes(namespaces):
            items += port.list(kind, namespace=ns)
        _dump_list(folder / f"{kind}.json", items)
        summary["kubernetes"][kind] = len(items)
        if kind == "pods":
            pods = items
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        restarted = {cs.get("name") for cs in (pod.get("status") or {}).get("containerStatuses") or []
                     if int(cs.get("restartCount") or 0) > 0}
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = container.get("name", "")
            logs = folder / "logs" / ns / name
            for previous in ([False, True] if cname in restarted else [False]):
                text = port.pod_logs(ns, name, container=cname, previous=previous, tail_lines=log_tail)
                if text:
                    logs.mkdir(parents=True, exist_ok=True)
                    (logs / f"{cname}{'.previous' if previous else ''}.log").write_text(text)
                    summary["kubernetes"]["logs"] = summary["kubernetes"].get("logs", 0) + 1


def _record_signoz(folder: Path, sources: Sources, start: datetime, end: datetime, namespaces: list[str],
                   summary: dict[str, Any]) -> None:
    port = sources.signoz
    if port is None:
        raise SourceUnavailable("signoz", sources.unavailable.get("signoz", "not configured"))
    folder.mkdir()
    rows: list[dict[str, Any]] = []
    for ns in _scopes(namespaces):
        rows += port.search_logs(start=start, end=end, namespace=ns, limit=50_000)
    rows.sort(key=lambda r: str(r.get("timestamp")))
    summary["signoz"]["logs"] = _jsonl(folder / "logs.jsonl", rows)
    spans = sorted(port.search_traces(start=start, end=end, limit=50_000), key=lambda r: str(r.get("timestamp")))
    summary["signoz"]["traces"] = _jsonl(folder / "traces.jsonl", spans)
    series_rows = []
    for name in port.metric_names():
        for series in port.query_metric(metric=name, start=start, end=end):
            if series.get("values"):
                series_rows.append({"metric": name, "series": series})
    summary["signoz"]["metrics"] = _jsonl(folder / "metrics.jsonl", series_rows)


def _record_mongodb(folder: Path, sources: Sources, start: datetime, summary: dict[str, Any]) -> None:
    port = sources.mongodb
    if port is None:
        raise SourceUnavailable("mongodb", sources.unavailable.get("mongodb", "not configured"))
    folder.mkdir()
    (folder / "serverStatus.json").write_text(json.dumps(port.server_status(), indent=1, default=str))
    (folder / "currentOp.json").write_text(json.dumps({"inprog": port.current_op()}, indent=1, default=str))
    status = port.repl_status()
    if status:
        (folder / "replSetGetStatus.json").write_text(json.dumps(status, indent=1, default=str))
    profile = sorted(port.slow_queries(min_millis=0, since=start, limit=20_000), key=lambda e: str(e.get("ts")))
    summary["mongodb"]["profile"] = _jsonl(folder / "profile.jsonl", profile)
    namespaces = port.namespaces()
    for ns in namespaces:
        (folder / "indexStats").mkdir(exist_ok=True)
        (folder / "indexStats" / f"{ns}.json").write_text(json.dumps(port.index_stats(ns), indent=1, default=str))
        stats = port.coll_stats(ns)
        if stats:
            (folder / "collStats").mkdir(exist_ok=True)
            (folder / "collStats" / f"{ns}.json").write_text(json.dumps(stats, indent=1, default=str))
    summary["mongodb"]["collections"] = len(namespaces)
