"""Application runbook: error rates per service against deploys, config changes, leaks, failing dependencies."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from urllib.parse import urlparse

from sre_graph.nodes.investigate import metrics as metric_signals
from sre_graph.nodes.investigate.common import CHANGE_LOOKBACK, STALE_AFTER, Investigation, ago, last_change
from sre_graph.nodes.investigate.infrastructure import config_only, configmaps_used, rollout_changes
from sre_graph.nodes.investigate.logscan import log_signals, log_text
from sre_graph.timeutil import iso, parse_time

_BUCKET = timedelta(minutes=5)


def _deploys_against_errors(inv: Investigation) -> None:
    spikes = _error_spikes(inv)
    _deploys(inv, spikes)
    _config_changes(inv, spikes)


def _configmap_diff(cm: dict) -> tuple[list[str], bool]:
    """What a ConfigMap's data differs in from its last ``kubectl apply`` (``drift``: edited by hand)."""
    import json as _json

    meta = cm.get("metadata") or {}
    applied = (meta.get("annotations") or {}).get("kubectl.kubernetes.io/last-applied-configuration")
    if not applied:
        return [], False
    try:
        before = (_json.loads(applied).get("data") or {})
    except ValueError:
        return [], False
    now = cm.get("data") or {}
    changes = [f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in sorted(set(before) | set(now))
               if before.get(k) != now.get(k)]
    return changes, bool(changes)


def _config_changes(inv: Investigation, spikes: dict[str, tuple[datetime, str, int, int]]) -> None:
    """Configuration changes (ConfigMaps, env, config-only rollouts) followed by errors."""
    namespaces = {c["namespace"] for c in rollout_changes(inv)}
    configmaps: dict[tuple[str, str], dict] = {}
    for ns in namespaces | ({inv.namespace()} - {None}):
        for cm in inv.k8s("configmaps", ns):
            meta = cm.get("metadata") or {}
            configmaps[(meta.get("namespace", ""), meta.get("name", ""))] = cm
    for change in rollout_changes(inv):
        when, service, name, ns = change["time"], change["service"], change["name"], change["namespace"]
        if not config_only(change["diff"]) or not (inv.alert_time - CHANGE_LOOKBACK <= when <= inv.now):
            continue
        spike_service = next((s for s in spikes if s in (service, name)), None)
        if spike_service is None and inv.service in spikes and service in inv.related_services():
            spike_service = inv.service
        if spike_service is None:
            continue
        onset, ev_errors, count, before = spikes[spike_service]
        lead = (onset - when).total_seconds() / 60
        if not -2 <= lead <= 45:
            continue
        rs = (change["newest"].get("metadata") or {}).get("name", "")
        evidence = [inv.add_evidence(
            "kubernetes", f"kubectl rollout history deployment/{name} -n {ns} (ReplicaSets)", rs,
            f"Deployment {ns}/{name} rolled out revision {change['revision']} ({rs}) at {iso(when)} with the same "
            f"image: " + "; ".join(change["diff"][:4]), "\n".join(change["diff"]), when), ev_errors]
        keywords = [name]
        keywords += [d.split(" env ", 1)[1].split(":", 1)[0] for d in change["diff"] if " env " in d]
        details = [d for d in change["diff"] if " env " in d or " args:" in d]
        for cm_name in sorted(configmaps_used(change["deployment"])):
            configmap = configmaps.get((ns, cm_name))
            if configmap is None:
                continue
            written = last_change(configmap)
            diff, drift = _configmap_diff(configmap)
            if not diff and not (written and when - CHANGE_LOOKBACK <= written <= when + timedelta(minutes=2)):
                continue
            keywords.append(cm_name)
            keywords += [d.split(":", 1)[0] for d in diff]
            details += [f"ConfigMap {cm_name} {d}" for d in diff]
            evidence.append(inv.add_evidence(
                "kubernetes", f"kubectl get configmap -n {ns} {cm_name} -o json", "data",
                f"ConfigMap {ns}/{cm_name} written at {iso(written)}"
                + (f"; differs from its last applied version (edited by hand): {'; '.join(diff[:4])}" if drift
                   else ""), str(configmap.get("data"))[:800], written))
        samples = spikes[spike_service]
        inv.propose("config_error",
                    f"A configuration change broke {spike_service}: {ns}/{name} restarted at {iso(when)} on a new "
                    f"configuration (" + ("; ".join(details[:3]) or "; ".join(change["diff"][:3])) + f"), and "
                    f"{spike_service}'s errors rose {lead:.0f} min later ({samples[2]} since vs {samples[3]} "
                    "before).", evidence, 0.8 if details else 0.65, onset=when, subject=f"{ns}/{name}",
                    keywords=keywords, objects=[name, service, spike_service, *keywords[1:]],
                    remediation=[f"Restore the previous configuration of {ns}/{name}"
                                 + (f" ({', '.join(keywords[1:3])})" if len(keywords) > 1 else "")
                                 + f", or roll back: kubectl rollout undo deployment/{name} -n {ns}"],
                    explains=["error_spike_after_deploy", "upstream_timeout", "dependency_outage", "crash_loop",
                              "probe_failure", "connection_refused", "rate_limited", "autoscaling_limit"])


def _internal_host(host: str, internal: set[str]) -> bool:
    return (".svc" in host or host.endswith(".local") or host.split(".", 1)[0] in internal or "." not in host
            or host.replace(".", "").isdigit())


def _trace_origins(inv: Investigation) -> None:
    """Follow failing traces down to the deepest failing span: where the errors originate."""
    spans = [(parse_time(r.get("timestamp")), r.get("data") or {}) for r in inv.traces(start=inv.window_start)]
    by_trace: dict[str, list[tuple[datetime | None, dict]]] = defaultdict(list)
    for ts, span in spans:
        by_trace[str(span.get("trace_id"))].append((ts, span))
    internal = {s for s in (inv.pod_service(p) for p in inv.pods()) if s}
    internal |= {span.get("service.name", "") for _, span in spans}
    origins: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    attempts: Counter[tuple[str, str, str]] = Counter()
    """Failing calls per origin: more calls than traces means the callers retry."""
    first_seen: dict[tuple[str, str, str], datetime] = {}
    failing_traces = 0
    for trace_id, items in by_trace.items():
        if not any(s.get("service.name") == inv.service for _, s in items):
            continue
        failed = [(t, s) for t, s in items if s.get("has_error") or str(s.get("response_status_code", ""))[:1] == "5"
                  or str(s.get("response_status_code", "")) == "429"]
        if not failed:
            continue
        failing_traces += 1
        failed_ids = {s.get("span_id") for _, s in failed}
        leaves = [(t, s) for t, s in failed if not any(o.get("parent_span_id") == s.get("span_id")
                                                       and o.get("span_id") in failed_ids for _, o in failed)]
        for ts, leaf in leaves:
            url = str(leaf.get("http_url") or "")
            host = urlparse(url).hostname if "://" in url else None
            target = host or leaf.get("peer.service") or leaf.get("db_system") or ""
            status = str(leaf.get("response_status_code") or leaf.get("status_message") or "error")
            key = (leaf.get("service.name", ""), str(target), status)
            origins[key].add(trace_id)
            attempts[key] += 1
            if ts and (key not in first_seen or ts < first_seen[key]):
                first_seen[key] = ts
    if not origins or failing_traces < 3:
        return
    counts = Counter({key: len(traces) for key, traces in origins.items()})
    (service, target, status), count = counts.most_common(1)[0]
    if not target:
        # A service failing on its own (a tripped circuit breaker, a fail-fast guard) after its calls to a
        # downstream began failing: the downstream is the origin; the self-made errors are its consequence.
        earlier = [(k, n) for k, n in counts.items() if k[0] == service and k[1]
                   and first_seen.get(k) and first_seen.get((service, target, status))
                   and first_seen[k] <= first_seen[(service, target, status)]]
        if earlier:
            (service, target, status), _ = max(earlier, key=lambda kn: kn[1])
            count = len(origins[(service, target, status)] | origins[counts.most_common(1)[0][0]])
    share = count / failing_traces
    onset = first_seen.get((service, target, status))
    summary = (f"{failing_traces} failing traces through {inv.service} since {iso(inv.window_start)}; in {count} of "
               f"them the deepest failing span is {service} calling {target or 'nothing'} ({status})")
    excerpt = "\n".join(f"{n}× {s} → {t or '-'} ({c})" for (s, t, c), n in counts.most_common(5))
    ev = inv.add_evidence("signoz", f"traces through service.name = '{inv.service}' with errors from "
                          f"{iso(inv.window_start)} to {iso(inv.now)} (deepest failing span per trace)",
                          f"origin|{service}|{target}|{status}", summary, excerpt, onset)
    if target and status == "429" and share >= 0.5:
        inv.propose("rate_limited", f"The errors originate in rate limiting: {service}'s calls to {target} are "
                    f"answered 429 Too Many Requests in {count} of {failing_traces} failing traces since {iso(onset)}.",
                    [ev], 0.6 + 0.3 * share, onset=onset, subject=target, keywords=[target, "429", service],
                    objects=[target, service, inv.service],
                    remediation=[f"Slow {service}'s calls to {target} down: backoff honouring Retry-After, batching, "
                                 "or a higher quota"],
                    explains=["dependency_outage", "upstream_timeout", "autoscaling_limit", "error_spike_after_deploy"])
    elif target and not _internal_host(target, internal) and share >= 0.5:
        peer = target.split(".")[-2] if target.count(".") >= 1 else target
        tries = attempts[(service, target, status)] / max(len(origins[(service, target, status)]), 1)
        retried = (f"; each failing request retried the call {tries:.1f} times on average, multiplying the load"
                   if tries >= 1.5 else "")
        inv.propose("dependency_outage", f"The errors originate outside the cluster: {service}'s calls to {target} "
                    f"fail with {status} in {count} of {failing_traces} failing traces since {iso(onset)}"
                    f"{retried}.", [ev],
                    0.55 + 0.3 * share, onset=onset, subject=target, keywords=[target, peer, status, service],
                    objects=[target, peer, service, inv.service],
                    remediation=[f"Fail over from {target} or degrade gracefully; contact the provider"]
                    + (["Bound the retries (fewer attempts, backoff with jitter, a circuit breaker) so a failing "
                        "dependency is not hit harder"] if retried else []),
                    explains=["upstream_timeout", "autoscaling_limit", "error_spike_after_deploy",
                              "connection_exhaustion", "rate_limited"])


def _scan_metrics(inv: Investigation) -> None:
    metric_signals.scan(inv, kinds=("memory", "fd", "connections", "errors"))


def _error_spikes(inv: Investigation) -> dict[str, tuple[datetime, str, int, int]]:
    """Per service: when its error logs/spans jumped, the evidence id, count after and before."""
    start = inv.alert_time - timedelta(hours=3)
    events: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for row in inv.logs(min_severity="WARN", start=start, limit=5000):
        data = row.get("data") or {}
        ts = parse_time(row.get("timestamp"))
        if ts:
            events[(data.get("resources_string") or {}).get("service.name", "")].append((ts, log_text(data)))
    for row in inv.traces(start=start):
        data = row.get("data") or {}
        ts = parse_time(row.get("timestamp"))
        code = str(data.get("response_status_code") or "")
        failed = data.get("has_error") or code[:1] == "5" or code in ("401", "403", "429")
        if ts and failed:
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
        onset = next((t for t, _ in after if buckets[(t - inv.window_start) // _BUCKET] >= max(2, peak_bucket / 4)),
                     after[0][0])
        messages = Counter(m[:160] for _, m in after)
        summary = (f"{service}: {len(after)} warning/error logs and failed spans since {iso(inv.window_start)} "
                   f"({rate_after:.1f}/min vs {rate_before:.2f}/min before), rising from {iso(onset)}")
        ev = inv.add_evidence("signoz", f"logs and traces where service.name = '{service}' AND severity >= ERROR "
                              f"from {iso(start)} to {iso(inv.now)}", f"errors|{service}", summary,
                              "\n".join(f"{n}× {m}" for m, n in messages.most_common(4)), onset, after[-1][0])
        spikes[service] = (onset, ev, len(after), len(before))
    return spikes


def _deploys(inv: Investigation, spikes: dict[str, tuple[datetime, str, int, int]]) -> None:
    for change in rollout_changes(inv):
        when, service, name, ns = change["time"], change["service"], change["name"], change["namespace"]
        if config_only(change["diff"]):
            continue  # a configuration change: _config_changes weighs it
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
                        objects=[name, service, candidates[0]],
                        remediation=[f"kubectl rollout undo deployment/{name} -n {ns}"],
                        explains=["upstream_timeout", "connection_refused", "dependency_outage", "crash_loop",
                                  "probe_failure", "rate_limited", "autoscaling_limit"])


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


STEPS = (_deploys_against_errors, _trace_origins, _config, _leaks_and_dependencies, _scan_metrics)
"""The runbook: each step reads one kind of signal."""
