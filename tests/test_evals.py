"""The offline evals: the CI gate over the public incident set, and the runner, metrics, compare, check and CLI.

The gate runs every folder under ``evals/incidents`` in rules mode and fails when the pass rate drops below
``evals/threshold.json``. Raise the threshold when the engine gets better; never lower it to make CI green.
"""

from __future__ import annotations

import argparse
import email
import io
import json
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from sre_graph.cli import BadInput
from sre_graph.evals import reports
from sre_graph.evals.check import check_all, check_incident
from sre_graph.evals.cli import Progress, add_eval_parser, cmd_eval
from sre_graph.evals.compare import compare_results, format_comparison
from sre_graph.evals.metrics import compute_metrics, percentile
from sre_graph.evals.runner import (
    CaseResult,
    EvalRun,
    discover_cases,
    filter_cases,
    result_from_report,
    run_eval,
)
from sre_graph.models import Report
from sre_graph.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
INCIDENTS = REPO / "evals" / "incidents"
THRESHOLD = REPO / "evals" / "threshold.json"


# --------------------------------------------------------------------- the CI gate


@pytest.fixture(scope="module")
def public_run() -> EvalRun:
    """The whole public set, rules mode, two threads (the same API ``sre-graph eval`` uses)."""
    cases = discover_cases(INCIDENTS)
    assert cases, f"no incident folders under {INCIDENTS}"
    return run_eval(cases, settings=load_settings(model="rules"), concurrency=2, incidents_dir=INCIDENTS)


def test_pass_rate_meets_threshold(public_run: EvalRun) -> None:
    """The rules engine passes at least the recorded share of the public set."""
    threshold = json.loads(THRESHOLD.read_text())["rules"]["pass_rate"]
    overall = public_run.metrics["overall"]
    failing = [f"{r.case_id}: {r.outcome} (concluded {r.root_cause or r.error}, expected {r.expected_root_cause})"
               for r in public_run.results if not r.passed]
    assert overall["pass_rate"] >= threshold, (
        f"rules pass rate {overall['pass_rate']:.4f} ({overall['passed']}/{overall['runs']}) is below the recorded "
        f"threshold {threshold} in {THRESHOLD.name}; failing:\n  " + "\n  ".join(failing))


def test_no_red_herring_on_hard_cases(public_run: EvalRun) -> None:
    """No hard case concludes one of its forbidden (red-herring) root causes, beyond the ones recorded as known
    failures in ``evals/threshold.json`` (each with its reason; fixing one means removing it from there)."""
    known = json.loads(THRESHOLD.read_text())["rules"].get("known_red_herrings", {})
    hits = {r.case_id: r.root_cause for r in public_run.results
            if r.difficulty == "hard" and r.criterion("forbidden_hit", False)}
    new = [f"{case}: concluded forbidden {cause}" for case, cause in hits.items() if case not in known]
    assert not new, "hard cases concluded a red herring:\n  " + "\n  ".join(new)
    fixed = sorted(set(known) - set(hits))
    assert not fixed, f"these no longer conclude a red herring: remove them from {THRESHOLD.name}: {fixed}"


def test_public_run_records_every_case(public_run: EvalRun) -> None:
    """One result per case, in case order, each with its criteria, evidence and cost."""
    ids = [c.id for c in discover_cases(INCIDENTS)]
    assert [r.case_id for r in public_run.results] == ids, "results are not one per case, in case order"
    for result in public_run.results:
        if result.error:
            continue
        assert result.score is not None and set(result.score) >= {"passed", "domain_ok", "root_cause_ok",
                                                                 "keywords_missing", "sources_missing"}
        assert result.evidence and all(set(e) == {"id", "source", "summary"} for e in result.evidence)
        assert result.tool_calls > 0 and result.wall_time_s > 0


def test_public_set_is_valid() -> None:
    """Every public incident folder passes ``--check``."""
    problems = check_all(INCIDENTS)
    assert not problems, "incident folders with problems:\n  " + "\n  ".join(map(str, problems))


def test_threshold_file_shape() -> None:
    """``evals/threshold.json`` holds a pass rate in (0, 1]."""
    data = json.loads(THRESHOLD.read_text())
    assert 0 < data["rules"]["pass_rate"] <= 1


# --------------------------------------------------------------------- a small incident of our own


ALERT = {"alert_id": "a-1", "service_name": "checkout", "severity": "critical", "message": "checkout 5xx",
         "timestamp": "2026-03-14T10:00:00Z", "labels": {"namespace": "shop"}}
META = {"id": "tiny-case", "title": "A tiny case", "difficulty": "easy", "now": "2026-03-14T10:05:00Z",
        "unavailable": [], "expected": {
            "domain": "infrastructure", "root_cause": "oom_killed", "acceptable_root_causes": [],
            "forbidden_root_causes": ["missing_index"], "required_keywords": ["checkout"],
            "required_evidence_sources": ["kubernetes"], "remediation_keywords": ["memory"]}}


def write_incident(root: Path, name: str = "tiny-case", meta: dict[str, Any] | None = None) -> Path:
    """A minimal valid incident folder."""
    folder = root / name
    (folder / "kubernetes" / "logs" / "shop" / "checkout-1").mkdir(parents=True)
    (folder / "signoz").mkdir()
    data = json.loads(json.dumps(META if meta is None else meta))
    if meta is None:
        data["id"] = name
    (folder / "incident.yaml").write_text(yaml.safe_dump(data))
    (folder / "alert.json").write_text(json.dumps(ALERT))
    (folder / "kubernetes" / "pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    (folder / "kubernetes" / "logs" / "shop" / "checkout-1" / "checkout.log").write_text(
        "2026-03-14T10:00:01.123456Z starting\n2026-03-14T10:00:02Z ready\n")
    (folder / "signoz" / "logs.jsonl").write_text(json.dumps({"timestamp": "2026-03-14T10:00:01Z", "data": {}}) + "\n")
    return folder


def test_check_accepts_a_valid_incident(tmp_path: Path) -> None:
    """A well-formed folder has no problems (no false alarms)."""
    folder = write_incident(tmp_path)
    assert check_incident(folder) == []


def test_check_names_every_problem(tmp_path: Path) -> None:
    """A folder broken in many ways gets every problem named as ``<folder>/<file>: message``."""
    folder = write_incident(tmp_path, "broken-case")
    meta = yaml.safe_load((folder / "incident.yaml").read_text())
    meta.update(id="another-id", difficulty="extreme", now="2026-03-14T09:00:00Z", unavailable=["prometheus"])
    del meta["title"]
    meta["expected"].update(domain="network", forbidden_root_causes=["not_a_cause"])
    (folder / "incident.yaml").write_text(yaml.safe_dump(meta))
    (folder / "kubernetes" / "events.json").write_text(json.dumps({"items": "nope"}))
    (folder / "kubernetes" / "nodes.json").write_text("{not json")
    (folder / "signoz" / "traces.jsonl").write_text('{"timestamp": "x"}\n{broken\n')
    (folder / "kubernetes" / "logs" / "shop" / "checkout-1" / "checkout.previous.log").write_text(
        "2026-03-14T10:00:01Z ok\npanic: no timestamp here\nalso none\n")

    problems = [str(p) for p in check_incident(folder)]
    text = "\n".join(problems)
    expected = {
        "broken-case/incident.yaml: missing required key 'title'",
        "broken-case/incident.yaml: id 'another-id' does not equal the folder name 'broken-case'",
        "broken-case/incident.yaml: difficulty 'extreme'",
        "broken-case/incident.yaml: unavailable names unknown source 'prometheus'",
        "broken-case/incident.yaml: expected.domain 'network' does not match root cause 'oom_killed'",
        "broken-case/incident.yaml: expected.forbidden_root_causes names 'not_a_cause'",
        "broken-case/incident.yaml: now 2026-03-14T09:00:00Z is not after the alert start",
        "broken-case/kubernetes/events.json: expected a List object",
        "broken-case/kubernetes/nodes.json: invalid JSON at line 1",
        "broken-case/signoz/traces.jsonl: line 2: invalid JSON",
        "broken-case/kubernetes/logs/shop/checkout-1/checkout.previous.log: line 2 (and 1 more): does not start "
        "with an RFC 3339 timestamp",
    }
    for needle in expected:
        assert any(p.startswith(needle) for p in problems), f"{needle!r} not reported in:\n{text}"
    assert len(problems) == len(expected), f"unexpected extra problems:\n{text}"


def test_check_alert_and_taxonomy(tmp_path: Path) -> None:
    """An alert that cannot be ingested, unknown ids and a folder without incident.yaml."""
    folder = write_incident(tmp_path, "bad-alert")
    (folder / "alert.json").write_text(json.dumps({"alert_id": "a-1"}))
    meta = yaml.safe_load((folder / "incident.yaml").read_text())
    meta["expected"].update(root_cause="bogus_cause", domain="plumbing")
    (folder / "incident.yaml").write_text(yaml.safe_dump(meta))
    (tmp_path / "not-an-incident").mkdir()
    problems = [str(p) for p in check_all(tmp_path)]
    assert any(p.startswith("bad-alert/alert.json: not an alert sre-graph ingests") for p in problems), problems
    assert any("expected.root_cause 'bogus_cause' is not a taxonomy id" in p for p in problems), problems
    assert any("expected.domain 'plumbing' is not one of" in p for p in problems), problems
    assert "not-an-incident/incident.yaml: missing (every incident folder needs it)" in problems, problems


# --------------------------------------------------------------------- runner


def test_a_case_that_raises_is_recorded(tmp_path: Path) -> None:
    """A broken case becomes an ``error`` result with its message; the others still run."""
    good = write_incident(tmp_path, "a-good")
    bad = write_incident(tmp_path, "b-bad")
    (bad / "alert.json").write_text("{this is not json")
    cases = discover_cases(tmp_path)
    assert [c.id for c in cases] == ["a-good", "b-bad"]
    run = run_eval(cases, settings=load_settings(model="rules"), concurrency=2)
    by_id = {r.case_id: r for r in run.results}
    assert by_id["b-bad"].outcome == "error"
    assert "IncidentFormatError" in by_id["b-bad"].error and "alert.json" in by_id["b-bad"].error
    assert by_id["a-good"].outcome != "error", by_id["a-good"].error
    assert by_id["a-good"].root_cause and by_id["a-good"].score is not None
    assert run.metrics["errors"] == {"b-bad": by_id["b-bad"].error}
    assert "b-bad" in run.metrics["failing_cases"]
    assert good.name == "a-good"


def test_filter_cases(tmp_path: Path) -> None:
    """A tag selects by id substring or exact expected domain, difficulty or root cause; tags add up."""
    write_incident(tmp_path, "infra-oom")
    meta = json.loads(json.dumps(META))
    meta.update(id="db-slow", difficulty="hard")
    meta["expected"].update(domain="database", root_cause="missing_index", forbidden_root_causes=[])
    write_incident(tmp_path, "db-slow", meta)
    cases = discover_cases(tmp_path)
    ids = lambda tags: [c.id for c in filter_cases(cases, tags)]  # noqa: E731
    assert ids(None) == ["db-slow", "infra-oom"]
    assert ids(["oom"]) == ["infra-oom"]
    assert ids(["database"]) == ["db-slow"]
    assert ids(["hard"]) == ["db-slow"]
    assert ids(["oom_killed"]) == ["infra-oom"]
    assert ids(["easy", "missing_index"]) == ["db-slow", "infra-oom"]
    assert ids(["data"]) == [], "domain matches exactly, not as a substring"
    assert [c.id for c in discover_cases(tmp_path / "db-slow")] == ["db-slow"], "one incident folder is a set"


def test_tokens_and_cost_are_read_when_present(tmp_path: Path) -> None:
    """Tokens and cost are recorded when a model ran, absent in rules mode."""
    folder = write_incident(tmp_path)
    case = discover_cases(folder)[0]
    report = Report(
        incident_id="a-1", title="t", service="checkout", severity="critical", priority="P0",
        alert_time="2026-03-14T10:00:00Z", generated_at="2026-03-14T10:05:00Z", summary="s",
        domain="infrastructure", root_cause="oom_killed", root_cause_title="OOM", root_cause_statement="checkout OOM",
        confidence=0.9, evidence=[], timeline=[], impact="", remediation=["raise the memory limit"],
        tokens={"classify": {"prompt_tokens": 200, "completion_tokens": 50},
                "report": {"prompt_tokens": 1000, "completion_tokens": 250}}, cost=0.0123)
    result = result_from_report(case, report, wall_time_s=1.5)
    assert result.tokens == {"input": 1200, "output": 300, "total": 1500}
    assert result.cost_usd == pytest.approx(0.0123)
    plain = result_from_report(case, report.model_copy(update={"tokens": {}, "cost": 0.0}))
    assert plain.tokens is None and plain.cost_usd is None
    metrics = compute_metrics([result, plain])
    assert metrics["overall"]["tokens"]["total"] == 1500 and metrics["overall"]["cost_usd"]["total"] == 0.0123


# --------------------------------------------------------------------- metrics


def mk(case_id: str, outcome: str, *, run: int = 0, domain: str = "network", difficulty: str = "easy",
       root_cause: str | None = "dns_failure", expected_root_cause: str = "dns_failure", forbidden: bool = False,
       forbidden_hit: bool = False, keyword_recall: float = 1.0, source_coverage: float = 1.0,
       remediation_recall: float = 1.0, domain_ok: bool | None = None, wall: float = 1.0, calls: int = 10,
       tokens: dict[str, int] | None = None) -> CaseResult:
    """A synthetic result."""
    expected = {"domain": domain, "root_cause": expected_root_cause,
                "forbidden_root_causes": ["oom_killed"] if forbidden else []}
    score = None if outcome == "error" else {
        "passed": outcome == "pass", "root_cause_ok": outcome in ("pass", "partial"),
        "domain_ok": outcome in ("pass", "partial") if domain_ok is None else domain_ok,
        "forbidden_hit": forbidden_hit, "keywords_missing": [] if keyword_recall == 1 else ["kw"],
        "keyword_recall": keyword_recall, "sources_missing": [] if source_coverage == 1 else ["signoz"],
        "source_coverage": source_coverage, "remediation_recall": remediation_recall, "outcome": outcome}
    return CaseResult(case_id=case_id, run=run, title=case_id, difficulty=difficulty, expected=expected,
                      outcome=outcome, root_cause=None if outcome == "error" else root_cause,
                      domain=None if outcome == "error" else domain, score=score, wall_time_s=wall,
                      tool_calls=0 if outcome == "error" else calls, tokens=tokens,
                      error="RuntimeError: boom" if outcome == "error" else None)


def test_percentile() -> None:
    """Linear interpolation between closest ranks."""
    assert percentile([], 50) is None
    assert percentile([3.0], 90) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)


def test_metrics_overall_and_groups() -> None:
    """Every rate, the failure split, time and calls, overall and per domain and difficulty."""
    results = [
        mk("n1", "pass", wall=1.0, calls=10),
        mk("n2", "wrong", root_cause="oom_killed", forbidden=True, forbidden_hit=True, domain_ok=False, wall=3.0,
           difficulty="hard", calls=20),
        mk("d1", "partial", domain="database", root_cause="missing_index", expected_root_cause="missing_index",
           keyword_recall=0.5, source_coverage=0.5, wall=2.0, difficulty="medium", calls=30),
        mk("d2", "unknown", domain="database", root_cause="unknown", expected_root_cause="lock_contention",
           forbidden=True, domain_ok=False, remediation_recall=0.0, wall=4.0, difficulty="hard", calls=40),
        mk("a1", "error", domain="application", wall=0.5, difficulty="hard"),
    ]
    m = compute_metrics(results)
    o = m["overall"]
    assert o["runs"] == 5 and o["passed"] == 1 and o["pass_rate"] == 0.2
    assert o["domain_accuracy"] == 0.4  # pass + partial
    assert o["root_cause_accuracy"] == 0.4
    assert o["keyword_recall"] == pytest.approx((1 + 1 + 0.5 + 1 + 0) / 5)
    assert o["evidence_source_coverage"] == pytest.approx((1 + 1 + 0.5 + 1 + 0) / 5)
    assert o["remediation_recall"] == pytest.approx(3 / 5)
    assert o["red_herring_runs"] == 2 and o["red_herring_rate"] == 0.5, "over cases that name forbidden causes"
    assert o["outcomes"] == {"pass": 1, "partial": 1, "wrong": 1, "unknown": 1, "error": 1}
    assert o["failures"] == 4 and o["failure_split"]["wrong"] == 0.25 and o["failure_split"]["unknown"] == 0.25
    assert o["wall_time_s"]["median"] == 2.0 and o["wall_time_s"]["total"] == 10.5
    assert o["wall_time_s"]["p90"] == pytest.approx(3.6)
    assert o["tool_calls"]["total"] == 100
    assert o["tokens"] is None and o["cost_usd"] is None
    assert list(m["by_domain"]) == ["network", "database", "application"], "taxonomy order"
    assert m["by_domain"]["network"]["pass_rate"] == 0.5
    assert m["by_domain"]["database"]["pass_rate"] == 0.0 and m["by_domain"]["database"]["red_herring_rate"] == 0.0
    assert m["by_domain"]["application"]["red_herring_rate"] is None
    assert list(m["by_difficulty"]) == ["easy", "medium", "hard"]
    assert m["by_difficulty"]["hard"]["runs"] == 3 and m["by_difficulty"]["hard"]["passed"] == 0
    assert m["failing_cases"] == ["n2", "d1", "d2", "a1"]
    assert m["errors"] == {"a1": "RuntimeError: boom"}
    assert "repeats" not in m


def test_metrics_repeats_and_flakiness() -> None:
    """With repeats: the pass rate per repeat, its spread, and which cases are flaky."""
    results = [
        mk("steady", "pass", run=0), mk("steady", "pass", run=1), mk("steady", "pass", run=2),
        mk("flaky", "pass", run=0), mk("flaky", "wrong", run=1, root_cause="oom_killed"), mk("flaky", "pass", run=2),
        mk("broken", "wrong", run=0, root_cause="oom_killed"), mk("broken", "wrong", run=1, root_cause="oom_killed"),
        mk("broken", "wrong", run=2, root_cause="oom_killed"),
    ]
    m = compute_metrics(results, repeat=3)
    rep = m["repeats"]
    assert rep["pass_rates"] == [pytest.approx(2 / 3, abs=1e-4), pytest.approx(1 / 3, abs=1e-4),
                                 pytest.approx(2 / 3, abs=1e-4)]
    assert rep["min"] == pytest.approx(1 / 3, abs=1e-4) and rep["max"] == pytest.approx(2 / 3, abs=1e-4)
    assert rep["stdev"] == pytest.approx(0.19245, abs=1e-4)
    assert m["flaky_cases"] == ["flaky"]
    assert m["flakiness"]["flaky"]["passes"] == 2 and m["flakiness"]["flaky"]["root_causes"] == {
        "dns_failure": 2, "oom_killed": 1}
    assert m["flakiness"]["broken"]["flaky"] is False
    assert m["overall"]["pass_rate"] == pytest.approx(5 / 9, abs=1e-4)


def test_result_round_trips_through_results_json(tmp_path: Path) -> None:
    """results.json holds every result as written; report.md names the failure."""
    results = [mk("n1", "pass"), mk("a1", "error", domain="application")]
    run = EvalRun(results=results, metrics=compute_metrics(results), metadata={"model": "rules", "repeat": 1})
    paths = reports.write_reports(run, tmp_path / "out")
    data = reports.load_results(paths["json"])
    assert data["schema"] == "sre-graph-eval/1"
    assert [CaseResult.from_dict(c) for c in data["cases"]] == results
    assert data["metrics"]["overall"]["pass_rate"] == 0.5
    md = paths["markdown"].read_text()
    assert "## Failing runs (1)" in md and "RuntimeError: boom" in md


# --------------------------------------------------------------------- compare


def results_doc(cases: list[CaseResult], model: str = "rules") -> dict[str, Any]:
    """A ``results.json`` document of synthetic results."""
    return EvalRun(results=cases, metrics=compute_metrics(cases), metadata={"model": model}).as_dict()


def test_compare_flips_causes_and_delta() -> None:
    """Flips both ways, changed conclusions, added and removed cases, and the delta."""
    before = results_doc([mk("stays", "pass"), mk("breaks", "pass"), mk("fixed", "wrong", root_cause="oom_killed"),
                          mk("drifts", "wrong", root_cause="oom_killed"), mk("gone", "pass")])
    after = results_doc([mk("stays", "pass"), mk("breaks", "wrong", root_cause="connection_refused"),
                         mk("fixed", "pass"), mk("drifts", "unknown", root_cause="unknown"), mk("new", "pass")])
    comparison = compare_results(before, after)
    assert [c.case_id for c in comparison.broken] == ["breaks"]
    assert [c.case_id for c in comparison.fixed] == ["fixed"]
    assert [c.case_id for c in comparison.cause_changed] == ["breaks", "drifts", "fixed"]
    assert comparison.added == ["new"] and comparison.removed == ["gone"]
    assert comparison.before_rate == 0.6 and comparison.after_rate == 0.6 and comparison.delta == 0.0
    assert comparison.common_before_rate == 0.5 and comparison.common_after_rate == 0.5
    text = format_comparison(comparison)
    assert "pass → fail (1):\n  breaks: pass → fail  [dns_failure → connection_refused]" in text
    assert "fail → pass (1):\n  fixed: fail → pass  [oom_killed → dns_failure]" in text
    assert "drifts: oom_killed → unknown" in text
    assert "+0.0 points" in text and "only in B (1): new" in text and "only in A (1): gone" in text


def test_compare_with_repeats_uses_every_run() -> None:
    """A case passes only when every run passed; the pass fraction is shown."""
    before = results_doc([mk("c", "pass", run=0), mk("c", "pass", run=1)])
    after = results_doc([mk("c", "pass", run=0), mk("c", "wrong", run=1, root_cause="oom_killed")])
    comparison = compare_results(before, after)
    assert [c.case_id for c in comparison.broken] == ["c"]
    assert comparison.delta == pytest.approx(-0.5)
    assert "c: pass (2/2) → fail (1/2)" in format_comparison(comparison)


# --------------------------------------------------------------------- the CLI


def eval_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``sre-graph eval ARGV`` as the main CLI runs it: ``BadInput`` is exit 2 and one error line."""
    parser = argparse.ArgumentParser(prog="sre-graph")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *argv])
    try:
        code = cmd_eval(args)
    except BadInput as exc:
        print(f"sre-graph: error: {exc}", file=sys.stderr)
        code = 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_bad(result: tuple[int, str, str], *needles: str) -> None:
    """Exit 2, nothing on stdout, one ``sre-graph: error:`` line on stderr naming every needle."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sre-graph: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_cli_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input exits 2 with one ``sre-graph: error:`` line naming the problem, stdout empty."""
    write_incident(tmp_path / "set")
    assert_bad(eval_cli(capsys, str(tmp_path / "nowhere")), "nowhere", "no such incident folder")
    assert_bad(eval_cli(capsys, str(tmp_path / "set"), "--repeat", "0"), "--repeat", "at least 1")
    assert_bad(eval_cli(capsys, str(tmp_path / "set"), "--concurrency", "two"), "--concurrency")
    assert_bad(eval_cli(capsys, str(tmp_path / "set"), "--filter", "zzz"), "zzz")
    (tmp_path / "empty").mkdir()
    assert_bad(eval_cli(capsys, str(tmp_path / "empty")), "no incident folders")
    assert_bad(eval_cli(capsys, str(tmp_path / "empty"), "--check"), "no incident folders")
    assert_bad(eval_cli(capsys, "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")), "a.json")
    (tmp_path / "a.json").write_text("[1, 2]")
    assert_bad(eval_cli(capsys, "--compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")),
               "not an eval results file")
    assert_bad(eval_cli(capsys, "--check", "--langsmith"), "cannot be combined")
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    assert_bad(eval_cli(capsys, str(tmp_path / "set"), "--langsmith"), "LANGSMITH_API_KEY")


def test_cli_check_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--check`` exits 0 on a clean folder, 2 with every problem on stdout otherwise."""
    write_incident(tmp_path / "good")
    code, out, err = eval_cli(capsys, str(tmp_path / "good"), "--check")
    assert (code, out) == (0, ""), err
    assert "no problems" in err
    broken = write_incident(tmp_path / "bad")
    (broken / "kubernetes" / "pods.json").write_text("[]")
    (broken / "signoz" / "logs.jsonl").write_text("nope\n")
    code, out, err = eval_cli(capsys, str(tmp_path / "bad"), "--check")
    assert code == 2
    assert out.splitlines() == ["tiny-case/kubernetes/pods.json: expected a List object ({\"kind\": \"List\", "
                                "\"items\": [...]}) as kubectl get -A -o json prints it",
                                "tiny-case/signoz/logs.jsonl: line 1: invalid JSON: Expecting value"]
    assert "2 problem(s) in 1 folder(s)" in err


def test_cli_run_writes_reports(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A run writes results.json, report.md and report.html and prints the summary table."""
    cases = discover_cases(INCIDENTS)[:2]
    assert len(cases) == 2
    monkeypatch.chdir(tmp_path)
    code, out, err = eval_cli(capsys, str(INCIDENTS), "--filter", cases[0].id, "--filter", cases[1].id,
                              "--repeat", "2", "--concurrency", "2", "--model", "rules")
    assert code == 0, err
    written = list((tmp_path / ".eval-out").iterdir())
    assert len(written) == 1, "the default --out is .eval-out/<timestamp> in the working directory"
    data = json.loads((written[0] / "results.json").read_text())
    assert sorted({c["case_id"] for c in data["cases"]}) == sorted(c.id for c in cases)
    assert len(data["cases"]) == 4 and data["metadata"]["repeat"] == 2 and data["metadata"]["model"] == "rules"
    assert data["metadata"]["git"] is None or len(data["metadata"]["git"]["commit"]) == 40
    assert "repeats" in data["metrics"] and "flakiness" in data["metrics"]
    assert (written[0] / "report.md").read_text().startswith("# sre-graph eval")
    assert (written[0] / "report.html").read_text().startswith("<!DOCTYPE html>")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["group", "runs", "pass"] and lines[2].startswith("overall")
    assert any(line.startswith("failing: ") for line in lines) and any(line.startswith("flaky: ") for line in lines)
    assert "[4/4] " in err, "non-tty progress is one line per finished run"


def test_cli_compare(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--compare`` prints the flips and the pass-rate change and exits 0."""
    (tmp_path / "a.json").write_text(json.dumps(results_doc([mk("x", "pass"), mk("y", "wrong")])))
    (tmp_path / "b.json").write_text(json.dumps(results_doc([mk("x", "wrong", root_cause="oom_killed"),
                                                             mk("y", "pass")])))
    code, out, err = eval_cli(capsys, "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert code == 0, err
    assert "pass → fail (1):\n  x: pass → fail" in out and "fail → pass (1):\n  y: fail → pass" in out
    assert "pass rate: 50.0% → 50.0%" in out


def test_progress_bar() -> None:
    """Redrawn in place on a terminal; one line per finished run otherwise."""
    tty = io.StringIO()
    bar = Progress(tty, tty=True)
    bar(mk("a", "pass"), 1, 2)
    bar(mk("b", "wrong"), 2, 2)
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and "\n" not in text[:-1]
    assert "2/2  failed 1" in text and "[########################]" in text
    plain = io.StringIO()
    Progress(plain, tty=False)(mk("a", "partial", run=1), 3, 4)
    assert plain.getvalue() == "[3/4] a (run 2): partial in 1.00s\n"


# --------------------------------------------------------------------- LangSmith against a loopback server


TENANT = str(uuid.uuid4())


class FakeLangSmith(BaseHTTPRequestHandler):
    """Just enough of the LangSmith API for dataset upload and ``Client.evaluate``; records every request."""

    requests: list[tuple[str, str, bytes, str]] = []
    """(method, path, body, content type) of every request."""
    datasets: dict[str, dict[str, Any]] = {}
    examples: list[dict[str, Any]] = []

    @classmethod
    def multipart_parts(cls) -> list[tuple[str, Any]]:
        """Every JSON part of every ``/runs/multipart`` upload (runs and feedback), as (part name, value)."""
        parts = []
        for _, path, body, ctype in cls.requests:
            if path != "/runs/multipart":
                continue
            message = email.message_from_bytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
            for part in message.get_payload():
                name = part.get_param("name", header="content-disposition")
                if part.get_content_type() == "application/json":
                    parts.append((str(name), json.loads(part.get_payload(decode=True))))
        return parts

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def _send(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        """Answer reads: server info, datasets, examples, sessions."""
        self.requests.append(("GET", self.path, b"", ""))
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/info":
            return self._send({"version": "0.10.0", "instance_flags": {}, "batch_ingest_config": {}})
        if url.path == "/datasets":
            names = query.get("name")
            return self._send([d for d in self.datasets.values() if not names or d["name"] in names])
        if url.path.startswith("/datasets/"):
            found = [d for d in self.datasets.values() if d["id"] == url.path.split("/")[2]]
            return self._send(found[0]) if found else self._send({"detail": "not found"}, 404)
        if url.path == "/examples":
            wanted = query.get("dataset", [None])[0]
            return self._send([e for e in self.examples if e["dataset_id"] == wanted])
        if url.path == "/sessions":
            return self._send([{"id": str(uuid.uuid4()), "name": "default", "tenant_id": TENANT,
                                "start_time": "2026-03-14T10:00:00Z"}])
        return self._send({})

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        """Answer writes: datasets, examples, sessions; accept everything else."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append(("POST", self.path, body, self.headers.get("Content-Type", "")))
        stamp = "2026-03-14T10:00:00Z"
        if self.path == "/datasets":
            dataset = {**json.loads(body), "id": str(uuid.uuid4()), "created_at": stamp, "modified_at": stamp,
                       "tenant_id": TENANT}
            self.datasets[dataset["name"]] = dataset
            return self._send(dataset)
        if self.path == "/examples/bulk":
            rows = [{**row, "id": row.get("id") or str(uuid.uuid4()), "created_at": stamp, "modified_at": stamp}
                    for row in json.loads(body)]
            self.examples.extend(rows)
            return self._send(rows)
        if self.path == "/sessions":
            return self._send({**json.loads(body), "id": str(uuid.uuid4()), "tenant_id": TENANT,
                               "start_time": stamp})
        return self._send({})

    do_PATCH = do_POST


@pytest.fixture()
def langsmith_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeLangSmith]]:
    """A fake LangSmith on loopback; ``LANGSMITH_API_KEY`` and ``LANGSMITH_ENDPOINT`` point at it."""
    FakeLangSmith.requests = []
    FakeLangSmith.datasets, FakeLangSmith.examples = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLangSmith)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test-key")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    try:
        yield FakeLangSmith
    finally:
        server.shutdown()
        server.server_close()


def test_langsmith_upload_and_experiment(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         langsmith_server: type[FakeLangSmith]) -> None:
    """The dataset, its examples, the experiment and every scorer's feedback arrive."""
    incidents = tmp_path / "set"
    incidents.mkdir()
    case = discover_cases(INCIDENTS)[0]
    shutil.copytree(case.path, incidents / case.id)
    code, out, err = eval_cli(capsys, str(incidents), "--langsmith", "--out", str(tmp_path / "out"))
    assert code == 0, err
    posts = [(path, body) for method, path, body, _ in langsmith_server.requests if method == "POST"]
    created = [json.loads(body) for path, body in posts if path == "/datasets"]
    assert len(created) == 1 and created[0]["name"].startswith("sre-graph-incidents-")
    examples = [row for path, body in posts if path == "/examples/bulk" for row in json.loads(body)]
    assert len(examples) == 1
    assert examples[0]["inputs"]["incident_id"] == case.id
    assert examples[0]["inputs"]["alert"] == json.loads((case.path / "alert.json").read_text())
    assert examples[0]["outputs"] == case.expected
    assert any(path == "/sessions" for path, _ in posts), "no experiment was created"
    feedback = {json.loads(body)["key"] for path, body in posts if path == "/feedback"}
    feedback |= {part["key"] for name, part in langsmith_server.multipart_parts() if name.startswith("feedback.")}
    assert feedback == {"pass", "root_cause", "domain", "keywords", "sources"}, "every scorer reports feedback"
    assert "dataset sre-graph-incidents-" in err and "created" in err
    assert out.splitlines()[0].startswith("group"), "LangSmith's own output must not reach stdout"
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["case_id"] for c in data["cases"]] == [case.id]
    assert data["metadata"]["langsmith"]["dataset"] == created[0]["name"]

    code, _, err = eval_cli(capsys, str(incidents), "--langsmith", "--out", str(tmp_path / "out2"))
    assert code == 0, err
    assert sum(1 for m, p, _, _ in langsmith_server.requests if (m, p) == ("POST", "/datasets")) == 1, \
        "an unchanged set must reuse its dataset"
    assert "reused" in err
