"""The data sources as read-only LangChain tools, grouped in toolsets with health checks.

Every tool returns one envelope (:class:`ToolResult`): status, data, error, the source, the query as run and
the evidence id a report cites. Output is capped on whole records, repeated log lines are grouped, and
every value has been redacted by the port underneath before a tool formats it. Nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from sre_graph.models import Evidence
from sre_graph.timeutil import iso, parse_time
from sre_graph.tools.base import Sources, SourceUnavailable
from sre_graph.tools.output import DEFAULT_MAX_CHARS, cap_records, group_lines, render_groups
from sre_graph.tools.replay import match_labels, selector_from_match_labels

Status = Literal["success", "no_data", "error"]


class ToolResult(BaseModel):
    """The one envelope every tool returns."""

    status: Status
    data: str | None = None
    error: str | None = None
    source: str
    query: str
    """The query as run, in words a person could re-run."""
    evidence_id: str
    """The id a report cites for this result."""
    records: int = 0
    omitted: int = 0
    """Records left out by the output cap."""


class Toolset(BaseModel):
    """One data source's tools, with whether they can be offered to a model."""

    model_config = {"arbitrary_types_allowed": True}

    name: str
    description: str
    status: Literal["enabled", "disabled", "failed"] = "enabled"
    reason: str = ""
    tools: list[BaseTool] = Field(default_factory=list)
    health: Callable[[], object] | None = Field(default=None, exclude=True)
    """Called for its exception only: raising :class:`SourceUnavailable` marks the toolset failed."""

    def health_check(self) -> Toolset:
        """Check reachability and authorisation once; a failure marks the toolset ``failed`` with the reason."""
        if self.status == "disabled" or self.health is None:
            return self
        try:
            self.health()
        except SourceUnavailable as exc:
            self.status, self.reason = "failed", exc.reason
        else:
            self.status, self.reason = "enabled", ""
        return self


# --------------------------------------------------------------------------- helpers


class Args(BaseModel):
    """Tool arguments: unknown arguments are rejected, so nothing a model sends can change how a tool works."""

    model_config = {"extra": "forbid"}


class Window(Args):
    """A time window relative to the investigation's clock."""

    since_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="How far back to look, in minutes.")
    until_minutes_ago: int = Field(0, ge=0, le=7 * 24 * 60, description="End the window this many minutes ago.")


def _window(sources: Sources, args: Window) -> tuple[datetime, datetime]:
    end = sources.now() - timedelta(minutes=args.until_minutes_ago)
    return end - timedelta(minutes=args.since_minutes), end


def _run(source: str, query: str, fetch: Callable[[], list[str]], max_chars: int, hint: str = "") -> ToolResult:
    evidence_id = Evidence.make_id(source, query, "tool")
    try:
        records = fetch()
    except SourceUnavailable as exc:
        return ToolResult(status="error", error=f"{source} unavailable: {exc.reason}", source=source, query=query,
                          evidence_id=evidence_id)
    except ValueError as exc:
        return ToolResult(status="error", error=f"invalid arguments: {exc}", source=source, query=query,
                          evidence_id=evidence_id)
    if not records:
        return ToolResult(status="no_data", data="", source=source, query=query, evidence_id=evidence_id)
    capped = cap_records(records, max_chars, hint=hint)
    return ToolResult(status="success", data=capped.text, source=source, query=query, evidence_id=evidence_id,
                      records=len(records), omitted=capped.omitted)


ArgsT = TypeVar("ArgsT", bound=BaseModel)


def _tool(name: str, description: str, schema: type[ArgsT], fn: Callable[[ArgsT], ToolResult]) -> BaseTool:
    def call(**kwargs: Any) -> tuple[str, ToolResult]:
        result = fn(schema(**kwargs))
        return result.model_dump_json(exclude_none=True), result

    return StructuredTool.from_function(func=call, name=name, description=description, args_schema=schema,
                                        response_format="content_and_artifact")


def _j(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


# --------------------------------------------------------------------------- SigNoz


class LogsArgs(Window):
    """Arguments of search_logs."""

    service: str | None = Field(None, description="service.name to filter on (exact).")
    namespace: str | None = Field(None, description="Kubernetes namespace (k8s.namespace.name).")
    min_severity: Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"] | None = Field(
        None, description="Lowest severity to return.")
    text: str | None = Field(None, description="Substring the log body must contain (case-insensitive).")
    limit: int = Field(500, ge=1, le=5000, description="Most rows to fetch before grouping.")


class AggregateLogsArgs(Window):
    """Arguments of aggregate_logs."""

    group_by: Literal["service", "severity"] = Field("service", description="What to count by.")
    step_minutes: int = Field(5, ge=1, le=1440, description="Bucket size in minutes.")
    service: str | None = Field(None, description="Only this service.")
    min_severity: Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"] | None = None


class TracesArgs(Window):
    """Arguments of search_traces."""

    service: str | None = Field(None, description="service.name of the spans.")
    errors_only: bool = Field(False, description="Only spans with has_error = true.")
    min_duration_ms: float | None = Field(None, ge=0, description="Only spans at least this slow.")
    limit: int = Field(200, ge=1, le=5000)


class TraceArgs(Args):
    """Arguments of get_trace."""

    trace_id: str = Field(description="The trace id (32 hex characters) from a log or span.")


class OverviewArgs(Window):
    """Arguments of service_overview."""

    service: str = Field(description="service.name to summarise.")


class MetricArgs(Window):
    """Arguments of query_metric."""

    name: str = Field(description="Metric name, e.g. container.memory.working_set; see list_services/field keys.")
    filters: dict[str, str] = Field(default_factory=dict, description="Label equality filters, e.g. "
                                    "{'service.name': 'checkout'}.")
    aggregation: Literal["avg", "max", "min", "sum", "last"] = Field("avg", description="How to summarise each "
                                                                     "series over the window.")


def signoz_toolset(sources: Sources, max_chars: int = DEFAULT_MAX_CHARS) -> Toolset:
    """SigNoz logs, traces and metrics."""
    port = sources.signoz
    toolset = Toolset(name="signoz", description="SigNoz: application logs, distributed traces and metrics.")
    if port is None:
        toolset.status, toolset.reason = "disabled", sources.unavailable.get("signoz", "not configured")
        return toolset


    def search_logs(a: LogsArgs) -> ToolResult:
        start, end = _window(sources, a)
        query = (f"logs service={a.service or '*'} namespace={a.namespace or '*'} severity>={a.min_severity or '*'}"
                 f" text={a.text!r} from {iso(start)} to {iso(end)} limit {a.limit}")

        def fetch() -> list[str]:
            rows = port.search_logs(start=start, end=end, service=a.service, namespace=a.namespace,
                                    min_severity=a.min_severity, contains=a.text, limit=a.limit)
            lines = []
            for row in reversed(rows):
                data = row.get("data") or {}
                res = data.get("resources_string") or {}
                attrs = {**(data.get("attributes_string") or {}), **(data.get("attributes_number") or {})}
                extra = " ".join(f"{k}={v}" for k, v in attrs.items())
                lines.append((iso(parse_time(row.get("timestamp"))),
                              f"[{data.get('severity_text', '')}] {res.get('service.name', '')} "
                              f"{res.get('k8s.pod.name', '')}: {data.get('body', '')} {extra}".strip()))
            return render_groups(group_lines(lines))

        return _run("signoz", query, fetch, max_chars, "narrow by service, severity or text")

    def aggregate_logs(a: AggregateLogsArgs) -> ToolResult:
        start, end = _window(sources, a)
        query = f"count logs by {a.group_by} every {a.step_minutes}m from {iso(start)} to {iso(end)}"

        def fetch() -> list[str]:
            series = port.aggregate_logs(start=start, end=end, group_by=a.group_by, step_seconds=a.step_minutes * 60,
                                         service=a.service, min_severity=a.min_severity)
            return [f"{s['group'] or '(none)'}: total {sum(v['value'] for v in s['values']):g}; "
                    + ", ".join(f"{iso(parse_time(v['timestamp']))[11:16]}={v['value']:g}" for v in s["values"])
                    for s in sorted(series, key=lambda s: -sum(v["value"] for v in s["values"]))]

        return _run("signoz", query, fetch, max_chars)

    def search_traces(a: TracesArgs) -> ToolResult:
        start, end = _window(sources, a)
        query = (f"spans service={a.service or '*'} errors_only={a.errors_only} min_duration_ms={a.min_duration_ms}"
                 f" from {iso(start)} to {iso(end)} limit {a.limit}")

        def fetch() -> list[str]:
            rows = port.search_traces(start=start, end=end, service=a.service, errors_only=a.errors_only,
                                      min_duration_ms=a.min_duration_ms, limit=a.limit)
            return [_span_line(r) for r in rows]

        return _run("signoz", query, fetch, max_chars, "narrow by service or errors_only")

    def get_trace(a: TraceArgs) -> ToolResult:
        return _run("signoz", f"trace {a.trace_id}", lambda: [_span_line(r) for r in port.get_trace(a.trace_id)],
                    max_chars)

    def service_overview(a: OverviewArgs) -> ToolResult:
        start, end = _window(sources, a)
        span = end - start
        query = f"overview of {a.service} from {iso(start)} to {iso(end)} vs the previous {a.since_minutes}m"

        def fetch() -> list[str]:
            now = port.service_overview(service=a.service, start=start, end=end)
            before = port.service_overview(service=a.service, start=start - span, end=start)
            if not now.get("requests") and not before.get("requests"):
                return []
            return [f"{key}: {now.get(key)} (previous window: {before.get(key)})"
                    for key in ("requests", "request_rate", "errors", "error_rate", "p50_ms", "p99_ms")]

        return _run("signoz", query, fetch, max_chars)

    def list_services(a: Window) -> ToolResult:
        start, end = _window(sources, a)
        return _run("signoz", f"services seen from {iso(start)} to {iso(end)}",
                    lambda: list(port.list_services(start=start, end=end)), max_chars)

    def query_metric(a: MetricArgs) -> ToolResult:
        start, end = _window(sources, a)
        where = ", ".join(f"{k}={v}" for k, v in sorted(a.filters.items()))
        query = f"metric {a.name} {{{where}}} {a.aggregation} from {iso(start)} to {iso(end)}"

        def fetch() -> list[str]:
            out = []
            for series in port.query_metric(metric=a.name, start=start, end=end, filters=a.filters or None):
                values = [float(v["value"]) for v in series.get("values") or [] if v.get("value") is not None]
                if not values:
                    continue
                summary = {"avg": sum(values) / len(values), "max": max(values), "min": min(values),
                           "sum": sum(values), "last": values[-1]}[a.aggregation]
                labels = ", ".join(f"{(lab.get('key') or {}).get('name')}={lab.get('value')}"
                                   for lab in series.get("labels") or [])
                out.append(f"{{{labels}}} {a.aggregation}={summary:g} first={values[0]:g} last={values[-1]:g} "
                           f"points={len(values)}")
            return out

        return _run("signoz", query, fetch, max_chars)

    toolset.health = lambda: port.list_services(start=sources.now() - timedelta(minutes=5), end=sources.now())
    toolset.tools = [
        _tool("search_logs", "Search application logs in SigNoz. Returns log lines (timestamp, severity, service, pod, "
              "body, attributes), identical lines grouped with their count and first/last time. Use it to read what a "
              "service logged around the alert; filter by service, namespace, min_severity (DEBUG..FATAL) and a text "
              "substring.", LogsArgs, search_logs),
        _tool("aggregate_logs", "Count logs per service or per severity in time buckets. Use it to see when errors "
              "started and which service logs them before reading lines.", AggregateLogsArgs, aggregate_logs),
        _tool("search_traces", "Search spans in SigNoz: time, service, operation, status code, duration, peer, "
              "trace id. Use errors_only and min_duration_ms to find failing or slow calls.", TracesArgs,
              search_traces),
        _tool("get_trace", "Every span of one trace, oldest first: follow a failing request across services to the "
              "deepest failing span.", TraceArgs, get_trace),
        _tool("service_overview", "Request rate, error rate and p50/p99 latency of a service's entry spans in the "
              "window, next to the previous window of the same length: did it change?", OverviewArgs,
              service_overview),
        _tool("list_services", "Service names that reported telemetry in the window: use it to learn the exact "
              "service.name values before filtering other tools.", Window, list_services),
        _tool("query_metric", "One metric's series, each summarised (avg/max/min/sum/last, first and last values). "
              "Filter by labels such as service.name or k8s.pod.name.", MetricArgs, query_metric),
    ]
    return toolset


def _span_line(row: dict[str, Any]) -> str:
    d = row.get("data") or {}
    return (f"{iso(parse_time(row.get('timestamp')))} {d.get('service.name', '')} {d.get('name', '')} "
            f"status={d.get('response_status_code') or d.get('status_code_string') or ''} "
            f"error={bool(d.get('has_error'))} {float(d.get('duration_nano') or 0) / 1e6:.0f}ms"
            + (f" peer={d['peer.service']}" if d.get("peer.service") else "")
            + (f" url={d['http_url']}" if d.get("http_url") else "")
            + (f" db={d.get('db_system')}: {str(d.get('db_statement'))[:120]}" if d.get("db_system") else "")
            + (f" msg={d['status_message']}" if d.get("status_message") else "")
            + f" trace={d.get('trace_id', '')}")


# --------------------------------------------------------------------------- Kubernetes


class PodsArgs(Args):
    """Arguments of list_pods."""

    namespace: str | None = Field(None, description="Namespace; all namespaces when omitted.")
    selector: str | None = Field(None, description="Label selector, e.g. 'app=checkout' or 'tier in (web,api)'.")
    only_unhealthy: bool = Field(False, description="Only pods not Running/ready, or with restarts.")


class PodArgs(Args):
    """A pod."""

    namespace: str
    name: str


class PodLogsArgs(PodArgs):
    """Arguments of pod_logs."""

    container: str | None = Field(None, description="Container name; the first container when omitted.")
    previous: bool = Field(False, description="Logs of the previous (crashed) container instance.")
    tail: int = Field(200, ge=1, le=100_000, description="Last N lines.")
    grep: str | None = Field(None, description="Only lines containing this substring (case-insensitive).")


class EventsArgs(Args):
    """Arguments of list_events."""

    namespace: str | None = None
    object_name: str | None = Field(None, description="involvedObject.name to filter on.")
    warnings_only: bool = True


class NamespacedName(Args):
    """An object in a namespace."""

    namespace: str
    name: str = Field(description="Object name (deployment, service...).")


class NoArgs(Args):
    """No arguments."""


class NamespaceArgs(Args):
    """A namespace (optional)."""

    namespace: str | None = None


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes object's metadata, empty when it has none."""
    return obj.get("metadata") or {}


def _pod_line(pod: dict[str, Any]) -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    parts = []
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        last = ((cs.get("lastState") or {}).get("terminated") or {})
        parts.append(f"{cs.get('name')}: ready={cs.get('ready')} restarts={cs.get('restartCount', 0)}"
                     + (f" waiting={waiting}" if waiting else "")
                     + (f" last={last.get('reason')}({last.get('exitCode')}) at {last.get('finishedAt')}"
                        if last else ""))
    return (f"{meta.get('namespace')}/{meta.get('name')} phase={status.get('phase')} node={spec.get('nodeName')} "
            + "; ".join(parts))


def _unhealthy(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Running", "Succeeded"):
        return True
    return any(not cs.get("ready") or cs.get("restartCount", 0) > 0 for cs in status.get("containerStatuses") or [])


def _event_line(e: dict[str, Any]) -> str:
    obj = e.get("involvedObject") or {}
    return (f"{e.get('lastTimestamp') or e.get('eventTime')} {e.get('type')} {e.get('reason')} "
            f"{obj.get('kind')}/{obj.get('namespace', '')}/{obj.get('name')} ×{e.get('count', 1)} "
            f"(first {e.get('firstTimestamp')}): {e.get('message', '')}")


def kubernetes_toolset(sources: Sources, max_chars: int = DEFAULT_MAX_CHARS) -> Toolset:
    """Kubernetes objects, events and container logs."""
    port = sources.kubernetes
    toolset = Toolset(name="kubernetes", description="Kubernetes: workloads, events, nodes, networking, read-only.")
    if port is None:
        toolset.status, toolset.reason = "disabled", sources.unavailable.get("kubernetes", "not configured")
        return toolset


    def where(ns: str | None) -> str:
        return f"-n {ns}" if ns else "-A"

    def list_pods(a: PodsArgs) -> ToolResult:
        query = f"kubectl get pods {where(a.namespace)}" + (f" -l {a.selector}" if a.selector else "") + (
            " (unhealthy only)" if a.only_unhealthy else "")

        def fetch() -> list[str]:
            pods = port.list("pods", namespace=a.namespace, label_selector=a.selector)
            return [_pod_line(p) for p in pods if not a.only_unhealthy or _unhealthy(p)]

        return _run("kubernetes", query, fetch, max_chars, "filter by namespace or selector")

    def describe_pod(a: PodArgs) -> ToolResult:
        def fetch() -> list[str]:
            pods = [p for p in port.list("pods", namespace=a.namespace)
                    if (p.get("metadata") or {}).get("name") == a.name]
            if not pods:
                return []
            pod = pods[0]
            out = [_pod_line(pod)]
            for c in (pod.get("spec") or {}).get("containers") or []:
                out.append(f"container {c.get('name')}: image={c.get('image')} resources={_j(c.get('resources'))} "
                           f"liveness={_j(c.get('livenessProbe'))} readiness={_j(c.get('readinessProbe'))}")
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                out.append(f"status {cs.get('name')}: state={_j(cs.get('state'))} lastState={_j(cs.get('lastState'))}")
            events = [e for e in port.list("events", namespace=a.namespace)
                      if (e.get("involvedObject") or {}).get("name") == a.name]
            out += [_event_line(e) for e in sorted(events, key=lambda e: str(e.get("lastTimestamp")))][-15:]
            return out

        return _run("kubernetes", f"kubectl describe pod -n {a.namespace} {a.name}", fetch, max_chars)

    def pod_logs(a: PodLogsArgs) -> ToolResult:
        query = (f"kubectl logs -n {a.namespace} {a.name}" + (f" -c {a.container}" if a.container else "")
                 + (" --previous" if a.previous else "") + f" --timestamps --tail={a.tail}"
                 + (f" | grep -i {a.grep!r}" if a.grep else ""))

        def fetch() -> list[str]:
            text = port.pod_logs(a.namespace, a.name, container=a.container, previous=a.previous, tail_lines=a.tail)
            lines = []
            for line in text.splitlines():
                if a.grep and a.grep.lower() not in line.lower():
                    continue
                ts, _, rest = line.partition(" ")
                lines.append((ts[:19] + "Z" if ts[:1].isdigit() else "", rest if ts[:1].isdigit() else line))
            return render_groups(group_lines(lines))

        return _run("kubernetes", query, fetch, max_chars, "use grep or a smaller tail")

    def list_events(a: EventsArgs) -> ToolResult:
        query = f"kubectl get events {where(a.namespace)}" + (
            f" --field-selector involvedObject.name={a.object_name}" if a.object_name else "") + (
            " (warnings only)" if a.warnings_only else "")

        def fetch() -> list[str]:
            events = [e for e in port.list("events", namespace=a.namespace)
                      if (not a.warnings_only or e.get("type") == "Warning")
                      and (not a.object_name or (e.get("involvedObject") or {}).get("name") == a.object_name)]
            events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")), reverse=True)
            return [_event_line(e) for e in events]

        return _run("kubernetes", query, fetch, max_chars, "filter by namespace or object")

    def rollout_history(a: NamespacedName) -> ToolResult:
        def fetch() -> list[str]:
            deps = [d for d in port.list("deployments", namespace=a.namespace)
                    if (d.get("metadata") or {}).get("name") == a.name]
            if not deps:
                return []
            owned = [rs for rs in port.list("replicasets", namespace=a.namespace)
                     if any(o.get("name") == a.name for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]
            owned.sort(key=lambda rs: int(((rs.get("metadata") or {}).get("annotations") or {})
                                          .get("deployment.kubernetes.io/revision", 0)), reverse=True)
            out = [f"deployment {a.namespace}/{a.name} status={_j((deps[0].get('status') or {}).get('conditions'))}"]
            for rs in owned:
                meta = rs.get("metadata") or {}
                images = [c.get("image") for c in (((rs.get("spec") or {}).get("template") or {}).get("spec") or {})
                          .get("containers") or []]
                out.append(f"revision {(meta.get('annotations') or {}).get('deployment.kubernetes.io/revision')} "
                           f"{meta.get('name')} created {meta.get('creationTimestamp')} images={images} "
                           f"replicas={(rs.get('status') or {}).get('replicas', 0)} "
                           f"ready={(rs.get('status') or {}).get('readyReplicas', 0)}")
            return out

        return _run("kubernetes", f"kubectl rollout history deployment/{a.name} -n {a.namespace}", fetch, max_chars)

    def list_nodes(_: BaseModel) -> ToolResult:
        def fetch() -> list[str]:
            out = []
            for node in port.list("nodes"):
                meta, status = node.get("metadata") or {}, node.get("status") or {}
                conds = ", ".join(f"{c.get('type')}={c.get('status')}" + (
                    f"({c.get('reason')} since {c.get('lastTransitionTime')})" if (c.get("type") == "Ready") != (
                        c.get("status") == "True") else "") for c in status.get("conditions") or [])
                out.append(f"{meta.get('name')} {conds} allocatable={_j(status.get('allocatable'))} "
                           f"taints={_j((node.get('spec') or {}).get('taints'))}")
            return out

        return _run("kubernetes", "kubectl get nodes -o wide (conditions, allocatable, taints)", fetch, max_chars)

    def service_endpoints(a: NamespacedName) -> ToolResult:
        def fetch() -> list[str]:
            svcs = [s for s in port.list("services", namespace=a.namespace)
                    if (s.get("metadata") or {}).get("name") == a.name]
            if not svcs:
                return []
            spec = svcs[0].get("spec") or {}
            eps = [e for e in port.list("endpoints", namespace=a.namespace)
                   if (e.get("metadata") or {}).get("name") == a.name]
            subsets = [s for e in eps for s in e.get("subsets") or []]
            ready = [f"{x.get('ip')} ({(x.get('targetRef') or {}).get('name', '')})" for s in subsets
                     for x in s.get("addresses") or []]
            not_ready = [f"{x.get('ip')} ({(x.get('targetRef') or {}).get('name', '')})" for s in subsets
                         for x in s.get("notReadyAddresses") or []]
            selector = selector_from_match_labels(spec.get("selector"))
            matching = [_metadata(p)["name"] for p in port.list("pods", namespace=a.namespace)
                        if selector and match_labels(selector, (p.get("metadata") or {}).get("labels"))]
            return [f"service {a.namespace}/{a.name} type={spec.get('type')} selector={selector or '(none)'} "
                    f"ports={_j(spec.get('ports'))}",
                    f"ready endpoints ({len(ready)}): {', '.join(ready) or 'none'}",
                    f"not-ready endpoints ({len(not_ready)}): {', '.join(not_ready) or 'none'}",
                    f"pods matching the selector ({len(matching)}): {', '.join(matching) or 'none'}"]

        return _run("kubernetes", f"kubectl get service,endpoints -n {a.namespace} {a.name}", fetch, max_chars)

    def network_policies_for(a: PodArgs) -> ToolResult:
        def fetch() -> list[str]:
            pods = [p for p in port.list("pods", namespace=a.namespace) if (p.get("metadata") or {}).get("name") ==
                    a.name]
            if not pods:
                return []
            labels = (pods[0].get("metadata") or {}).get("labels") or {}
            out = []
            for pol in port.list("networkpolicies", namespace=a.namespace):
                spec = pol.get("spec") or {}
                if not match_labels(selector_from_match_labels((spec.get("podSelector") or {}).get("matchLabels")),
                                    labels):
                    continue
                meta = pol.get("metadata") or {}
                out.append(f"{meta.get('namespace')}/{meta.get('name')} (created {meta.get('creationTimestamp')}) "
                           f"types={spec.get('policyTypes')} ingress={_j(spec.get('ingress'))} "
                           f"egress={_j(spec.get('egress'))}")
            return out or [f"no NetworkPolicy selects {a.namespace}/{a.name}: all traffic allowed"]

        return _run("kubernetes", f"NetworkPolicies selecting pod {a.namespace}/{a.name}", fetch, max_chars)

    def hpa_status(a: NamespaceArgs) -> ToolResult:
        def fetch() -> list[str]:
            out = []
            for hpa in port.list("hpa", namespace=a.namespace):
                meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
                target = (spec.get("scaleTargetRef") or {}).get("name")
                conditions = [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []]
                out.append(f"{meta.get('namespace')}/{meta.get('name')} → {target}"
                           f" min={spec.get('minReplicas')} max={spec.get('maxReplicas')} "
                           f"current={status.get('currentReplicas')} desired={status.get('desiredReplicas')} "
                           f"conditions={_j(conditions)}")
            return out

        return _run("kubernetes", f"kubectl get hpa {where(a.namespace)}", fetch, max_chars)

    toolset.health = lambda: port.list("nodes")
    toolset.tools = [
        _tool("list_pods", "Pods with phase, node, and per container: ready, restart count, waiting reason "
              "(CrashLoopBackOff, ImagePullBackOff...) and last termination (OOMKilled, Error) with exit code and "
              "time. Use only_unhealthy to find broken pods.", PodsArgs, list_pods),
        _tool("describe_pod", "One pod in depth: container images, resources (requests/limits), probes, "
              "current and last state, and its recent events.", PodArgs, describe_pod),
        _tool("pod_logs", "Container logs with timestamps (identical lines grouped). previous=true reads the "
              "crashed instance: the last lines before a restart usually say why.", PodLogsArgs, pod_logs),
        _tool("list_events", "Kubernetes events, newest first: reason, object, count, first/last time, message "
              "(FailedScheduling, Unhealthy, BackOff, FailedMount, Evicted, OOMKilling...).", EventsArgs,
              list_events),
        _tool("rollout_history", "A deployment's revisions (ReplicaSets) with creation time, images and ready "
              "replicas: compare a rollout's time with the alert's.", NamespacedName, rollout_history),
        _tool("list_nodes", "Nodes with their conditions (Ready, MemoryPressure, DiskPressure, PIDPressure), "
              "allocatable resources and taints.", NoArgs, list_nodes),
        _tool("service_endpoints", "A Service's selector, ports, ready and not-ready endpoints, and the pods its "
              "selector matches: why a service has no endpoints.", NamespacedName, service_endpoints),
        _tool("network_policies_for", "The NetworkPolicies that select a pod and what ingress/egress they allow.",
              PodArgs, network_policies_for),
        _tool("hpa_status", "Horizontal pod autoscalers: min/max/current/desired replicas and conditions "
              "(ScalingLimited).", NamespaceArgs, hpa_status),
    ]
    return toolset


# --------------------------------------------------------------------------- MongoDB


class OpsArgs(Args):
    """Arguments of current_ops."""

    min_secs_running: float | None = Field(None, ge=0, description="Only operations running at least this long.")
    waiting_for_lock: bool | None = Field(None, description="Only operations waiting (true) or not (false).")


class SlowArgs(Args):
    """Arguments of slow_queries."""

    min_millis: int = Field(100, ge=0, description="Only profiler entries at least this slow.")
    ns: str | None = Field(None, description="db.collection to filter on.")
    since_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    limit: int = Field(200, ge=1, le=2000)


class NsArgs(Args):
    """A namespace (db.collection)."""

    ns: str = Field(description="db.collection, e.g. shop.orders.")


def mongodb_toolset(sources: Sources, max_chars: int = DEFAULT_MAX_CHARS) -> Toolset:
    """MongoDB diagnostics."""
    port = sources.mongodb
    toolset = Toolset(name="mongodb", description="MongoDB: server status, operations, profiler, replication.")
    if port is None:
        toolset.status, toolset.reason = "disabled", sources.unavailable.get("mongodb", "not configured")
        return toolset


    def server_status(_: BaseModel) -> ToolResult:
        def fetch() -> list[str]:
            s = port.server_status()
            if not s:
                return []
            cache = (s.get("wiredTiger") or {}).get("cache") or {}
            return [f"host={s.get('host')} version={s.get('version')} uptime_s={s.get('uptime')}",
                    f"connections={_j(s.get('connections'))}",
                    f"opcounters={_j(s.get('opcounters'))}",
                    f"globalLock.currentQueue={_j((s.get('globalLock') or {}).get('currentQueue'))}",
                    "wiredTiger.cache=" + _j({k: cache.get(k) for k in (
                        "maximum bytes configured", "bytes currently in the cache",
                        "tracked dirty bytes in the cache", "pages evicted by application threads")}),
                    f"asserts={_j(s.get('asserts'))}"]

        return _run("mongodb", "db.serverStatus()", fetch, max_chars)

    def current_ops(a: OpsArgs) -> ToolResult:
        def fetch() -> list[str]:
            ops = port.current_op(min_secs_running=a.min_secs_running, waiting_for_lock=a.waiting_for_lock)
            return [_j({k: op.get(k) for k in ("opid", "op", "ns", "secs_running", "waitingForLock", "planSummary",
                                               "appName", "client", "command")}) for op in ops]

        return _run("mongodb", f"db.currentOp({{secs_running >= {a.min_secs_running}, waitingForLock: "
                    f"{a.waiting_for_lock}}})", fetch, max_chars)

    def slow_queries(a: SlowArgs) -> ToolResult:
        since = sources.now() - timedelta(minutes=a.since_minutes)

        def fetch() -> list[str]:
            rows = port.slow_queries(min_millis=a.min_millis, since=since, ns=a.ns, limit=a.limit)
            return [_j({k: r.get(k) for k in ("ts", "op", "ns", "millis", "planSummary", "docsExamined",
                                              "keysExamined", "nreturned", "appName", "command")}) for r in rows]

        return _run("mongodb", f"db.system.profile.find({{millis >= {a.min_millis}, ns: {a.ns or '*'}, ts >= "
                    f"{iso(since)}}})", fetch, max_chars)

    def index_stats(a: NsArgs) -> ToolResult:
        return _run("mongodb", f"$indexStats on {a.ns}", lambda: [
            _j({k: i.get(k) for k in ("name", "key", "accesses")}) for i in port.index_stats(a.ns)], max_chars)

    def replication_status(_: BaseModel) -> ToolResult:
        def fetch() -> list[str]:
            status = port.repl_status()
            if not status:
                return []
            members = status.get("members") or []
            primary = next((m for m in members if m.get("stateStr") == "PRIMARY"), None)
            ptime = parse_time(primary.get("optimeDate")) if primary else None
            out = []
            for m in members:
                optime = parse_time(m.get("optimeDate"))
                lag = (ptime - optime).total_seconds() if ptime and optime else None
                out.append(f"{m.get('name')} {m.get('stateStr')} health={m.get('health')} optime={iso(optime)}"
                           + (f" lag_s={lag:.0f}" if lag is not None else "")
                           + (f" electionDate={m.get('electionDate')}" if m.get("electionDate") else ""))
            return out

        return _run("mongodb", "rs.status()", fetch, max_chars)

    def collection_stats(a: NsArgs) -> ToolResult:
        def fetch() -> list[str]:
            s = port.coll_stats(a.ns)
            if not s:
                return []
            return [_j({k: s.get(k) for k in ("ns", "count", "size", "storageSize", "totalIndexSize", "nindexes",
                                              "avgObjSize")})]

        return _run("mongodb", f"db.{a.ns.split('.', 1)[-1]}.stats() on {a.ns.split('.', 1)[0]}", fetch, max_chars)

    toolset.health = lambda: port.server_status()
    toolset.tools = [
        _tool("server_status", "serverStatus: connections (current/available), opcounters, global lock queue, "
              "WiredTiger cache fill and dirty bytes, asserts.", NoArgs, server_status),
        _tool("current_ops", "In-progress operations: running time, lock waits, plan, client app. Use "
              "min_secs_running to find long operations and waiting_for_lock=true for contention.", OpsArgs,
              current_ops),
        _tool("slow_queries", "Profiler entries above min_millis: planSummary (COLLSCAN = no usable index), "
              "docsExamined vs nreturned, keysExamined, the command and client.", SlowArgs, slow_queries),
        _tool("index_stats", "The indexes of a collection and how often each is used ($indexStats).", NsArgs,
              index_stats),
        _tool("replication_status", "Replica set members with state, health, optime and lag behind the primary, "
              "and election dates.", NoArgs, replication_status),
        _tool("collection_stats", "Document count, data size, storage and index sizes of a collection: how big "
              "a scan of it is.", NsArgs,
              collection_stats),
    ]
    return toolset


def build_toolsets(sources: Sources, *, max_chars: int = DEFAULT_MAX_CHARS, check: bool = True) -> list[Toolset]:
    """Every source's toolset over (redacted) ports, health-checked unless ``check`` is false."""
    from sre_graph.context import redacted

    sources = redacted(sources)
    toolsets = [signoz_toolset(sources, max_chars), kubernetes_toolset(sources, max_chars),
                mongodb_toolset(sources, max_chars)]
    return [t.health_check() for t in toolsets] if check else toolsets


def offered_tools(toolsets: list[Toolset]) -> list[BaseTool]:
    """The tools a model may call: those of enabled toolsets only."""
    return [tool for t in toolsets if t.status == "enabled" for tool in t.tools]


def unavailable(toolsets: list[Toolset]) -> list[str]:
    """``name: reason`` of every toolset that is not enabled, for the report."""
    return [f"{t.name}: {t.reason or t.status}" for t in toolsets if t.status != "enabled"]
