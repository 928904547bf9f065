"""Alertmanager v4 webhook bodies.

Alertmanager posts one body per notification group::

    {"version": "4", "groupKey": "...", "status": "firing", "receiver": "...",
     "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...", "alerts": [{"status": "firing", "labels": {...},
     "annotations": {...}, "startsAt": "...", "endsAt": "...",
     "generatorURL": "...", "fingerprint": "..."}]}

Every alert in ``alerts`` becomes one :class:`~sre_graph.models.Alert`. SigNoz
posts the same shape (see :mod:`sre_graph.ingest.signoz`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sre_graph.ingest.generic import (
    AlertValidationError,
    ErrorList,
    build_alert,
    checked_str_map,
    join_path,
    json_type,
    to_severity,
    to_time,
)
from sre_graph.models import Alert, Severity, SourceKind

SERVICE_LABELS: tuple[str, ...] = (
    "service",
    "service_name",
    "service.name",
    "serviceName",
    "app",
    "app_kubernetes_io_name",
    "job",
    "deployment",
    "container",
    "pod",
)
"""Labels that name the service, most specific first."""

UNKNOWN_SERVICE = "unknown-service"
"""The service name when no label names one."""

# Kubernetes generates pod suffixes from this alphabet (no vowels, no 0/1/3):
# ``<deployment>-<pod-template-hash>-<5>`` or ``<daemonset|job>-<5>``.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_POD_HASH = re.compile(rf"^(?P<base>.+?)(?:-{_SAFE}{{6,10}})?-{_SAFE}{{5}}$")


def strip_pod_hash(pod: str) -> str:
    """The workload name of a pod: ``checkout-6b7c9d5f4-x8k2p`` → ``checkout``.

    StatefulSet ordinals (``mongo-0``) and names without a generated suffix are
    returned unchanged.
    """
    match = _POD_HASH.match(pod)
    return match["base"] if match else pod


def service_from_labels(labels: Mapping[str, str]) -> str | None:
    """The service a label set names, from the first of :data:`SERVICE_LABELS` present.

    A pod name has its generated hash suffix stripped.
    """
    for key in SERVICE_LABELS:
        value = labels.get(key, "").strip()
        if value:
            return strip_pod_hash(value) if key == "pod" else value
    return None


def looks_like(payload: Mapping[str, Any]) -> bool:
    """Whether the payload is Alertmanager-shaped: it has an ``alerts`` field."""
    return "alerts" in payload


def parse_alerts(
    payload: Mapping[str, Any],
    source: SourceKind = "alertmanager",
    extra_labels: Mapping[str, str] | None = None,
) -> list[Alert]:
    """Parse every alert of an Alertmanager-shaped webhook body.

    Args:
        payload: The decoded JSON body.
        source: The source kind to stamp on the alerts (``signoz`` reuses this parser).
        extra_labels: Labels added under ``commonLabels`` (the alert's own and
            the common labels win).

    Returns:
        The alerts, in payload order.

    Raises:
        AlertValidationError: Naming every bad field of every alert.
    """
    errors: ErrorList = []
    common_labels = checked_str_map(payload, "commonLabels", "commonLabels", errors)
    common_annotations = checked_str_map(payload, "commonAnnotations", "commonAnnotations", errors)
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        errors.append(("alerts", f"expected an array of alerts (got {json_type(raw_alerts)})"))
        raise AlertValidationError(errors)
    if not raw_alerts:
        errors.append(("alerts", "empty: the webhook carries no alert"))
        raise AlertValidationError(errors)
    group_status = payload.get("status")
    alerts: list[Alert] = []
    for index, raw in enumerate(raw_alerts):
        path = join_path("alerts", index)
        if not isinstance(raw, Mapping):
            errors.append((path, f"expected an object (got {json_type(raw)})"))
            continue
        fields = _alert_fields(raw, path, common_labels, common_annotations, group_status, extra_labels or {}, errors)
        if fields is not None:
            alerts.append(build_alert(errors, source=source, **fields))
    if errors:
        raise AlertValidationError(errors)
    return alerts


def _alert_fields(
    raw: Mapping[str, Any],
    path: str,
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    group_status: Any,
    extra_labels: Mapping[str, str],
    errors: ErrorList,
) -> dict[str, Any] | None:
    """The :class:`Alert` fields of one webhook alert; ``None`` (with errors recorded) when it is bad."""
    before = len(errors)
    own_labels = checked_str_map(raw, "labels", join_path(path, "labels"), errors)
    own_annotations = checked_str_map(raw, "annotations", join_path(path, "annotations"), errors)
    labels = {**extra_labels, **common_labels, **own_labels}
    annotations = {**common_annotations, **own_annotations}

    fingerprint = raw.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        errors.append((join_path(path, "fingerprint"), f"expected a string (got {json_type(fingerprint)})"))
        fingerprint = None
    fingerprint = (fingerprint or "").strip()
    alert_id = fingerprint or labels.get("alertname", "").strip()
    if not alert_id:
        errors.append((path, "needs a fingerprint or labels.alertname to identify it"))

    service = service_from_labels(own_labels) or service_from_labels(common_labels) or UNKNOWN_SERVICE

    severity = Severity.medium
    raw_severity = labels.get("severity", "").strip()
    if raw_severity:
        try:
            severity = to_severity(raw_severity)
        except ValueError as exc:
            errors.append((join_path(path, "labels.severity"), str(exc)))

    starts_at = raw.get("startsAt")
    timestamp = None
    if starts_at is None or starts_at == "":
        errors.append((join_path(path, "startsAt"), "missing"))
    else:
        try:
            timestamp = to_time(starts_at)
        except ValueError as exc:
            errors.append((join_path(path, "startsAt"), str(exc)))

    status_path = join_path(path, "status") if "status" in raw else "status"
    status = raw.get("status", group_status) or "firing"
    if isinstance(status, str) and status.strip().lower() in ("firing", "resolved"):
        status = status.strip().lower()
    else:
        errors.append((status_path, f"unknown status {status!r} (expected firing or resolved)"))

    if len(errors) > before:
        return None
    return {
        "alert_id": alert_id,
        "service_name": service,
        "severity": severity,
        "timestamp": timestamp,
        "message": alert_message(annotations),
        "labels": labels,
        "annotations": annotations,
        "fingerprint": fingerprint,
        "status": status,
    }


def alert_message(annotations: Mapping[str, str]) -> str:
    """The alert's text: ``summary — description`` when both are set, else whichever is, else ``message``."""
    summary = annotations.get("summary", "").strip()
    description = annotations.get("description", "").strip()
    if summary and description and summary != description:
        return f"{summary} — {description}"
    return description or summary or annotations.get("message", "").strip()
