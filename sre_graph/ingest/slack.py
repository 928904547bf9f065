"""Slack messages that ask for an investigation.

Accepted shapes: an Events API envelope ``{"type": "event_callback", "event":
{"type": "app_mention", "text": ..., "ts": ..., "channel": ..., "user": ...}}``
(``message`` events too), or the bare event object. The message is free text,
e.g. ``<@U0BOT> sev2 checkout latency up, service=checkout namespace=shop``;
the service, severity and namespace are read from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sre_graph.ingest.generic import (
    AlertValidationError,
    ErrorList,
    build_alert,
    join_path,
    json_type,
    to_str,
    to_time,
)
from sre_graph.models import Alert, Severity

EVENT_TYPES: tuple[str, ...] = ("app_mention", "message")
"""Slack event types that carry a request."""

UNKNOWN_SERVICE = "unknown-service"
"""The service name when the message names none."""

_MARKUP = re.compile(r"<([^<>]*)>")
_SERVICE_TOKEN = re.compile(r"\b(?:service|svc)\s*[=:]\s*([A-Za-z0-9][\w.-]*)", re.IGNORECASE)
_SVC_PATH = re.compile(r"\bsvc/([A-Za-z0-9][\w.-]*)", re.IGNORECASE)
_AFTER_PREPOSITION = re.compile(r"\b(?i:on|in|for)\s+([a-z][a-z0-9-]*)(?![\w/:@-])")
_NAMESPACE_TOKEN = re.compile(r"\b(?:namespace|ns)\s*[=:]\s*([A-Za-z0-9][\w.-]*)", re.IGNORECASE)
_SEVERITY_WORDS: tuple[tuple[Severity, re.Pattern[str]], ...] = (
    (Severity.critical, re.compile(r"\b(?:critical|sev-?[01]|p0)\b", re.IGNORECASE)),
    (Severity.high, re.compile(r"\b(?:high|sev-?2|p1)\b", re.IGNORECASE)),
    (Severity.low, re.compile(r"\b(?:low|p3)\b", re.IGNORECASE)),
)
_NOT_A_SERVICE = frozenset(
    "a an the this that these those our my your their all any some every each "
    "prod production staging stage dev test qa cluster namespace ns service svc pod pods node nodes "
    "progress general last past next minutes minute hours hour seconds now today call "
    "critical high medium low sev sev0 sev1 sev2 sev3 p0 p1 p2 p3".split()
)


def looks_like(payload: Mapping[str, Any]) -> bool:
    """Whether the payload is a Slack Events API envelope or a bare message event."""
    if payload.get("type") == "event_callback":
        return True
    return isinstance(payload.get("type"), str) and "text" in payload and "alerts" not in payload


def clean_text(text: str) -> str:
    """Plain text from Slack markup.

    User mentions (``<@U123>``) and broadcasts (``<!here>``) are dropped, links
    become their label or URL (``<https://x|label>`` → ``label``), channel
    references become ``#name``, HTML escapes are undone and whitespace collapsed.
    """

    def replace(match: re.Match[str]) -> str:
        inner = match[1]
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return ""
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return label
        return label or target

    plain = _MARKUP.sub(replace, text)
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(plain.split())


def service_from_text(text: str) -> str:
    """The service a message names: ``service=NAME``, ``svc/NAME``, or a service-like word after on/in/for.

    Returns:
        The service name, or :data:`UNKNOWN_SERVICE`.
    """
    for pattern in (_SERVICE_TOKEN, _SVC_PATH):
        match = pattern.search(text)
        if match:
            return match[1].rstrip(".-")
    for match in _AFTER_PREPOSITION.finditer(text):
        word = match[1].rstrip("-")
        if word and word not in _NOT_A_SERVICE:
            return word
    return UNKNOWN_SERVICE


def severity_from_text(text: str) -> Severity:
    """The severity a message names: critical/sev1/p0, high/sev2/p1, low/p3; medium otherwise."""
    for severity, pattern in _SEVERITY_WORDS:
        if pattern.search(text):
            return severity
    return Severity.medium


def parse_event(payload: Mapping[str, Any]) -> Alert:
    """Parse a Slack event (enveloped or bare) into an alert.

    Args:
        payload: The decoded JSON body.

    Returns:
        The alert, with ``source="slack"``, ``alert_id`` ``slack-<channel>-<ts>``
        and labels ``channel``, ``user``, ``ts`` and ``thread_ts`` so the answer
        can go in the thread.

    Raises:
        AlertValidationError: Naming every bad or missing event field.
    """
    errors: ErrorList = []
    prefix = ""
    event: Any = payload
    if payload.get("type") == "event_callback":
        prefix = "event"
        event = payload.get("event")
        if not isinstance(event, Mapping):
            raise AlertValidationError([("event", f"expected an object (got {json_type(event)})")])

    event_type = event.get("type")
    if event_type not in EVENT_TYPES:
        errors.append(
            (join_path(prefix, "type"), f"unsupported Slack event {event_type!r} (expected app_mention or message)")
        )

    raw_text = event.get("text")
    text = ""
    if raw_text is None:
        errors.append((join_path(prefix, "text"), "missing"))
    elif not isinstance(raw_text, str):
        errors.append((join_path(prefix, "text"), f"expected a string (got {json_type(raw_text)})"))
    else:
        text = clean_text(raw_text)
        if not text:
            errors.append((join_path(prefix, "text"), "empty once mentions are removed: say what is wrong"))

    ts = _string_field(event, "ts", prefix, errors)
    timestamp = None
    if ts:
        try:
            timestamp = to_time(float(ts))
        except ValueError:
            errors.append((join_path(prefix, "ts"), f"not a timestamp ({ts!r})"))
    channel = _string_field(event, "channel", prefix, errors)
    if errors:
        raise AlertValidationError(errors)

    labels = {"channel": channel, "ts": ts, "thread_ts": to_str(event.get("thread_ts") or ts)}
    for key in ("user", "team"):
        if event.get(key) is not None:
            labels[key] = to_str(event[key])
    namespace = _NAMESPACE_TOKEN.search(text)
    if namespace:
        labels["namespace"] = namespace[1].rstrip(".-")
    return build_alert(
        errors,
        alert_id=f"slack-{channel}-{ts}",
        service_name=service_from_text(text),
        severity=severity_from_text(text),
        timestamp=timestamp,
        message=text,
        labels=labels,
        annotations={"slack_text": raw_text} if isinstance(raw_text, str) else {},
        source="slack",
        status="firing",
    )


def _string_field(event: Mapping[str, Any], key: str, prefix: str, errors: ErrorList) -> str:
    """A required non-empty string (or number) field of the event; ``""`` with an error recorded if absent."""
    value = event.get(key)
    path = join_path(prefix, key)
    if value is None or value == "":
        errors.append((path, "missing"))
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        errors.append((path, f"expected a string (got {json_type(value)})"))
        return ""
    return str(value).strip()
