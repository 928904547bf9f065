"""The data sre-graph passes around: alerts in, evidence and findings inside, a report out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sre_graph import taxonomy
from sre_graph.taxonomy import Domain


class Severity(StrEnum):
    """Alert severity as the alert sources name it."""

    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"

    @property
    def priority(self) -> str:
        """The paging priority: critical→P0, high→P1, medium→P2, low→P3."""
        return PRIORITY[self]


PRIORITY: dict[Severity, str] = {
    Severity.critical: "P0",
    Severity.high: "P1",
    Severity.medium: "P2",
    Severity.low: "P3",
}

SourceKind = Literal["generic", "alertmanager", "signoz", "slack"]
DataSource = Literal["kubernetes", "signoz", "mongodb"]
DATA_SOURCES: tuple[DataSource, ...] = ("kubernetes", "signoz", "mongodb")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Alert(BaseModel):
    """One alert as it arrived, normalised from any source."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(min_length=1)
    service_name: str = Field(min_length=1)
    severity: Severity
    timestamp: datetime
    """When the alert condition started (``startsAt``)."""
    message: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = ""
    """Stable identity for deduplication; derived from alert name, service and labels if absent."""
    source: SourceKind = "generic"
    status: Literal["firing", "resolved"] = "firing"

    @field_validator("timestamp")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return _aware(value)

    def model_post_init(self, __context: Any) -> None:
        if not self.fingerprint:
            basis = "|".join(
                [self.labels.get("alertname", self.alert_id), self.service_name]
                + [f"{k}={v}" for k, v in sorted(self.labels.items())]
            )
            self.fingerprint = hashlib.sha256(basis.encode()).hexdigest()[:16]

    @property
    def priority(self) -> str:
        """P0..P3 from the severity."""
        return self.severity.priority

    @property
    def namespace(self) -> str | None:
        """The Kubernetes namespace the alert names, if any."""
        for key in ("namespace", "k8s_namespace", "k8s.namespace.name", "kubernetes_namespace"):
            if self.labels.get(key):
                return self.labels[key]
        return None

    @property
    def title(self) -> str:
        """A one-line name for the alert."""
        name = self.labels.get("alertname") or self.annotations.get("summary") or self.alert_id
        return f"{name} on {self.service_name}"


class Classification(BaseModel):
    """Which domains an alert points at, and how strongly."""

    domains: list[Domain]
    """Domains to investigate, strongest first."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Score per domain in [0, 1]."""
    severity: Severity
    priority: str
    service: str
    namespace: str | None = None
    rationale: str = ""
    method: str = "rules"
    """``rules`` or the model that classified."""


class Evidence(BaseModel):
    """One piece of gathered data the report can cite."""

    id: str
    """Stable id, derived from the source, the query and the item it describes."""
    source: DataSource
    query: str
    """The query as run, in words a person could re-run."""
    summary: str
    excerpt: str = ""
    """The raw lines or fields the summary rests on (redacted, capped)."""
    timestamp: datetime | None = None
    """When the observed thing happened (first occurrence)."""
    end_timestamp: datetime | None = None
    """Last occurrence, for things seen over a span."""
    healthy: bool = False
    """A check that found nothing wrong: cited when ruling things out or when the answer is ``unknown``."""

    @staticmethod
    def make_id(source: str, query: str, key: str) -> str:
        """A stable evidence id: the same source, query and item always give the same id."""
        digest = hashlib.sha1(f"{source}|{query}|{key}".encode()).hexdigest()[:8]
        prefix = {"kubernetes": "k8s", "signoz": "sz", "mongodb": "mdb"}.get(source, source[:3])
        return f"{prefix}-{digest}"


class Finding(BaseModel):
    """A candidate explanation, backed by evidence ids."""

    domain: Domain
    root_cause: str
    """A taxonomy id."""
    statement: str
    """The claim in plain words, naming the object and the signal."""
    evidence_ids: list[str]
    confidence: float = Field(ge=0.0, le=1.0)
    onset: datetime | None = None
    """When the finding's anomaly started (earliest supporting evidence)."""
    subject: str = ""
    """The object the finding is about (``namespace/pod``, ``db.collection``, a service)."""
    remediation: list[str] = Field(default_factory=list)
    """Specific steps; the taxonomy's generic steps are added by the report."""
    keywords: list[str] = Field(default_factory=list)
    """Salient terms (object names, signals) for the report."""
    explains: list[str] = Field(default_factory=list)
    """Root-cause ids this finding would explain if true (symptoms it causes)."""
    objects: list[str] = Field(default_factory=list)
    """Names of the objects involved (service, pod, node, deployment, collection, host): a cause and an effect
    are linked when they share one."""
    relevance: float = 1.0
    """How directly the finding touches the alerted service (1.0: it or a dependency; less: elsewhere)."""
    steady: bool = False
    """A background condition present at an even rate since well before the alert: context, not a trigger."""
    score: float = 0.0
    """Set by verify: the ranking score."""
    rank_notes: list[str] = Field(default_factory=list)
    """Set by verify: why the finding ranked where it did."""

    @field_validator("root_cause")
    @classmethod
    def _known(cls, value: str) -> str:
        taxonomy.get(value)
        return value


class TimelineEntry(BaseModel):
    """One dated event in the incident's story."""

    timestamp: datetime
    event: str
    evidence_id: str | None = None


class RuledOut(BaseModel):
    """A candidate that was considered and set aside, with the reason."""

    root_cause: str
    statement: str
    reason: str
    evidence_ids: list[str] = Field(default_factory=list)


class Report(BaseModel):
    """The root-cause analysis, rendered as markdown for people and JSON for machines."""

    incident_id: str
    title: str
    service: str
    namespace: str | None = None
    severity: Severity
    priority: str
    alert_time: datetime
    generated_at: datetime
    summary: str
    domain: Domain | None
    """The concluded domain; ``None`` only when the root cause is ``unknown`` and no domain fits."""
    root_cause: str
    root_cause_title: str
    root_cause_statement: str
    confidence: float
    evidence: list[Evidence]
    """The evidence the conclusion cites, strongest first."""
    timeline: list[TimelineEntry]
    impact: str
    remediation: list[str]
    ruled_out: list[RuledOut] = Field(default_factory=list)
    checked: list[str] = Field(default_factory=list)
    """What was looked at (queries run), so an ``unknown`` says what was checked."""
    unavailable_sources: list[str] = Field(default_factory=list)
    dropped_claims: list[str] = Field(default_factory=list)
    """Claims verify removed, with why."""
    model: str = "rules"
    rounds: int = 1
    tool_calls: int = 0
    tokens: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Prompt and completion tokens per node (empty in rules mode)."""
    cost: float = 0.0
    """Cost of the tokens at the configured prices."""
    model_notes: list[str] = Field(default_factory=list)
    """Where the model failed and the deterministic result stood in."""
