"""sre-graph: an evidence-first SRE agent on LangGraph.

From an alert to a root cause with cited evidence::

    from sre_graph import investigate
    report = investigate(incident_dir="evals/incidents/<case>")
    print(report.root_cause, report.confidence)
"""

from __future__ import annotations

from typing import Any

from sre_graph.models import Alert, Classification, Evidence, Finding, Report, Severity

__all__ = ["Alert", "Classification", "Evidence", "Finding", "Report", "Severity", "build_graph", "graph",
           "investigate", "run_config"]


def __getattr__(name: str) -> Any:
    if name in ("build_graph", "graph"):
        from sre_graph import graph as graph_module

        return getattr(graph_module, name)
    if name in ("investigate", "run_config"):
        from sre_graph import runner

        return getattr(runner, name)
    raise AttributeError(name)
