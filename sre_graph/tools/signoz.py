"""SigNoz: logs, traces and metrics through the v5 query API.

The wire shapes are SigNoz's own Go types (``pkg/types/querybuildertypes/querybuildertypesv5``):
a ``POST /api/v5/query_range`` body is a ``QueryRangeRequest`` (``schemaVersion``, ``start``/``end`` in
epoch ms, ``requestType`` ``raw|time_series|scalar``, ``compositeQuery.queries[]`` of ``QueryEnvelope``
``{"type": "builder_query", "spec": QueryBuilderQuery}``), and the answer is a ``QueryRangeResponse``
``{"type", "data": {"results": [...]}, "meta"}`` wrapped by ``pkg/http/render`` as
``{"status": "success", "data": ...}``; failures are ``{"status": "error", "error": {"code", "message",
"errors": [{"message"}]}}``. Rows come back exactly as the incident format records them
(``shared/INCIDENT_FORMAT.md``), so analyzers cannot tell live from replay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from sre_graph.timeutil import to_ms
from sre_graph.tools.base import SourceUnavailable

SEVERITY_ORDER = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SEVERITY_ALIASES = {"WARN": ("WARNING",), "ERROR": ("ERR",), "FATAL": ("CRITICAL",)}
"""Other spellings :func:`severity_rank` folds into each level."""


def severity_rank(text: str | None) -> int:
    """Order of a severity text (``WARNING`` counts as ``WARN``); unknown ranks as INFO."""
    value = (text or "INFO").upper()
    value = {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR"}.get(value, value)
    return SEVERITY_ORDER.index(value) if value in SEVERITY_ORDER else 2


class SignozPort(Protocol):
    """What the engine asks of SigNoz. Rows come back as v5 ``raw`` rows."""

    def search_logs(
        self,
        *,
        start: datetime,
        end: datetime,
        service: str | None = None,
        namespace: str | None = None,
        min_severity: str | None = None,
        contains: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Log rows, newest first."""
        ...

    def search_traces(
        self,
        *,
        start: datetime,
        end: datetime,
        service: str | None = None,
        errors_only: bool = False,
        min_duration_ms: float | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Span rows, newest first."""
        ...

    def query_metric(
        self, *, metric: str, start: datetime, end: datetime, filters: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """v5 time series (``{"labels": [...], "values": [...]}``) of one metric."""
        ...

    def list_services(self, *, start: datetime, end: datetime) -> list[str]:
        """Service names seen in the window."""
        ...

    def metric_names(self) -> list[str]:
        """Names of the metrics the source holds."""
        ...

    def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span row of one trace, oldest first."""
        ...

    def aggregate_logs(
        self,
        *,
        start: datetime,
        end: datetime,
        group_by: str = "service",
        step_seconds: int = 60,
        service: str | None = None,
        min_severity: str | None = None,
    ) -> list[dict[str, Any]]:
        """Log counts per step, one series per group (``service`` or ``severity``):
        ``[{"group": "checkout", "values": [{"timestamp": epoch_ms, "value": count}, ...]}]``."""
        ...

    def service_overview(self, *, service: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Entry-span statistics of one service in the window: ``{"requests", "errors", "request_rate"
        (per second), "error_rate" (0..1), "p50_ms", "p99_ms"}``."""
        ...

    def field_keys(self, *, signal: str, search: str = "") -> list[str]:
        """Attribute keys SigNoz knows for a signal (``logs``, ``traces``, ``metrics``)."""
        ...


# --------------------------------------------------------------------- wire constants

QUERY_RANGE_PATH = "/api/v5/query_range"
FIELD_KEYS_PATH = "/api/v1/fields/keys"
FIELD_VALUES_PATH = "/api/v1/fields/values"
METRICS_STATS_PATH = "/api/v2/metrics/stats"
MAX_QUERY_LIMIT = 10_000
"""``querybuildertypesv5.MaxQueryLimit``: larger ``limit`` values are rejected, so raw reads page."""
MAX_STATS_LIMIT = 5_000
"""``metricsexplorertypes.StatsRequest`` accepts a ``limit`` of 1..5000."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SIGNALS = ("logs", "traces", "metrics")


def _field(name: str, context: str, data_type: str) -> dict[str, str]:
    """A ``telemetrytypes.TelemetryFieldKey``."""
    return {"name": name, "fieldContext": context, "fieldDataType": data_type}


SERVICE_KEY = _field("service.name", "resource", "string")
SEVERITY_KEY = _field("severity_text", "log", "string")
TRACE_FIELDS: tuple[tuple[str, dict[str, str]], ...] = (
    ("trace_id", _field("trace_id", "span", "string")),
    ("span_id", _field("span_id", "span", "string")),
    ("parent_span_id", _field("parent_span_id", "span", "string")),
    ("service.name", SERVICE_KEY),
    ("name", _field("name", "span", "string")),
    ("kind_string", _field("kind_string", "span", "string")),
    ("duration_nano", _field("duration_nano", "span", "number")),
    ("has_error", _field("has_error", "span", "bool")),
    ("status_code", _field("status_code", "span", "number")),
    ("status_code_string", _field("status_code_string", "span", "string")),
    ("status_message", _field("status_message", "span", "string")),
    ("response_status_code", _field("response_status_code", "span", "string")),
    ("http_method", _field("http_method", "span", "string")),
    ("http_url", _field("http_url", "span", "string")),
    ("db_system", _field("db.system", "attribute", "string")),
    ("db_statement", _field("db.statement", "attribute", "string")),
    ("peer.service", _field("peer.service", "attribute", "string")),
)
"""Span columns of a recorded trace row, each with the v5 field that yields it. ``db_system`` and
``db_statement`` are not span columns in v5 (``signoz_index_v3`` has ``db_name``/``db_operation``):
they are the ``db.system``/``db.statement`` attributes, renamed to the recorded keys."""
ENTRY_SPANS = "(kind_string IN ('Server', 'Consumer') OR isRoot = true OR isEntryPoint = true)"
"""A service's entry spans: server/consumer spans, trace roots, and spans of its top-level operations."""
ERROR_SPAN = "has_error = true OR response_status_code LIKE '5%'"


def _quote(value: str) -> str:
    """A string literal of the v5 filter grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _spellings(levels: tuple[str, ...]) -> list[str]:
    """Each level and its aliases as ``UPPER``, ``lower`` and ``Title`` (``severity_text`` is compared exactly)."""
    out: list[str] = []
    for level in levels:
        for name in (level, *SEVERITY_ALIASES.get(level, ())):
            for spelling in (name.upper(), name.lower(), name.capitalize()):
                if spelling not in out:
                    out.append(spelling)
    return out


def severity_clause(min_severity: str | None) -> str | None:
    """The filter keeping logs at or above ``min_severity`` as :func:`severity_rank` orders them.

    At or below INFO it excludes the lower levels (unknown or empty texts rank as INFO and stay);
    above INFO it lists the wanted levels with their aliases.
    """
    if not min_severity:
        return None
    rank = severity_rank(min_severity)
    if rank == 0:
        return None
    if rank <= SEVERITY_ORDER.index("INFO"):
        return "severity_text NOT IN (" + ", ".join(_quote(s) for s in _spellings(SEVERITY_ORDER[:rank])) + ")"
    return "severity_text IN (" + ", ".join(_quote(s) for s in _spellings(SEVERITY_ORDER[rank:])) + ")"


def _and(clauses: list[str | None]) -> dict[str, str] | None:
    expression = " AND ".join(c for c in clauses if c)
    return {"expression": expression} if expression else None


def _number(value: Any) -> float:
    """A numeric cell of a v5 answer (``NaN``/``Inf`` arrive as strings); NaN becomes 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(number) else number


def _point_value(value: Any) -> float | int | None:
    """A time-series value; SigNoz sends NaN/Inf as strings. NaN points are dropped (``None``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (int, float)) else None


def _error_message(payload: Any) -> str:
    """SigNoz's message from a ``render.Error`` body (or the older ``{"error": "..."}`` shape)."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if isinstance(error, dict):
        parts = [str(error.get("message") or "").strip()]
        parts += [str(e.get("message")) for e in error.get("errors") or [] if isinstance(e, dict) and e.get("message")]
        text = "; ".join(p for p in parts if p)
        code = error.get("code")
        return f"{code}: {text}" if code and text else text or str(code or "")
    if isinstance(error, str):
        return error
    return str(payload.get("message") or "")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------- the live port


class LiveSignoz:
    """SigNoz over HTTP with the ``SIGNOZ-API-KEY`` header.

    Every call has a timeout and is retried with exponential backoff on connect errors and on
    429/502/503/504 (honouring ``Retry-After``); other failures are not retried. All failures raise
    :class:`SourceUnavailable` with a reason an operator can act on.
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 15.0, retries: int = 2,
                 backoff: float = 0.5, max_backoff: float = 8.0, lookback: timedelta = timedelta(days=1),
                 clock: Callable[[], datetime] | None = None, client: httpx.Client | None = None) -> None:
        """Connect to ``url`` (the SigNoz base URL).

        Args:
            url: SigNoz base URL, e.g. ``https://signoz.example.com``.
            api_key: Sent as ``SIGNOZ-API-KEY``.
            timeout: Seconds allowed for each HTTP exchange (connect, write, read).
            retries: Extra attempts after a transient failure.
            backoff: First wait between attempts in seconds; doubles each time up to ``max_backoff``.
            max_backoff: Longest wait between attempts.
            lookback: Window of calls that take no time range (``get_trace``, ``metric_names``).
            clock: Wall clock for those windows (tests pass a fixed one).
            client: A ready ``httpx.Client`` (its base URL, headers and timeout are used as given).
        """
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._lookback = lookback
        self._clock = clock or _utcnow
        headers = {"SIGNOZ-API-KEY": api_key} if api_key else {}
        self._client = client or httpx.Client(base_url=self._url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # ------------------------------------------------------------ transport

    def _request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> Any:
        """One API call with retries; returns the ``data`` member of a success answer."""
        attempts = self._retries + 1
        delay = self._backoff
        for attempt in range(1, attempts + 1):
            try:
                response = self._client.request(method, path, json=body, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == attempts:
                    raise SourceUnavailable(
                        "signoz", f"cannot connect to {self._url} after {attempts} attempt(s): "
                                  f"{type(exc).__name__}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            except httpx.TimeoutException as exc:
                raise SourceUnavailable(
                    "signoz", f"{method} {path} timed out after {self._timeout:g} s "
                              f"({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise SourceUnavailable("signoz", f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                time.sleep(self._retry_after(response, delay))
                delay = min(delay * 2, self._max_backoff)
                continue
            return self._data(response, method, path, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_after(self, response: httpx.Response, default: float) -> float:
        value = response.headers.get("Retry-After", "")
        try:
            return min(max(float(value), 0.0), self._max_backoff)
        except ValueError:
            return default

    @staticmethod
    def _data(response: httpx.Response, method: str, path: str, attempt: int) -> Any:
        status = response.status_code
        where = f"{method} {path}"
        if status in (401, 403):
            raise SourceUnavailable("signoz", f"HTTP {status} on {where}: not authorised (check the API key)")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status >= 400:
            message = _error_message(payload) or response.text.strip()[:300] or response.reason_phrase
            tries = f" (after {attempt} attempts)" if attempt > 1 else ""
            raise SourceUnavailable("signoz", f"HTTP {status} on {where}{tries}: {message}")
        if not isinstance(payload, dict):
            raise SourceUnavailable("signoz", f"{where} answered HTTP {status} without a JSON object")
        if payload.get("status", "success") != "success":
            raise SourceUnavailable("signoz", f"{where} failed: {_error_message(payload) or payload.get('status')}")
        return payload.get("data")

    def _query(self, start: datetime, end: datetime, request_type: str,
               spec: dict[str, Any]) -> list[dict[str, Any]]:
        """``POST /api/v5/query_range`` with one builder query; returns its results."""
        body = {
            "schemaVersion": "v1",
            "start": to_ms(start),
            "end": to_ms(end),
            "requestType": request_type,
            "compositeQuery": {"queries": [{"type": "builder_query", "spec": spec}]},
            "formatOptions": {"formatTableResultForUI": False, "fillGaps": False},
        }
        data = self._request("POST", QUERY_RANGE_PATH, body=body)
        if not isinstance(data, dict):
            raise SourceUnavailable("signoz", f"{QUERY_RANGE_PATH} answered without a QueryRangeResponse")
        results = (data.get("data") or {}).get("results") or []
        return [r for r in results if isinstance(r, dict) and r.get("queryName", spec["name"]) == spec["name"]]

    def _raw(self, start: datetime, end: datetime, spec: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """``raw`` rows, paged by ``offset`` when more than ``MAX_QUERY_LIMIT`` are wanted."""
        rows: list[dict[str, Any]] = []
        if end <= start or limit <= 0:
            return rows
        while len(rows) < limit:
            page = min(MAX_QUERY_LIMIT, limit - len(rows))
            spec_page = {**spec, "limit": page}
            if rows:
                spec_page["offset"] = len(rows)
            got = [row for result in self._query(start, end, "raw", spec_page) for row in result.get("rows") or []]
            rows.extend(got)
            if len(got) < page:
                break
        return rows

    def _window(self, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        end = end or self._clock()
        return start or end - self._lookback, end

    # ------------------------------------------------------------ logs and traces

    @staticmethod
    def _log_filter(service: str | None, namespace: str | None, min_severity: str | None,
                    contains: str | None = None) -> dict[str, str] | None:
        return _and([
            f"resource.service.name = {_quote(service)}" if service else None,
            f"resource.k8s.namespace.name = {_quote(namespace)}" if namespace else None,
            severity_clause(min_severity),
            f"body CONTAINS {_quote(contains)}" if contains else None,
        ])

    def search_logs(self, *, start, end, service=None, namespace=None, min_severity=None, contains=None, limit=200):
        """Log rows, newest first (all columns, as the logs list view returns them)."""
        spec: dict[str, Any] = {
            "name": "A", "signal": "logs",
            "order": [{"key": {"name": "timestamp"}, "direction": "desc"},
                      {"key": {"name": "id"}, "direction": "desc"}],
        }
        log_filter = self._log_filter(service, namespace, min_severity, contains)
        if log_filter:
            spec["filter"] = log_filter
        return self._raw(start, end, spec, limit)

    @staticmethod
    def _trace_spec(expression: dict[str, str] | None, direction: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": "A", "signal": "traces",
            "selectFields": [field for _, field in TRACE_FIELDS],
            "order": [{"key": {"name": "timestamp"}, "direction": direction}],
        }
        if expression:
            spec["filter"] = expression
        return spec

    @staticmethod
    def _trace_row(row: dict[str, Any]) -> dict[str, Any]:
        """A v5 span row with the recorded keys (``db.system`` → ``db_system``, ...)."""
        data = row.get("data") or {}
        return {"timestamp": row.get("timestamp"),
                "data": {key: data[field["name"]] for key, field in TRACE_FIELDS if field["name"] in data}}

    def search_traces(self, *, start, end, service=None, errors_only=False, min_duration_ms=None, limit=200):
        """Span rows, newest first."""
        expression = _and([
            f"resource.service.name = {_quote(service)}" if service else None,
            "has_error = true" if errors_only else None,
            f"duration_nano >= {math.ceil(min_duration_ms * 1e6)}" if min_duration_ms is not None else None,
        ])
        rows = self._raw(start, end, self._trace_spec(expression, "desc"), limit)
        return [self._trace_row(r) for r in rows]

    def get_trace(self, trace_id: str, *, start: datetime | None = None, end: datetime | None = None,
                  limit: int = 100_000) -> list[dict[str, Any]]:
        """Every span row of one trace, oldest first (searched over ``lookback`` unless a window is given)."""
        start, end = self._window(start, end)
        rows = self._raw(start, end, self._trace_spec({"expression": f"trace_id = {_quote(trace_id)}"}, "asc"), limit)
        return [self._trace_row(r) for r in rows]

    # ------------------------------------------------------------ aggregates

    @staticmethod
    def _scalar(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        columns: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for result in results:
            columns = result.get("columns") or columns
            rows.extend(result.get("data") or [])
        return columns, rows

    def _group_values(self, signal: str, start: datetime, end: datetime, key: dict[str, str]) -> set[str]:
        """Distinct values of one key in the window (a ``scalar`` ``count()`` grouped by it)."""
        spec = {"name": "A", "signal": signal, "aggregations": [{"expression": "count()"}],
                "groupBy": [key], "limit": MAX_QUERY_LIMIT}
        columns, rows = self._scalar(self._query(start, end, "scalar", spec))
        index = next((i for i, c in enumerate(columns)
                      if c.get("columnType") == "group" and c.get("name") == key["name"]), 0)
        return {str(row[index]) for row in rows if len(row) > index and row[index] not in (None, "")}

    def list_services(self, *, start, end):
        """``service.name`` values of spans and logs in the window and of the metrics' series."""
        if end <= start:
            return []
        names = self._group_values("traces", start, end, SERVICE_KEY)
        names |= self._group_values("logs", start, end, SERVICE_KEY)
        data = self._request("GET", FIELD_VALUES_PATH, params={
            "signal": "metrics", "name": "service.name", "startUnixMilli": to_ms(start),
            "endUnixMilli": to_ms(end), "limit": MAX_QUERY_LIMIT}) or {}
        names |= {str(v) for v in ((data.get("values") or {}).get("stringValues") or []) if v}
        return sorted(names)

    def aggregate_logs(self, *, start, end, group_by="service", step_seconds=60, service=None, min_severity=None):
        """Log counts per step (``count()`` time series grouped by service or severity)."""
        if end <= start:
            return []
        by_severity = group_by == "severity"
        key = SEVERITY_KEY if by_severity else SERVICE_KEY
        spec: dict[str, Any] = {"name": "A", "signal": "logs", "stepInterval": max(int(step_seconds), 1),
                                "aggregations": [{"expression": "count()"}], "groupBy": [key]}
        log_filter = self._log_filter(service, None, min_severity)
        if log_filter:
            spec["filter"] = log_filter
        buckets: dict[str, dict[int, int]] = {}
        for result in self._query(start, end, "time_series", spec):
            for aggregation in result.get("aggregations") or []:
                for series in aggregation.get("series") or []:
                    value = next((lab.get("value") for lab in series.get("labels") or []
                                  if (lab.get("key") or {}).get("name") == key["name"]), None)
                    group = str(value or "INFO").upper() if by_severity else str(value or "")
                    counts = buckets.setdefault(group, {})
                    for point in series.get("values") or []:
                        count = int(round(_number(point.get("value"))))
                        if count:
                            ts = int(point["timestamp"])
                            counts[ts] = counts.get(ts, 0) + count
        return [{"group": g, "values": [{"timestamp": t, "value": c} for t, c in sorted(v.items())]}
                for g, v in sorted(buckets.items()) if v]

    def service_overview(self, *, service, start, end):
        """Entry-span request count, errors and p50/p99 latency, aggregated by SigNoz."""
        seconds = max((end - start).total_seconds(), 1.0)
        requests = errors = 0
        p50 = p99 = 0.0
        if end > start:
            spec = {
                "name": "A", "signal": "traces",
                "filter": {"expression": f"resource.service.name = {_quote(service)} AND {ENTRY_SPANS}"},
                "aggregations": [{"expression": "count()", "alias": "requests"},
                                 {"expression": f"countIf({ERROR_SPAN})", "alias": "errors"},
                                 {"expression": "p50(duration_nano)", "alias": "p50"},
                                 {"expression": "p99(duration_nano)", "alias": "p99"}],
            }
            columns, rows = self._scalar(self._query(start, end, "scalar", spec))
            if rows:
                by_index = {int(c.get("aggregationIndex", i)): i for i, c in enumerate(columns)
                            if c.get("columnType") == "aggregation"}
                row = rows[0]

                def cell(index: int) -> float:
                    position = by_index.get(index, index)
                    return _number(row[position]) if position < len(row) else 0.0

                requests, errors = int(cell(0)), int(cell(1))
                if requests:
                    p50, p99 = round(cell(2) / 1e6, 1), round(cell(3) / 1e6, 1)
        return {"requests": requests, "errors": errors, "request_rate": round(requests / seconds, 3),
                "error_rate": round(errors / requests, 4) if requests else 0.0, "p50_ms": p50, "p99_ms": p99}

    # ------------------------------------------------------------ metrics and metadata

    def _keys(self, params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        data = self._request("GET", FIELD_KEYS_PATH, params=params) or {}
        keys = data.get("keys") if isinstance(data, dict) else None
        return keys if isinstance(keys, dict) else {}

    def _metric_labels(self, metric: str, start: datetime, end: datetime) -> list[dict[str, str]]:
        """The label keys of one metric, to group by all of them (series keep their full label sets)."""
        keys = self._keys({"signal": "metrics", "metricName": metric, "searchText": "",
                           "startUnixMilli": to_ms(start), "endUnixMilli": to_ms(end)})
        out = []
        for name, variants in keys.items():
            if not name or name.startswith("__"):
                continue
            first = next((v for v in variants or [] if isinstance(v, dict)), {})
            out.append({"name": name, **{k: first[k] for k in ("fieldContext", "fieldDataType") if first.get(k)}})
        return out

    def query_metric(self, *, metric, start, end, filters=None, group_by: list[str] | None = None,
                     time_aggregation: str = "avg", space_aggregation: str = "avg", step_seconds: int = 60):
        """One metric's series, grouped by every label it has unless ``group_by`` names the labels.

        Labels come in group-by order, as SigNoz returns them; values are ``{"timestamp", "value"}``.
        Points at exactly ``end`` are included.
        """
        if end <= start:
            return []
        keys = self._metric_labels(metric, start, end) if group_by is None else [{"name": k} for k in group_by]
        spec: dict[str, Any] = {
            "name": "A", "signal": "metrics", "stepInterval": max(int(step_seconds), 1),
            "aggregations": [{"metricName": metric, "timeAggregation": time_aggregation,
                              "spaceAggregation": space_aggregation}],
            "groupBy": keys,
        }
        metric_filter = _and([f"{k} = {_quote(str(v))}" for k, v in (filters or {}).items()])
        if metric_filter:
            spec["filter"] = metric_filter
        out: list[dict[str, Any]] = []
        # SigNoz reads [start, end); metric points carry whole milliseconds, so one more millisecond
        # makes the window [start, end] like every other call of the port.
        for result in self._query(start, end + timedelta(milliseconds=1), "time_series", spec):
            for aggregation in result.get("aggregations") or []:
                for series in aggregation.get("series") or []:
                    labels = [{"key": {"name": (lab.get("key") or {}).get("name")}, "value": lab.get("value")}
                              for lab in series.get("labels") or []]
                    values = [{"timestamp": point.get("timestamp"), "value": value}
                              for point in series.get("values") or []
                              if (value := _point_value(point.get("value"))) is not None]
                    out.append({"labels": labels, "values": values})
        return out

    def field_keys(self, *, signal, search=""):
        """Keys of ``GET /api/v1/fields/keys`` for a signal, sorted."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected logs, traces or metrics")
        return sorted(k for k in self._keys({"signal": signal, "searchText": search}) if k)

    def metric_names(self, *, start: datetime | None = None, end: datetime | None = None) -> list[str]:
        """Metrics with samples in the window (default ``lookback``), from ``POST /api/v2/metrics/stats``."""
        start, end = self._window(start, end)
        names: set[str] = set()
        offset = 0
        while True:
            data = self._request("POST", METRICS_STATS_PATH, body={
                "start": to_ms(start), "end": to_ms(end), "limit": MAX_STATS_LIMIT, "offset": offset}) or {}
            metrics = data.get("metrics") or []
            names |= {m["metricName"] for m in metrics if isinstance(m, dict) and m.get("metricName")}
            offset += len(metrics)
            if len(metrics) < MAX_STATS_LIMIT or offset >= int(data.get("total") or 0):
                break
        return sorted(names)
