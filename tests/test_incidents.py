"""Every recorded incident under ``evals/incidents``, replayed and scored against its ``expected`` answer.

Scoring is the product's own (``sre_graph.evals.score``, as ``shared/INCIDENT_FORMAT.md`` defines it); folder
validation is ``sre-graph eval --check``'s, which ``tests/test_evals.py`` runs on the whole public set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_graph.evals.score import score_report
from sre_graph.models import Report
from sre_graph.runner import investigate
from sre_graph.tools.replay import load_incident


def test_incident(incident_dir: Path | None) -> None:
    assert incident_dir is not None, "no incident folders found under evals/incidents"
    expected = load_incident(incident_dir).expected
    report = investigate(incident_dir=incident_dir)
    assert report is not None, "the run stopped without a report"
    score = score_report(report, expected)
    assert score.passed, (f"{incident_dir.name}: concluded {report.root_cause} ({report.domain}), expected "
                          f"{expected.get('root_cause')}\n  " + "\n  ".join(score.problems())
                          + f"\n  statement: {report.root_cause_statement}")


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
    ({"root_cause": "missing_index", "domain": "database"}, EXPECTED, "wrong root cause"),
    ({"domain": "application"}, EXPECTED, "wrong domain"),
    ({"root_cause": "connection_refused", "domain": "network"}, EXPECTED, "forbidden"),
    ({"root_cause_statement": "pods restarted", "summary": "x",
      "evidence": [{"id": "k8s-1", "source": "kubernetes", "query": "kubectl get pods", "summary": "restarts"}]},
     EXPECTED, "keywords missing"),
    ({"evidence": [{"id": "sz-1", "source": "signoz", "query": "q", "summary": "s"}]}, EXPECTED,
     "evidence sources"),
    ({"root_cause": "unknown", "domain": None},
     {**EXPECTED, "root_cause": "unknown", "required_keywords": []}, None),
    ({"root_cause": "unknown", "domain": "network"},
     {**EXPECTED, "acceptable_root_causes": ["unknown"], "required_keywords": []}, None),
])
def test_score_report(overrides: dict[str, Any], expected: dict[str, Any], problem: str | None) -> None:
    score = score_report(_report(**overrides), expected)
    if problem is None:
        assert score.passed and score.problems() == []
    else:
        assert not score.passed and any(problem in p for p in score.problems()), score.problems()
