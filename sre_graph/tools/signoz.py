"""SigNoz: logs, traces and metrics through the v5 query API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import httpx

from sre_graph.timeutil import to_ms
from sre_graph.tools.base import SourceUnavailable

SEVERITY_ORDER = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


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


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class LiveSignoz:
    """SigNoz over HTTP: ``POST /api/v5/query_range`` with the ``SIGNOZ-API-KEY`` header."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 15.0,
                 client: httpx.Client | None = None) -> None:
        headers = {"SIGNOZ-API-KEY": api_key} if api_key else {}
        self._client = client or httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _query(self, start: datetime, end: datetime, request_type: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "schemaVersion": "v1",
            "start": to_ms(start),
            "end": to_ms(end),
            "requestType": request_type,
            "compositeQuery": {"queries": [{"type": "builder_query", "spec": spec}]},
        }
        try:
            response = self._client.post("/api/v5/query_range", json=body)
        except httpx.HTTPError as exc:
            raise SourceUnavailable("signoz", f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise SourceUnavailable("signoz", f"HTTP {response.status_code}: not authorised (check the API key)")
        if response.status_code >= 400:
            raise SourceUnavailable("signoz", f"HTTP {response.status_code}: {response.text[:200]}")
        payload = response.json()
        return payload.get("data", {}).get("data", payload.get("data", {}))

    def _rows(self, start: datetime, end: datetime, spec: dict[str, Any]) -> list[dict[str, Any]]:
        data = self._query(start, end, "raw", spec)
        rows: list[dict[str, Any]] = []
        for result in data.get("results") or []:
            rows.extend(result.get("rows") or [])
        return rows

    def search_logs(self, *, start, end, service=None, namespace=None, min_severity=None, contains=None, limit=200):
        clauses = []
        if service:
            clauses.append(f"service.name = {_quote(service)}")
        if namespace:
            clauses.append(f"k8s.namespace.name = {_quote(namespace)}")
        if min_severity:
            wanted = [s for s in SEVERITY_ORDER if severity_rank(s) >= severity_rank(min_severity)]
            clauses.append("severity_text IN (" + ", ".join(_quote(s) for s in wanted) + ")")
        if contains:
            clauses.append(f"body CONTAINS {_quote(contains)}")
        spec = {"name": "A", "signal": "logs", "filter": {"expression": " AND ".join(clauses)},
                "order": [{"key": {"name": "timestamp"}, "direction": "desc"}], "limit": limit}
        return self._rows(start, end, spec)

    def search_traces(self, *, start, end, service=None, errors_only=False, min_duration_ms=None, limit=200):
        clauses = []
        if service:
            clauses.append(f"service.name = {_quote(service)}")
        if errors_only:
            clauses.append("has_error = true")
        if min_duration_ms is not None:
            clauses.append(f"duration_nano >= {int(min_duration_ms * 1e6)}")
        spec = {"name": "A", "signal": "traces", "filter": {"expression": " AND ".join(clauses)},
                "order": [{"key": {"name": "timestamp"}, "direction": "desc"}], "limit": limit}
        return self._rows(start, end, spec)

    def query_metric(self, *, metric, start, end, filters=None):
        expression = " AND ".join(f"{k} = {_quote(v)}" for k, v in (filters or {}).items())
        spec = {"name": "A", "signal": "metrics", "stepInterval": 60,
                "aggregations": [{"metricName": metric, "timeAggregation": "avg", "spaceAggregation": "avg"}],
                "filter": {"expression": expression},
                "groupBy": [{"name": "service.name", "fieldContext": "resource"}]}
        data = self._query(start, end, "time_series", spec)
        series: list[dict[str, Any]] = []
        for result in data.get("results") or []:
            for aggregation in result.get("aggregations") or []:
                series.extend(aggregation.get("series") or [])
        return series

    def metric_names(self):
        try:
            response = self._client.get("/api/v1/metrics/filters/keys")
        except httpx.HTTPError as exc:
            raise SourceUnavailable("signoz", f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            return []
        data = response.json().get("data") or {}
        keys = data.get("metricNames") or data.get("keys") or []
        return sorted({k if isinstance(k, str) else k.get("name", "") for k in keys} - {""})

    def list_services(self, *, start, end):
        spec = {"name": "A", "signal": "traces", "aggregations": [{"expression": "count()"}],
                "groupBy": [{"name": "service.name", "fieldContext": "resource"}]}
        data = self._query(start, end, "scalar", spec)
        names: list[str] = []
        for result in data.get("results") or []:
            for row in result.get("data") or []:
                if row and isinstance(row[0], str):
                    names.append(row[0])
        return sorted(set(names))
