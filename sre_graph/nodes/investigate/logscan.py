"""Log signatures across SigNoz and container logs, grouped and split into baseline and incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sre_graph.models import DataSource
from sre_graph.nodes.investigate.common import Investigation
from sre_graph.nodes.investigate.signals import LineGroup, group_lines, is_quiet, steady_since
from sre_graph.timeutil import iso, parse_time
from sre_graph.tools.replay import log_line_time

BASELINE = timedelta(hours=3)


@dataclass
class LogSignal:
    """A group of matching lines with the evidence id that cites it."""

    group: LineGroup
    evidence_id: str
    source: str
    chronic: bool
    """Present at a similar rate before the incident window: noise, not cause."""


def log_signals(inv: Investigation) -> list[LogSignal]:
    """Every signature seen in warning-or-worse logs around the alert, once per investigation."""
    if "log_signals" in inv._cache:
        return inv._cache["log_signals"]
    start = inv.alert_time - BASELINE
    baseline_end = inv.window_start
    signals: list[LogSignal] = []

    rows = inv.logs(min_severity="WARN", start=start, limit=5000)
    lines = []
    for row in rows:
        data = row.get("data") or {}
        service = (data.get("resources_string") or {}).get("service.name", "")
        lines.append((parse_time(row.get("timestamp")), service, log_text(data)))
    earliest = min((t for t, _, _ in lines if t), default=None)
    query = f"logs where severity >= WARN from {iso(start)} to {iso(inv.now)} limit 5000"
    signals += _to_signals(inv, group_lines(lines, baseline_end), "signoz", query, earliest, baseline_end)

    per_service: dict[tuple[str, str], tuple[list[str], list]] = {}
    for pod in inv.pods():
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        service = inv.pod_service(pod) or name
        if inv.relevance(service, ns) < 0.8:
            continue
        names, pod_lines = per_service.setdefault((ns, service), ([], []))
        for container in ((pod.get("spec") or {}).get("containers") or []):
            cname = container.get("name", "")
            text = inv.pod_logs(ns, name, cname, tail=500)
            names.append(f"{name}/{cname}")
            pod_lines += [(log_line_time(line), service, line.split(" ", 1)[-1]) for line in text.splitlines()
                          if not is_quiet(line.split(" ", 1)[-1])]
    for (ns, service), (names, pod_lines) in per_service.items():
        first = min((t for t, _, _ in pod_lines if t), default=None)
        query = (f"kubectl logs -n {ns} <pod> -c <container> --timestamps --tail=500 for {len(names)} "
                 f"container(s) of {service}: {', '.join(names[:4])}{' …' if len(names) > 4 else ''}")
        signals += _to_signals(inv, group_lines(pod_lines, baseline_end), "kubernetes", query, first, baseline_end)
    inv._cache["log_signals"] = signals
    return signals


def log_text(data: dict) -> str:
    """A SigNoz log row as an SRE reads it: the body, then its attributes as ``key=value``."""
    attributes = {**(data.get("attributes_string") or {}), **(data.get("attributes_number") or {})}
    extra = " ".join(f"{k}={v}" for k, v in attributes.items() if v not in ("", None))
    body = str(data.get("body", ""))
    return f"{body} {extra}" if extra else body


def _to_signals(inv: Investigation, groups: dict, source: DataSource, query: str, earliest: datetime | None,
                baseline_end: datetime) -> list[LogSignal]:
    out = []
    for group in groups.values():
        if group.count == 0:
            continue
        chronic = False
        if group.before and earliest is not None and earliest < baseline_end:
            base_minutes = max((baseline_end - earliest).total_seconds() / 60, 1)
            incident_minutes = max((inv.now - baseline_end).total_seconds() / 60, 1)
            chronic = group.before / base_minutes >= 0.4 * group.count / incident_minutes
        chronic = chronic or steady_since(group.times, inv.alert_time, inv.now)
        target = f" toward {group.target}" if group.target else ""
        summary = (f"{group.count} log lines from {group.service or 'unknown service'} with {group.signature.label}"
                   f"{target} between {iso(group.first)} and {iso(group.last)}")
        if group.before:
            summary += f" ({group.before} in the hours before)"
        evidence_id = inv.add_evidence(source, query, f"{group.signature.name}|{group.service}|{group.target}",
                                       summary, "\n".join(group.samples), group.first, group.last)
        out.append(LogSignal(group, evidence_id, source, chronic))
    return out
