"""Scoring exactly as ``shared/INCIDENT_FORMAT.md`` says."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sre_graph import taxonomy
from sre_graph.models import Report
from sre_graph.render import to_json, to_markdown


@dataclass
class Score:
    """Every criterion of one case."""

    passed: bool
    domain_ok: bool
    root_cause_ok: bool
    forbidden_hit: bool
    keywords_missing: list[str] = field(default_factory=list)
    keyword_recall: float = 1.0
    sources_missing: list[str] = field(default_factory=list)
    source_coverage: float = 1.0
    remediation_recall: float = 1.0
    outcome: str = "pass"
    """``pass``, ``wrong`` (a different cause concluded), ``unknown`` (inconclusive where a cause was expected),
    or ``partial`` (right cause, a keyword or source missing)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for results files."""
        return asdict(self)

    def problems(self) -> list[str]:
        """Why the case fails, one line per failed criterion (empty when it passes)."""
        out = []
        if not self.root_cause_ok:
            out.append("wrong root cause")
        if not self.domain_ok:
            out.append("wrong domain")
        if self.forbidden_hit:
            out.append("concluded a forbidden root cause")
        if self.keywords_missing:
            out.append(f"required keywords missing from the report: {self.keywords_missing}")
        if self.sources_missing:
            out.append(f"required evidence sources not cited: {self.sources_missing}")
        return out


def score_report(report: Report, expected: dict[str, Any]) -> Score:
    """Score one report against an incident's ``expected`` block."""
    want = expected.get("root_cause", taxonomy.UNKNOWN)
    acceptable = [want, *(expected.get("acceptable_root_causes") or [])]
    got = report.root_cause
    root_ok = got in acceptable
    if taxonomy.UNKNOWN in acceptable and got == taxonomy.UNKNOWN:
        domain_ok = True
    elif root_ok and got != taxonomy.UNKNOWN:
        domain_ok = report.domain == taxonomy.domain_of(got)
    else:
        domain_ok = report.domain == expected.get("domain")
    forbidden = got in (expected.get("forbidden_root_causes") or [])
    text = (to_json(report) + "\n" + to_markdown(report)).lower()
    keywords = [str(k) for k in expected.get("required_keywords") or []]
    missing_kw = [k for k in keywords if k.lower() not in text]
    cited = {e.source for e in report.evidence}
    sources = list(expected.get("required_evidence_sources") or [])
    missing_src = [s for s in sources if s not in cited]
    remediation_text = " ".join(report.remediation).lower()
    fixes = [str(k) for k in expected.get("remediation_keywords") or []]
    fix_recall = sum(1 for k in fixes if k.lower() in remediation_text) / len(fixes) if fixes else 1.0
    passed = root_ok and domain_ok and not forbidden and not missing_kw and not missing_src
    if passed:
        outcome = "pass"
    elif root_ok:
        outcome = "partial"
    elif got == taxonomy.UNKNOWN:
        outcome = "unknown"
    else:
        outcome = "wrong"
    return Score(passed=passed, domain_ok=domain_ok, root_cause_ok=root_ok, forbidden_hit=forbidden,
                 keywords_missing=missing_kw,
                 keyword_recall=(len(keywords) - len(missing_kw)) / len(keywords) if keywords else 1.0,
                 sources_missing=missing_src,
                 source_coverage=(len(sources) - len(missing_src)) / len(sources) if sources else 1.0,
                 remediation_recall=fix_recall, outcome=outcome)
