"""The generic API body, and what every alert parser shares.

The generic body is sre-graph's own format::

    {"alert_id": "...", "service_name": "...", "severity": "high", "message": "...",
     "timestamp": "2026-03-14T10:02:00Z", "labels": {...}, "annotations": {...}}

``timestamp``, ``labels``, ``annotations``, ``fingerprint`` and ``status`` are
optional; unknown fields are ignored. The other parsers use the helpers here
(severity aliases, timestamps, label coercion, :class:`AlertValidationError`)
so every source reports problems the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sre_graph.models import Alert, Severity, utcnow
from sre_graph.timeutil import parse_time

REQUIRED_FIELDS: tuple[str, ...] = ("alert_id", "service_name", "severity", "message")
"""The generic body's required fields, named when a payload matches no known shape."""

SEVERITY_ALIASES: dict[str, Severity] = {
    **dict.fromkeys(("critical", "page", "p0", "error", "fatal"), Severity.critical),
    **dict.fromkeys(("high", "major", "p1"), Severity.high),
    **dict.fromkeys(("medium", "warning", "warn", "p2"), Severity.medium),
    **dict.fromkeys(("low", "info", "minor", "none", "p3"), Severity.low),
}
"""Severity names the sources use (lower case), mapped to :class:`Severity`."""

ErrorList = list[tuple[str, str]]
"""``(field_path, message)`` pairs; an empty path means the body as a whole."""


class AlertValidationError(ValueError):
    """A payload is not a usable alert.

    The message names every bad field with its path, e.g. ``invalid alert:
    alerts[0].startsAt: not a timestamp ('yesterday'); severity: unknown severity
    'urgent' (expected critical, high, medium, low)``.

    Attributes:
        errors: ``(field_path, message)`` pairs, one per distinct problem, in
            payload order. An empty path means the body as a whole.
    """

    def __init__(self, errors: Iterable[tuple[str, str]]) -> None:
        """Build the error from its ``(field_path, message)`` pairs."""
        self.errors: ErrorList = list(dict.fromkeys(errors))
        parts = [f"{path}: {message}" if path else message for path, message in self.errors]
        super().__init__("invalid alert: " + "; ".join(parts))

    def __reduce__(self) -> tuple[type[AlertValidationError], tuple[ErrorList]]:
        """Pickle by errors, so the error survives crossing a process boundary."""
        return (type(self), (self.errors,))


# --------------------------------------------------------------------- helpers


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages: object, array, string, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def join_path(prefix: str, key: str | int) -> str:
    """Append a key (``.key``) or an index (``[i]``) to a field path."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def to_severity(value: Any) -> Severity:
    """Map a source's severity name to :class:`Severity`, case-insensitively.

    Args:
        value: A :class:`Severity`, or a name from :data:`SEVERITY_ALIASES`.

    Returns:
        The severity.

    Raises:
        ValueError: The value is not a known severity name.
    """
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value.strip().lower() in SEVERITY_ALIASES:
        return SEVERITY_ALIASES[value.strip().lower()]
    expected = ", ".join(s.value for s in Severity)
    raise ValueError(f"unknown severity {value!r} (expected {expected})")


def to_time(value: Any) -> datetime:
    """Parse an RFC 3339 string or epoch number into an aware UTC datetime.

    Raises:
        ValueError: The value is empty or not a timestamp; the message quotes it.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp ({value!r})")
    try:
        parsed = parse_time(value)
    except (ValueError, TypeError, OverflowError, OSError):
        parsed = None
    if parsed is None:
        raise ValueError(f"not a timestamp ({value!r})")
    return parsed


def to_str(value: Any) -> str:
    """Coerce a label value to a string: booleans as ``true``/``false``, objects and arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def to_str_map(value: Any) -> dict[str, str]:
    """Coerce a labels/annotations object to ``dict[str, str]``; ``null`` values are dropped.

    Raises:
        ValueError: The value is not an object (``None`` counts as empty).
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object (got {json_type(value)})")
    return {str(key): to_str(item) for key, item in value.items() if item is not None}


def checked_str_map(payload: Mapping[str, Any], key: str, path: str, errors: ErrorList) -> dict[str, str]:
    """:func:`to_str_map` of ``payload[key]``, recording a problem under ``path`` instead of raising."""
    try:
        return to_str_map(payload.get(key))
    except ValueError as exc:
        errors.append((path, str(exc)))
        return {}


def build_alert(errors: ErrorList, **fields: Any) -> Alert:
    """Construct an :class:`Alert`, turning a model rejection into :class:`AlertValidationError`."""
    try:
        return Alert(**fields)
    except ValidationError as exc:
        raise AlertValidationError(errors + pydantic_errors(exc)) from None


def pydantic_errors(exc: ValidationError, prefix: str = "") -> ErrorList:
    """Rewrite a pydantic error as short ``(field_path, message)`` pairs."""
    result: ErrorList = []
    for error in exc.errors(include_url=False):
        path = prefix
        for key in error["loc"]:
            path = join_path(path, key)
        kind = error["type"]
        given = error.get("input")
        if kind == "missing":
            message = "missing"
        elif kind == "value_error":
            message = str(error.get("ctx", {}).get("error", error["msg"]))
        elif kind == "string_type":
            message = f"expected a string (got {json_type(given)})"
        elif kind == "string_too_short":
            message = "must not be empty"
        elif kind == "dict_type":
            message = f"expected an object (got {json_type(given)})"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"unknown value {given!r} (expected {expected})"
        else:
            message = error["msg"]
        result.append((path, message))
    return result


def _status(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _optional_time(value: Any) -> datetime | None:
    return None if value is None or value == "" else to_time(value)


# --------------------------------------------------------------------- generic body


class GenericAlertBody(BaseModel):
    """The generic API body, as received."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    alert_id: str = Field(min_length=1)
    service_name: str = Field(min_length=1)
    severity: Annotated[Severity, BeforeValidator(to_severity)]
    message: str
    timestamp: Annotated[datetime | None, BeforeValidator(_optional_time)] = None
    """When the condition started; the time of receipt when absent."""
    labels: Annotated[dict[str, str], BeforeValidator(to_str_map)] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], BeforeValidator(to_str_map)] = Field(default_factory=dict)
    fingerprint: str = ""
    status: Annotated[Literal["firing", "resolved"], BeforeValidator(_status)] = "firing"


def looks_like(payload: Mapping[str, Any]) -> bool:
    """Whether the payload carries any of the generic body's required fields."""
    return any(key in payload for key in REQUIRED_FIELDS)


def parse_generic(payload: Mapping[str, Any]) -> Alert:
    """Parse a generic API body.

    Args:
        payload: The decoded JSON object.

    Returns:
        The alert, with ``source="generic"``.

    Raises:
        AlertValidationError: Naming every bad or missing field. When the
            payload has none of the required fields, the first problem says it
            matches no known shape.
    """
    errors: ErrorList = []
    if not looks_like(payload):
        errors.append(
            ("", "body matches no known alert shape (Alertmanager or SigNoz webhook, Slack event, generic body)")
        )
    try:
        body = GenericAlertBody.model_validate(dict(payload))
    except ValidationError as exc:
        raise AlertValidationError(errors + pydantic_errors(exc)) from None
    return build_alert(
        errors,
        alert_id=body.alert_id,
        service_name=body.service_name,
        severity=body.severity,
        timestamp=body.timestamp or utcnow(),
        message=body.message,
        labels=body.labels,
        annotations=body.annotations,
        fingerprint=body.fingerprint,
        source="generic",
        status=body.status,
    )
