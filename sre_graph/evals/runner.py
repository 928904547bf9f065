"""Run the agent over a folder of recorded incidents and score every run.

One :class:`Case` is one incident folder (``shared/INCIDENT_FORMAT.md``); one
:class:`CaseResult` is one investigation of it, scored by
:func:`sre_graph.evals.score.score_report`. A case that raises is recorded as an
``error`` result with its message: one broken case never stops the run.

Example:
    >>> from sre_graph.evals.runner import discover_cases, run_eval
    >>> run = run_eval(discover_cases("evals/incidents"), concurrency=2)  # doctest: +SKIP
    >>> run.metrics["overall"]["pass_rate"]  # doctest: +SKIP
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import yaml

from sre_graph import taxonomy
from sre_graph.evals.score import score_report
from sre_graph.models import Report
from sre_graph.settings import Settings, load_settings
from sre_graph.timeutil import iso

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout the package runs from (for the default incident folder and the git commit)."""
OUTCOMES = ("pass", "partial", "wrong", "unknown", "error")
"""Every outcome a run can have: the scorer's four plus ``error`` (the investigation raised)."""
RESULTS_SCHEMA = "sre-graph-eval/1"

ProgressFn = Callable[["CaseResult", int, int], None]
"""Called as each run finishes with (result, runs done, runs in total)."""


@dataclass
class Case:
    """One incident folder to investigate."""

    id: str
    """The folder name (``incident.yaml`` ``id`` must equal it; ``--check`` verifies that)."""
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    """``incident.yaml`` as parsed; empty when it does not parse (the run then records the error)."""
    load_error: str | None = None
    """Why ``incident.yaml`` could not be read, if it could not."""

    @property
    def expected(self) -> dict[str, Any]:
        """The ``expected`` block (empty if absent)."""
        block = self.meta.get("expected")
        return block if isinstance(block, dict) else {}

    @property
    def difficulty(self) -> str:
        """``easy``, ``medium`` or ``hard`` (``unspecified`` when missing)."""
        return str(self.meta.get("difficulty") or "unspecified")

    @property
    def title(self) -> str:
        """The incident's title."""
        return str(self.meta.get("title") or self.id)

    @property
    def domain(self) -> str:
        """The expected domain (``unspecified`` when missing)."""
        return str(self.expected.get("domain") or "unspecified")

    @property
    def root_cause(self) -> str:
        """The expected root cause (``unknown`` when missing, as the scorer assumes)."""
        return str(self.expected.get("root_cause") or taxonomy.UNKNOWN)


@dataclass
class CaseResult:
    """One scored investigation of one case: what was concluded, every criterion, cost."""

    case_id: str
    run: int
    """The repeat index, from 0."""
    title: str
    difficulty: str
    expected: dict[str, Any]
    outcome: str
    """One of :data:`OUTCOMES`."""
    root_cause: str | None = None
    """The concluded root-cause id (``None`` on error)."""
    domain: str | None = None
    """The concluded domain."""
    root_cause_title: str = ""
    statement: str = ""
    """The report's root-cause statement."""
    confidence: float | None = None
    remediation: list[str] = field(default_factory=list)
    score: dict[str, Any] | None = None
    """Every criterion of :class:`~sre_graph.evals.score.Score` (``None`` on error)."""
    evidence: list[dict[str, str]] = field(default_factory=list)
    """The evidence the report cites: ``id``, ``source``, ``summary``."""
    wall_time_s: float = 0.0
    tool_calls: int = 0
    tokens: dict[str, int] | None = None
    """``input``/``output``/``total`` model tokens when the report carries them."""
    cost_usd: float | None = None
    """Model cost when the report carries it."""
    error: str | None = None
    """The exception, as ``Type: message``, when the investigation raised."""

    @property
    def passed(self) -> bool:
        """Whether the run passed every criterion."""
        return self.outcome == "pass"

    @property
    def expected_domain(self) -> str:
        """The expected domain (``unspecified`` when missing)."""
        return str(self.expected.get("domain") or "unspecified")

    @property
    def expected_root_cause(self) -> str:
        """The expected root-cause id."""
        return str(self.expected.get("root_cause") or taxonomy.UNKNOWN)

    @property
    def has_forbidden(self) -> bool:
        """Whether the case names red-herring causes."""
        return bool(self.expected.get("forbidden_root_causes"))

    def criterion(self, name: str, default: Any = None) -> Any:
        """One field of the score, or ``default`` when the run errored."""
        return (self.score or {}).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``results.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        """Rebuild a result read back from ``results.json`` (unknown keys are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class EvalRun:
    """A whole evaluation: every result, the metrics over them, and how the run was made."""

    results: list[CaseResult]
    metrics: dict[str, Any]
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The ``results.json`` document."""
        return {"schema": RESULTS_SCHEMA, "metadata": self.metadata, "metrics": self.metrics,
                "cases": [r.as_dict() for r in self.results]}


# --------------------------------------------------------------------- cases


def default_incidents_dir(cwd: Path | None = None) -> Path:
    """``evals/incidents`` under the working directory if it exists, else the repository's."""
    local = (cwd or Path.cwd()) / "evals" / "incidents"
    return local if local.is_dir() else REPO_ROOT / "evals" / "incidents"


def _read_meta(folder: Path) -> tuple[dict[str, Any], str | None]:
    path = folder / "incident.yaml"
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return {}, f"{path}: {exc}"
    if not isinstance(meta, dict):
        return {}, f"{path}: expected a mapping"
    return meta, None


def discover_cases(root: str | Path) -> list[Case]:
    """Every incident folder under ``root`` (a folder holding ``incident.yaml``), sorted by name.

    ``root`` may also be a single incident folder. Folders are discovered, never listed by hand.
    """
    root = Path(root)
    if (root / "incident.yaml").is_file():
        folders = [root]
    elif root.is_dir():
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / "incident.yaml").is_file())
    else:
        folders = []
    cases = []
    for folder in folders:
        meta, error = _read_meta(folder)
        cases.append(Case(id=folder.name, path=folder, meta=meta, load_error=error))
    return cases


def case_matches(case: Case, tag: str) -> bool:
    """Whether a ``--filter`` tag selects a case.

    It does when the tag is a substring of the case id, or equals its expected domain, difficulty or root cause.
    """
    return tag in case.id or tag in (case.domain, case.difficulty, case.root_cause)


def filter_cases(cases: Iterable[Case], tags: Sequence[str] | None) -> list[Case]:
    """Keep the cases any of ``tags`` selects (all of them when there are no tags)."""
    if not tags:
        return list(cases)
    return [c for c in cases if any(case_matches(c, t) for t in tags)]


# --------------------------------------------------------------------- one run


def _usage(report: Report) -> tuple[dict[str, int] | None, float | None]:
    """Model tokens (summed over nodes) and cost; ``None`` for both when no model ran."""
    if not report.tokens:
        return None, None
    prompt = sum(int(v.get("prompt_tokens", 0)) for v in report.tokens.values())
    completion = sum(int(v.get("completion_tokens", 0)) for v in report.tokens.values())
    return {"input": prompt, "output": completion, "total": prompt + completion}, float(report.cost)


def result_from_report(case: Case, report: Report, *, run: int = 0, wall_time_s: float = 0.0) -> CaseResult:
    """Score a finished report against its case."""
    score = score_report(report, case.expected)
    tokens, cost = _usage(report)
    return CaseResult(
        case_id=case.id, run=run, title=case.title, difficulty=case.difficulty, expected=dict(case.expected),
        outcome=score.outcome, root_cause=report.root_cause, domain=report.domain,
        root_cause_title=report.root_cause_title, statement=report.root_cause_statement,
        confidence=report.confidence, remediation=list(report.remediation), score=score.as_dict(),
        evidence=[{"id": e.id, "source": e.source, "summary": e.summary} for e in report.evidence],
        wall_time_s=round(wall_time_s, 4), tool_calls=int(report.tool_calls or 0), tokens=tokens, cost_usd=cost)


def error_result(case: Case, message: str, *, run: int = 0, wall_time_s: float = 0.0) -> CaseResult:
    """The result of a run that raised."""
    return CaseResult(case_id=case.id, run=run, title=case.title, difficulty=case.difficulty,
                      expected=dict(case.expected), outcome="error", error=message,
                      wall_time_s=round(wall_time_s, 4))


def investigate_case(case: Case, settings: Settings) -> Report:
    """Replay one incident folder through the graph and return its report.

    Raises:
        IncidentFormatError: The folder does not follow the format.
        RuntimeError: The run ended without a report.
    """
    from sre_graph.runner import investigate
    from sre_graph.tools.replay import IncidentFormatError

    if case.load_error:
        raise IncidentFormatError(case.load_error)
    report = investigate(incident_dir=case.path, settings=settings)
    if report is None:
        raise RuntimeError("the investigation stopped before writing a report")
    return report


def run_case(case: Case, settings: Settings, *, run: int = 0) -> CaseResult:
    """Investigate and score one case; anything the run raises becomes an ``error`` result."""
    started = time.perf_counter()
    try:
        report = investigate_case(case, settings)
        elapsed = time.perf_counter() - started
        return result_from_report(case, report, run=run, wall_time_s=elapsed)
    except Exception as exc:  # noqa: BLE001 - one broken case is recorded, never ends the run
        return error_result(case, f"{type(exc).__name__}: {exc}", run=run,
                            wall_time_s=time.perf_counter() - started)


# --------------------------------------------------------------------- the whole set


def git_commit(repo: Path = REPO_ROOT) -> dict[str, Any] | None:
    """The checked-out commit and whether the tree has changes, if ``repo`` is a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _version() -> str | None:
    try:
        return importlib_metadata.version("sre-graph")
    except importlib_metadata.PackageNotFoundError:
        return None


def run_eval(
    cases: Sequence[Case],
    *,
    settings: Settings | None = None,
    repeat: int = 1,
    concurrency: int = 1,
    progress: ProgressFn | None = None,
    incidents_dir: str | Path | None = None,
    filters: Sequence[str] | None = None,
) -> EvalRun:
    """Investigate every case ``repeat`` times on ``concurrency`` threads; score and summarise.

    Args:
        cases: The cases to run (see :func:`discover_cases` and :func:`filter_cases`).
        settings: Engine configuration (model, rounds); defaults to the environment.
        repeat: Runs per case, for flakiness and the pass rate's spread.
        concurrency: Worker threads; each investigation builds its own graph and checkpointer.
        progress: Called on the calling thread as each run finishes.
        incidents_dir: Recorded in the metadata.
        filters: Recorded in the metadata.

    Returns:
        The results in case order (then repeat order), the metrics and the run's metadata.
    """
    from sre_graph.evals.metrics import compute_metrics

    if repeat < 1 or concurrency < 1:
        raise ValueError("repeat and concurrency must be at least 1")
    settings = settings or load_settings()
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    jobs = [(case, r) for r in range(repeat) for case in cases]
    results: list[CaseResult] = []
    if concurrency == 1:
        for case, r in jobs:
            results.append(run_case(case, settings, run=r))
            if progress:
                progress(results[-1], len(results), len(jobs))
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sre-graph-eval") as pool:
            futures = [pool.submit(run_case, case, settings, run=r) for case, r in jobs]
            for future in as_completed(futures):
                results.append(future.result())
                if progress:
                    progress(results[-1], len(results), len(jobs))
    order = {case.id: i for i, case in enumerate(cases)}
    results.sort(key=lambda res: (order.get(res.case_id, len(order)), res.run))
    duration = time.perf_counter() - clock
    metadata = {
        "model": settings.model,
        "base_url": settings.base_url,
        "max_rounds": settings.max_rounds,
        "git": git_commit(),
        "sre_graph_version": _version(),
        "python": platform.python_version(),
        "started_at": iso(started_at),
        "finished_at": iso(datetime.now(UTC)),
        "duration_s": round(duration, 3),
        "incidents_dir": str(incidents_dir) if incidents_dir is not None else None,
        "filters": list(filters or []),
        "cases": len(cases),
        "repeat": repeat,
        "concurrency": concurrency,
    }
    return EvalRun(results=results, metrics=compute_metrics(results, repeat=repeat), metadata=metadata)
