"""Metrics over scored runs: accuracy, recall, red herrings, time and cost, per domain and difficulty.

Every rate is over runs (a case run ``--repeat N`` times counts N times). A run
that raised (outcome ``error``) counts as failing every criterion: it scores 0
for accuracy, recall and coverage and concluded no red herring. Rates over an
empty set are ``None``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sre_graph.evals.runner import OUTCOMES, CaseResult
from sre_graph.taxonomy import DOMAINS

DIFFICULTIES = ("easy", "medium", "hard")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The metrics of one group of runs.

    Returns:
        ``runs``, ``passed``, ``pass_rate``, ``domain_accuracy``, ``root_cause_accuracy``,
        ``keyword_recall``, ``evidence_source_coverage``, ``remediation_recall``, ``red_herring_rate``
        (over runs of cases that name forbidden causes), ``outcomes`` (count per outcome),
        ``failure_split`` (``wrong``/``unknown``/``partial``/``error`` as shares of the failures),
        ``tool_calls`` and ``wall_time_s`` (mean, median, p90, total), ``tokens`` and ``cost_usd`` (when any
        run carries them).
    """
    runs = len(results)
    outcomes = Counter(r.outcome for r in results)
    failures = runs - outcomes["pass"]
    with_forbidden = [r for r in results if r.has_forbidden]
    times = [r.wall_time_s for r in results]
    calls = [float(r.tool_calls) for r in results]
    token_runs = [r.tokens for r in results if r.tokens]
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    out: dict[str, Any] = {
        "runs": runs,
        "passed": outcomes["pass"],
        "pass_rate": _r(_rate(outcomes["pass"], runs)),
        "domain_accuracy": _r(_rate(sum(1 for r in results if r.criterion("domain_ok", False)), runs)),
        "root_cause_accuracy": _r(_rate(sum(1 for r in results if r.criterion("root_cause_ok", False)), runs)),
        "keyword_recall": _r(_mean([float(r.criterion("keyword_recall", 0.0)) for r in results])),
        "evidence_source_coverage": _r(_mean([float(r.criterion("source_coverage", 0.0)) for r in results])),
        "remediation_recall": _r(_mean([float(r.criterion("remediation_recall", 0.0)) for r in results])),
        "red_herring_runs": len(with_forbidden),
        "red_herring_rate": _r(_rate(sum(1 for r in with_forbidden if r.criterion("forbidden_hit", False)),
                                     len(with_forbidden))),
        "outcomes": {o: outcomes[o] for o in OUTCOMES},
        "failures": failures,
        "failure_split": {o: _r(_rate(outcomes[o], failures)) for o in OUTCOMES if o != "pass"},
        "tool_calls": {"mean": _r(_mean(calls), 2), "median": _r(percentile(calls, 50), 2),
                       "p90": _r(percentile(calls, 90), 2), "total": int(sum(calls))},
        "wall_time_s": {"mean": _r(_mean(times)), "median": _r(percentile(times, 50)),
                        "p90": _r(percentile(times, 90)), "total": _r(sum(times))},
        "tokens": None,
        "cost_usd": None,
    }
    if token_runs:
        out["tokens"] = {key: sum(t.get(key, 0) for t in token_runs) for key in ("input", "output", "total")}
        out["tokens"]["runs_with_tokens"] = len(token_runs)
    if costs:
        out["cost_usd"] = {"total": round(sum(costs), 6), "mean": round(sum(costs) / len(costs), 6)}
    return out


def _ordered(keys: set[str], preferred: Sequence[str]) -> list[str]:
    return [k for k in preferred if k in keys] + sorted(k for k in keys if k not in preferred)


def group_by(results: Sequence[CaseResult], key: Callable[[CaseResult], str],
             order: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """:func:`summarize` per group, groups in ``order`` first, then alphabetically."""
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        groups[key(result)].append(result)
    return {name: summarize(groups[name]) for name in _ordered(set(groups), order)}


def flakiness(results: Sequence[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per case: runs, passes, pass fraction, the outcomes and concluded causes seen, and whether it is flaky.

    A case is flaky when some runs pass and some do not, or its runs conclude different root causes.
    """
    by_case: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_case[result.case_id].append(result)
    out = {}
    for case_id, runs in by_case.items():
        passes = sum(1 for r in runs if r.passed)
        causes = Counter(r.root_cause or "error" for r in runs)
        out[case_id] = {
            "runs": len(runs),
            "passes": passes,
            "pass_fraction": round(passes / len(runs), 4),
            "outcomes": dict(Counter(r.outcome for r in runs)),
            "root_causes": dict(causes),
            "flaky": 0 < passes < len(runs) or len(causes) > 1,
        }
    return out


def repeat_spread(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The pass rate of each repeat over all cases, and its min, max, mean and sample stdev."""
    by_run: dict[int, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_run[result.run].append(result)
    rates = [sum(1 for r in by_run[i] if r.passed) / len(by_run[i]) for i in sorted(by_run)]
    return {
        "pass_rates": [round(x, 4) for x in rates],
        "min": _r(min(rates)) if rates else None,
        "max": _r(max(rates)) if rates else None,
        "mean": _r(_mean(rates)),
        "stdev": _r(statistics.stdev(rates)) if len(rates) > 1 else 0.0,
    }


def compute_metrics(results: Sequence[CaseResult], *, repeat: int = 1) -> dict[str, Any]:
    """Every metric of a run: overall, by expected domain, by difficulty, and (with repeats) the spread.

    Returns:
        ``overall``, ``by_domain``, ``by_difficulty``, ``cases`` (distinct case ids), ``failing_cases``
        (ids with at least one run that did not pass), ``errors`` (``{case id: message}``), and with
        ``repeat > 1`` also ``repeats`` (:func:`repeat_spread`), ``flakiness`` (per case) and ``flaky_cases``.
    """
    failing: list[str] = []
    for result in results:
        if not result.passed and result.case_id not in failing:
            failing.append(result.case_id)
    metrics: dict[str, Any] = {
        "overall": summarize(results),
        "by_domain": group_by(results, lambda r: r.expected_domain, DOMAINS),
        "by_difficulty": group_by(results, lambda r: r.difficulty, DIFFICULTIES),
        "cases": len({r.case_id for r in results}),
        "failing_cases": failing,
        "errors": {r.case_id: r.error for r in results if r.error},
    }
    if repeat > 1:
        flaky = flakiness(results)
        metrics["repeats"] = repeat_spread(results)
        metrics["flakiness"] = flaky
        metrics["flaky_cases"] = [case_id for case_id, info in flaky.items() if info["flaky"]]
    return metrics
