"""SigNoz alert webhook bodies.

SigNoz's alert manager posts Alertmanager v4 bodies; they are told apart by what
SigNoz adds: a ``ruleId`` label (or a top-level ``ruleId``) and ``related_logs`` /
``related_traces`` annotations linking to the explorer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_graph.ingest import alertmanager
from sre_graph.models import Alert

SIGNOZ_ANNOTATIONS: tuple[str, ...] = ("related_logs", "related_traces")
"""Annotations only SigNoz sets."""


def looks_like(payload: Mapping[str, Any]) -> bool:
    """Whether an Alertmanager-shaped body came from SigNoz."""
    if not alertmanager.looks_like(payload):
        return False
    if payload.get("ruleId"):
        return True
    alerts = payload.get("alerts")
    groups = [payload, *alerts] if isinstance(alerts, list) else [payload]
    for group in groups:
        if not isinstance(group, Mapping):
            continue
        labels = group.get("labels") or group.get("commonLabels")
        annotations = group.get("annotations") or group.get("commonAnnotations")
        if isinstance(labels, Mapping) and "ruleId" in labels:
            return True
        if isinstance(annotations, Mapping) and any(key in annotations for key in SIGNOZ_ANNOTATIONS):
            return True
    return False


def parse_alerts(payload: Mapping[str, Any]) -> list[Alert]:
    """Parse every alert of a SigNoz webhook body.

    The mapping is Alertmanager's (:func:`sre_graph.ingest.alertmanager.parse_alerts`);
    a top-level ``ruleId`` is copied into labels that lack one.

    Args:
        payload: The decoded JSON body.

    Returns:
        The alerts, in payload order, with ``source="signoz"``.

    Raises:
        AlertValidationError: Naming every bad field of every alert.
    """
    rule_id = payload.get("ruleId")
    extra = {"ruleId": str(rule_id)} if rule_id not in (None, "") else None
    return alertmanager.parse_alerts(payload, source="signoz", extra_labels=extra)
