"""sre-graph: an evidence-first SRE agent on LangGraph.

From an alert to a root cause with cited evidence::

    from sre_graph import investigate
    report = investigate(incident_dir="evals/incidents/<case>")
    print(report.root_cause, report.confidence)
"""

from __future__ import annotations

from typing import Any

from sre_graph.models import Alert, Classification, Evidence, Finding, Report, Severity

__all__ = ["Alert", "Classification", "Evidence", "Finding", "Report", "Severity", "build_graph", "investigate",
           "run_config"]


def __getattr__(name: str) -> Any:
    """Import the graph and the runner lazily: ``import sre_graph`` stays cheap."""
    import importlib

    if name == "build_graph":
        return importlib.import_module("sre_graph.graph").build_graph
    if name in ("investigate", "run_config"):
        return getattr(importlib.import_module("sre_graph.runner"), name)
    raise AttributeError(f"module 'sre_graph' has no attribute {name!r}")
