"""The investigation graph, on one screen.

    intake → classify ─Send→ investigate_{network,database,infrastructure,application} → verify
                                       ↑                                                    │
                                       └──────── another round for unchecked domains ───────┤
                                                                                            ↓
                                                                                          report
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from sre_graph.context import Context
from sre_graph.llm import MODEL_RETRY
from sre_graph.nodes.classify import classify
from sre_graph.nodes.intake import intake
from sre_graph.nodes.investigate import make_investigator
from sre_graph.nodes.report import report
from sre_graph.nodes.route import INVESTIGATORS, route_after_verify, route_first_round
from sre_graph.nodes.verify import verify
from sre_graph.state import IncidentState, InputState, OutputState


def build_graph() -> StateGraph[IncidentState, Context, InputState, OutputState]:
    """The uncompiled graph; compile it with the checkpointer of your choice."""
    builder = StateGraph(IncidentState, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("intake", intake)
    builder.add_node("classify", classify, retry_policy=MODEL_RETRY)
    for domain, node in INVESTIGATORS.items():
        builder.add_node(node, make_investigator(domain), retry_policy=MODEL_RETRY)
        builder.add_edge(node, "verify")
    builder.add_node("verify", verify, retry_policy=MODEL_RETRY)
    builder.add_node("report", report, retry_policy=MODEL_RETRY)

    builder.add_edge(START, "intake")
    builder.add_edge("intake", "classify")
    builder.add_conditional_edges("classify", route_first_round, list(INVESTIGATORS.values()))
    builder.add_conditional_edges("verify", route_after_verify, [*INVESTIGATORS.values(), "report"])
    builder.add_edge("report", END)
    return builder


graph = build_graph().compile(name="sre-graph")
"""The compiled graph without a checkpointer (LangGraph server supplies its own)."""
