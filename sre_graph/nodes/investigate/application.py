"""Application runbook: error rates per service against deploys, config changes, leaks, failing dependencies."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sre_graph.nodes.investigate import metrics as metric_signals
from sre_graph.nodes.investigate.common import CHANGE_LOOKBACK, STALE_AFTER, Investigation, ago, last_change
from sre_graph.nodes.investigate.infrastructure import rollout_changes
from sre_graph.nodes.investigate.logscan import log_signals
from sre_graph.timeutil import iso, parse_time

_BUCKET = timedelta(minutes=5)


def run(inv: Investigation) -> None:
    """Check what changed in the application and how its error rate moved."""
    spikes = _error_spikes(inv)
    _deploys(inv, spikes)
    _config(inv)
    _leaks_and_dependencies(inv)
    metric_signals.scan(inv, kinds=("memory", "fd", "connections", "errors"))


def _error_spikes(inv: Investigation) -> dict[str, tuple[datetime, str, int, int]]:
    """Per service: when its error logs/spans jumped, the evidence id, count after and before."""
    start = inv.alert_time - timedelta(hours=3)
    events: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for row in inv.logs(min_severity="ERROR", start=start, limit=5000):
        data = row.get("data") or {}
        ts = parse_time(row.get("timestamp"))
        if ts:
            events[(data.get("resources_string") or {}).get("service.name", "")].append((ts, str(data.get("body"))))
    for row in inv.traces(errors_only=True, start=start):
        data = row.get("data") or {}
        ts = parse_time(row.get("timestamp"))
        if ts:
            events[data.get("service.name", "")].append(
                (ts, f"span {data.get('name')} {data.get('response_status_code') or ''} "
                     f"{data.get('status_message') or ''}".strip()))
    spikes: dict[str, tuple[datetime, str, int, int]] = {}
    for service, items in events.items():
        if not service:
            continue
        items.sort()
        before = [t for t, _ in items if t < inv.window_start]
        after = [(t, m) for t, m in items if t >= inv.window_start]
        if len(after) < 5:
            continue
        span_before = max((inv.window_start - max(start, items[0][0])).total_seconds() / 60, 1) if before else 0
        span_after = max((inv.now - inv.window_start).total_seconds() / 60, 1)
        rate_before = len(before) / span_before if before else 0.0
        rate_after = len(after) / span_after
        if before and rate_after < 3 * rate_before:
            continue
        buckets = Counter((t - inv.window_start) // _BUCKET for t, _ in after)
        peak_bucket = max(buckets.values())
        onset = next(t for t, _ in after if buckets[(t - inv.window_start) // _BUCKET] >= max(2, peak_bucket / 4))
        messages = Counter(m[:160] for _, m in after)
        summary = (f"{service}: {len(after)} error logs/spans since {iso(inv.window_start)} "
                   f"({rate_after:.1f}/min vs {rate_before:.2f}/min before), rising from {iso(onset)}")
        ev = inv.add_evidence("signoz", f"logs and traces where service.name = '{service}' AND severity >= ERROR "
                              f"from {iso(start)} to {iso(inv.now)}", f"errors|{service}", summary,
                              "\n".join(f"{n}× {m}" for m, n in messages.most_common(4)), onset, after[-1][0])
        spikes[service] = (onset, ev, len(after), len(before))
    return spikes


def _deploys(inv: Investigation, spikes: dict[str, tuple[datetime, str, int, int]]) -> None:
    for change in rollout_changes(inv):
        when, service, name, ns = change["time"], change["service"], change["name"], change["namespace"]
        candidates = [s for s in spikes if s == service or s == name or s.startswith(name) or name.startswith(s)]
        if not candidates:
            continue
        onset, ev_errors, count, before = spikes[candidates[0]]
        rs = (change["newest"].get("metadata") or {}).get("name", "")
        ev_rollout = inv.add_evidence("kubernetes", f"kubectl rollout history deployment/{name} -n {ns} (ReplicaSets)",
                                      rs, f"Deployment {ns}/{name} rolled out revision {change['revision']} ({rs}) at "
                                      f"{iso(when)}: " + "; ".join(change["diff"][:4]), "\n".join(change["diff"]), when)
        lead = (onset - when).total_seconds() / 60
        weight = inv.relevance(service, ns)
        if when < inv.alert_time - STALE_AFTER:
            continue
        if -2 <= lead <= 45:
            confidence = (0.75 if lead <= 20 else 0.55) * weight
            image = next((d.split(" → ")[-1] for d in change["diff"] if d.startswith("image ")), "")
            inv.propose("error_spike_after_deploy",
                        f"{candidates[0]} errors rose from {iso(onset)}, {lead:.0f} min after {ns}/{name} rolled out "
                        f"revision {change['revision']} at {iso(when)} (" + "; ".join(change["diff"][:3]) + f"); "
                        f"{count} errors since vs {before} in the hours before.", [ev_rollout, ev_errors], confidence,
                        onset=when, subject=f"{ns}/{name}", keywords=[name, image] if image else [name],
                        remediation=[f"kubectl rollout undo deployment/{name} -n {ns}"],
                        explains=["upstream_timeout", "connection_refused", "dependency_outage", "crash_loop",
                                  "probe_failure", "rate_limited"])


def _config(inv: Investigation) -> None:
    """Configuration errors in logs, tied to ConfigMaps changed shortly before."""
    signals = [s for s in log_signals(inv) if s.group.signature.name == "config" and not s.chronic]
    changed = []
    for cm in inv.k8s("configmaps", inv.namespace()):
        when = last_change(cm)
        if when and inv.alert_time - CHANGE_LOOKBACK <= when <= inv.now:
            meta = cm.get("metadata") or {}
            changed.append((cm, when, inv.add_evidence(
                "kubernetes", f"kubectl get configmap -n {meta.get('namespace')} {meta.get('name')} -o json", "write",
                f"ConfigMap {meta.get('namespace')}/{meta.get('name')} written at {iso(when)} "
                f"({ago(when, inv.alert_time)} before the alert)", str(cm.get("data"))[:600], when)))
    for signal in signals:
        group = signal.group
        if group.count < 2 and signal.source == "signoz":
            continue
        related = [c for c in changed if group.service and (group.service in str((c[0].get("metadata") or {})
                                                                                  .get("name")) or len(changed) == 1)]
        evidence = [signal.evidence_id] + [c[2] for c in related]
        onset = related[0][1] if related else group.first
        weight = inv.relevance(group.service)
        inv.propose("config_error", f"{group.service} logged {group.count} configuration errors since "
                    f"{iso(group.first)}: {group.samples[0][:200]}"
                    + (f"; ConfigMap {(related[0][0].get('metadata') or {}).get('name')} was changed at "
                       f"{iso(related[0][1])}" if related else "") + ".", evidence,
                    (0.6 + (0.2 if related else 0)) * weight, onset=onset, subject=group.service,
                    keywords=[group.service] + ([str((related[0][0].get("metadata") or {}).get("name"))]
                                                if related else []),
                    explains=["crash_loop", "error_spike_after_deploy", "probe_failure", "connection_refused",
                              "dependency_outage"])


def _leaks_and_dependencies(inv: Investigation) -> None:
    internal = {inv.pod_service(p) for p in inv.pods()}
    for signal in log_signals(inv):
        group = signal.group
        name = group.signature.name
        if signal.chronic or group.count < 3:
            continue
        weight = inv.relevance(group.service)
        if name == "fd":
            inv.propose("resource_leak", f"{group.service} ran out of a resource: {group.count} lines like "
                        f"'{group.samples[0][:160]}' since {iso(group.first)}.", [signal.evidence_id],
                        0.6 * weight, onset=group.first, subject=group.service, keywords=[group.service],
                        explains=["crash_loop", "upstream_timeout", "connection_exhaustion"])
        elif name == "memory":
            inv.propose("memory_leak", f"{group.service} ran out of memory: {group.count} lines like "
                        f"'{group.samples[0][:160]}' since {iso(group.first)}.", [signal.evidence_id],
                        0.45 * weight, onset=group.first, subject=group.service, keywords=[group.service],
                        explains=["oom_killed", "crash_loop"])
        elif name in ("5xx", "timeout", "refused") and group.target and group.target not in internal and (
                "." in group.target):
            inv.propose("dependency_outage", f"{group.service}'s calls to the external dependency {group.target} "
                        f"fail: {group.count} lines with {group.signature.label} since {iso(group.first)}.",
                        [signal.evidence_id], (0.5 + min(group.count, 30) / 100) * weight, onset=group.first,
                        subject=group.target, keywords=[group.target, group.service],
                        explains=["upstream_timeout", "connection_refused", "error_spike_after_deploy"])
