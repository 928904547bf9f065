"""Metric series read the way an SRE reads a dashboard: what moved, when, and how."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sre_graph.nodes.investigate.common import Investigation, owner_name
from sre_graph.nodes.investigate.signals import SeriesStats, label_map, series_stats
from sre_graph.timeutil import iso

KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("throttle", re.compile(r"throttl", re.I)),
    ("fd", re.compile(r"(?:^|[._])(?:fds?|file_?descriptors?|open_?files|handles|threads?|goroutines)(?:$|[._])",
                      re.I)),
    ("lag", re.compile(r"lag|replication", re.I)),
    ("connections", re.compile(r"connection|conn(?:s)?(?:$|[._])|pool", re.I)),
    ("memory", re.compile(r"mem|heap|rss|working_?set", re.I)),
    ("errors", re.compile(r"error|5xx|fail|exception", re.I)),
    ("latency", re.compile(r"latency|duration|p99|p95|p90|response_?time", re.I)),
    ("disk", re.compile(r"disk|storage|filesystem|fs[._]|volume", re.I)),
    ("cpu", re.compile(r"cpu", re.I)),
    ("requests", re.compile(r"request|rps|calls|throughput|qps", re.I)),
)

LEAK_LOOKBACK = timedelta(days=7)
"""Leaks show over days: memory, descriptors and connections are read over a week."""

SERVICE_KEYS = ("service.name", "service", "k8s.deployment.name", "deployment", "app", "job")


@dataclass
class MetricAnomaly:
    """One series that moved around the alert."""

    kind: str
    metric: str
    service: str
    stats: SeriesStats
    evidence_id: str


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def metric_kind(name: str) -> str | None:
    """The family a metric belongs to, by its name."""
    for kind, pattern in KIND_PATTERNS:
        if pattern.search(name):
            return kind
    return None


def series_service(labels: dict[str, str]) -> str:
    """The service a series is about."""
    for key in SERVICE_KEYS:
        if labels.get(key):
            return labels[key]
    pod = labels.get("k8s.pod.name") or labels.get("pod")
    if pod:
        return owner_name(pod)
    return labels.get("k8s.container.name") or labels.get("container") or ""


def scan(inv: Investigation, kinds: tuple[str, ...]) -> list[MetricAnomaly]:
    """Series of the given kinds that changed around the alert; proposes the findings they support."""
    found: list[MetricAnomaly] = []
    for name in inv.metric_names():
        kind = metric_kind(name)
        if kind not in kinds:
            continue
        lookback = LEAK_LOOKBACK if kind in ("memory", "fd", "connections") else timedelta(hours=3)
        for series in inv.metric(name, lookback=lookback):
            labels = label_map(series)
            service = series_service(labels)
            weight = inv.relevance(service, labels.get("k8s.namespace.name") or labels.get("namespace"))
            stats = series_stats(series.get("values") or [], inv.alert_time - timedelta(minutes=10))
            if stats is None:
                continue
            anomaly = _judge(inv, kind, name, service, labels, stats, weight)
            if anomaly:
                found.append(anomaly)
    return found


def _judge(inv: Investigation, kind: str, name: str, service: str, labels: dict[str, str], stats: SeriesStats,
           weight: float) -> MetricAnomaly | None:
    ratio = stats.ratio
    rose = ratio is not None and ratio >= 1.8 or (stats.before in (0, None) and (stats.after or 0) > 0)
    share = kind == "throttle" and stats.peak <= 1.0
    if share:
        # A share of CPU periods throttled: what matters is the level (a quarter or more is serious), not the rise.
        rose = (stats.after or 0) >= 0.25
    climb = stats.climb
    if not (rose or climb):
        return None
    where = ", ".join(f"{k}={v}" for k, v in labels.items() if k in SERVICE_KEYS or k.startswith("k8s."))
    if climb:
        how = (f"climbed gradually from {climb.first:g} to {climb.last:g} over {climb.minutes:.0f} min "
               f"({climb.up_share:.0%} of steps up)" + (f", {climb.segments} times between restarts"
                                                         if climb.segments > 1 else ""))
    else:
        how = f"rose from a median of {_num(stats.before)} to {_num(stats.after)}" + (
            f" (×{ratio:.1f})" if ratio else "") + (f", starting {iso(stats.change_at)}" if stats.change_at else "")
    query = f"metric {name}{' where ' + where if where else ''}"
    since = stats.change_at
    if share:
        since = stats.first_at_or_above(0.25) or since
    evidence_id = inv.add_evidence("signoz", query, f"{service}:{name}", f"{name} for {service or where}: {how}",
                                   f"first={stats.first:g} last={stats.last:g} peak={stats.peak:g}",
                                   since or inv.alert_time)
    anomaly = MetricAnomaly(kind, name, service, stats, evidence_id)
    subject = service or where
    objs = [service, labels.get("k8s.pod.name"), labels.get("k8s.node.name"), labels.get("k8s.container.name"),
            labels.get("k8s.deployment.name"), labels.get("pod"), labels.get("node"), labels.get("container")]
    if kind == "throttle" and rose:
        level = (f"; {stats.after:.0%} of CPU periods throttled" if share and stats.after is not None else "")
        inv.propose("cpu_throttling", f"{subject} is CPU-throttled at its limit: {name} {how}{level}.",
                    [evidence_id], (0.5 + (0.3 * min(stats.after or 0, 1.0) if share else 0.15)) * weight,
                    onset=since, subject=subject, keywords=[service, "throttl"], objects=objs,
                    remediation=[f"Raise or remove the CPU limit of {subject}"
                                 + (f" ({labels.get('container') or labels.get('k8s.container.name')})"
                                    if labels.get("container") or labels.get("k8s.container.name") else "")
                                 + ", or scale it out; check what lowered the limit or raised the load"],
                    explains=["upstream_timeout", "probe_failure", "error_spike_after_deploy", "dependency_outage",
                              "connection_exhaustion", "long_running_operation", "lock_contention",
                              "autoscaling_limit"])
    elif kind == "memory" and climb:
        inv.propose("memory_leak", f"Memory of {subject} grows without levelling off: {name} {how}.", [evidence_id],
                    (0.6 + (0.15 if climb.segments > 1 or climb.minutes >= 120 else 0)) * weight, onset=climb.since,
                    subject=subject, keywords=[service, "memory"], objects=objs,
                    explains=["oom_killed", "crash_loop", "upstream_timeout", "probe_failure", "node_pressure"])
    elif kind == "fd" and climb:
        inv.propose("resource_leak", f"{subject} leaks resources: {name} {how}.", [evidence_id], 0.55 * weight,
                    onset=stats.change_at, subject=subject, keywords=[service], objects=objs,
                    explains=["connection_exhaustion", "crash_loop", "upstream_timeout", "probe_failure"])
    elif kind == "connections" and climb:
        inv.propose("resource_leak", f"{subject} keeps opening connections it never releases: {name} {how}.",
                    [evidence_id], 0.45 * weight, onset=stats.change_at, subject=subject, keywords=[service],
                    objects=objs,
                    explains=["connection_exhaustion", "upstream_timeout"])
    return anomaly
