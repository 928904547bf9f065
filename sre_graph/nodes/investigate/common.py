"""The investigation workbench: querying sources, recording evidence, proposing findings.

Every domain runbook gets one :class:`Investigation`. It runs each query once
(repeated asks are served from a per-run cache), turns an unavailable source into
a recorded fact instead of an exception, and gives evidence stable ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sre_graph import taxonomy
from sre_graph.models import Alert, Classification, DataSource, Evidence, Finding
from sre_graph.timeutil import iso, parse_time
from sre_graph.tools.base import Sources, SourceUnavailable
from sre_graph.tools.replay import selector_from_match_labels

INCIDENT_LOOKBACK = timedelta(minutes=60)
"""How far before the alert an anomaly still counts as part of the incident."""
CHANGE_LOOKBACK = timedelta(hours=6)
"""How far before the alert a change (deploy, policy, config) is a candidate cause."""
STALE_AFTER = timedelta(hours=24)
"""Anything older than this before the alert is ruled out as too old to explain it."""

SERVICE_LABELS = ("app.kubernetes.io/name", "app", "service", "k8s-app", "app.kubernetes.io/instance",
                  "component", "name")
IDENTITY_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/name", "app", "service", "k8s-app")


class Investigation:
    """Queries, evidence and findings of one investigator in one round."""

    def __init__(self, alert: Alert, classification: Classification, sources: Sources, domain: str) -> None:
        self.alert = alert
        self.classification = classification
        self.sources = sources
        self.domain = domain
        self.now: datetime = sources.now()
        self.alert_time: datetime = alert.timestamp
        self.window_start = self.alert_time - INCIDENT_LOOKBACK
        self.evidence: dict[str, Evidence] = {}
        self.findings: list[Finding] = []
        self.checked: list[str] = []
        self.unavailable: dict[str, str] = dict(sources.unavailable)
        self.tool_calls = 0
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------ querying

    def ask(self, source: DataSource, query: str, call: Callable[[Any], Any], default: Any = None) -> Any:
        """Run ``call(port)`` against a source once per query text; record it as checked.

        An unavailable source returns ``default`` and is recorded with its reason.
        """
        key = f"{source}|{query}"
        if key in self._cache:
            return self._cache[key]
        port = getattr(self.sources, source)
        if port is None or source in self.unavailable:
            self.unavailable.setdefault(source, "not configured")
            self._cache[key] = default
            return default
        shared = f"{iso(self.now)}|{key}"
        if shared not in self.sources.answers:
            self.tool_calls += 1
            try:
                self.sources.answers[shared] = (call(port), None)
            except SourceUnavailable as exc:
                self.sources.answers[shared] = (None, exc.reason)
        result, failure = self.sources.answers[shared]
        if failure is not None:
            self.unavailable[source] = failure
            result = default
        else:
            self.checked.append(f"{source}: {query}")
        self._cache[key] = result
        return result

    def available(self, source: DataSource) -> bool:
        """Whether the source has answered (or not yet failed)."""
        return getattr(self.sources, source) is not None and source not in self.unavailable

    # ------------------------------------------------------------ scope

    @property
    def service(self) -> str:
        """The alerted service."""
        return self.alert.service_name

    def namespace(self) -> str | None:
        """The alert's namespace, or the one the service's logs or pods live in."""
        if "namespace" in self._cache:
            return self._cache["namespace"]
        namespace = self.alert.namespace
        if not namespace:
            for row in self.logs(service=self.service, limit=50):
                ns = ((row.get("data") or {}).get("resources_string") or {}).get("k8s.namespace.name")
                if ns:
                    namespace = ns
                    break
        if not namespace:
            for pod in self.pods():
                if self.pod_service(pod) == self.service:
                    namespace = pod["metadata"].get("namespace")
                    break
        self._cache["namespace"] = namespace
        return namespace

    def k8s(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        """Kubernetes objects of a kind (all namespaces when ``namespace`` is ``None``)."""
        where = f" -n {namespace}" if namespace else " -A"
        sel = f" -l {selector}" if selector else ""
        return self.ask("kubernetes", f"kubectl get {kind}{where}{sel}",
                        lambda p: p.list(kind, namespace=namespace, label_selector=selector), []) or []

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Pods, all namespaces by default."""
        return self.k8s("pods", namespace)

    def pod_logs(self, namespace: str, pod: str, container: str, *, previous: bool = False, tail: int = 200) -> str:
        """Container logs (``--previous`` for the crashed instance)."""
        flag = " --previous" if previous else ""
        return self.ask(
            "kubernetes", f"kubectl logs -n {namespace} {pod} -c {container}{flag} --timestamps --tail={tail}",
            lambda p: p.pod_logs(namespace, pod, container=container, previous=previous, tail_lines=tail), "") or ""

    def logs(self, *, service: str | None = None, namespace: str | None = None, min_severity: str | None = None,
             start: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """SigNoz log rows from ``start`` (default: 3 h before the alert) to now."""
        start = start or self.alert_time - timedelta(hours=3)
        parts = [f"service.name = '{service}'" if service else "", f"k8s.namespace.name = '{namespace}'"
                 if namespace else "", f"severity >= {min_severity}" if min_severity else ""]
        where = " AND ".join(p for p in parts if p) or "all"
        query = f"logs where {where} from {iso(start)} to {iso(self.now)} limit {limit}"
        return self.ask("signoz", query, lambda p: p.search_logs(
            start=start, end=self.now, service=service, namespace=namespace, min_severity=min_severity,
            limit=limit), []) or []

    def traces(self, *, service: str | None = None, errors_only: bool = False,
               start: datetime | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """SigNoz spans from ``start`` (default: 3 h before the alert) to now."""
        start = start or self.alert_time - timedelta(hours=3)
        where = " AND ".join(p for p in [f"service.name = '{service}'" if service else "",
                                          "has_error = true" if errors_only else ""] if p) or "all"
        query = f"traces where {where} from {iso(start)} to {iso(self.now)} limit {limit}"
        return self.ask("signoz", query, lambda p: p.search_traces(
            start=start, end=self.now, service=service, errors_only=errors_only, limit=limit), []) or []

    def metric(self, name: str, filters: dict[str, str] | None = None,
               lookback: timedelta = timedelta(hours=3)) -> list[dict[str, Any]]:
        """One metric's series from ``lookback`` before the alert to now."""
        start = self.alert_time - lookback
        where = " AND ".join(f"{k} = '{v}'" for k, v in (filters or {}).items())
        query = f"metric {name}{' where ' + where if where else ''} from {iso(start)} to {iso(self.now)}"
        return self.ask("signoz", query, lambda p: p.query_metric(metric=name, start=start, end=self.now,
                                                                  filters=filters), []) or []

    def metric_names(self) -> list[str]:
        """Metric names the source has (replay lists the recorded ones; live asks SigNoz)."""
        port = self.sources.signoz
        lister = getattr(port, "metric_names", None)
        if lister is None:
            return []
        return self.ask("signoz", "list metric names", lambda p: p.metric_names(), []) or []

    # ------------------------------------------------------------ relations

    @staticmethod
    def pod_service(pod: dict[str, Any]) -> str | None:
        """The service a pod belongs to, from its standard labels or its owner's name."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        for key in SERVICE_LABELS:
            if labels.get(key):
                return labels[key]
        name = (pod.get("metadata") or {}).get("name", "")
        parts = name.rsplit("-", 2)
        return parts[0] if len(parts) == 3 else name

    @staticmethod
    def pod_identities(pod: dict[str, Any]) -> list[str]:
        """Every name a pod answers to: its workload (from its own name) and its identity labels (a Helm
        release's ``instance`` is more specific than the chart's ``name``)."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        names = [owner_name(meta.get("name", ""))] + [labels[k] for k in IDENTITY_LABELS if labels.get(k)]
        return list(dict.fromkeys(n for n in names if n))

    def pod_relevance(self, pod: dict[str, Any]) -> float:
        """The pod's relevance to the alert, by the most relevant of its names."""
        namespace = (pod.get("metadata") or {}).get("namespace")
        return max(self.relevance(name, namespace) for name in self.pod_identities(pod) or [""])

    def related_services(self) -> set[str]:
        """The alerted service and what it calls (from its spans' peers and child spans)."""
        if "related" in self._cache:
            return self._cache["related"]
        related = {self.service}
        spans = self.traces(start=self.window_start)
        by_id = {(s.get("data") or {}).get("span_id"): s.get("data") or {} for s in spans}
        for span in by_id.values():
            parent = by_id.get(span.get("parent_span_id"))
            if parent and parent.get("service.name") == self.service and span.get("service.name"):
                related.add(span["service.name"])
            if span.get("service.name") == self.service and span.get("peer.service"):
                related.add(span["peer.service"])
        related |= self._log_targets()
        related |= self._configured_targets()
        self._cache["related"] = related
        return related

    def _configured_targets(self) -> set[str]:
        """Services the alerted service is configured to call: host names in its pods' env values and args."""
        from sre_graph.nodes.investigate.signals import host_to_service

        pattern = re.compile(r"(?:[a-z][a-z0-9+.-]*://(?:[^@/\s]+@)?)?([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.svc"
                             r"(?:\.cluster\.local)?|(?<=://)[a-z0-9][a-z0-9.-]*[a-z0-9])", re.IGNORECASE)
        targets: set[str] = set()
        for pod in self.pods(self.alert.namespace):
            if self.service not in self.pod_identities(pod):
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                values = [str(e.get("value", "")) for e in container.get("env") or []]
                values += [str(a) for a in (container.get("args") or []) + (container.get("command") or [])]
                for value in values:
                    for match in pattern.finditer(value):
                        targets.add(host_to_service(match.group(1).lower()))
        return {t for t in targets if t and t != self.service}

    def _log_targets(self) -> set[str]:
        """Services the alerted service's own warning and error logs name as the target of failed calls."""
        from sre_graph.nodes.investigate.signals import extract_target, host_to_service

        texts = [str((row.get("data") or {}).get("body", "")) + " " + " ".join(
            str(v) for v in ((row.get("data") or {}).get("attributes_string") or {}).values())
            for row in self.logs(service=self.service, min_severity="WARN", start=self.window_start, limit=500)]
        if not texts and not self.available("signoz"):
            for pod in self.pods(self.alert.namespace):
                if self.pod_service(pod) != self.service:
                    continue
                for container in ((pod.get("spec") or {}).get("containers") or [])[:1]:
                    name = (pod.get("metadata") or {}).get("name", "")
                    texts += self.pod_logs((pod.get("metadata") or {}).get("namespace", ""), name,
                                           container.get("name", ""), tail=200).splitlines()
        targets = set()
        for text in texts:
            target = extract_target(text)
            if target:
                targets.add(host_to_service(target))
        return targets

    def relevance(self, service: str | None, namespace: str | None = None) -> float:
        """How close an object is to the alert: 1.0 the service or its dependency, 0.8 same namespace."""
        related = self.related_services()
        if service and (service in related or owner_name(service) in {owner_name(r) for r in related}
                        or self.service in service or service in self.service):
            return 1.0
        if namespace and namespace == self.namespace():
            return 0.8
        if namespace and namespace in ("kube-system",):
            return 0.7
        return 0.5

    def deployments_with_replicasets(self, namespace: str | None) -> list[tuple[dict, list[dict]]]:
        """Each deployment with its ReplicaSets, newest revision first."""
        out = []
        replicasets = self.k8s("replicasets", namespace)
        for dep in self.k8s("deployments", namespace):
            meta = dep.get("metadata") or {}
            owned = [rs for rs in replicasets
                     if (rs.get("metadata") or {}).get("namespace") == meta.get("namespace")
                     and any(o.get("kind") == "Deployment" and o.get("name") == meta.get("name")
                             for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]
            if not owned:
                selector = selector_from_match_labels(((dep.get("spec") or {}).get("selector") or {})
                                                      .get("matchLabels"))
                owned = [rs for rs in replicasets if (rs.get("metadata") or {}).get("namespace") == meta.get(
                    "namespace") and selector and all(
                    ((rs.get("metadata") or {}).get("labels") or {}).get(k) == v
                    for k, v in (((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())]
            owned.sort(key=revision, reverse=True)
            out.append((dep, owned))
        return out

    # ------------------------------------------------------------ recording

    def add_evidence(self, source: DataSource, query: str, key: str, summary: str, excerpt: str = "",
                     timestamp: datetime | None = None, end: datetime | None = None, *, healthy: bool = False) -> str:
        """Record one piece of evidence; return its stable id."""
        evidence_id = Evidence.make_id(source, query, key)
        self.evidence[evidence_id] = Evidence(
            id=evidence_id, source=source, query=query, summary=summary, excerpt=excerpt[:1500],
            timestamp=timestamp, end_timestamp=end, healthy=healthy)
        return evidence_id

    def propose(self, root_cause: str, statement: str, evidence_ids: list[str], confidence: float, *,
                onset: datetime | None = None, subject: str = "", keywords: list[str] | None = None,
                remediation: list[str] | None = None, explains: list[str] | None = None,
                domain: str | None = None, objects: Sequence[str | None] | None = None,
                steady: bool = False) -> Finding:
        """Propose a finding in the root cause's own domain."""
        finding = Finding(
            domain=domain or taxonomy.domain_of(root_cause) or self.domain,  # type: ignore[arg-type]
            root_cause=root_cause, statement=statement, evidence_ids=list(dict.fromkeys(evidence_ids)),
            confidence=max(0.0, min(1.0, confidence)), onset=onset, subject=subject,
            keywords=keywords or [], remediation=remediation or [], explains=explains or [],
            objects=object_names([subject, *(objects or [])]), steady=steady)
        names = finding.objects or [subject]
        finding.relevance = max((self.relevance(name) for name in names if name), default=1.0)
        self.findings.append(finding)
        return finding


def owner_name(name: str) -> str:
    """The workload a pod or host name belongs to: ``mongo-0`` → ``mongo``, ``api-7d9f8b-x2x4z`` → ``api``."""
    parts = name.split(".", 1)[0].split("-")
    if len(parts) > 1 and parts[-1].isdigit():
        return "-".join(parts[:-1])
    if len(parts) > 2 and any(c.isdigit() for c in parts[-2] + parts[-1]) and len(parts[-1]) == 5:
        return "-".join(parts[:-2])
    return name.split(".", 1)[0]


def object_names(names: list[str | None]) -> list[str]:
    """Normalised object names: ``ns/pod`` also as ``pod``; empty names dropped."""
    out: list[str] = []
    for name in names:
        if not name:
            continue
        for variant in (name, name.split("/", 1)[-1], owner_name(name.split("/", 1)[-1])):
            variant = variant.strip().lower()
            if variant and variant not in out and not variant.startswith("node/"):
                out.append(variant)
        if name.startswith("node/"):
            out.append(name[5:].lower())
    return out


def revision(obj: dict[str, Any]) -> int:
    """A ReplicaSet's ``deployment.kubernetes.io/revision``."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get("deployment.kubernetes.io/revision", 0))
    except ValueError:
        return 0


def created(obj: dict[str, Any]) -> datetime | None:
    """``metadata.creationTimestamp``."""
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def last_change(obj: dict[str, Any]) -> datetime | None:
    """The latest time an object was written: newest managedFields entry, else creation."""
    parsed = [parse_time(m.get("time")) for m in (obj.get("metadata") or {}).get("managedFields") or []
              if m.get("time")]
    times = [t for t in parsed if t is not None]
    return max(times) if times else created(obj)


def ago(then: datetime | None, now: datetime) -> str:
    """How long before ``now`` something happened, as ``3d 4h`` / ``2h 5m`` / ``7m`` (no sign, no suffix)."""
    if then is None:
        return "an unknown time"
    seconds = abs(int((now - then).total_seconds()))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"
