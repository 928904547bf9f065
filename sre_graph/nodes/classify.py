"""classify: which domains an alert points at, from its labels, annotations and message."""

from __future__ import annotations

import re
from typing import Any, Literal

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from sre_graph.context import Context, as_context
from sre_graph.llm import MODEL_RETRY, ModelUnavailable, fallback_or_retry, resolve_model, structured
from sre_graph.models import Alert, Classification
from sre_graph.prompts import render, untrusted
from sre_graph.state import IncidentState, typed
from sre_graph.taxonomy import DOMAINS

# Words an alert uses for each domain, with weights. Symptoms shared by several
# domains (latency, 5xx) count for each, weaker.
DOMAIN_TERMS: dict[str, tuple[tuple[str, float], ...]] = {
    "network": (
        (r"timeouts?|timed out|deadline", 1.0), (r"refused|unreachable|reset", 1.2), (r"\bdns\b|nxdomain|resolv", 1.5),
        (r"tls|ssl|x509|certificate|cert\b", 1.5), (r"\b50[234]\b|gateway|upstream|ingress|proxy|envoy", 0.8),
        (r"\b429\b|rate.?limit|throttled", 1.0), (r"endpoint|network|connect(ion|ivity)", 0.8), (r"latency", 0.4),
    ),
    "database": (
        (r"mongo|database|\bdb\b|mysql|postgres|sql", 1.5), (r"quer(y|ies)|slow op|index|collscan", 1.2),
        (r"replica|replication|\blag\b|primary|secondary|failover|election", 1.2),
        (r"lock|deadlock|connection pool|pool", 1.0), (r"collection|cursor|wiredtiger|oplog", 1.2),
    ),
    "infrastructure": (
        (r"\bpods?\b|container|crash|restart|oom|killed|evict", 1.2), (r"\bnodes?\b|kubelet|notready", 1.2),
        (r"cpu|memory|disk|throttl|pressure", 0.8), (r"image|pull|pending|schedul", 1.2),
        (r"replicas?|hpa|autoscal|rollout|deployment", 0.8), (r"probe|liveness|readiness|not ready", 1.0),
        (r"kube|k8s", 0.6), (r"volume|pvc|mount", 1.2),
    ),
    "application": (
        (r"error rate|errors?|exception|5xx|\b500\b|failures?", 1.0), (r"deploy|release|version|rollout", 0.6),
        (r"latency|slow|p99|p95|response time", 0.5), (r"slo|availability|burn", 0.6),
        (r"config|feature flag", 1.0), (r"leak|heap|gc\b", 1.0), (r"dependency|third.party|external|api", 0.6),
    ),
}


def alert_text(alert: Alert) -> str:
    """Everything the alert says, lower-cased, for term matching."""
    parts = [alert.message, alert.service_name, *alert.labels.values(), *alert.annotations.values()]
    text = " ".join(parts)
    return re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ").lower()


def classify_rules(alert: Alert) -> Classification:
    """Score each domain by the alert's wording; keep those near the top score."""
    text = alert_text(alert)
    raw = {d: sum(w for pattern, w in DOMAIN_TERMS[d] if re.search(pattern, text)) for d in DOMAINS}
    top = max(raw.values())
    if top == 0:
        scores = {"application": 0.5, "infrastructure": 0.5, "network": 0.3, "database": 0.3}
    else:
        scores = {d: round(v / top, 2) for d, v in raw.items()}
    ranked = sorted(DOMAINS, key=lambda d: -scores[d])
    domains = [d for d in ranked if scores[d] >= 0.5][:3] or ranked[:1]
    terms = ", ".join(f"{d} {scores[d]:.2f}" for d in ranked)
    return Classification(domains=domains, scores=scores, severity=alert.severity, priority=alert.priority,
                          service=alert.service_name, namespace=alert.namespace,
                          rationale=f"alert wording scores: {terms}", method="rules")


class ModelClassification(BaseModel):
    """What the model returns for an alert."""

    domains: list[Literal["network", "database", "infrastructure", "application"]] = Field(
        min_length=1, description="Domains to investigate, strongest first.")
    confidence: dict[str, float] = Field(default_factory=dict, description="Confidence 0..1 per domain.")
    severity: Literal["critical", "high", "medium", "low"]
    service: str
    namespace: str | None = None


def classify(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Classify the parsed alert (the model when configured, else rules) and start round 1."""
    alert = typed(state)["parsed_alert"]
    rules = classify_rules(alert)
    model = resolve_model(as_context(runtime.context))
    if model is None:
        return {"classification": rules, "round": 1}
    prompt = render("classify", alert=untrusted("alert", alert.model_dump_json(
        include={"service_name", "severity", "message", "labels", "annotations"})))
    try:
        out, usage = structured(model, ModelClassification, prompt)
    except ModelUnavailable as exc:
        note = fallback_or_retry(exc, runtime, MODEL_RETRY.max_attempts)
        return {"classification": rules.model_copy(update={"method": "rules (model failed)"}), "round": 1,
                "model_notes": [f"classify: model failed ({note}); used the rules classifier"]}
    domains = list(dict.fromkeys(out.domains))
    scores: dict[str, float] = {d: round(float(out.confidence.get(d, 0.5)), 2) for d in domains}
    classification = Classification(
        domains=domains, scores=scores, severity=alert.severity, priority=alert.priority,
        service=alert.service_name, namespace=alert.namespace or out.namespace,
        rationale=f"model: {', '.join(f'{d} {scores[d]:.2f}' for d in domains)}; {rules.rationale}",
        method="model")
    return {"classification": classification, "round": 1, "usage": {"classify": usage} if usage else {}}
