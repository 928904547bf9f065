"""Run an investigation: the library entry point the CLI, the server and the evals share."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from sre_graph import models
from sre_graph.context import Context
from sre_graph.graph import build_graph
from sre_graph.models import Report
from sre_graph.settings import Settings, load_settings
from sre_graph.tools.base import Sources

ProgressFn = Callable[[str, dict[str, Any]], None]


def _incident_id(alert: dict[str, Any], fallback: str) -> str:
    """The id the report will carry (the parsed alert's id), for trace metadata."""
    from sre_graph.ingest import AlertValidationError, parse_alert

    try:
        return parse_alert(alert).alert_id
    except AlertValidationError:
        return fallback


def run_config(thread_id: str, settings: Settings | None = None, *, incident_id: str | None = None,
               model: str | None = None) -> dict[str, Any]:
    """The ``config`` for one run: its thread, an explicit recursion limit, and trace metadata (LangSmith)."""
    settings = settings or load_settings()
    model = model or settings.model
    metadata = {"thread_id": thread_id, "model": model}
    if incident_id:
        metadata["incident_id"] = incident_id
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": settings.recursion_limit,
            "run_name": "sre-graph investigation", "tags": ["sre-graph", f"model:{model}"],
            "metadata": metadata}


CHECKPOINT_TYPES = [(cls.__module__, cls.__name__) for cls in (
    models.Severity, models.Alert, models.Classification, models.Evidence, models.Finding, models.RuledOut,
    models.TimelineEntry, models.Report)]
"""The state's own types, allowed back out of a checkpoint (and nothing else beyond LangGraph's safe set)."""
JSON_CHECKPOINT_TYPES = [(*module.split("."), name) for module, name in CHECKPOINT_TYPES]


@contextmanager
def checkpointer(redis_url: str | None) -> Iterator[BaseCheckpointSaver]:
    """Redis checkpoints when a URL is given (JSON and Search modules required), else in memory."""
    if not redis_url:
        yield InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES))
        return
    from langgraph.checkpoint.redis import RedisSaver
    from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer

    with RedisSaver.from_conn_string(redis_url) as saver:
        saver.serde = JsonPlusRedisSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES,
                                             allowed_json_modules=JSON_CHECKPOINT_TYPES)
        saver.setup()
        yield saver


def investigate(
    alert: dict[str, Any] | None = None,
    *,
    incident_dir: str | Path | None = None,
    sources: Sources | None = None,
    settings: Settings | None = None,
    thread_id: str | None = None,
    progress: ProgressFn | None = None,
    redis_url: str | None = None,
    interrupt_after: list[str] | None = None,
    chat_model: Any = None,
) -> Report | None:
    """Investigate one alert and return the report.

    Args:
        alert: The alert payload (any supported shape). Defaults to the incident folder's ``alert.json``.
        incident_dir: Replay this recorded incident instead of querying live sources.
        sources: Ready-made data-source ports (overrides both of the above for data).
        settings: Configuration; defaults to the environment.
        thread_id: The checkpoint thread; a new one by default.
        progress: Called with (node name, update) as each node finishes.
        redis_url: Checkpoint to this Redis (overrides settings).
        interrupt_after: Stop after these nodes (for inspection or resume); the report is then ``None``.
        chat_model: A LangChain chat model object to use (overrides the model named in settings).
    """
    settings = settings or load_settings()
    if alert is None:
        if incident_dir is None:
            raise ValueError("give an alert payload or an incident folder")
        from sre_graph.tools.replay import load_incident

        alert = load_incident(incident_dir).alert_payload
    model_name = settings.model if chat_model is None else getattr(chat_model, "model_name", None) or type(
        chat_model).__name__
    context = Context(model=model_name, incident_dir=str(incident_dir) if incident_dir else None,
                      max_rounds=settings.max_rounds, sources=sources, settings=settings, chat_model=chat_model)
    thread_id = thread_id or str(uuid.uuid4())
    incident_id = _incident_id(alert, thread_id)
    with checkpointer(redis_url or settings.redis_url) as saver:
        graph = build_graph().compile(checkpointer=saver, interrupt_after=interrupt_after)
        config = run_config(thread_id, settings, incident_id=incident_id, model=model_name)
        return stream_run(graph, {"alert": alert}, context, config, progress)


def stream_run(graph: Any, graph_input: dict[str, Any] | None, context: Context, config: dict[str, Any],
               progress: ProgressFn | None = None) -> Report | None:
    """Stream a run (or resume one with ``graph_input=None``), reporting node updates; return the report."""
    for chunk in graph.stream(graph_input, config=config, context=context, stream_mode="updates"):
        for node, update in chunk.items():
            if progress and not node.startswith("__"):
                progress(node, update or {})
    report = graph.get_state(config).values.get("report")
    return Report.model_validate(report) if isinstance(report, dict) else report
