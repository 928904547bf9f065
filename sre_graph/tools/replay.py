"""Replay: answer every data-source query from a recorded incident folder.

The folder format is ``shared/INCIDENT_FORMAT.md``. Each snapshot port filters
the recorded data the way the live source would (namespace, label selector,
service, severity, time window, thresholds), with the clock at the incident's
``now``: nothing after ``now`` is ever returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from sre_graph.timeutil import parse_time
from sre_graph.tools.base import Sources, SourceUnavailable
from sre_graph.tools.kubernetes import KINDS
from sre_graph.tools.signoz import severity_rank


class IncidentFormatError(ValueError):
    """An incident folder does not follow the format; the message names the file and field."""


# --------------------------------------------------------------------- helpers

_SELECTOR_RE = re.compile(
    r"\s*(?:(?P<notexists>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[\w./-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?)\s*(?:,|$)"
)


def match_labels(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Whether ``labels`` satisfy a Kubernetes label selector string (equality and set based)."""
    if not selector:
        return True
    labels = labels or {}
    pos = 0
    text = selector.strip()
    while pos < len(text):
        match = _SELECTOR_RE.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"invalid label selector {selector!r} at {text[pos:]!r}")
        pos = match.end()
        if match["notexists"]:
            if match["nkey"] in labels:
                return False
            continue
        key = match["key"]
        if match["op"]:
            equal = labels.get(key) == match["value"]
            if (match["op"] == "!=") == equal:
                return False
        elif match["setop"]:
            values = {v.strip() for v in match["set"].split(",") if v.strip()}
            inside = labels.get(key) in values
            if (match["setop"] == "in") != inside:
                return False
        elif key not in labels:
            return False
    return True


def selector_from_match_labels(match_labels_: dict[str, str] | None) -> str:
    """``{"app": "x"}`` → ``"app=x"``."""
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels_ or {}).items()))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IncidentFormatError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise IncidentFormatError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
    return rows


def _in_window(ts: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if ts is None:
        return True
    if start is not None and ts < start:
        return False
    return not (end is not None and ts > end)


def object_time(obj: dict[str, Any]) -> datetime | None:
    """The time an object is "about": events by lastTimestamp, others by creation."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        if obj.get(key):
            return parse_time(obj[key])
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def log_line_time(line: str) -> datetime | None:
    """The leading RFC 3339 timestamp ``kubectl logs --timestamps`` prints, if any."""
    head = line.split(" ", 1)[0]
    try:
        return parse_time(head) if head[:1].isdigit() else None
    except ValueError:
        return None


def overview_from_spans(rows: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, Any]:
    """Request rate, error rate and latency percentiles of a service's entry spans (server/consumer kind,
    or spans without a parent in the same service)."""
    spans = [r.get("data") or {} for r in rows]
    ids = {s.get("span_id"): s for s in spans}
    entry = [s for s in spans if str(s.get("kind_string", "")).lower() in ("server", "consumer")
             or (ids.get(s.get("parent_span_id")) or {}).get("service.name") != s.get("service.name")]
    durations = sorted(float(s.get("duration_nano") or 0) / 1e6 for s in entry)
    errors = sum(1 for s in entry if s.get("has_error") or str(s.get("response_status_code", ""))[:1] == "5")
    seconds = max((end - start).total_seconds(), 1.0)

    def pct(q: float) -> float:
        return round(durations[min(len(durations) - 1, int(q * (len(durations) - 1) + 0.5))], 1) if durations \
            else 0.0

    return {"requests": len(entry), "errors": errors, "request_rate": round(len(entry) / seconds, 3),
            "error_rate": round(errors / len(entry), 4) if entry else 0.0, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


# --------------------------------------------------------------------- ports

class SnapshotKubernetes:
    """Kubernetes answered from ``kubernetes/*.json`` and ``kubernetes/logs``."""

    def __init__(self, root: Path, now: datetime, *, unavailable: bool = False) -> None:
        self._root = root / "kubernetes"
        self._now = now
        self._unavailable = unavailable
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def _check(self) -> None:
        if self._unavailable:
            raise SourceUnavailable("kubernetes", "the API server did not answer (recorded as unavailable)")

    def _items(self, kind: str) -> list[dict[str, Any]]:
        if kind not in self._cache:
            path = self._root / f"{kind}.json"
            items: list[dict[str, Any]] = []
            if path.exists():
                data = _read_json(path)
                if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                    raise IncidentFormatError(f"{path}: expected a List object with an 'items' array")
                items = data["items"]
            self._cache[kind] = items
        return self._cache[kind]

    def list(self, kind, *, namespace=None, label_selector=None):
        self._check()
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        out = []
        for obj in self._items(kind):
            meta = obj.get("metadata") or {}
            if namespace and kind != "nodes" and meta.get("namespace") != namespace:
                continue
            if not match_labels(label_selector, meta.get("labels")):
                continue
            created = parse_time(meta.get("creationTimestamp"))
            if created is not None and created > self._now:
                continue
            out.append(obj)
        return out

    def pod_logs(self, namespace, pod, *, container=None, previous=False, tail_lines=None, since=None):
        self._check()
        folder = self._root / "logs" / namespace / pod
        if not folder.is_dir():
            return ""
        if container is None:
            pods = [p for p in self._items("pods") if p.get("metadata", {}).get("name") == pod]
            containers = (pods[0].get("spec", {}).get("containers") or []) if pods else []
            if containers:
                container = containers[0].get("name")
            else:
                candidates = sorted(p.name for p in folder.glob("*.log") if not p.name.endswith(".previous.log"))
                container = candidates[0][:-4] if candidates else None
        if container is None:
            return ""
        path = folder / f"{container}{'.previous' if previous else ''}.log"
        if not path.exists():
            return ""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=self._now.tzinfo)
        lines = []
        for line in path.read_text().splitlines():
            ts = log_line_time(line)
            if ts is not None and (ts > self._now or (since is not None and ts < since)):
                continue
            lines.append(line)
        if tail_lines:
            lines = lines[-tail_lines:]
        return "\n".join(lines) + ("\n" if lines else "")


class SnapshotSignoz:
    """SigNoz answered from ``signoz/*.jsonl``."""

    def __init__(self, root: Path, now: datetime, *, unavailable: bool = False) -> None:
        self._root = root / "signoz"
        self._now = now
        self._unavailable = unavailable
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def _rows(self, name: str) -> list[dict[str, Any]]:
        if self._unavailable:
            raise SourceUnavailable("signoz", "the query API did not answer (recorded as unavailable)")
        if name not in self._cache:
            path = self._root / f"{name}.jsonl"
            self._cache[name] = _read_jsonl(path) if path.exists() else []
        return self._cache[name]

    def _window(self, start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime]:
        return start, min(end, self._now) if end else self._now

    def search_logs(self, *, start, end, service=None, namespace=None, min_severity=None, contains=None, limit=200):
        start, end = self._window(start, end)
        out = []
        for row in self._rows("logs"):
            data = row.get("data") or {}
            resources = data.get("resources_string") or {}
            if service and resources.get("service.name") != service:
                continue
            if namespace and resources.get("k8s.namespace.name") != namespace:
                continue
            if min_severity and severity_rank(data.get("severity_text")) < severity_rank(min_severity):
                continue
            if contains and contains.lower() not in str(data.get("body", "")).lower():
                continue
            if not _in_window(parse_time(row.get("timestamp")), start, end):
                continue
            out.append(row)
        out.sort(key=lambda r: parse_time(r.get("timestamp")) or self._now, reverse=True)
        return out[:limit]

    def search_traces(self, *, start, end, service=None, errors_only=False, min_duration_ms=None, limit=200):
        start, end = self._window(start, end)
        out = []
        for row in self._rows("traces"):
            data = row.get("data") or {}
            if service and data.get("service.name") != service:
                continue
            if errors_only and not data.get("has_error"):
                continue
            if min_duration_ms is not None and float(data.get("duration_nano") or 0) < min_duration_ms * 1e6:
                continue
            if not _in_window(parse_time(row.get("timestamp")), start, end):
                continue
            out.append(row)
        out.sort(key=lambda r: parse_time(r.get("timestamp")) or self._now, reverse=True)
        return out[:limit]

    def query_metric(self, *, metric, start, end, filters=None):
        start, end = self._window(start, end)
        out = []
        for row in self._rows("metrics"):
            if row.get("metric") != metric:
                continue
            series = row.get("series") or {}
            labels = {(lab.get("key") or {}).get("name"): lab.get("value") for lab in series.get("labels") or []}
            if any(labels.get(k) != v for k, v in (filters or {}).items()):
                continue
            values = [v for v in series.get("values") or [] if _in_window(parse_time(v.get("timestamp")), start, end)]
            out.append({"labels": series.get("labels") or [], "values": values})
        return out

    def get_trace(self, trace_id):
        rows = [r for r in self._rows("traces") if (r.get("data") or {}).get("trace_id") == trace_id
                and (parse_time(r.get("timestamp")) or self._now) <= self._now]
        return sorted(rows, key=lambda r: parse_time(r.get("timestamp")) or self._now)

    def aggregate_logs(self, *, start, end, group_by="service", step_seconds=60, service=None, min_severity=None):
        buckets: dict[str, dict[int, int]] = {}
        step_ms = max(int(step_seconds), 1) * 1000
        for row in self.search_logs(start=start, end=end, service=service, min_severity=min_severity,
                                    limit=10**9):
            data = row.get("data") or {}
            if group_by == "severity":
                group = str(data.get("severity_text") or "INFO").upper()
            else:
                group = (data.get("resources_string") or {}).get("service.name", "")
            ts = parse_time(row.get("timestamp"))
            if ts is None:
                continue
            slot = int(ts.timestamp() * 1000) // step_ms * step_ms
            counts = buckets.setdefault(group, {})
            counts[slot] = counts.get(slot, 0) + 1
        return [{"group": g, "values": [{"timestamp": t, "value": c} for t, c in sorted(v.items())]}
                for g, v in sorted(buckets.items())]

    def service_overview(self, *, service, start, end):
        return overview_from_spans(self.search_traces(start=start, end=end, service=service, limit=10**9),
                                   start, min(end, self._now))

    def field_keys(self, *, signal, search=""):
        name = {"logs": "logs", "traces": "traces", "metrics": "metrics"}.get(signal)
        if name is None:
            raise ValueError(f"unknown signal {signal!r}; expected logs, traces or metrics")
        keys: set[str] = set()
        for row in self._rows(name):
            if name == "metrics":
                keys |= {(lab.get("key") or {}).get("name", "") for lab in (row.get("series") or {}).get("labels")
                         or []}
                continue
            data = row.get("data") or {}
            for key, value in data.items():
                if isinstance(value, dict):
                    keys |= set(value)
                else:
                    keys.add(key)
        return sorted(k for k in keys if k and search.lower() in k.lower())

    def metric_names(self):
        return sorted({row.get("metric") for row in self._rows("metrics") if row.get("metric")})

    def list_services(self, *, start, end):
        spans = self.search_traces(start=start, end=end, limit=10**9)
        names = {(r.get("data") or {}).get("service.name") for r in spans}
        names |= {((r.get("data") or {}).get("resources_string") or {}).get("service.name")
                  for r in self.search_logs(start=start, end=end, limit=10**9)}
        for row in self._rows("metrics"):
            for lab in (row.get("series") or {}).get("labels") or []:
                if (lab.get("key") or {}).get("name") == "service.name":
                    names.add(lab.get("value"))
        return sorted(n for n in names if n)


class SnapshotMongo:
    """MongoDB answered from ``mongodb/``."""

    def __init__(self, root: Path, now: datetime, *, unavailable: bool = False) -> None:
        self._root = root / "mongodb"
        self._now = now
        self._unavailable = unavailable

    def _load(self, name: str) -> Any:
        if self._unavailable:
            raise SourceUnavailable("mongodb", "the server did not answer (recorded as unavailable)")
        path = self._root / name
        if not path.exists():
            return None
        from sre_graph.tools.mongodb import normalise_extended_json

        return normalise_extended_json(_read_jsonl(path) if name.endswith(".jsonl") else _read_json(path))

    def server_status(self):
        return self._load("serverStatus.json") or {}

    def current_op(self, *, min_secs_running=None, waiting_for_lock=None):
        ops = (self._load("currentOp.json") or {}).get("inprog", [])
        out = []
        for op in ops:
            if min_secs_running is not None and float(op.get("secs_running") or 0) < min_secs_running:
                continue
            if waiting_for_lock is not None and bool(op.get("waitingForLock")) != waiting_for_lock:
                continue
            out.append(op)
        return out

    def slow_queries(self, *, min_millis=100, since=None, ns=None, limit=200):
        out = []
        for entry in self._load("profile.jsonl") or []:
            if float(entry.get("millis") or 0) < min_millis:
                continue
            if ns and entry.get("ns") != ns:
                continue
            if not _in_window(parse_time(entry.get("ts")), since, self._now):
                continue
            out.append(entry)
        out.sort(key=lambda e: parse_time(e.get("ts")) or self._now, reverse=True)
        return out[:limit]

    def repl_status(self):
        return self._load("replSetGetStatus.json")

    def index_stats(self, ns):
        return self._load(f"indexStats/{ns}.json") or []

    def coll_stats(self, ns):
        return self._load(f"collStats/{ns}.json")

    def namespaces(self):
        if self._unavailable:
            raise SourceUnavailable("mongodb", "the server did not answer (recorded as unavailable)")
        names: set[str] = set()
        for sub in ("indexStats", "collStats"):
            folder = self._root / sub
            if folder.is_dir():
                names |= {p.name[:-5] for p in folder.glob("*.json")}
        for entry in self._load("profile.jsonl") or []:
            if entry.get("ns"):
                names.add(entry["ns"])
        return sorted(names)


# --------------------------------------------------------------------- incident

@dataclass
class Incident:
    """A recorded incident folder, loaded."""

    path: Path
    meta: dict[str, Any]
    alert_payload: dict[str, Any]
    now: datetime
    unavailable: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The incident id (``incident.yaml`` ``id``, else the folder name)."""
        return str(self.meta.get("id") or self.path.name)

    @property
    def expected(self) -> dict[str, Any]:
        """The ``expected`` block."""
        return self.meta.get("expected") or {}

    def sources(self) -> Sources:
        """Snapshot ports over this folder, with the replay clock at ``now``."""
        down = set(self.unavailable)
        return Sources(
            kubernetes=SnapshotKubernetes(self.path, self.now, unavailable="kubernetes" in down),
            signoz=SnapshotSignoz(self.path, self.now, unavailable="signoz" in down),
            mongodb=SnapshotMongo(self.path, self.now, unavailable="mongodb" in down),
            clock=self.now,
        )


def alert_start(payload: dict[str, Any]) -> datetime | None:
    """The alert's start time from any supported payload shape, without full parsing."""
    if isinstance(payload.get("alerts"), list) and payload["alerts"]:
        return parse_time(payload["alerts"][0].get("startsAt"))
    if payload.get("timestamp"):
        return parse_time(payload["timestamp"])
    event = payload.get("event") or {}
    if event.get("ts"):
        return parse_time(float(event["ts"]))
    return None


def load_incident(path: str | Path) -> Incident:
    """Load an incident folder; raise :class:`IncidentFormatError` naming what is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise IncidentFormatError(f"{root}: not a directory")
    meta_path = root / "incident.yaml"
    alert_path = root / "alert.json"
    for required in (meta_path, alert_path):
        if not required.exists():
            raise IncidentFormatError(f"{required}: missing (every incident folder needs it)")
    try:
        meta = yaml.safe_load(meta_path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise IncidentFormatError(f"{meta_path}: invalid YAML{where}: {problem}") from None
    if not isinstance(meta, dict):
        raise IncidentFormatError(f"{meta_path}: expected a mapping")
    payload = _read_json(alert_path)
    if not isinstance(payload, dict):
        raise IncidentFormatError(f"{alert_path}: expected a JSON object")
    now = parse_time(meta.get("now")) if meta.get("now") else None
    if now is None:
        start = alert_start(payload)
        if start is None:
            raise IncidentFormatError(f"{meta_path}: no 'now' and no alert start time to default it from")
        now = start + timedelta(minutes=5)
    unavailable = list(meta.get("unavailable") or [])
    bad = [s for s in unavailable if s not in ("kubernetes", "signoz", "mongodb")]
    if bad:
        raise IncidentFormatError(f"{meta_path}: unavailable names unknown source(s) {bad}")
    return Incident(path=root, meta=meta, alert_payload=payload, now=now, unavailable=unavailable)
