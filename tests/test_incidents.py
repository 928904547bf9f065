"""Every recorded incident under ``evals/incidents``, replayed and scored against its ``expected`` answer.

The scoring follows ``shared/INCIDENT_FORMAT.md``. It lives here until it moves into ``sre_graph.evals``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_graph import taxonomy
from sre_graph.models import Report
from sre_graph.runner import investigate

UNKNOWN = "unknown"


def score_case(report: Report, expected: dict[str, Any]) -> list[str]:
    """Why a report fails an incident's ``expected`` block; an empty list means it passes.

    A case passes when the concluded root cause is ``root_cause`` or one of ``acceptable_root_causes``;
    the concluded domain is that root cause's domain (the expected ``domain`` for ``root_cause``, the
    taxonomy's for an acceptable one; ``unknown`` fits every domain); no forbidden root cause is the
    conclusion; every required keyword appears in the report (case-insensitive substring); and every
    required evidence source is cited.
    """
    problems: list[str] = []
    concluded = report.root_cause
    right = expected["root_cause"]
    acceptable = list(expected.get("acceptable_root_causes") or [])

    if concluded == right:
        wanted_domain = None if right == UNKNOWN else expected.get("domain")
    elif concluded in acceptable:
        wanted_domain = taxonomy.domain_of(concluded)
    else:
        problems.append(f"root cause {concluded!r}, expected {right!r}"
                        + (f" or one of {acceptable}" if acceptable else ""))
        wanted_domain = expected.get("domain")
    if wanted_domain is not None and report.domain != wanted_domain:
        problems.append(f"domain {report.domain!r}, expected {wanted_domain!r}")

    forbidden = list(expected.get("forbidden_root_causes") or [])
    if concluded in forbidden:
        problems.append(f"concluded a forbidden root cause {concluded!r}")

    text = report.model_dump_json().lower()
    missing = [str(k) for k in expected.get("required_keywords") or [] if str(k).lower() not in text]
    if missing:
        problems.append(f"required keywords missing from the report: {missing}")

    cited = {evidence.source for evidence in report.evidence}
    uncited = [s for s in expected.get("required_evidence_sources") or [] if s not in cited]
    if uncited:
        problems.append(f"required evidence sources not cited: {uncited} (cited: {sorted(cited)})")
    return problems


def load_expected(incident_dir: Path) -> dict[str, Any]:
    """The ``expected`` block of an incident, checked for the fields scoring needs."""
    meta = yaml.safe_load((incident_dir / "incident.yaml").read_text())
    assert isinstance(meta, dict) and isinstance(meta.get("expected"), dict), (
        f"{incident_dir / 'incident.yaml'}: no 'expected' mapping")
    expected = meta["expected"]
    assert meta.get("id") == incident_dir.name, f"{incident_dir.name}: id {meta.get('id')!r} is not the folder name"
    for key in ("root_cause", "domain"):
        assert expected.get(key), f"{incident_dir.name}: expected.{key} is missing"
    for rc in [expected["root_cause"], *(expected.get("acceptable_root_causes") or []),
               *(expected.get("forbidden_root_causes") or [])]:
        taxonomy.get(rc)  # KeyError names an id outside the taxonomy
    assert expected["domain"] in taxonomy.DOMAINS, f"{incident_dir.name}: unknown domain {expected['domain']!r}"
    if expected["root_cause"] != UNKNOWN:
        assert taxonomy.domain_of(expected["root_cause"]) == expected["domain"], (
            f"{incident_dir.name}: {expected['root_cause']} is not in domain {expected['domain']}")
    return expected


def test_incident(incident_dir: Path | None) -> None:
    assert incident_dir is not None, "no incident folders found under evals/incidents"
    expected = load_expected(incident_dir)
    report = investigate(incident_dir=incident_dir)
    assert report is not None, "the run stopped without a report"
    problems = score_case(report, expected)
    assert not problems, f"{incident_dir.name}:\n  " + "\n  ".join(problems) + (
        f"\n  statement: {report.root_cause_statement}")


# --------------------------------------------------------------------- the scorer itself


def _report(**overrides: Any) -> Report:
    base: dict[str, Any] = {
        "incident_id": "i", "title": "t", "service": "checkout", "severity": "critical", "priority": "P0",
        "alert_time": "2026-03-14T10:00:00Z", "generated_at": "2026-03-14T10:05:00Z",
        "summary": "Checkout pods OOMKilled", "domain": "infrastructure", "root_cause": "oom_killed",
        "root_cause_title": "OOM", "root_cause_statement": "cart OOMKilled", "confidence": 0.9,
        "evidence": [{"id": "k8s-1", "source": "kubernetes", "query": "kubectl get pods", "summary": "OOMKilled"}],
        "timeline": [], "impact": "", "remediation": ["raise the memory limit"],
    }
    return Report.model_validate({**base, **overrides})


EXPECTED = {"domain": "infrastructure", "root_cause": "oom_killed", "acceptable_root_causes": ["crash_loop"],
            "forbidden_root_causes": ["connection_refused"], "required_keywords": ["cart", "oomkill"],
            "required_evidence_sources": ["kubernetes"]}


@pytest.mark.parametrize(("overrides", "expected", "problem"), [
    ({}, EXPECTED, None),
    ({"root_cause": "crash_loop"}, EXPECTED, None),
    ({"root_cause": "missing_index", "domain": "database"}, EXPECTED, "root cause 'missing_index'"),
    ({"domain": "application"}, EXPECTED, "domain 'application'"),
    ({"root_cause": "connection_refused", "domain": "network"}, EXPECTED, "forbidden"),
    ({"root_cause_statement": "pods restarted", "summary": "x"}, EXPECTED, "keywords missing"),
    ({"evidence": [{"id": "sz-1", "source": "signoz", "query": "q", "summary": "s"}]}, EXPECTED,
     "evidence sources"),
    ({"root_cause": "unknown", "domain": None},
     {**EXPECTED, "root_cause": "unknown", "required_keywords": []}, None),
    ({"root_cause": "unknown", "domain": "network"},
     {**EXPECTED, "acceptable_root_causes": ["unknown"], "required_keywords": []}, None),
])
def test_score_case(overrides: dict[str, Any], expected: dict[str, Any], problem: str | None) -> None:
    problems = score_case(_report(**overrides), expected)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
