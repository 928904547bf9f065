"""Build the graph yourself, stream node updates, and read the report from the checkpoint.

    python examples/stream_progress.py [INCIDENT_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from sre_graph import build_graph
from sre_graph.context import Context
from sre_graph.runner import run_config
from sre_graph.tools.replay import load_incident

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "evals" / "incidents" / \
    "net-orders-inventory-netpol"
incident = load_incident(folder)
graph = build_graph().compile(checkpointer=InMemorySaver())
config = run_config("example-thread")
for update in graph.stream({"alert": incident.alert_payload}, config=config,
                           context=Context(incident_dir=str(folder)), stream_mode="updates"):
    for node in update:
        print(f"finished {node}")
report = graph.get_state(config).values["report"]
print(f"root cause: {report.root_cause}: {report.root_cause_statement}")
