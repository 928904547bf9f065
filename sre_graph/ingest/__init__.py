"""Alert intake: turn any payload sre-graph accepts into :class:`~sre_graph.models.Alert`.

The source is detected by shape (:func:`detect_kind`): an Alertmanager v4
webhook, a SigNoz alert webhook, a Slack event, or the generic API body. A bad
payload raises one :class:`AlertValidationError` naming every bad field.

Example:
    >>> alert = parse_alert(b'{"alert_id": "a1", "service_name": "checkout", '
    ...                     b'"severity": "P1", "message": "p99 latency 2s"}')
    >>> alert.source, alert.severity.value, alert.priority
    ('generic', 'high', 'P1')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sre_graph.ingest import alertmanager, generic, signoz, slack
from sre_graph.ingest.generic import AlertValidationError
from sre_graph.models import Alert, SourceKind

__all__ = ["AlertValidationError", "detect_kind", "load_payload", "parse_alert", "parse_alerts"]


def load_payload(payload: Mapping[str, Any] | str | bytes | bytearray) -> Mapping[str, Any]:
    """Decode a request body into a JSON object.

    Args:
        payload: An already decoded object, or JSON text or bytes.

    Returns:
        The JSON object.

    Raises:
        AlertValidationError: The body is not JSON, or is JSON but not an object.
    """
    if isinstance(payload, Mapping):
        return payload
    if not isinstance(payload, (str, bytes, bytearray)):
        raise AlertValidationError([("", f"body must be a JSON object, str or bytes (got {type(payload).__name__})")])
    try:
        decoded = json.loads(payload)
    except RecursionError:
        raise AlertValidationError([("", "body is not JSON: nested too deeply")]) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise AlertValidationError([("", f"body is not JSON: {exc}")]) from None
    if not isinstance(decoded, Mapping):
        raise AlertValidationError([("", f"body is not a JSON object (got {generic.json_type(decoded)})")])
    return decoded


def detect_kind(payload: Mapping[str, Any]) -> SourceKind:
    """Tell the source of a decoded payload by its shape.

    A Slack envelope (``type: event_callback``) wins; then a body with ``alerts``
    is SigNoz when it carries SigNoz's marks (``ruleId``, ``related_logs``,
    ``related_traces``) and Alertmanager otherwise; then a bare Slack event
    (``type`` and ``text``). Anything else is ``generic``, whose parser names the
    fields it is missing.
    """
    if payload.get("type") == "event_callback":
        return "slack"
    if alertmanager.looks_like(payload):
        return "signoz" if signoz.looks_like(payload) else "alertmanager"
    if slack.looks_like(payload):
        return "slack"
    return "generic"


def parse_alerts(payload: Mapping[str, Any] | str | bytes | bytearray) -> list[Alert]:
    """Parse every alert a payload carries.

    Alertmanager and SigNoz webhooks may group several alerts; Slack and generic
    bodies carry one.

    Args:
        payload: A decoded JSON object, or JSON text or bytes.

    Returns:
        The alerts, in payload order; never empty.

    Raises:
        AlertValidationError: The body is not JSON, or names every bad field.
    """
    body = load_payload(payload)
    kind = detect_kind(body)
    if kind == "alertmanager":
        return alertmanager.parse_alerts(body)
    if kind == "signoz":
        return signoz.parse_alerts(body)
    if kind == "slack":
        return [slack.parse_event(body)]
    return [generic.parse_generic(body)]


def parse_alert(payload: Mapping[str, Any] | str | bytes | bytearray) -> Alert:
    """Parse the alert to investigate from a payload.

    For grouped webhooks this is the first firing alert, or the first alert when
    all are resolved; every alert is still validated.

    Args:
        payload: A decoded JSON object, or JSON text or bytes.

    Returns:
        The alert.

    Raises:
        AlertValidationError: The body is not JSON, or names every bad field.
    """
    alerts = parse_alerts(payload)
    return next((alert for alert in alerts if alert.status == "firing"), alerts[0])
