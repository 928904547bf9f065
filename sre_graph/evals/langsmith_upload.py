"""``sre-graph eval --langsmith``: the incident set as a LangSmith dataset, the eval as an experiment.

Each incident becomes one example: inputs ``{"incident_id", "alert"}`` (the
alert payload as it arrived), outputs the incident's ``expected`` block. The
dataset's name carries a hash of its content, so an unchanged set is reused and
a changed set becomes a new dataset rather than silently mixing versions.

The experiment runs the engine on every example with LangSmith's
``Client.evaluate`` and scores it with this package's scorer, as five
evaluators: ``pass``, ``root_cause``, ``domain``, ``keywords`` (recall) and
``sources`` (coverage).

``langsmith`` is imported only when this runs. The API key comes from
``LANGSMITH_API_KEY``; ``LANGSMITH_ENDPOINT`` points the client elsewhere
(a self-hosted LangSmith, or a test server).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sre_graph.evals.runner import Case, CaseResult, error_result, investigate_case, result_from_report
from sre_graph.evals.score import score_report
from sre_graph.models import Report
from sre_graph.settings import Settings

if TYPE_CHECKING:
    from langsmith import Client

API_KEY_ENV = "LANGSMITH_API_KEY"
ENDPOINT_ENV = "LANGSMITH_ENDPOINT"
DATASET_PREFIX = "sre-graph-incidents"


class LangSmithKeyMissing(RuntimeError):
    """``--langsmith`` was asked for without ``LANGSMITH_API_KEY``."""


@dataclass
class ExperimentSummary:
    """What an upload and experiment produced."""

    dataset_name: str
    dataset_id: str
    dataset_created: bool
    """``False`` when a dataset with the same content already existed and was reused."""
    examples: int
    experiment_name: str = ""
    experiment_url: str | None = None
    results: list[CaseResult] = field(default_factory=list)
    """The local results of the experiment's runs (the same scoring as ``sre-graph eval``)."""


def api_key(env: Mapping[str, str] | None = None) -> str:
    """The LangSmith API key from the environment.

    Raises:
        LangSmithKeyMissing: ``LANGSMITH_API_KEY`` is not set.
    """
    value = (env if env is not None else os.environ).get(API_KEY_ENV, "").strip()
    if not value:
        raise LangSmithKeyMissing(f"--langsmith needs {API_KEY_ENV} set to a LangSmith API key "
                                  f"(and {ENDPOINT_ENV} for a self-hosted LangSmith)")
    return value


def make_client(env: Mapping[str, str] | None = None) -> Client:
    """A LangSmith client from ``LANGSMITH_API_KEY`` and (optionally) ``LANGSMITH_ENDPOINT``."""
    from langsmith import Client

    env = env if env is not None else os.environ
    return Client(api_key=api_key(env), api_url=env.get(ENDPOINT_ENV) or None)


# --------------------------------------------------------------------- the dataset


def example_for(case: Case) -> dict[str, Any]:
    """One dataset example: inputs (alert payload + incident id), outputs (expected), metadata.

    Raises:
        IncidentFormatError: The folder does not load.
    """
    from sre_graph.tools.replay import load_incident

    incident = load_incident(case.path)
    return {"inputs": {"incident_id": case.id, "alert": incident.alert_payload},
            "outputs": dict(case.expected),
            "metadata": {"title": case.title, "difficulty": case.difficulty, "domain": case.domain}}


def dataset_name_for(examples: Sequence[dict[str, Any]], prefix: str = DATASET_PREFIX) -> str:
    """``<prefix>-<hash of the examples>``: the same set always gets the same name."""
    digest = hashlib.sha256(json.dumps(examples, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{prefix}-{digest}"


def upload_dataset(client: Client, cases: Sequence[Case], *, name: str | None = None) -> tuple[Any, bool, int]:
    """Create the dataset and its examples, or reuse a dataset of that name.

    Returns:
        The dataset, whether it was created now, and the number of examples.
    """
    examples = [example_for(case) for case in cases]
    name = name or dataset_name_for(examples)
    if client.has_dataset(dataset_name=name):
        return client.read_dataset(dataset_name=name), False, len(examples)
    dataset = client.create_dataset(name, description=f"sre-graph recorded incidents ({len(examples)} cases)",
                                    metadata={"source": "sre-graph eval --langsmith"})
    client.create_examples(dataset_id=dataset.id, examples=[
        {"inputs": e["inputs"], "reference_outputs": e["outputs"], "metadata": e["metadata"]} for e in examples])
    return dataset, True, len(examples)


# --------------------------------------------------------------------- target and evaluators


def _score(outputs: Mapping[str, Any] | None, reference_outputs: Mapping[str, Any] | None) -> Any:
    report = (outputs or {}).get("report")
    if not report:
        return None
    return score_report(Report.model_validate(report), dict(reference_outputs or {}))


def pass_evaluator(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
    """1 when the case passes every criterion of the format."""
    score = _score(outputs, reference_outputs)
    return {"key": "pass", "score": int(bool(score and score.passed)),
            "comment": (score.outcome if score else (outputs or {}).get("error") or "no report")}


def root_cause_evaluator(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
    """1 when the concluded root cause is the expected or an acceptable one."""
    score = _score(outputs, reference_outputs)
    return {"key": "root_cause", "score": int(bool(score and score.root_cause_ok)),
            "comment": f"expected {reference_outputs.get('root_cause')}, concluded {(outputs or {}).get('root_cause')}"}


def domain_evaluator(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
    """1 when the concluded domain is right."""
    score = _score(outputs, reference_outputs)
    return {"key": "domain", "score": int(bool(score and score.domain_ok))}


def keywords_evaluator(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
    """The share of required keywords the report contains."""
    score = _score(outputs, reference_outputs)
    return {"key": "keywords", "score": score.keyword_recall if score else 0.0,
            "comment": ("missing: " + ", ".join(score.keywords_missing)) if score and score.keywords_missing else ""}


def sources_evaluator(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
    """The share of required evidence sources the report cites."""
    score = _score(outputs, reference_outputs)
    return {"key": "sources", "score": score.source_coverage if score else 0.0,
            "comment": ("missing: " + ", ".join(score.sources_missing)) if score and score.sources_missing else ""}


EVALUATORS: tuple[Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]], ...] = (
    pass_evaluator, root_cause_evaluator, domain_evaluator, keywords_evaluator, sources_evaluator)


def make_target(cases: Sequence[Case], settings: Settings,
                sink: list[CaseResult] | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function LangSmith runs per example: replay the incident, return the report (or the error).

    Every run's local result is appended to ``sink``.
    """
    by_id = {case.id: case for case in cases}
    runs: dict[str, int] = {}
    lock = threading.Lock()

    def sre_graph_investigate(inputs: dict[str, Any]) -> dict[str, Any]:
        case = by_id.get(str(inputs.get("incident_id")))
        if case is None:
            return {"error": f"no incident folder for {inputs.get('incident_id')!r}", "report": None}
        with lock:
            run = runs[case.id] = runs.get(case.id, -1) + 1
        started = time.perf_counter()
        try:
            report = investigate_case(case, settings)
        except Exception as exc:  # noqa: BLE001 - recorded as the run's error, like the local runner
            result = error_result(case, f"{type(exc).__name__}: {exc}", run=run,
                                  wall_time_s=time.perf_counter() - started)
            if sink is not None:
                sink.append(result)
            return {"error": result.error, "report": None, "root_cause": None, "domain": None}
        result = result_from_report(case, report, run=run, wall_time_s=time.perf_counter() - started)
        if sink is not None:
            sink.append(result)
        return {"root_cause": report.root_cause, "domain": report.domain, "outcome": result.outcome,
                "report": report.model_dump(mode="json")}

    return sre_graph_investigate


def run_experiment(cases: Sequence[Case], *, settings: Settings, repeat: int = 1,
                   client: Client | None = None, dataset_name: str | None = None,
                   experiment_prefix: str | None = None) -> ExperimentSummary:
    """Upload the set (or reuse it) and run it as a LangSmith experiment with the scorers as evaluators.

    The experiment runs one example at a time (``max_concurrency=0``): with a thread pool, langsmith's
    ``evaluate`` can shut its executor down while evaluators are still submitting feedback
    ("cannot schedule new futures after shutdown"), and scores go missing.
    """
    client = client or make_client()
    dataset, created, count = upload_dataset(client, cases, name=dataset_name)
    sink: list[CaseResult] = []
    results = client.evaluate(
        make_target(cases, settings, sink), data=dataset.name, evaluators=list(EVALUATORS),
        experiment_prefix=experiment_prefix or f"sre-graph-{settings.model}",
        metadata={"model": settings.model, "max_rounds": settings.max_rounds},
        num_repetitions=repeat, max_concurrency=0, blocking=True)
    client.flush()  # runs and feedback go out on a background queue; send them before reporting success
    return ExperimentSummary(dataset_name=dataset.name, dataset_id=str(dataset.id), dataset_created=created,
                             examples=count, experiment_name=str(getattr(results, "experiment_name", "")),
                             experiment_url=getattr(results, "url", None), results=sink)
