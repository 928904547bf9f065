"""Infrastructure runbook: pods, containers, nodes, events, rollouts, autoscaling, CPU limits."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sre_graph.nodes.investigate import metrics as metric_signals
from sre_graph.nodes.investigate.common import (
    CHANGE_LOOKBACK,
    STALE_AFTER,
    Investigation,
    ago,
    created,
    owner_name,
    revision,
)
from sre_graph.nodes.investigate.signals import classify_line, label_map, series_stats
from sre_graph.timeutil import iso, parse_time
from sre_graph.tools.replay import log_line_time, match_labels, selector_from_match_labels

PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError"}


def _scan_metrics(inv: Investigation) -> None:
    metric_signals.scan(inv, kinds=("throttle", "memory"))


def _pods(fn):
    def step(inv: Investigation) -> None:
        fn(inv, inv.pods())

    step.__name__ = fn.__name__.lstrip("_")
    return step


def _container_statuses(pod: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    spec = {c.get("name"): c for c in ((pod.get("spec") or {}).get("containers") or [])
            + ((pod.get("spec") or {}).get("initContainers") or [])}
    status = pod.get("status") or {}
    return [(cs, spec.get(cs.get("name"), {})) for cs in
            (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])]


def _serving(pods: list[dict[str, Any]], inv: Investigation) -> dict[str, tuple[int, int]]:
    """Per pod name: (pods, ready pods) behind what serves it: the Services that select it (what users reach),
    else the pods of its own workload."""
    services = inv.k8s("services")
    groups: dict[str, list[dict[str, Any]]] = {}
    for svc in services:
        selector = selector_from_match_labels((svc.get("spec") or {}).get("selector"))
        if not selector:
            continue
        ns = (svc.get("metadata") or {}).get("namespace")
        members = [p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
                   and match_labels(selector, (p.get("metadata") or {}).get("labels"))]
        groups[f"svc:{ns}/{(svc.get('metadata') or {}).get('name')}"] = members
    out: dict[str, tuple[int, int]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        behind = [m for m in groups.values() if any(p is pod for p in m)]
        if not behind:
            # Not selected by any Service (a canary, a surge pod with other labels): its app's Service is what
            # users reach, so weigh it by that Service's pods.
            names = set(inv.pod_identities(pod))
            behind = [m for key, m in groups.items() if m and key.startswith(f"svc:{meta.get('namespace')}/")
                      and names & set(inv.pod_identities(m[0]))]
        if not behind:
            behind = [[p for p in pods if (p.get("metadata") or {}).get("namespace") == meta.get("namespace")
                       and owner_name((p.get("metadata") or {}).get("name", "")) == owner_name(name)]]
        best = max(behind, key=lambda m: sum(1 for p in m if _pod_ok(p)))
        out[name] = (len(best), sum(1 for p in best if _pod_ok(p)))
    return out


def serving_factor(inv: Investigation, namespace: str, pod_name: str) -> float:
    """0.5 when most pods behind the pod's Service are ready and serve (one broken pod is not what users feel)."""
    serving = inv._cache.get("serving")
    if serving is None:
        serving = inv._cache["serving"] = _serving(inv.pods(), inv)
    pod = next((p for p in inv.pods() if (p.get("metadata") or {}).get("name") == pod_name
                and (p.get("metadata") or {}).get("namespace") == namespace), None)
    if pod is None:
        return 1.0
    total, ready = serving.get(pod_name, (1, 0))
    return 0.5 if ready and ready >= (total + 1) // 2 and not _pod_ok(pod) else 1.0


def _containers(inv: Investigation, pods: list[dict[str, Any]]) -> None:
    oom_seen: dict[str, list[str]] = {}
    serving = _serving(pods, inv)
    for pod in pods:
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        service = inv.pod_service(pod)
        weight = inv.pod_relevance(pod)
        total, ready = serving.get(name, (1, 0))
        if ready and ready >= (total + 1) // 2:
            # Most of the service's pods are ready and serve: one broken pod (a canary, a surge pod) is not
            # what users feel.
            weight *= 0.5
        query = f"kubectl get pods -n {ns} {name} -o json"
        objs = [name, *inv.pod_identities(pod), (pod.get("spec") or {}).get("nodeName")]
        for cs, spec in _container_statuses(pod):
            cname = cs.get("name", "")
            restarts = int(cs.get("restartCount") or 0)
            waiting = (cs.get("state") or {}).get("waiting") or {}
            terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            terminated = terminated or {}
            subject = f"{ns}/{name}"
            limits = (spec.get("resources") or {}).get("limits") or {}
            finished = parse_time(terminated.get("finishedAt"))
            recent = finished is not None and finished >= inv.alert_time - CHANGE_LOOKBACK
            stale = finished is not None and finished < inv.alert_time - STALE_AFTER

            if waiting.get("reason") in PULL_REASONS:
                ev = inv.add_evidence("kubernetes", query, f"{cname}:waiting",
                                      f"{subject} container {cname} is waiting: {waiting.get('reason')}"
                                      f" (image {spec.get('image') or cs.get('image')})",
                                      waiting.get("message", ""), created(pod))
                inv.propose("image_pull_failure",
                            f"Pod {subject} cannot start: {waiting.get('reason')} pulling image "
                            f"{spec.get('image') or cs.get('image')}.", [ev], 0.75 * weight + 0.1,
                            onset=created(pod), subject=subject, objects=objs,
                            keywords=[name, str(spec.get("image") or cs.get("image")), waiting.get("reason", "")],
                            explains=["no_endpoints", "connection_refused", "bad_rollout"])
            elif waiting.get("reason") in CONFIG_REASONS:
                ev = inv.add_evidence("kubernetes", query, f"{cname}:waiting",
                                      f"{subject} container {cname} cannot be created: {waiting.get('reason')}",
                                      waiting.get("message", ""), created(pod))
                inv.propose("config_error",
                            f"Pod {subject} cannot create container {cname}: {waiting.get('message') or ''}".strip(),
                            [ev], 0.7 * weight + 0.1, onset=created(pod), subject=subject, objects=objs,
                            keywords=[name, waiting.get("reason", "")],
                            explains=["crash_loop", "no_endpoints", "connection_refused", "bad_rollout"])

            if terminated.get("reason") == "OOMKilled":
                text = (f"{subject} container {cname} was OOMKilled (exit code {terminated.get('exitCode')}) "
                        f"at {iso(finished)}, restartCount {restarts}, memory limit {limits.get('memory', 'none')}")
                ev = inv.add_evidence("kubernetes", query, f"{cname}:oom", text,
                                      _fmt({"lastState.terminated": terminated, "restartCount": restarts,
                                            "resources.limits": limits}), finished)
                if stale and restarts < 3:
                    inv.propose("oom_killed", f"{text} ({ago(finished, inv.alert_time)} before the alert).",
                                [ev], 0.2, onset=finished, subject=subject, objects=objs, keywords=[name, "OOMKilled"])
                    continue
                oom_seen.setdefault(service or name, []).append(ev)
                confidence = (0.55 + 0.1 * min(restarts, 3)) * weight + (0.1 if recent else 0)
                inv.propose("oom_killed",
                            f"Container {cname} of {subject} was killed for exceeding its memory limit "
                            f"({limits.get('memory', 'no limit set')}): OOMKilled, {restarts} restarts, "
                            f"last at {iso(finished)}.", [ev], confidence, onset=finished, subject=subject,
                            objects=objs,
                            keywords=[name, "OOMKilled", str(limits.get("memory", ""))],
                            remediation=[f"Raise the memory limit of {cname} (now {limits.get('memory', 'unset')}) "
                                         "or find what grew its memory"],
                            explains=["crash_loop", "connection_refused", "no_endpoints", "upstream_timeout",
                                      "probe_failure", "dependency_outage", "error_spike_after_deploy"])
                continue

            crash = waiting.get("reason") == "CrashLoopBackOff" or (
                terminated.get("reason") in ("Error", "Completed", "ContainerCannotRun", "StartError")
                and int(terminated.get("exitCode") or 0) != 0 and restarts >= 2 and not stale)
            if crash:
                evidence = [inv.add_evidence(
                    "kubernetes", query, f"{cname}:crash",
                    f"{subject} container {cname} is crash-looping: {waiting.get('reason') or 'restarting'}, "
                    f"last exit code {terminated.get('exitCode')} ({terminated.get('reason', 'unknown')}), "
                    f"{restarts} restarts", _fmt({"state": cs.get("state"), "lastState": cs.get("lastState"),
                                                 "restartCount": restarts}), finished)]
                onset = finished
                tail = inv.pod_logs(ns, name, cname, previous=True, tail=50)
                causes = _log_causes(inv, tail, ns, name, cname)
                last_words = _last_error_line(tail)
                if causes:
                    evidence.append(causes[1])
                    onset = causes[2] or onset
                elif last_words:
                    evidence.append(inv.add_evidence(
                        "kubernetes", f"kubectl logs -n {ns} {name} -c {cname} --previous --timestamps --tail=50",
                        "last-words", f"{ns}/{name} ({cname}) previous run ended with: {last_words[:200]}",
                        "\n".join(tail.splitlines()[-8:]), log_line_time(tail.splitlines()[-1]) if tail else None))
                explain = ["connection_refused", "no_endpoints", "upstream_timeout", "probe_failure",
                           "dependency_outage"]
                inv.propose("crash_loop",
                            f"Container {cname} of {subject} keeps exiting (code {terminated.get('exitCode')}), "
                            f"{restarts} restarts" + (f"; its last log lines show {causes[0].label}" if causes else
                                                      f"; its last words: {last_words[:160]}" if last_words
                                                      else "") + ".",
                            evidence, (0.55 + 0.05 * min(restarts, 4)) * weight, onset=onset, subject=subject,
                            objects=objs,
                            keywords=[name, "CrashLoopBackOff"], explains=explain)
                if causes and causes[0].root_cause == "config_error":
                    inv.propose("config_error",
                                f"Container {cname} of {subject} exits on start with a configuration error: "
                                f"{causes[3]}", evidence, 0.75 * weight, onset=onset, subject=subject, objects=objs,
                                keywords=[name], explains=["crash_loop", *explain, "bad_rollout"])
            elif restarts > 0 and stale:
                ev = inv.add_evidence("kubernetes", query, f"{cname}:old-restart",
                                      f"{subject} container {cname} restarted {restarts} times, last "
                                      f"{ago(finished, inv.alert_time)} before the alert "
                                      f"({terminated.get('reason')})", _fmt({"lastState": cs.get("lastState")}),
                                      finished)
                inv.propose("crash_loop", f"{subject} restarted {restarts} times, last {ago(finished, inv.alert_time)}"
                            " before the alert; it has been running since.", [ev], 0.1, onset=finished,
                            subject=subject)


_ERRORISH = re.compile(r"error|fatal|panic|exception|traceback|failed|cannot|can't|unable|denied|exec format|"
                       r"segmentation|killed|exit(?:ed|ing)? (?:with|code)|bad file|corrupt|invalid|unrecoverable|"
                       r"abort|no such|not found|could not", re.IGNORECASE)


def _last_error_line(text: str) -> str | None:
    """The last error-looking line a crashed container wrote (without its timestamp)."""
    for line in reversed(text.splitlines()[-20:]):
        message = line.split(" ", 1)[1] if log_line_time(line) else line
        if _ERRORISH.search(message):
            return message.strip()
    return None


def _log_causes(inv: Investigation, text: str, ns: str, pod: str, container: str):
    """The most telling signature in a crashed container's last log lines, as evidence."""
    priority = ("config", "disk", "memory", "tls", "dns", "refused", "pool", "fd", "timeout")
    best = None
    for line in text.splitlines():
        for sig in classify_line(line):
            if sig.name in priority and (best is None or priority.index(sig.name) < priority.index(best[0].name)):
                best = (sig, line)
    if best is None:
        return None
    sig, line = best
    ts = log_line_time(line)
    message = line.split(" ", 1)[1] if ts else line
    ev = inv.add_evidence("kubernetes", f"kubectl logs -n {ns} {pod} -c {container} --previous --timestamps --tail=50",
                          f"{sig.name}:{line[:80]}", f"{ns}/{pod} ({container}) previous run logged {sig.label}",
                          "\n".join(text.splitlines()[-8:]), ts)
    return sig, ev, ts, message.strip()


def _pending(inv: Investigation, pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        meta = pod.get("metadata") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                subject = f"{meta.get('namespace')}/{meta.get('name')}"
                since = parse_time(cond.get("lastTransitionTime")) or created(pod)
                ev = inv.add_evidence("kubernetes", f"kubectl get pods -n {meta.get('namespace')} {meta.get('name')}"
                                      " -o json", "unschedulable",
                                      f"{subject} is Pending: {cond.get('reason')}: {cond.get('message', '')}",
                                      _fmt(cond), since)
                weight = inv.relevance(inv.pod_service(pod), meta.get("namespace"))
                inv.propose("unschedulable", f"Pod {subject} cannot be scheduled: {cond.get('message', '')}",
                            [ev], 0.7 * weight, onset=since, subject=subject,
                            keywords=[meta.get("name", ""), "FailedScheduling"],
                            objects=[meta.get("name", ""), inv.pod_service(pod)],
                            explains=["no_endpoints", "autoscaling_limit", "upstream_timeout"])


EVENT_CAUSES = {
    "Unhealthy": "probe_failure",
    "FailedScheduling": "unschedulable",
    "FailedMount": "volume_failure",
    "FailedAttachVolume": "volume_failure",
    "Evicted": "node_pressure",
    "EvictionThresholdMet": "node_pressure",
    "NodeHasDiskPressure": "node_pressure",
    "NodeHasInsufficientMemory": "node_pressure",
    "OOMKilling": "oom_killed",
    "NodeNotReady": "node_not_ready",
}


def _events(inv: Investigation) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in inv.k8s("events"):
        if event.get("type") != "Warning":
            continue
        reason = event.get("reason", "")
        cause = EVENT_CAUSES.get(reason)
        message = event.get("message", "")
        if reason in ("Failed", "BackOff") and ("pull" in message.lower() or "image" in message.lower()):
            cause = "image_pull_failure"
        if cause is None:
            continue
        obj = event.get("involvedObject") or {}
        groups.setdefault((cause, f"{obj.get('namespace', '')}/{obj.get('name', '')}"), []).append(event)
    for (cause, subject), events in groups.items():
        first = min((parse_time(e.get("firstTimestamp") or e.get("eventTime")) or inv.alert_time) for e in events)
        last = max((parse_time(e.get("lastTimestamp") or e.get("eventTime")) or inv.alert_time) for e in events)
        count = sum(int(e.get("count") or 1) for e in events)
        obj = events[0].get("involvedObject") or {}
        ns = obj.get("namespace") or (events[0].get("metadata") or {}).get("namespace")
        query = f"kubectl get events -n {ns} --field-selector involvedObject.name={obj.get('name')},type=Warning" \
            if ns else f"kubectl get events -A --field-selector involvedObject.name={obj.get('name')},type=Warning"
        messages = sorted({e.get("message", "") for e in events})
        liveness = any("liveness" in m.lower() for m in messages)
        ev = inv.add_evidence("kubernetes", query, f"{cause}:{subject}",
                              f"{count} {events[0].get('reason')} warning(s) on {obj.get('kind', '')} {subject} "
                              f"from {iso(first)} to {iso(last)}", "\n".join(messages[:5]), first, last)
        if last < inv.window_start or first < inv.alert_time - STALE_AFTER and last < inv.alert_time - CHANGE_LOOKBACK:
            continue
        chronic = first < inv.alert_time - STALE_AFTER
        service = obj.get("name", "").rsplit("-", 2)[0] if obj.get("kind") == "Pod" else obj.get("name")
        weight = inv.relevance(service, ns) if obj.get("kind") != "Node" else 0.9
        base = {"probe_failure": 0.45, "unschedulable": 0.65, "volume_failure": 0.7, "node_pressure": 0.6,
                "oom_killed": 0.6, "node_not_ready": 0.6, "image_pull_failure": 0.65}[cause]
        if obj.get("kind") == "Pod":
            weight *= serving_factor(inv, ns or "", obj.get("name", ""))
        if cause == "volume_failure" and obj.get("kind") == "Pod" and _started_after(inv, ns or "", obj.get("name", ""),
                                                                                last):
            # The volume mounted in the end: containers started after the last mount failure.
            weight *= 0.3
        if cause == "node_not_ready" and _node_ready_since(inv, events) is not None:
            # The node came back: a reboot is over; what still fails has its own cause now.
            weight *= 0.3
        if cause == "probe_failure" and not liveness:
            # Readiness failures take a slow pod out of rotation: a symptom of the slowness, not its cause.
            weight *= 0.5
        confidence = (base + 0.05 * min(count, 4)) * weight * (0.3 if chronic else 1.0)
        statement = f"{events[0].get('reason')} on {obj.get('kind', 'object')} {subject}: {messages[0][:200]}"
        if chronic:
            statement += f" (recurring since {ago(first, inv.alert_time)} before the alert)"
        explains = {"probe_failure": ["no_endpoints", "connection_refused", "upstream_timeout"]
                    + (["crash_loop"] if liveness else []),
                    "unschedulable": ["no_endpoints", "autoscaling_limit"],
                    "volume_failure": ["crash_loop", "no_endpoints", "unschedulable"],
                    "node_pressure": ["crash_loop", "no_endpoints", "probe_failure", "upstream_timeout"],
                    "node_not_ready": ["no_endpoints", "connection_refused", "upstream_timeout", "probe_failure",
                                       "crash_loop"],
                    }.get(cause, [])
        hosts = sorted({(e.get("source") or {}).get("host", "") for e in events} - {""})
        inv.propose(cause, statement, [ev], confidence, onset=first, subject=subject,
                    keywords=[obj.get("name", ""), events[0].get("reason", "")], explains=explains,
                    objects=[obj.get("name", ""), service, *hosts])


NODE_PROBLEMS = {"ReadonlyFilesystem": "volume_failure", "KernelDeadlock": "node_not_ready",
                 "FrequentKubeletRestart": "node_not_ready", "FrequentContainerdRestart": "node_not_ready",
                 "FrequentDockerRestart": "node_not_ready", "CorruptDockerOverlay2": "node_not_ready",
                 "FrequentUnregisterNetDevice": "node_not_ready"}
"""node-problem-detector conditions (True means the problem is present) and the root cause they point at."""


def _started_after(inv: Investigation, namespace: str, pod_name: str, when: Any) -> bool:
    """Whether any container of the pod started after ``when``."""
    for pod in inv.pods(namespace):
        if (pod.get("metadata") or {}).get("name") != pod_name:
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in ((cs.get("state") or {}).get("running"), (cs.get("state") or {}).get("terminated"),
                          (cs.get("lastState") or {}).get("terminated")):
                started = parse_time((state or {}).get("startedAt"))
                if started and when and started > when:
                    return True
    return False


def _node_ready_since(inv: Investigation, events: list[dict[str, Any]]) -> Any:
    """When the node that NotReady events are about became Ready again (``None`` if it still is not)."""
    pod_nodes = {(p.get("metadata") or {}).get("name"): (p.get("spec") or {}).get("nodeName") for p in inv.pods()}
    nodes = set()
    for event in events:
        obj = event.get("involvedObject") or {}
        nodes.add((event.get("source") or {}).get("host") or (
            pod_nodes.get(obj.get("name")) if obj.get("kind") == "Pod" else obj.get("name")))
    for node in inv.k8s("nodes"):
        if (node.get("metadata") or {}).get("name") not in nodes:
            continue
        for cond in (node.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                return parse_time(cond.get("lastTransitionTime"))
    return None


def _nodes(inv: Investigation, pods: list[dict[str, Any]]) -> None:
    for node in inv.k8s("nodes"):
        name = (node.get("metadata") or {}).get("name", "")
        hosted = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
        affected = [p for p in hosted if inv.pod_relevance(p) >= 0.8]
        for cond in (node.get("status") or {}).get("conditions") or []:
            kind, status = cond.get("type"), cond.get("status")
            since = parse_time(cond.get("lastTransitionTime"))
            standard = kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
            bad = (kind == "Ready" and status != "True") or (
                kind in ("MemoryPressure", "DiskPressure", "PIDPressure") and status == "True") or (
                not standard and status == "True")
            if not bad:
                continue
            cause = ("node_not_ready" if kind == "Ready" else "node_pressure" if standard
                     else NODE_PROBLEMS.get(str(kind), "node_not_ready"))
            ev = inv.add_evidence("kubernetes", f"kubectl get node {name} -o json", f"{kind}",
                                  f"Node {name} {kind}={status} since {iso(since)}: {cond.get('reason', '')} "
                                  f"{cond.get('message', '')}".strip(), _fmt(cond), since)
            evidence = [ev]
            names = ", ".join((p.get("metadata") or {}).get("name", "") for p in affected[:5])
            consumers = _memory_consumers(inv, name) if kind == "MemoryPressure" else []
            if consumers:
                evidence.append(consumers[0][2])
            weight = 1.0 if affected else 0.6
            stale = since is not None and since < inv.alert_time - STALE_AFTER
            inv.propose(cause, f"Node {name} is {kind}={status} since {iso(since)} ({cond.get('reason', '')})"
                        + (f"; it runs {names}" if names else "")
                        + (f"; its largest memory user is {consumers[0][0]} ({consumers[0][1]})" if consumers else "")
                        + ".", evidence,
                        (0.3 if stale else 0.8) * weight, onset=since, subject=f"node/{name}",
                        keywords=[name, kind if kind != "Ready" else "NotReady", *[c[0] for c in consumers[:1]]],
                        objects=[name, *[(p.get("metadata") or {}).get("name", "") for p in hosted],
                                 *{inv.pod_service(p) or "" for p in hosted}, *[c[0] for c in consumers[:1]]],
                        explains=["no_endpoints", "connection_refused", "upstream_timeout", "crash_loop",
                                  "probe_failure", "unschedulable", "failover", "replication_lag", "oom_killed"])


def _memory_consumers(inv: Investigation, node: str) -> list[tuple[str, str, str]]:
    """The pods using the most memory on a node (working set), largest first: (pod, amount, evidence id)."""
    from sre_graph.nodes.investigate.metrics import metric_kind

    usage: dict[str, float] = {}
    for metric in inv.metric_names():
        if metric_kind(metric) != "memory" or "node" in metric.split(".")[0]:
            continue
        for series in inv.metric(metric):
            labels = label_map(series)
            if node not in (labels.get("k8s.node.name"), labels.get("node")):
                continue
            pod = labels.get("k8s.pod.name") or labels.get("pod") or ""
            values = [float(v["value"]) for v in series.get("values") or [] if v.get("value") is not None]
            if pod and values:
                usage[pod] = max(usage.get(pod, 0.0), values[-1])
    top = sorted(usage.items(), key=lambda kv: -kv[1])[:3]
    out = []
    for pod, value in top:
        amount = f"{value / 2**30:.1f} GiB" if value > 2**20 else f"{value:g}"
        ev = inv.add_evidence("signoz", f"memory working set of pods on node {node}", f"top:{pod}",
                              f"On node {node}, {pod} uses {amount} of memory, the most of any pod there",
                              "\n".join(f"{p}: {v / 2**30:.2f} GiB" for p, v in top), inv.now)
        out.append((pod, amount, ev))
    return out


def rollout_changes(inv: Investigation) -> list[dict[str, Any]]:
    """Deployments whose newest ReplicaSet appeared within the change window, with what changed."""
    if "rollouts" in inv._cache:
        return inv._cache["rollouts"]
    out = []
    for dep, replicasets in inv.deployments_with_replicasets(None):
        if not replicasets:
            continue
        meta = dep.get("metadata") or {}
        newest = replicasets[0]
        when = created(newest)
        if when is None:
            continue
        previous = replicasets[1] if len(replicasets) > 1 else None
        diff = _template_diff(previous, newest) if previous else ["first revision"]
        out.append({"deployment": dep, "namespace": meta.get("namespace"), "name": meta.get("name"),
                    "newest": newest, "previous": previous, "time": when, "diff": diff,
                    "revision": revision(newest), "service": _dep_service(dep)})
    inv._cache["rollouts"] = out
    return out


def _dep_service(dep: dict[str, Any]) -> str:
    labels = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    for key in ("app.kubernetes.io/name", "app", "service", "k8s-app"):
        if labels.get(key):
            return labels[key]
    return (dep.get("metadata") or {}).get("name", "")


def _containers_of(rs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("name"): c for c in (((rs.get("spec") or {}).get("template") or {}).get("spec") or {})
            .get("containers") or []}


def _template_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    before, after = _containers_of(old), _containers_of(new)
    for name, container in after.items():
        prev = before.get(name, {})
        if prev.get("image") != container.get("image"):
            changes.append(f"image {prev.get('image')} → {container.get('image')}")
        for field_ in ("resources", "args", "command", "livenessProbe", "readinessProbe", "ports"):
            if prev.get(field_) != container.get(field_):
                changes.append(f"{name} {field_}: {_short(prev.get(field_))} → {_short(container.get(field_))}")
        env_old = {e.get("name"): e.get("value", e.get("valueFrom")) for e in prev.get("env") or []}
        env_new = {e.get("name"): e.get("value", e.get("valueFrom")) for e in container.get("env") or []}
        for key in sorted(set(env_old) | set(env_new)):
            if env_old.get(key) != env_new.get(key):
                changes.append(f"{name} env {key}: {_short(env_old.get(key))} → {_short(env_new.get(key))}")
    old_notes = (((old.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    new_notes = (((new.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    for key in sorted(set(old_notes) | set(new_notes)):
        if old_notes.get(key) != new_notes.get(key):
            changes.append(f"annotation {key}: {_short(old_notes.get(key))} → {_short(new_notes.get(key))}")
    return changes or ["pod template labels only"]


def config_only(diff: list[str]) -> bool:
    """Whether a rollout changed configuration (env, args, config checksums, a restart) but not the image."""
    return not any(d.startswith("image ") for d in diff) and any(
        " env " in d or " args:" in d or " command:" in d or d.startswith("annotation ") for d in diff)


def configmaps_used(deployment: dict[str, Any]) -> set[str]:
    """Names of the ConfigMaps a deployment's pods read (env, envFrom, volumes)."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    names = {((v.get("configMap") or {}).get("name")) for v in spec.get("volumes") or []}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        names |= {((e.get("configMapRef") or {}).get("name")) for e in container.get("envFrom") or []}
        names |= {(((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name"))
                  for e in container.get("env") or []}
    return {n for n in names if n}


def _rollouts(inv: Investigation) -> None:
    pods = inv.pods()
    for change in rollout_changes(inv):
        when, newest = change["time"], change["newest"]
        ns, name = change["namespace"], change["name"]
        weight = inv.relevance(change["service"], ns)
        rs_name = (newest.get("metadata") or {}).get("name", "")
        query = f"kubectl rollout history deployment/{name} -n {ns} (ReplicaSets)"
        summary = (f"Deployment {ns}/{name} rolled out revision {change['revision']} ({rs_name}) at {iso(when)}: "
                   + "; ".join(change["diff"][:4]))
        ev = inv.add_evidence("kubernetes", query, rs_name, summary, "\n".join(change["diff"]), when)
        first_and_old = change["previous"] is None and when < inv.alert_time - CHANGE_LOOKBACK
        if when < inv.alert_time - STALE_AFTER or first_and_old:
            continue
        if when < inv.alert_time - CHANGE_LOOKBACK or when > inv.now:
            continue
        new_pods = [p for p in pods if any(o.get("name") == rs_name for o in
                                           (p.get("metadata") or {}).get("ownerReferences") or [])]
        failing = [p for p in new_pods if not _pod_ok(p)]
        status = change["deployment"].get("status") or {}
        stuck = any(c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
                    for c in status.get("conditions") or [])
        if failing or stuck or int(status.get("unavailableReplicas") or 0) > 0:
            detail = f"{len(failing)} of {len(new_pods)} new pods not ready" if new_pods else "rollout stuck"
            inv.propose("bad_rollout", f"The rollout of {ns}/{name} to revision {change['revision']} at {iso(when)} "
                        f"broke it ({detail}); it changed " + "; ".join(change["diff"][:3]) + ".", [ev],
                        0.55 * weight, onset=when, subject=f"{ns}/{name}",
                        keywords=[name, *[d.split(" → ")[-1] for d in change["diff"][:1]]],
                        remediation=[f"kubectl rollout undo deployment/{name} -n {ns}"],
                        explains=["crash_loop", "probe_failure", "no_endpoints", "connection_refused",
                                  "upstream_timeout", "error_spike_after_deploy"],
                        objects=[name, change["service"],
                                 *[(p.get("metadata") or {}).get("name", "") for p in new_pods]])


def _pod_ok(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return all(cs.get("ready") for cs in status.get("containerStatuses") or [])


def _autoscaling(inv: Investigation) -> None:
    for hpa in inv.k8s("hpa"):
        meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
        max_replicas = int(spec.get("maxReplicas") or 0)
        current = int(status.get("currentReplicas") or 0)
        desired = int(status.get("desiredReplicas") or 0)
        limited = [c for c in status.get("conditions") or [] if c.get("type") == "ScalingLimited"
                   and c.get("status") == "True"]
        if not max_replicas or current < max_replicas:
            continue
        since = parse_time(limited[0].get("lastTransitionTime")) if limited else parse_time(
            status.get("lastScaleTime"))
        target = (spec.get("scaleTargetRef") or {}).get("name", meta.get("name", ""))
        ev = inv.add_evidence("kubernetes", f"kubectl get hpa -n {meta.get('namespace')} {meta.get('name')} -o json",
                              "at-max", f"HPA {meta.get('namespace')}/{meta.get('name')} at maxReplicas "
                              f"{max_replicas} (current {current}, desired {desired})",
                              _fmt({"spec.maxReplicas": max_replicas, "status": status}), since)
        weight = inv.relevance(target, meta.get("namespace"))
        pressure = desired > max_replicas or bool(limited)
        surge = _traffic_surge(inv, target)
        evidence = [ev] + ([surge[1]] if surge else [])
        inv.propose("autoscaling_limit", f"The autoscaler for {target} is pinned at its maximum of {max_replicas} "
                    f"replicas (desired {desired}) since {iso(since)}"
                    + (f"; its traffic rose ×{surge[0]:.1f}" if surge else "") + ".", evidence,
                    (0.7 if pressure else 0.4) * weight + (0.1 if surge else 0),
                    onset=since, subject=f"{meta.get('namespace')}/{target}",
                    keywords=[target, "maxReplicas"], objects=[target],
                    remediation=[f"Raise maxReplicas of the {target} autoscaler (now {max_replicas}) or add capacity"],
                    explains=["upstream_timeout", "cpu_throttling", "rate_limited", "oom_killed", "crash_loop",
                              "probe_failure"])


def _traffic_surge(inv: Investigation, service: str) -> tuple[float, str] | None:
    """How much a service's request rate rose around the alert (×, evidence id), if a request metric shows it."""
    from sre_graph.nodes.investigate.metrics import metric_kind, series_service

    for metric in inv.metric_names():
        if metric_kind(metric) != "requests":
            continue
        for series in inv.metric(metric):
            if series_service(label_map(series)) != service and service not in label_map(series).values():
                continue
            stats = series_stats(series.get("values") or [], inv.alert_time - timedelta(minutes=10))
            if stats and stats.ratio and stats.ratio >= 1.5:
                return stats.ratio, inv.add_evidence(
                    "signoz", f"metric {metric} where service = {service}", f"surge:{service}",
                    f"{metric} for {service} rose from {stats.before:g} to {stats.after:g} (×{stats.ratio:.1f})",
                    f"first={stats.first:g} last={stats.last:g} peak={stats.peak:g}",
                    stats.change_at or inv.alert_time)
    return None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fmt(value: Any) -> str:
    import json

    return json.dumps(value, default=str, indent=1)[:1200]




STEPS = (_pods(_containers), _pods(_pending), _events, _pods(_nodes), _rollouts, _autoscaling, _scan_metrics)
"""The runbook: each step reads one kind of signal."""
