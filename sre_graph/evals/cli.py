"""``sre-graph eval``: run, validate, compare and upload the recorded-incident evals.

``sre_graph.cli`` wires this in with :func:`add_eval_parser` and :func:`cmd_eval`::

    sre-graph eval [DIR] [--model rules|NAME] [--base-url URL] [--repeat N] [--concurrency N]
                   [--filter TAG]... [--out DIR] [--compare A.json B.json] [--check] [--langsmith]

Exit codes: 0 when the run (or comparison) completed, whatever the pass rate;
2 for bad input, and for ``--check`` when any incident folder has a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from sre_graph.evals.metrics import compute_metrics
from sre_graph.evals.runner import Case, CaseResult, EvalRun, git_commit, run_eval
from sre_graph.settings import Settings, load_settings
from sre_graph.timeutil import iso

EXIT_OK = 0
EXIT_BAD = 2


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "eval", help="score the agent on recorded incidents (or --check, --compare, --langsmith)",
        description="Investigate every recorded incident under DIR, score each against its expected answer, "
                    "and write results.json, report.md and report.html.")
    parser.add_argument("dir", nargs="?", default=None, metavar="DIR",
                        help="a folder of incident folders, or one incident folder (default: evals/incidents)")
    parser.add_argument("--model", default=None, help="'rules' (default) or an OpenAI-compatible model name")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for --model")
    parser.add_argument("--repeat", default="1", metavar="N", help="runs per case (default 1)")
    parser.add_argument("--concurrency", default="1", metavar="N", help="investigations in parallel (default 1)")
    parser.add_argument("--filter", action="append", dest="filters", default=[], metavar="TAG",
                        help="keep cases whose id contains TAG or whose expected domain, difficulty or root cause "
                             "is TAG (repeatable: any tag selects)")
    parser.add_argument("--out", default=None, metavar="DIR", help="report folder (default .eval-out/<timestamp>)")
    parser.add_argument("--compare", nargs=2, default=None, metavar=("A.json", "B.json"),
                        help="compare two results.json files and exit")
    parser.add_argument("--check", action="store_true", help="validate the incident folders and exit")
    parser.add_argument("--langsmith", action="store_true",
                        help="upload the set as a LangSmith dataset and run it as an experiment "
                             "(needs LANGSMITH_API_KEY)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def _bad_input(message: str) -> Exception:
    from sre_graph.cli import BadInput

    return BadInput(message)


def _positive(value: str, option: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad_input(f"{option} must be a whole number, got {value!r}") from None
    if number < 1:
        raise _bad_input(f"{option} must be at least 1, got {number}")
    return number


def _incidents_dir(arg: str | None) -> Path:
    from sre_graph.evals.runner import default_incidents_dir

    path = Path(arg) if arg else default_incidents_dir()
    if not path.is_dir():
        raise _bad_input(f"{path}: no such incident folder")
    return path


# --------------------------------------------------------------------- progress


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per finished run otherwise."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        """Draw on ``stream`` (stderr by default); ``tty`` overrides terminal detection."""
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.failed = 0

    def __call__(self, result: CaseResult, done: int, total: int) -> None:
        """Show one finished run."""
        self.failed += 0 if result.passed else 1
        if not self.tty:
            print(f"[{done}/{total}] {result.case_id}"
                  + (f" (run {result.run + 1})" if result.run else "")
                  + f": {result.outcome} in {result.wall_time_s:.2f}s", file=self.stream, flush=True)
            return
        columns = shutil.get_terminal_size((80, 20)).columns
        width = 24
        filled = round(width * done / total) if total else width
        head = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  failed {self.failed}  "
        line = (head + result.case_id)[: max(columns - 1, 10)]
        self.stream.write("\r" + line.ljust(max(columns - 1, 10)))
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


# --------------------------------------------------------------------- the modes


def _default_out() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(".eval-out") / stamp
    n = 2
    while out.exists():
        out = Path(".eval-out") / f"{stamp}-{n}"
        n += 1
    return out


def _compare(args: argparse.Namespace) -> int:
    from sre_graph.evals.compare import compare_results, format_comparison
    from sre_graph.evals.reports import load_results

    first, second = args.compare
    try:
        before, after = load_results(first), load_results(second)
    except ValueError as exc:
        raise _bad_input(str(exc)) from None
    print(format_comparison(compare_results(before, after, before_name=first, after_name=second)))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from sre_graph.evals.check import check_all, incident_folders

    root = _incidents_dir(args.dir)
    folders = incident_folders(root)
    if not folders:
        raise _bad_input(f"{root}: no incident folders to check")
    problems = check_all(root)
    for problem in problems:
        print(problem)
    broken = len({p.folder for p in problems})
    print(f"sre-graph: checked {len(folders)} incident folder(s) in {root}: "
          + (f"{len(problems)} problem(s) in {broken} folder(s)" if problems else "no problems"),
          file=sys.stderr)
    return EXIT_BAD if problems else EXIT_OK


def _cases(args: argparse.Namespace) -> tuple[Path, list[Case]]:
    from sre_graph.evals.runner import discover_cases, filter_cases

    root = _incidents_dir(args.dir)
    found = discover_cases(root)
    if not found:
        raise _bad_input(f"{root}: no incident folders (folders holding incident.yaml)")
    cases = filter_cases(found, args.filters)
    if not cases:
        raise _bad_input(f"no case matches --filter {' '.join(args.filters)} (of {len(found)} in {root})")
    return root, cases


def _finish(run: EvalRun, args: argparse.Namespace) -> None:
    from sre_graph.evals.reports import summary_text, write_reports

    out = Path(args.out) if args.out else _default_out()
    try:
        paths = write_reports(run, out)
    except OSError as exc:
        raise _bad_input(f"{out}: cannot write the reports ({exc.strerror or exc})") from None
    print(summary_text(run))
    print(f"sre-graph: reports in {out}/: {', '.join(p.name for p in paths.values())}", file=sys.stderr)


def _langsmith(args: argparse.Namespace, settings: Settings, repeat: int, concurrency: int) -> int:
    from sre_graph.evals.langsmith_upload import LangSmithKeyMissing, api_key

    try:
        api_key()
    except LangSmithKeyMissing as exc:
        raise _bad_input(str(exc)) from None
    root, cases = _cases(args)
    from langsmith.utils import LangSmithError

    from sre_graph.evals.langsmith_upload import run_experiment

    if not args.quiet:
        print(f"sre-graph: uploading {len(cases)} case(s) from {root} to LangSmith"
              + (" (the experiment runs one case at a time; --concurrency applies to local runs)"
                 if concurrency > 1 else ""), file=sys.stderr)
    started_at = datetime.now(UTC)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # langsmith prints its links; stdout is the summary
            summary = run_experiment(cases, settings=settings, repeat=repeat)
    except LangSmithError as exc:
        raise _bad_input(f"LangSmith: {' '.join(str(exc).split())[:300]}") from None
    print(f"sre-graph: dataset {summary.dataset_name} ({summary.examples} examples, "
          f"{'created' if summary.dataset_created else 'reused'}); experiment {summary.experiment_name}"
          + (f" {summary.experiment_url}" if summary.experiment_url else ""), file=sys.stderr)
    order = {case.id: i for i, case in enumerate(cases)}
    results = sorted(summary.results, key=lambda r: (order.get(r.case_id, len(order)), r.run))
    metadata = {"model": settings.model, "base_url": settings.base_url, "git": git_commit(),
                "started_at": iso(started_at), "finished_at": iso(datetime.now(UTC)),
                "incidents_dir": str(root), "filters": list(args.filters), "cases": len(cases),
                "repeat": repeat, "concurrency": 1,
                "langsmith": {"dataset": summary.dataset_name, "dataset_id": summary.dataset_id,
                              "experiment": summary.experiment_name, "url": summary.experiment_url}}
    _finish(EvalRun(results=results, metrics=compute_metrics(results, repeat=repeat), metadata=metadata), args)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``sre-graph eval`` with parsed arguments; return the exit code.

    Raises:
        sre_graph.cli.BadInput: A missing folder, a bad number, an unreadable results file, no matching cases,
            or ``--langsmith`` without ``LANGSMITH_API_KEY``.
    """
    modes = [name for name, on in (("--compare", args.compare), ("--check", args.check),
                                   ("--langsmith", args.langsmith)) if on]
    if len(modes) > 1:
        raise _bad_input(f"{' and '.join(modes)} cannot be combined")
    if args.compare:
        return _compare(args)
    if args.check:
        return _check(args)
    repeat = _positive(args.repeat, "--repeat")
    concurrency = _positive(args.concurrency, "--concurrency")
    try:
        settings = load_settings(model=args.model, base_url=args.base_url)
    except ValidationError as exc:
        raise _bad_input(f"invalid settings: {' '.join(str(exc).split())}") from None
    if args.langsmith:
        return _langsmith(args, settings, repeat, concurrency)

    root, cases = _cases(args)
    if not args.quiet:
        print(f"sre-graph: evaluating {len(cases)} case(s) × {repeat} from {root} with model {settings.model}",
              file=sys.stderr)
    run = run_eval(cases, settings=settings, repeat=repeat, concurrency=concurrency,
                   progress=None if args.quiet else Progress(), incidents_dir=root, filters=args.filters)
    _finish(run, args)
    return EXIT_OK
