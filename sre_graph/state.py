"""Graph state: a narrow input, the internal working state, a narrow output."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from sre_graph.models import Alert, Classification, Evidence, Finding, Report, RuledOut


def merge_evidence(left: dict[str, Evidence] | None, right: dict[str, Evidence] | None) -> dict[str, Evidence]:
    """Union of evidence by id; parallel branches that cite the same item agree on its content."""
    return {**(left or {}), **(right or {})}


def merge_usage(left: dict[str, dict[str, int]] | None,
                right: dict[str, dict[str, int]] | None) -> dict[str, dict[str, int]]:
    """Sum token counts per node across branches and rounds."""
    out = {k: dict(v) for k, v in (left or {}).items()}
    for node, counts in (right or {}).items():
        slot = out.setdefault(node, {})
        for key, value in counts.items():
            slot[key] = slot.get(key, 0) + int(value)
    return out


def union(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Order-preserving set union, for names written by several branches."""
    out = list(left or [])
    out.extend(item for item in (right or []) if item not in out)
    return out


class InputState(TypedDict, total=False):
    """What a caller sends: the alert payload, in any supported shape."""

    alert: dict[str, Any]
    """An Alertmanager/SigNoz webhook body, a Slack event, or the generic alert body."""


class IncidentState(InputState, total=False):
    """The working state of one investigation."""

    parsed_alert: Alert
    classification: Classification
    domains_investigated: Annotated[list[str], union]
    """Domains that have run, across rounds (written by parallel investigators)."""
    evidence: Annotated[dict[str, Evidence], merge_evidence]
    """Every piece of evidence gathered, by id."""
    findings: Annotated[list[Finding], operator.add]
    """Candidate explanations from every investigator and round."""
    checked: Annotated[list[str], union]
    """Queries run, in words, so an inconclusive report says what was looked at."""
    unavailable: Annotated[list[str], union]
    """``source: reason`` for sources that could not answer."""
    tool_calls: Annotated[int, operator.add]
    usage: Annotated[dict[str, dict[str, int]], merge_usage]
    """Prompt and completion tokens per node, from the model API's usage fields."""
    model_notes: Annotated[list[str], union]
    """Where the model failed and the deterministic result stood in, or what the model's checks removed."""
    round: int
    """Investigation round counter (1-based); bounded by the context's ``max_rounds``."""
    next_domains: list[str]
    """Domains verify asked for in the next round."""
    ranked: list[Finding]
    """Findings that survived verification, best first."""
    competing: list[Finding]
    """The leader and a rival explanation the evidence does not separate (empty when the leader stands alone)."""
    ruled_out: list[RuledOut]
    dropped: Annotated[list[str], union]
    """Findings verify removed, with why (across rounds)."""
    recheck_done: bool
    """Whether the one extra round after the leader lost its support has been granted."""
    rejected_claims: Annotated[list[str], union]
    """Statements the model's check found unsupported: kept out of later rounds too."""
    report: Report


class InvestigatorInput(TypedDict):
    """What route sends to one domain investigator."""

    parsed_alert: Alert
    classification: Classification
    round: int
    domain: str


class OutputState(TypedDict, total=False):
    """What a caller gets back."""

    report: Report


_TYPED_FIELDS: dict[str, Any] = {
    "parsed_alert": Alert,
    "classification": Classification,
    "report": Report,
}
_TYPED_LISTS: dict[str, Any] = {"findings": Finding, "ranked": Finding, "ruled_out": RuledOut, "competing": Finding}


def typed(state: Any) -> Any:
    """State with its models restored: checkpointers that store JSON (Redis) give plain dicts back."""
    out = dict(state)
    for key, model in _TYPED_FIELDS.items():
        if isinstance(out.get(key), dict):
            out[key] = model.model_validate(out[key])
    for key, model in _TYPED_LISTS.items():
        if out.get(key):
            out[key] = [model.model_validate(v) if isinstance(v, dict) else v for v in out[key]]
    if out.get("evidence"):
        out["evidence"] = {k: Evidence.model_validate(v) if isinstance(v, dict) else v
                           for k, v in out["evidence"].items()}
    return out
