"""Run-scoped dependencies, passed as the graph's ``context_schema``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sre_graph.settings import Settings, load_settings
from sre_graph.tools.base import Sources, SourceUnavailable


@dataclass
class Context:
    """What one investigation runs with. Everything optional; defaults come from settings."""

    model: str = "rules"
    """``rules`` for the deterministic engine, else a model name."""
    incident_dir: str | None = None
    """Replay this recorded incident folder instead of querying live sources."""
    max_rounds: int = 2
    """Investigation rounds allowed (the first plus targeted follow-ups)."""
    chat_model: Any = field(default=None, repr=False)
    """A LangChain chat model object to use instead of building one from ``model`` (tests, custom clients)."""
    sources: Any = field(default=None, repr=False)
    """Ready-made data-source ports (a ``Sources``; library use and tests); built from the above when absent."""
    settings: Any = field(default=None, repr=False)
    """A ``Settings`` object; the environment's when absent."""


def resolve_sources(context: Context | None) -> Sources:
    """The data-source ports for a run: given ones, the replayed incident, or live ones from settings.

    Every port comes back wrapped so that what it returns is redacted; the result is kept on the
    context so every node of the run shares it.
    """
    context = context or Context()
    with _RESOLVING:
        return _resolve(context)


_RESOLVING = threading.Lock()
"""Parallel branches of one run resolve the context's sources once."""


def _resolve(context: Context) -> Sources:
    if context.sources is None:
        if context.incident_dir:
            from sre_graph.tools.replay import load_incident

            context.sources = load_incident(context.incident_dir).sources()
        else:
            context.sources = live_sources(context.settings or load_settings())
    context.sources = redacted(context.sources)
    return context.sources


def redacted(sources: Sources) -> Sources:
    """The same ports, each behind redaction (idempotent)."""
    from sre_graph.tools.redact import Redacted

    for name in ("kubernetes", "signoz", "mongodb"):
        port = getattr(sources, name)
        if port is not None and not isinstance(port, Redacted):
            setattr(sources, name, Redacted(port))
    return sources


def live_sources(settings: Settings) -> Sources:
    """Live ports for every source the settings configure; the rest are listed as unavailable."""
    sources = Sources()
    if settings.signoz_url:
        from sre_graph.tools.signoz import LiveSignoz

        key = settings.signoz_api_key.get_secret_value() if settings.signoz_api_key else None
        sources.signoz = LiveSignoz(settings.signoz_url, key, timeout=settings.source_timeout)
    else:
        sources.unavailable["signoz"] = "not configured (set SRE_GRAPH_SIGNOZ_URL)"
    if settings.kubernetes_enabled or settings.kubeconfig:
        from sre_graph.tools.kubernetes import LiveKubernetes

        try:
            sources.kubernetes = LiveKubernetes(kubeconfig=settings.kubeconfig, context=settings.kube_context,
                                                timeout=settings.source_timeout)
        except SourceUnavailable as exc:
            sources.unavailable["kubernetes"] = exc.reason
    else:
        sources.unavailable["kubernetes"] = "not configured (set SRE_GRAPH_KUBECONFIG or SRE_GRAPH_KUBERNETES_ENABLED)"
    if settings.mongodb_url:
        from sre_graph.tools.mongodb import LiveMongo

        sources.mongodb = LiveMongo(settings.mongodb_url.get_secret_value(),
                                    timeout_ms=int(settings.source_timeout * 1000))
    else:
        sources.unavailable["mongodb"] = "not configured (set SRE_GRAPH_MONGODB_URL)"
    return sources


def as_context(value: Any) -> Context:
    """Accept a ``Context``, a dict (from the LangGraph server) or ``None``."""
    if isinstance(value, Context):
        return value
    if isinstance(value, dict):
        return Context(**{k: v for k, v in value.items() if k in Context.__dataclass_fields__})
    return Context()
