"""Network runbook: TLS, DNS, refused and timed-out calls, rate limits, endpoints, network policies."""

from __future__ import annotations

import re
from typing import Any

from sre_graph.nodes.investigate.common import CHANGE_LOOKBACK, STALE_AFTER, Investigation, ago, last_change
from sre_graph.nodes.investigate.logscan import LogSignal, log_signals
from sre_graph.nodes.investigate.signals import percentile, volume_factor
from sre_graph.timeutil import iso, parse_time
from sre_graph.tools.replay import match_labels, selector_from_match_labels

SIGNAL_BASE = {"tls": 0.8, "dns": 0.7, "refused": 0.5, "timeout": 0.4, "rate": 0.6}
EXPLAINS = {
    "tls": ["connection_refused", "upstream_timeout", "dependency_outage", "error_spike_after_deploy"],
    "dns": ["connection_refused", "upstream_timeout", "dependency_outage", "crash_loop"],
    "refused": ["dependency_outage", "upstream_timeout"],
    "timeout": ["dependency_outage"],
    "rate": ["dependency_outage", "upstream_timeout"],
}
KEYWORD = {"tls": "x509", "dns": "DNS", "refused": "connection refused", "timeout": "timeout", "rate": "429"}
_EXPIRY = re.compile(r"(?:is after|expired (?:on|at)|notAfter=?|expiry(?: date)?:?|expires?:?)\s*"
                     r"(\d{4}-\d\d-\d\dT[\d:.]+Z?)", re.I)


def _signatures(inv: Investigation) -> None:
    """Failing calls by log signature and target."""
    signals = [s for s in log_signals(inv) if s.group.signature.name in SIGNAL_BASE]
    merged: dict[tuple[str, str], list[LogSignal]] = {}
    for signal in signals:
        key = (signal.group.signature.name, signal.group.target or signal.group.service)
        merged.setdefault(key, []).append(signal)
    for (name, subject), group in merged.items():
        _signature_finding(inv, name, subject, group)


def _network_signals(inv: Investigation) -> list[LogSignal]:
    return [s for s in log_signals(inv) if s.group.signature.name in SIGNAL_BASE]


def _signature_finding(inv: Investigation, name: str, subject: str, group: list[LogSignal]) -> None:
    count = sum(s.group.count for s in group)
    chronic = any(s.chronic for s in group)
    first = min((s.group.first for s in group if s.group.first), default=None)
    services = sorted({s.group.service for s in group if s.group.service})
    weight = max(inv.relevance(s.group.service) for s in group)
    target = group[0].group.target
    if target:
        weight = max(weight, inv.relevance(target))
    threshold = 1 if name == "tls" else 3
    if count < threshold:
        return
    confidence = (SIGNAL_BASE[name] + min(count, 20) / 100) * weight * (1.0 if name == "tls" else volume_factor(count))
    onset = first
    detail = ""
    if name == "tls":
        for s in group:
            for sample in s.group.samples:
                match = _EXPIRY.search(sample)
                if match and parse_time(match.group(1)):
                    onset = parse_time(match.group(1))
                    detail = f"; the certificate expired at {iso(onset)}"
                    break
    evidence_ids = [s.evidence_id for s in group]
    if name == "dns" and target:
        for svc in inv.k8s("services"):
            meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
            if meta.get("name") != target.split(".")[0] or spec.get("type") != "ExternalName":
                continue
            changed = last_change(svc)
            evidence_ids.append(inv.add_evidence(
                "kubernetes", f"kubectl get service -n {meta.get('namespace')} {meta.get('name')} -o json",
                "externalname", f"Service {meta.get('namespace')}/{meta.get('name')} is type ExternalName, a DNS alias "
                f"for {spec.get('externalName')} (written {iso(changed)})", str(spec)[:400], changed))
            detail += (f"; Service {meta.get('namespace')}/{meta.get('name')} is an ExternalName alias for "
                       f"{spec.get('externalName')}, written at {iso(changed)}")
            if changed and changed <= (first or inv.now):
                onset = changed
    statement = (f"{', '.join(services) or 'clients'} logged {count} {group[0].group.signature.label}"
                 + (f" calling {target}" if target else "") + f" since {iso(first)}{detail}")
    if chronic:
        statement += " (at the same rate before the incident: long-standing noise)"
        confidence *= 0.25
    if name in ("refused", "timeout") and not _located(inv, target):
        statement += (f"; {target or 'the callee'} shows nothing that explains it" if target else
                      "; the lines do not say which dependency")
        confidence *= 0.5
    keywords = [KEYWORD[name]] + ([target] if target else []) + services[:2]
    inv.propose(group[0].group.signature.root_cause, statement + ".", evidence_ids, confidence,
                onset=onset, subject=target or subject, keywords=keywords, explains=EXPLAINS[name], steady=chronic,
                objects=[*services, target])


def _located(inv: Investigation, target: str | None) -> bool:
    """Whether a failing callee is where the trouble is visible: outside the cluster (an external host, a
    Service backed by no pod), as opposed to an in-cluster workload that looks healthy or no named callee."""
    if not target:
        return False
    if "." in target and ".svc" not in target:
        return True
    backing = [p for p in inv.pods() if inv.pod_service(p) == target]
    if backing:
        return False
    services = [s for s in inv.k8s("services") if (s.get("metadata") or {}).get("name") == target]
    return bool(services) and not any((s.get("spec") or {}).get("selector") for s in services)


def _endpoints(inv: Investigation) -> None:
    signals = _network_signals(inv)
    wanted = inv.related_services() | {s.group.target for s in signals if s.group.target}
    pods = inv.pods()
    for svc in inv.k8s("services"):
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if name not in wanted or not spec.get("selector"):
            continue
        endpoints = [e for e in inv.k8s("endpoints", ns) if (e.get("metadata") or {}).get("name") == name]
        ready = sum(len(s.get("addresses") or []) for e in endpoints for s in e.get("subsets") or [])
        not_ready = sum(len(s.get("notReadyAddresses") or []) for e in endpoints for s in e.get("subsets") or [])
        if ready:
            continue
        selector = selector_from_match_labels(spec["selector"])
        matching = [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
                    and match_labels(selector, (p.get("metadata") or {}).get("labels"))]
        if not matching:
            why = f"its selector {selector} matches no pod"
        else:
            why = f"{len(matching)} pod(s) match {selector} but none is ready ({not_ready} not-ready addresses)"
        ev = inv.add_evidence("kubernetes", f"kubectl get endpoints -n {ns} {name} -o json", "empty",
                              f"Service {ns}/{name} has no ready endpoints: {why}",
                              str([e.get("subsets") for e in endpoints])[:600], None)
        onset = (max((t for p in matching if (t := last_change(p))), default=None) if matching
                 else last_change(svc))
        confidence = (0.7 if not matching else 0.5) * inv.relevance(name, ns)
        inv.propose("no_endpoints", f"Service {ns}/{name} has no ready endpoints: {why}.", [ev], confidence,
                    onset=onset, subject=f"{ns}/{name}", keywords=[name, "endpoints"],
                    objects=[name, *[(p.get("metadata") or {}).get("name", "") for p in matching]],
                    explains=["connection_refused", "upstream_timeout", "dependency_outage"])


def _policy_allows(policy: dict[str, Any], direction: str, peer: dict[str, Any]) -> bool:
    spec = policy.get("spec") or {}
    rules = spec.get("ingress" if direction == "Ingress" else "egress")
    if rules is None:
        return False
    peer_meta = peer.get("metadata") or {}
    peer_ns = peer_meta.get("namespace")
    policy_ns = (policy.get("metadata") or {}).get("namespace")
    for rule in rules:
        peers = rule.get("from" if direction == "Ingress" else "to")
        if not peers:
            return True
        for entry in peers:
            ns_sel = entry.get("namespaceSelector")
            pod_sel = entry.get("podSelector")
            if ns_sel is None and pod_sel is None:
                continue
            if ns_sel is not None:
                labels = ns_sel.get("matchLabels") or {}
                named = labels.get("kubernetes.io/metadata.name") or labels.get("name")
                ns_ok = not labels and not ns_sel.get("matchExpressions") or named == peer_ns or (
                    not named and bool(labels))
            else:
                ns_ok = peer_ns == policy_ns
            pod_ok = pod_sel is None or match_labels(selector_from_match_labels(pod_sel.get("matchLabels")),
                                                     peer_meta.get("labels"))
            if ns_ok and pod_ok:
                return True
    return False


def signals_all(inv: Investigation) -> list[LogSignal]:
    """Every log signal of the investigation."""
    return log_signals(inv)


def _allows_dns(spec: dict[str, Any]) -> bool:
    """Whether a policy's egress rules let the selected pods reach DNS (port 53)."""
    for rule in spec.get("egress") or []:
        ports = rule.get("ports") or []
        if not ports or any(str(p.get("port")) in ("53", "dns", "dns-tcp") for p in ports):
            return True
    return False


def _policies(inv: Investigation) -> None:
    signals = _network_signals(inv)
    pods = inv.pods()
    failing = [s for s in signals if s.group.signature.name in ("timeout", "refused") and not s.chronic]
    by_service: dict[str, list[dict]] = {}
    for pod in pods:
        by_service.setdefault(inv.pod_service(pod) or "", []).append(pod)
    for policy in inv.k8s("networkpolicies"):
        meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        changed = last_change(policy)
        selector = selector_from_match_labels((spec.get("podSelector") or {}).get("matchLabels"))
        selected = [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
                    and match_labels(selector, (p.get("metadata") or {}).get("labels"))]
        selected_services = {inv.pod_service(p) for p in selected}
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
        blocked: list[str] = []
        for signal in failing:
            client, target = signal.group.service, signal.group.target
            client_pods = by_service.get(client, [])
            target_pods = by_service.get(target or "", [])
            if "Ingress" in types and target in selected_services and client_pods and not _policy_allows(
                    policy, "Ingress", client_pods[0]):
                blocked.append(f"{client} → {target} (ingress)")
            if "Egress" in types and client in selected_services and target_pods and not _policy_allows(
                    policy, "Egress", target_pods[0]):
                blocked.append(f"{client} → {target} (egress)")
        if "Egress" in types and not _allows_dns(spec):
            for signal in signals_all(inv):
                if signal.group.signature.name in ("dns", "timeout") and not signal.chronic \
                        and signal.group.service in selected_services:
                    blocked.append(f"{signal.group.service} → DNS (port 53, egress)")
                    failing = [*failing, signal]
        blocked = sorted(set(blocked))
        recent = changed is not None and changed >= inv.alert_time - CHANGE_LOOKBACK
        stale = changed is not None and changed < inv.alert_time - STALE_AFTER
        if not blocked and not recent:
            continue
        summary = (f"NetworkPolicy {ns}/{name} (written {iso(changed)}, {ago(changed, inv.alert_time)} before the "
                   f"alert) selects {selector or 'every pod'} in {ns}; policy types {', '.join(types)}")
        ev = inv.add_evidence("kubernetes", f"kubectl get networkpolicy -n {ns} {name} -o json", "spec", summary,
                              str(spec)[:800], changed)
        evidence = [ev] + [s.evidence_id for s in failing if any(s.group.service in b for b in blocked)]
        if blocked:
            confidence = 0.85 if recent else (0.2 if stale else 0.5)
            inv.propose("network_policy_block",
                        f"NetworkPolicy {ns}/{name}, written at {iso(changed)}, does not allow "
                        + ", ".join(blocked) + "; those calls now fail.", evidence, confidence, onset=changed,
                        subject=f"{ns}/{name}", keywords=[name, "NetworkPolicy"],
                        objects=[name, *sorted(s for s in selected_services if s),
                                 *[b.split(" → ")[0] for b in blocked]],
                        remediation=[f"Allow the blocked traffic in NetworkPolicy {ns}/{name} or roll it back"],
                        explains=["upstream_timeout", "connection_refused", "dependency_outage", "dns_failure",
                                  "error_spike_after_deploy", "probe_failure"])
        elif recent and selected:
            inv.propose("network_policy_block", f"NetworkPolicy {ns}/{name} was written at {iso(changed)} and "
                        f"restricts traffic to {', '.join(sorted(s for s in selected_services if s))}.", [ev],
                        0.25, onset=changed, subject=f"{ns}/{name}", keywords=[name, "NetworkPolicy"],
                        explains=["upstream_timeout", "connection_refused"])


def _trace_errors(inv: Investigation) -> None:
    """Failing and slow calls per downstream in the alerted service's spans."""
    spans = [s.get("data") or {} for s in inv.traces(start=inv.alert_time - CHANGE_LOOKBACK / 2)]
    times = {id(s): None for s in spans}
    del times
    by_id = {s.get("span_id"): s for s in spans}
    calls: dict[str, dict[str, list]] = {}
    for row in inv.traces(start=inv.alert_time - CHANGE_LOOKBACK / 2):
        span = row.get("data") or {}
        ts = parse_time(row.get("timestamp"))
        parent = by_id.get(span.get("parent_span_id")) or {}
        if span.get("service.name") == inv.service and span.get("peer.service"):
            target = span["peer.service"]
        elif parent.get("service.name") == inv.service and span.get("service.name") != inv.service:
            target = span.get("service.name")
        else:
            continue
        phase = "after" if ts and ts >= inv.window_start else "before"
        bucket = calls.setdefault(target, {"before": [], "after": [], "errors": [], "codes": []})
        bucket[phase].append(float(span.get("duration_nano") or 0) / 1e6)
        if phase == "after" and (span.get("has_error") or str(span.get("response_status_code", "")).startswith(
                ("5", "429"))):
            bucket["errors"].append(span.get("status_message") or span.get("response_status_code"))
            bucket["codes"].append(str(span.get("response_status_code") or ""))
    for target, bucket in calls.items():
        after = bucket["after"]
        if not after:
            continue
        p99_after, p99_before = percentile(after, 0.99), percentile(bucket["before"], 0.99)
        error_rate = len(bucket["errors"]) / len(after)
        slow = p99_before and p99_after > 3 * p99_before and p99_after > 500
        if error_rate < 0.05 and not slow:
            continue
        summary = (f"Calls from {inv.service} to {target} since {iso(inv.window_start)}: {len(after)} spans, "
                   f"{error_rate:.0%} errors, p99 {p99_after:.0f} ms (before: {p99_before:.0f} ms)")
        excerpt = "\n".join(sorted({str(e) for e in bucket["errors"] if e})[:5])
        ev = inv.add_evidence("signoz", f"traces where service.name = '{inv.service}' (calls to {target})",
                              target, summary, excerpt, inv.window_start)
        codes = bucket["codes"]
        if codes.count("429") > len(codes) / 2 and codes:
            cause, base = "rate_limited", 0.6
        elif slow or any("deadline" in str(e).lower() or "timeout" in str(e).lower() for e in bucket["errors"]):
            cause, base = "upstream_timeout", 0.45
        else:
            cause, base = "dependency_outage", 0.35
        confidence = base + min(error_rate, 0.5) * 0.2
        if cause != "rate_limited" and not _located(inv, target):
            confidence *= 0.5
            summary += f"; {target} shows nothing that explains it"
        inv.propose(cause, f"{summary}.", [ev], confidence, subject=target,
                    keywords=[target], objects=[target, inv.service],
                    explains=["dependency_outage"] if cause != "dependency_outage" else [])


STEPS = (_signatures, _endpoints, _policies, _trace_errors)
"""The runbook: each step reads one kind of signal."""
