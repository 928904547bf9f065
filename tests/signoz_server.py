"""A loopback HTTP server that speaks SigNoz's v5 API over an incident folder's ``signoz/`` rows.

It follows SigNoz's Go source, not the client under test:

- ``POST /api/v5/query_range``: the body is decoded and validated like ``querybuildertypesv5``
  (``QueryRangeRequest`` and ``CompositeQuery`` reject unknown fields, ``QueryEnvelope`` needs a known
  ``type``, a builder spec needs a known ``signal``, ``QueryRangeRequest.Validate`` checks the time range,
  the request type, aggregations, limits and order directions). Answers are ``QueryRangeResponse``
  ``{"type", "data": {"results": [RawData | TimeSeriesData | ScalarData]}, "meta"}`` wrapped as
  ``pkg/http/render`` does (``{"status": "success", "data": ...}``), floats rounded like
  ``sanitizeValue``.
- ``GET /api/v1/fields/keys`` and ``GET /api/v1/fields/values`` (``pkg/apis/fields``).
- ``POST /api/v2/metrics/stats`` (``metricsexplorertypes.StatsRequest``/``StatsResponse``).
- Errors use ``render.Error``'s shape ``{"status": "error", "error": {"code", "message", "errors"}}``.

Filter expressions are parsed with the v5 search grammar's operators (``= != < <= > >= IN, NOT IN,
LIKE, ILIKE, CONTAINS, EXISTS, AND, OR, NOT``, parentheses, ``resource.``/``attribute.`` context
prefixes and the ``isRoot``/``isEntryPoint`` span scopes). ``isEntryPoint`` is SigNoz's definition: a
span of a top-level operation (one whose spans have a parent in another service) that is not a root.
Percentiles (``p50(x)``...) are nearest-rank, as the replay's ``overview_from_spans`` computes them;
ClickHouse's ``quantile`` interpolates, so a real SigNoz can differ in the last digit.

The server checks ``SIGNOZ-API-KEY``, records every request, and can be told to fail
(``fail_with = 401``/``500``), to answer a queue of statuses first (``queue(503)``), or to stall
(``delay``).
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------- errors and sanitising


class ApiError(Exception):
    """An error answered in ``render.Error``'s shape."""

    def __init__(self, status: int, code: str, message: str, additional: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.additional = list(additional)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.additional:
            error["errors"] = [{"message": m} for m in self.additional]
        return {"status": "error", "error": error}


def invalid(message: str, *additional: str) -> ApiError:
    """``errors.NewInvalidInputf``: HTTP 400, code ``invalid_input``."""
    return ApiError(400, "invalid_input", message, additional)


def round_to_non_zero_decimals(value: float, n: int = 3) -> float:
    """``querybuildertypesv5.roundToNonZeroDecimals``."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return value
    if abs(value) >= 1:
        return round(value * 10**n) / 10**n
    order = math.floor(math.log10(abs(value)))
    scale = 10 ** (-order + n - 1)
    return round(value * scale) / scale


def sanitize(value: Any) -> Any:
    """``querybuildertypesv5.sanitizeValue``: NaN/Inf as strings, floats rounded to 3 decimals."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return round_to_non_zero_decimals(value)
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value


# --------------------------------------------------------------------- time


def rfc3339_ns(text: str) -> int:
    """Epoch nanoseconds of an RFC 3339 UTC timestamp with up to nine fraction digits."""
    head, _, rest = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


def parse_step(value: Any) -> float:
    """``querybuildertypesv5.Step``: seconds as a number, or a Go duration string (``"60s"``, ``"1m"``)."""
    if value in (None, ""):
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        total = 0.0
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
        parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
        if parts and "".join(n + u for n, u in parts) == value:
            for number, unit in parts:
                total += float(number) * units[unit]
            return total
    raise invalid("invalid step, expected a duration string (example: 15s, 1m, 1h), valid time units are "
                  "ns, u, ms, s, m, h")


# --------------------------------------------------------------------- the filter grammar


class FilterSyntaxError(Exception):
    """The expression is outside the grammar."""


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<op>>=|<=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),\[\]])|(?P<word>[A-Za-z_@$][\w.\-:$@/]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "CONTAINS", "EXISTS", "TRUE", "FALSE", "REGEXP"}
Resolver = Callable[[dict[str, Any], str], tuple[bool, Any]]
Predicate = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterSyntaxError(f"unexpected input at {text[pos:pos + 20]!r}")
        pos = match.end()
        if match["str"] is not None:
            out.append(("value", re.sub(r"\\(.)", r"\1", match["str"][1:-1])))
        elif match["num"] is not None:
            number = float(match["num"])
            out.append(("value", int(number) if number.is_integer() and "." not in match["num"] else number))
        elif match["op"]:
            out.append(("op", "!=" if match["op"] == "<>" else match["op"]))
        elif match["punct"]:
            out.append(("punct", match["punct"]))
        else:
            word = match["word"]
            upper = word.upper()
            if upper in ("TRUE", "FALSE"):
                out.append(("value", upper == "TRUE"))
            elif upper in _KEYWORDS:
                out.append(("kw", upper))
            else:
                out.append(("key", word))
    return out


def _equal(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        if isinstance(actual, bool):
            return actual is wanted
        return str(actual).lower() == str(wanted).lower()
    if isinstance(wanted, (int, float)):
        try:
            return float(actual) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(actual) == str(wanted) if not isinstance(actual, bool) else str(actual).lower() == wanted


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    try:
        left, right = (float(actual), float(wanted)) if isinstance(wanted, (int, float)) else (str(actual),
                                                                                                 str(wanted))
    except (TypeError, ValueError):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _like(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


class FilterParser:
    """Recursive descent over the tokens; builds a predicate on rows through a resolver."""

    def __init__(self, text: str, resolve: Resolver, scopes: dict[str, Predicate] | None = None) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.resolve = resolve
        self.scopes = {k.lower(): v for k, v in (scopes or {}).items()}

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda row: True
        predicate = self._or()
        if self.pos != len(self.tokens):
            raise FilterSyntaxError(f"unexpected {self.tokens[self.pos][1]!r}")
        return predicate

    def _peek(self, kind: str, value: Any = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, v = self.tokens[self.pos]
        return k == kind and (value is None or v == value)

    def _take(self, kind: str, value: Any = None) -> Any:
        if not self._peek(kind, value):
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of expression"
            raise FilterSyntaxError(f"expected {value or kind}, got {got!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek("kw", "OR"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._peek("kw", "AND"):
            self.pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _unary(self) -> Predicate:
        if self._peek("kw", "NOT"):
            self.pos += 1
            inner = self._unary()
            return lambda row: not inner(row)
        if self._peek("punct", "("):
            self.pos += 1
            inner = self._or()
            self._take("punct", ")")
            return inner
        return self._comparison()

    def _values(self) -> list[Any]:
        close = ")" if self._peek("punct", "(") else "]"
        self._take("punct", "(" if close == ")" else "[")
        values = [self._take("value")]
        while self._peek("punct", ","):
            self.pos += 1
            values.append(self._take("value"))
        self._take("punct", close)
        return values

    def _comparison(self) -> Predicate:
        key = self._take("key")
        resolve = self.resolve
        if key.lower() in self.scopes:
            if not self._peek("op", "="):
                raise invalid(f"span scope field {key} only supports '=' operator")
            self.pos += 1
            value = self._take("value")
            if value is not True and str(value).lower() != "true":
                raise invalid(f"span scope field {key} can only be filtered with value 'true'")
            return self.scopes[key.lower()]
        negate = False
        if self._peek("kw", "NOT"):
            self.pos += 1
            negate = True
        if self._peek("kw", "EXISTS"):
            self.pos += 1
            return lambda row: resolve(row, key)[0] != negate
        if self._peek("kw", "IN"):
            self.pos += 1
            wanted = self._values()

            def in_set(row: dict[str, Any]) -> bool:
                present, actual = resolve(row, key)
                inside = present and any(_equal(actual, w) for w in wanted)
                return not inside if negate else inside
            return in_set
        for word in ("LIKE", "ILIKE", "CONTAINS", "REGEXP"):
            if self._peek("kw", word):
                self.pos += 1
                text = str(self._take("value"))
                pattern = (re.compile(text) if word == "REGEXP" else
                           _like(f"%{text}%", ignore_case=True) if word == "CONTAINS" else
                           _like(text, ignore_case=word == "ILIKE"))

                def matches(row: dict[str, Any], pattern: re.Pattern[str] = pattern, word: str = word) -> bool:
                    present, actual = resolve(row, key)
                    hit = present and actual is not None and (
                        pattern.search(str(actual)) if word == "REGEXP" else pattern.match(str(actual))) is not None
                    return not hit if negate else hit
                return matches
        if negate:
            raise FilterSyntaxError(f"NOT must precede the whole condition on {key!r}")
        op = self._take("op")
        value = self._take("value")
        if op == "=":
            return lambda row: (lambda p, a: p and _equal(a, value))(*resolve(row, key))
        if op == "!=":
            return lambda row: (lambda p, a: not p or not _equal(a, value))(*resolve(row, key))
        return lambda row: (lambda p, a: p and _compare(a, op, value))(*resolve(row, key))


def compile_filter(expression: str | None, resolve: Resolver,
                   scopes: dict[str, Predicate] | None = None) -> Predicate:
    """A row predicate from a v5 filter expression; a syntax error is SigNoz's 400."""
    try:
        return FilterParser(expression or "", resolve, scopes).parse()
    except FilterSyntaxError as exc:
        raise invalid("found syntax errors while parsing the filter expression",
                      f"{exc} in {expression!r}") from exc


# --------------------------------------------------------------------- the telemetry model


CONTEXTS = ("resource", "attribute", "span", "log", "scope", "body", "metric", "tag", "spanfield", "logfield")
TRACE_ATTRIBUTE_COLUMNS = {"db.system": "db_system", "db.statement": "db_statement"}
"""Attributes the incident format records under a column-like key."""
PERCENTILES = {**{f"p{n:02d}": n / 100 for n in (5, 10, 20, 25, 50, 75, 90, 95, 99)}, "p999": 0.999}


def _split_context(key: str) -> tuple[str | None, str]:
    head, _, rest = key.partition(".")
    if rest and head.lower() in CONTEXTS:
        context = {"tag": "attribute", "spanfield": "span", "logfield": "log"}.get(head.lower(), head.lower())
        return context, rest
    return None, key


def resolve_log(row: dict[str, Any], key: str) -> tuple[bool, Any]:
    """A log row's field: intrinsic columns, then resources, then attributes (or as the prefix says)."""
    data = row["data"]
    context, name = _split_context(key)
    if context in (None, "log", "body") and name in data and not isinstance(data[name], dict):
        return True, data[name]
    if context in (None, "resource") and name in (data.get("resources_string") or {}):
        return True, data["resources_string"][name]
    if context in (None, "attribute"):
        for column in ("attributes_string", "attributes_number", "attributes_bool"):
            if name in (data.get(column) or {}):
                return True, data[column][name]
    return False, None


def resolve_span(row: dict[str, Any], key: str) -> tuple[bool, Any]:
    """A span row's field (the format keeps span columns, ``service.name`` and attributes flat)."""
    data = row["data"]
    _, name = _split_context(key)
    name = TRACE_ATTRIBUTE_COLUMNS.get(name, name)
    if name == "timestamp":
        return True, row["_ns"]
    return (name in data), data.get(name)


def resolve_label(row: dict[str, Any], key: str) -> tuple[bool, Any]:
    """A metric series' label."""
    _, name = _split_context(key)
    labels = row["_labels"]
    return (name in labels), labels.get(name)


@dataclass
class Telemetry:
    """An incident's ``signoz/`` rows, indexed the way the server needs them."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    top_level_operations: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def load(cls, folder: Path) -> Telemetry:
        def read(name: str) -> list[dict[str, Any]]:
            path = folder / "signoz" / f"{name}.jsonl"
            if not path.exists():
                return []
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

        logs = [{**r, "_ns": rfc3339_ns(r["timestamp"])} for r in read("logs")]
        traces = [{**r, "_ns": rfc3339_ns(r["timestamp"])} for r in read("traces")]
        metrics = [{**r, "_labels": {(lab.get("key") or {}).get("name"): lab.get("value")
                                     for lab in (r.get("series") or {}).get("labels") or []}} for r in read("metrics")]
        spans = {(t["data"].get("span_id")): t["data"] for t in traces}
        top = set()
        for t in traces:
            data = t["data"]
            parent = spans.get(data.get("parent_span_id"))
            if parent is None or parent.get("service.name") != data.get("service.name"):
                top.add((data.get("name"), data.get("service.name")))
        return cls(logs, traces, metrics, top)

    def span_scopes(self) -> dict[str, Predicate]:
        """``isRoot``/``isEntryPoint`` as ``tracestelemetryschema.buildSpanScopeCondition`` defines them."""
        return {
            "isRoot": lambda row: row["data"].get("parent_span_id", "") == "",
            "isEntryPoint": lambda row: row["data"].get("parent_span_id", "") != "" and (
                row["data"].get("name"), row["data"].get("service.name")) in self.top_level_operations,
        }


# --------------------------------------------------------------------- request validation

REQUEST_FIELDS = ("schemaVersion", "start", "end", "requestType", "compositeQuery", "variables", "noCache",
                  "formatOptions")
COMPOSITE_FIELDS = ("queries",)
ENVELOPE_FIELDS = ("type", "spec")
SPEC_FIELDS = ("name", "stepInterval", "signal", "source", "aggregations", "disabled", "filter", "groupBy",
               "order", "selectFields", "limit", "limitBy", "offset", "cursor", "having",
               "secondaryAggregations", "functions", "legend")
FIELD_KEY_FIELDS = ("name", "description", "unit", "signal", "fieldContext", "fieldDataType", "materialized")
EXPRESSION_AGGREGATION_FIELDS = ("expression", "alias")
METRIC_AGGREGATION_FIELDS = ("metricName", "temporality", "timeAggregation", "spaceAggregation", "reduceTo")
REQUEST_TYPES = ("raw", "raw_stream", "trace", "time_series", "scalar")
QUERY_TYPES = ("builder_query", "builder_ai_query", "builder_sub_query", "builder_formula", "builder_join",
               "builder_trace_operator", "promql", "clickhouse_sql")
SIGNAL_NAMES = ("traces", "logs", "metrics")
TIME_AGGREGATIONS = ("", "latest", "sum", "avg", "min", "max", "count", "count_distinct", "rate", "increase")
SPACE_AGGREGATIONS = ("sum", "avg", "min", "max", "count", "p50", "p75", "p90", "p95", "p99", "histogram_count")
MAX_QUERY_LIMIT = 10_000


def _unknown(obj: dict[str, Any], allowed: tuple[str, ...], where: str = "") -> None:
    for name in obj:
        if name not in allowed:
            raise invalid(f"unknown field {name!r}{where}".replace("'", '"'), "Valid fields are: " + ", ".join(allowed))


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"json: cannot unmarshal {type(value).__name__} into Go value of type {what}")
    return value


def validate_query_range(body: Any) -> dict[str, Any]:
    """Decode and validate a ``QueryRangeRequest`` the way SigNoz does; return the builder spec."""
    body = _object(body, "querybuildertypesv5.QueryRangeRequest")
    _unknown(body, REQUEST_FIELDS)
    composite = _object(body.get("compositeQuery", {}), "querybuildertypesv5.CompositeQuery")
    _unknown(composite, COMPOSITE_FIELDS, " in composite query")
    queries = composite.get("queries") or []
    if not isinstance(queries, list):
        raise invalid("json: cannot unmarshal queries into []querybuildertypesv5.QueryEnvelope")
    specs = []
    for envelope in queries:
        envelope = _object(envelope, "querybuildertypesv5.QueryEnvelope")
        _unknown(envelope, ENVELOPE_FIELDS)
        if envelope.get("type") not in QUERY_TYPES:
            raise invalid(f'unknown query type "{envelope.get("type")}"',
                          "Valid query types are: " + ", ".join(QUERY_TYPES))
        if envelope["type"] != "builder_query":
            raise ApiError(501, "unsupported", f"query type {envelope['type']} is not served by this test server")
        spec = _object(envelope.get("spec"), "querybuildertypesv5.QueryBuilderQuery")
        if spec.get("signal") not in SIGNAL_NAMES:
            raise invalid(f'invalid signal "{spec.get("signal", "")}"', "Valid signals are: traces, logs, metrics")
        _unknown(spec, SPEC_FIELDS, " in query spec")
        allowed = METRIC_AGGREGATION_FIELDS if spec["signal"] == "metrics" else EXPRESSION_AGGREGATION_FIELDS
        for aggregation in spec.get("aggregations") or []:
            _unknown(_object(aggregation, "aggregation"), allowed, " in aggregation")
        for key in [*(spec.get("groupBy") or []), *(spec.get("selectFields") or []),
                    *((o.get("key") or {}) for o in spec.get("order") or [])]:
            _unknown(_object(key, "telemetrytypes.TelemetryFieldKey"), FIELD_KEY_FIELDS)
        if "filter" in spec:
            _unknown(_object(spec["filter"], "querybuildertypesv5.Filter"), ("expression",))
        specs.append(spec)

    # QueryRangeRequest.Validate
    start, end = body.get("start"), body.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or start < 0 or end < 0:
        raise invalid("json: start and end must be unsigned integers (epoch milliseconds)")
    request_type = body.get("requestType", "")
    if request_type != "raw_stream" and start >= end:
        raise invalid("start time must be before end time")
    if request_type not in REQUEST_TYPES:
        raise invalid(f"invalid request type: {request_type}", "Valid request types are: raw, timeseries, scalar")
    if request_type in ("raw", "raw_stream", "trace") and any(s["signal"] == "metrics" for s in specs):
        raise invalid("raw request type is not supported for metric queries")
    if not specs:
        raise invalid("at least one query is required")
    names: set[str] = set()
    for index, spec in enumerate(specs):
        label = f"query '{spec['name']}'" if spec.get("name") else f"query at position {index + 1}"
        try:
            _validate_spec(spec, request_type)
        except ApiError as exc:
            raise invalid(f"invalid {label}: {exc.message}", *exc.additional) from exc
        if spec.get("name") in names:
            raise invalid(f"duplicate query name '{spec['name']}'")
        names.add(spec.get("name"))
    if all(s.get("disabled") for s in specs):
        raise invalid("all queries are disabled - at least one query must be enabled")
    return {"request": body, "spec": specs[0]}


def _validate_spec(spec: dict[str, Any], request_type: str) -> None:
    """``QueryBuilderQuery.Validate`` with the options ``GetValidationOptions`` picks per request type."""
    aggregate = request_type in ("time_series", "scalar")
    aggregations = spec.get("aggregations") or []
    if aggregate:
        if not aggregations:
            raise invalid("at least one aggregation is required")
        aliases: set[str] = set()
        for i, aggregation in enumerate(aggregations, 1):
            if spec["signal"] == "metrics":
                if not aggregation.get("metricName"):
                    raise invalid(f"metric name is required for aggregation #{i} in query '{spec.get('name')}'")
                if aggregation.get("spaceAggregation") not in SPACE_AGGREGATIONS:
                    raise invalid("invalid space aggregation, should be one of the following: [`sum`, `avg`, "
                                  "`min`, `max`, `count`, `p50`, `p75`, `p90`, `p95`, `p99`]")
                if aggregation.get("timeAggregation", "") not in TIME_AGGREGATIONS:
                    raise invalid(f"invalid time aggregation {aggregation.get('timeAggregation')!r}")
                continue
            if not aggregation.get("expression"):
                raise invalid(f"expression is required for {spec['signal'][:-1]} aggregation #{i}")
            if " as " in aggregation["expression"].lower():
                raise invalid("aliasing is not allowed in expression. Use `alias` field instead")
            if aggregation.get("alias"):
                if aggregation["alias"] in aliases:
                    raise invalid(f"duplicate aggregation alias: {aggregation['alias']}")
                aliases.add(aggregation["alias"])
    for i, key in enumerate(spec.get("groupBy") or []):
        if aggregate and not key.get("name"):
            raise invalid(f"invalid empty key name for group by at index {i}")
    limit = spec.get("limit", 0)
    if not isinstance(limit, int) or limit < 0:
        raise invalid(f"limit must be non-negative, got {limit}")
    if limit > MAX_QUERY_LIMIT:
        raise invalid(f"limit exceeds maximum allowed value of {MAX_QUERY_LIMIT}", f"Provided limit: {limit}")
    if (spec.get("offset") or 0) < 0:
        raise invalid(f"offset must be non-negative, got {spec['offset']}")
    for i, order in enumerate(spec.get("order") or [], 1):
        if order.get("direction") not in ("asc", "desc"):
            raise invalid(f"invalid direction for order by clause #{i} in query '{spec.get('name')}': "
                          f"{order.get('direction')}", "Valid directions are: asc, desc")
    if aggregate:
        valid = {k.get("name") for k in spec.get("groupBy") or []}
        for i, aggregation in enumerate(aggregations):
            valid |= {str(i), aggregation.get("alias"), aggregation.get("expression"), "__result"}
        for i, order in enumerate(spec.get("order") or [], 1):
            if (order.get("key") or {}).get("name") not in valid:
                raise invalid(f"invalid order by key '{(order.get('key') or {}).get('name')}' for order by "
                              f"clause #{i} in query '{spec.get('name')}'")
    parse_step(spec.get("stepInterval"))


# --------------------------------------------------------------------- query execution


_AGGREGATION = re.compile(r"^\s*(?P<fn>[A-Za-z_]\w*)\s*\((?P<arg>.*)\)\s*$", re.DOTALL)


def _percentile(values: list[float], q: float) -> float:
    """Nearest rank, as ``overview_from_spans`` does."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def compile_aggregation(expression: str, resolve: Resolver,
                        scopes: dict[str, Predicate]) -> Callable[[list[dict[str, Any]]], float | int]:
    """``count()``, ``countIf(cond)``, ``count(k)``, ``count_distinct(k)``, ``sum/avg/min/max(k)``, ``pNN(k)``."""
    match = _AGGREGATION.match(expression)
    if not match:
        raise invalid(f"invalid aggregation expression {expression!r}")
    fn, arg = match["fn"].lower(), match["arg"].strip()

    def numbers(rows: list[dict[str, Any]]) -> list[float]:
        out = []
        for row in rows:
            present, value = resolve(row, arg)
            try:
                if present and value not in (None, ""):
                    out.append(float(value))
            except (TypeError, ValueError):
                continue
        return out

    if fn == "count" and not arg:
        return len
    if fn in ("countif", "count_if"):
        condition = compile_filter(arg, resolve, scopes)
        return lambda rows: sum(1 for r in rows if condition(r))
    if fn == "count":
        return lambda rows: sum(1 for r in rows if resolve(r, arg)[0])
    if fn == "count_distinct":
        return lambda rows: len({str(resolve(r, arg)[1]) for r in rows if resolve(r, arg)[0]})
    if fn in ("sum", "avg", "min", "max"):
        def reduce(rows: list[dict[str, Any]]) -> float:
            values = numbers(rows)
            if not values:
                return 0.0 if fn == "sum" else math.nan
            return {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v)}[fn](values)
        return reduce
    if fn in PERCENTILES:
        return lambda rows: _percentile(numbers(rows), PERCENTILES[fn])
    raise invalid(f"unsupported aggregation function {match['fn']!r}")


def _label(key: dict[str, Any], value: Any) -> dict[str, Any]:
    return {"key": {k: v for k, v in key.items() if v not in (None, "", False)}, "value": value}


class Executor:
    """Runs one validated builder query over the telemetry."""

    def __init__(self, telemetry: Telemetry, request: dict[str, Any], spec: dict[str, Any]) -> None:
        self.telemetry = telemetry
        self.request = request
        self.spec = spec
        self.signal = spec["signal"]
        self.start_ns = request["start"] * 1_000_000
        self.end_ns = request["end"] * 1_000_000
        self.resolve = {"logs": resolve_log, "traces": resolve_span, "metrics": resolve_label}[self.signal]
        self.scopes = telemetry.span_scopes() if self.signal == "traces" else {}
        self.where = compile_filter((spec.get("filter") or {}).get("expression"), self.resolve, self.scopes)

    def rows(self) -> list[dict[str, Any]]:
        source = self.telemetry.logs if self.signal == "logs" else self.telemetry.traces
        return [r for r in source if self.start_ns <= r["_ns"] < self.end_ns and self.where(r)]

    def step_seconds(self) -> float:
        step = parse_step(self.spec.get("stepInterval"))
        return step or max(60.0, (self.request["end"] - self.request["start"]) / 1000 / 300)

    def group_key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self.resolve(row, k["name"])[1] for k in self.spec.get("groupBy") or [])

    def labels(self, group: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [_label(k, v if v is not None else "") for k, v in zip(self.spec.get("groupBy") or [], group,
                                                                       strict=True)]

    # raw ---------------------------------------------------------------
    def raw(self) -> dict[str, Any]:
        rows = self.rows()
        order = self.spec.get("order") or [{"key": {"name": "timestamp"}, "direction": "desc"}]
        for clause in reversed(order):
            name = (clause.get("key") or {}).get("name")

            def sort_key(row: dict[str, Any], name: str = name) -> Any:
                if name == "timestamp":
                    return row["_ns"]
                present, value = self.resolve(row, name)
                return (present, value if isinstance(value, (int, float)) else str(value or ""))
            rows.sort(key=sort_key, reverse=clause.get("direction") == "desc")
        offset = self.spec.get("offset") or 0
        limit = self.spec.get("limit") or 100
        page = rows[offset:offset + limit]
        return {"queryName": self.spec.get("name", ""), "nextCursor": "",
                "rows": [{"timestamp": r["timestamp"], "data": sanitize(self.project(r))} for r in page]}

    def project(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.signal == "logs":
            return dict(row["data"])
        fields = self.spec.get("selectFields") or [
            {"name": n} for n in ("timestamp", "span_id", "trace_id", "name", "service.name", "duration_nano",
                                  "response_status_code")]
        out = {}
        for key in fields:
            present, value = self.resolve(row, key["name"])
            if present:
                out[key["name"]] = value
        return out

    # aggregates --------------------------------------------------------
    def aggregations(self) -> list[tuple[dict[str, Any], Callable[[list[dict[str, Any]]], float | int]]]:
        return [(a, compile_aggregation(a["expression"], self.resolve, self.scopes))
                for a in self.spec.get("aggregations") or []]

    def time_series(self) -> dict[str, Any]:
        if self.signal == "metrics":
            return self.metric_series()
        step_ms = int(self.step_seconds() * 1000)
        groups: dict[tuple[Any, ...], dict[int, list[dict[str, Any]]]] = {}
        for row in self.rows():
            bucket = row["_ns"] // 1_000_000 // step_ms * step_ms
            groups.setdefault(self.group_key(row), {}).setdefault(bucket, []).append(row)
        buckets = []
        for index, (aggregation, reduce) in enumerate(self.aggregations()):
            series = [{"labels": self.labels(group),
                       "values": [{"timestamp": ts, "value": reduce(rows)} for ts, rows in sorted(points.items())]}
                      for group, points in groups.items()]
            buckets.append({"index": index, "alias": aggregation.get("alias", ""), "meta": {}, "series": series})
        return {"queryName": self.spec.get("name", ""), "aggregations": sanitize(buckets)}

    def metric_series(self) -> dict[str, Any]:
        step_ms = int(self.step_seconds() * 1000)
        buckets = []
        for index, aggregation in enumerate(self.spec["aggregations"]):
            time_agg = aggregation.get("timeAggregation") or "avg"
            space_agg = aggregation.get("spaceAggregation")
            groups: dict[tuple[Any, ...], dict[int, list[float]]] = {}
            for row in self.telemetry.metrics:
                if row.get("metric") != aggregation["metricName"] or not self.where(row):
                    continue
                per_bucket: dict[int, list[float]] = {}
                for point in (row.get("series") or {}).get("values") or []:
                    if self.start_ns <= point["timestamp"] * 1_000_000 < self.end_ns:
                        per_bucket.setdefault(point["timestamp"] // step_ms * step_ms, []).append(point["value"])
                if not per_bucket:
                    continue
                target = groups.setdefault(self.group_key(row), {})
                for ts, values in per_bucket.items():
                    target.setdefault(ts, []).append(_reduce(time_agg, values))
            series = [{"labels": [lab for lab in self.labels(group) if lab["value"] != ""],
                       "values": [{"timestamp": ts, "value": _reduce(space_agg, v)}
                                  for ts, v in sorted(points.items())]}
                      for group, points in groups.items()]
            buckets.append({"index": index, "alias": "", "meta": {}, "series": series})
        return {"queryName": self.spec.get("name", ""), "aggregations": sanitize(buckets)}

    def scalar(self) -> dict[str, Any]:
        if self.signal == "metrics":
            raise ApiError(501, "unsupported", "scalar metric queries are not served by this test server")
        group_by = self.spec.get("groupBy") or []
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in self.rows():
            groups.setdefault(self.group_key(row), []).append(row)
        if not group_by:
            groups = {(): [r for rows in groups.values() for r in rows]}
        aggregations = self.aggregations()
        columns = [{**{k: v for k, v in key.items() if v}, "queryName": self.spec.get("name", ""),
                    "aggregationIndex": 0, "meta": {}, "columnType": "group"} for key in group_by]
        columns += [{"name": a.get("alias") or a["expression"], "queryName": self.spec.get("name", ""),
                     "aggregationIndex": i, "meta": {}, "columnType": "aggregation"}
                    for i, (a, _) in enumerate(aggregations)]
        data = [[*(v if v is not None else "" for v in group), *(reduce(rows) for _, reduce in aggregations)]
                for group, rows in groups.items()]
        if aggregations:
            data.sort(key=lambda row: -_sortable(row[len(group_by)]))
        limit = self.spec.get("limit") or 0
        if limit and group_by:
            data = data[:limit]
        return {"queryName": self.spec.get("name", ""), "columns": columns, "data": sanitize(data)}


def _sortable(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(number) else number


def _reduce(how: str | None, values: list[float]) -> float:
    if not values:
        return math.nan
    if how in ("avg", None, ""):
        return sum(values) / len(values)
    if how == "sum":
        return float(sum(values))
    if how == "min":
        return float(min(values))
    if how == "max":
        return float(max(values))
    if how == "latest":
        return float(values[-1])
    if how in ("count", "count_distinct"):
        return float(len(values) if how == "count" else len(set(values)))
    if how in PERCENTILES:
        return _percentile(values, PERCENTILES[how])
    raise invalid(f"aggregation {how!r} is not served by this test server")


# --------------------------------------------------------------------- metadata endpoints


def _field_key(name: str, signal: str, context: str, data_type: str) -> dict[str, Any]:
    return {"name": name, "signal": signal, "fieldContext": context, "fieldDataType": data_type}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "string"


def field_keys(telemetry: Telemetry, signal: str, search: str, metric: str | None) -> dict[str, list[dict]]:
    """What ``GET /api/v1/fields/keys`` lists for the recorded rows."""
    keys: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, context: str, data_type: str) -> None:
        if name and search.lower() in name.lower() and name not in keys:
            keys[name] = [_field_key(name, signal, context, data_type)]

    if signal == "logs":
        for row in telemetry.logs:
            for key, value in row["data"].items():
                if isinstance(value, dict):
                    context = "resource" if key.startswith("resources") else "attribute"
                    for name, inner in value.items():
                        add(name, context, _type_of(inner))
                else:
                    add(key, "log", _type_of(value))
    elif signal == "traces":
        for row in telemetry.traces:
            for key, value in row["data"].items():
                add(key, "resource" if key == "service.name" else "span", _type_of(value))
    else:
        for row in telemetry.metrics:
            if metric and row.get("metric") != metric:
                continue
            for name in row["_labels"]:
                add(name, "attribute", "string")
    return dict(sorted(keys.items()))


def field_values(telemetry: Telemetry, signal: str, name: str, search: str) -> list[str]:
    """String values of one key (``GET /api/v1/fields/values``)."""
    rows: list[dict[str, Any]]
    resolve: Resolver
    if signal == "metrics":
        rows, resolve = telemetry.metrics, resolve_label
    elif signal == "logs":
        rows, resolve = telemetry.logs, resolve_log
    else:
        rows, resolve = telemetry.traces, resolve_span
    values = {str(v) for present, v in (resolve(r, name) for r in rows) if present and v not in (None, "")}
    return sorted(v for v in values if search.lower() in v.lower())


def metrics_stats(telemetry: Telemetry, body: Any) -> dict[str, Any]:
    """``POST /api/v2/metrics/stats``: ``StatsRequest`` → ``StatsResponse``."""
    body = _object(body, "metricsexplorertypes.StatsRequest")
    _unknown(body, ("filter", "start", "end", "limit", "offset", "orderBy"))
    start, end, limit, offset = (body.get(k, 0) for k in ("start", "end", "limit", "offset"))
    if start <= 0:
        raise invalid(f"invalid start time {start}: start must be greater than 0")
    if end <= 0:
        raise invalid(f"invalid end time {end}: end must be greater than 0")
    if start >= end:
        raise invalid(f"invalid time range: start ({start}) must be less than end ({end})")
    if not 1 <= limit <= 5000:
        raise invalid("limit must be between 1 and 5000")
    if offset < 0:
        raise invalid("offset cannot be negative")
    stats: dict[str, dict[str, Any]] = {}
    for row in telemetry.metrics:
        samples = sum(1 for p in (row.get("series") or {}).get("values") or [] if start <= p["timestamp"] <= end)
        if not samples:
            continue
        entry = stats.setdefault(row["metric"], {"metricName": row["metric"], "description": "", "type": "gauge",
                                                 "unit": "", "timeseries": 0, "samples": 0})
        entry["timeseries"] += 1
        entry["samples"] += samples
    ordered = sorted(stats.values(), key=lambda s: (-s["samples"], s["metricName"]))
    return {"metrics": ordered[offset:offset + limit], "total": len(ordered)}


# --------------------------------------------------------------------- the HTTP server


@functools.lru_cache(maxsize=8)
def _load(folder: Path) -> Telemetry:
    """Telemetry per folder, parsed once per test session (the server never mutates it)."""
    return Telemetry.load(folder)


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class SignozServer:
    """SigNoz v5 on ``127.0.0.1``: ``with SignozServer(folder) as server: LiveSignoz(server.url, server.api_key)``."""

    def __init__(self, incident: Path, *, api_key: str = "test-api-key") -> None:
        self.telemetry = _load(Path(incident).resolve())
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.fail_with: int | None = None
        """Answer every request with this status (401 and 500 carry SigNoz's error bodies)."""
        self.delay = 0.0
        """Seconds to wait before answering."""
        self._queued: list[int] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------
    def start(self) -> SignozServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="signoz-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SignozServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # behaviour ----------------------------------------------------------
    def queue(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then normally): ``queue(503)`` is a 503-then-200."""
        with self._lock:
            self._queued.extend(statuses)

    def bodies(self, path: str = "/api/v5/query_range") -> list[Any]:
        """Recorded JSON bodies sent to ``path``."""
        return [r.body for r in self.requests if r.path == path]

    def _next_forced(self) -> int | None:
        with self._lock:
            if self._queued:
                return self._queued.pop(0)
        return self.fail_with

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Route one request; returns status, JSON body and extra headers."""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
        self.requests.append(Recorded(method, path, query, headers, body))
        if self.delay:
            time.sleep(self.delay)
        if headers.get("signoz-api-key") != self.api_key:
            denied = ApiError(401, "unauthenticated", "failed to authenticate: invalid or missing API key")
            return 401, denied.body(), {}
        forced = self._next_forced()
        if forced is not None:
            return forced, _forced_body(forced), {}
        try:
            return 200, {"status": "success", "data": self._route(method, path, query, body)}, {}
        except ApiError as exc:
            return exc.status, exc.body(), {}

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        if (method, path) == ("POST", "/api/v5/query_range"):
            if isinstance(body, str):
                raise invalid(f"failed to decode request body: {body[:40]!r} is not JSON")
            checked = validate_query_range(body)
            request, spec = checked["request"], checked["spec"]
            executor = Executor(self.telemetry, request, spec)
            kind = request["requestType"]
            result = {"raw": executor.raw, "time_series": executor.time_series, "scalar": executor.scalar}.get(kind)
            if result is None:
                raise ApiError(501, "unsupported", f"request type {kind} is not served by this test server")
            step = {spec.get("name", "A"): int(executor.step_seconds())} if kind != "raw" else {}
            return {"type": kind, "data": {"results": [result()]},
                    "meta": {"rowsScanned": len(self.telemetry.logs) + len(self.telemetry.traces), "bytesScanned": 0,
                             "durationMs": 1, "stepIntervals": step}}
        if (method, path) == ("GET", "/api/v1/fields/keys"):
            signal = query.get("signal", "")
            if signal not in SIGNAL_NAMES:
                raise invalid(f'invalid signal "{signal}"', "Valid signals are: traces, logs, metrics")
            limit = int(query.get("limit") or 1000)
            keys = field_keys(self.telemetry, signal, query.get("searchText", ""), query.get("metricName"))
            return {"keys": dict(list(keys.items())[:limit]), "complete": len(keys) < limit}
        if (method, path) == ("GET", "/api/v1/fields/values"):
            signal = query.get("signal", "")
            if signal not in SIGNAL_NAMES:
                raise invalid(f'invalid signal "{signal}"', "Valid signals are: traces, logs, metrics")
            limit = int(query.get("limit") or 50)
            values = field_values(self.telemetry, signal, query.get("name", ""), query.get("searchText", ""))
            return {"values": {"stringValues": values[:limit], "relatedValues": []}, "complete": len(values) < limit}
        if (method, path) == ("POST", "/api/v2/metrics/stats"):
            return metrics_stats(self.telemetry, body)
        raise ApiError(404, "not_found", f"no route for {method} {path}")


def _forced_body(status: int) -> dict[str, Any]:
    if status in (401, 403):
        return ApiError(status, "unauthenticated", "failed to authenticate: invalid API key").body()
    if status == 500:
        return ApiError(500, "internal", "code: 241, message: (total) memory limit exceeded: would use 9.31 GiB "
                                         "(attempt to allocate chunk of 4194304 bytes), maximum: 9.30 GiB").body()
    if status == 429:
        return ApiError(429, "too_many_requests", "rate limit exceeded").body()
    return ApiError(status, "unavailable", f"upstream unavailable ({HTTPStatus(status).phrase})").body()


class _Handler(BaseHTTPRequestHandler):
    server_state: SignozServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server_state.handle(self.command, parts.path, query, headers, raw)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Keep test output quiet."""
