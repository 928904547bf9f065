"""Checkpoints in a real Redis 8: interrupt a run, then inspect and resume it from other processes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from sre_graph.graph import build_graph
from sre_graph.models import Report
from sre_graph.runner import checkpointer, investigate, run_config

pytestmark = pytest.mark.integration

INVESTIGATORS = {"investigate_network", "investigate_database", "investigate_infrastructure",
                 "investigate_application"}

CHILD = r'''
import json, sys
from sre_graph.context import Context
from sre_graph.graph import build_graph
from sre_graph.runner import checkpointer, run_config, stream_run

mode, url, thread_id, incident_dir = sys.argv[1:5]
config = run_config(thread_id)
with checkpointer(url) as saver:
    graph = build_graph().compile(checkpointer=saver)
    if mode == "state":
        state = graph.get_state(config)
        print(json.dumps({"next": list(state.next), "keys": sorted(state.values),
                          "has_report": "report" in state.values}))
    else:
        ran = []
        report = stream_run(graph, None, Context(incident_dir=incident_dir), config,
                            lambda node, update: ran.append(node))
        after = graph.get_state(config)
        print(json.dumps({"ran": ran, "next_after": list(after.next),
                          "report": json.loads(report.model_dump_json()) if report else None}))
'''


def child(mode: str, url: str, thread_id: str, incident_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``CHILD`` in a new Python process and return the JSON it prints."""
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, url, thread_id, str(incident_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"{mode} process failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{mode} process printed nothing; stderr:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def essentials(report: Report | dict[str, Any]) -> dict[str, Any]:
    """What must not change between a straight run and an interrupted-then-resumed one."""
    data = report if isinstance(report, dict) else json.loads(report.model_dump_json())
    return {
        "root_cause": data["root_cause"],
        "domain": data["domain"],
        "evidence_ids": [e["id"] for e in data["evidence"]],
        "statement": data["root_cause_statement"],
    }


@pytest.mark.parametrize(
    ("stop_after", "pending"),
    [("classify", INVESTIGATORS), ("verify", INVESTIGATORS | {"report"})],
)
def test_interrupt_then_resume_in_new_process(
    redis_server: str, solved_incident: Path, subprocess_env: dict[str, str], stop_after: str, pending: set[str]
) -> None:
    incident = solved_incident
    straight = investigate(incident_dir=incident)
    assert straight is not None

    thread_id = f"test-resume-{stop_after}-{uuid.uuid4().hex}"
    stopped = investigate(incident_dir=incident, redis_url=redis_server, thread_id=thread_id,
                          interrupt_after=[stop_after])
    assert stopped is None, "an interrupted run must not return a report"

    client = redis.Redis.from_url(redis_server)
    keys = [k.decode() for k in client.scan_iter(match=f"*{thread_id}*")]
    client.close()
    assert any(k.startswith("checkpoint:") for k in keys), f"no checkpoint keys for {thread_id}: {keys}"
    assert any(k.startswith("checkpoint_write:") for k in keys), f"no pending-write keys for {thread_id}: {keys}"

    state = child("state", redis_server, thread_id, incident, subprocess_env)
    assert state["next"], "a second process sees no pending nodes for the interrupted thread"
    assert set(state["next"]) <= pending, f"unexpected pending nodes after {stop_after}: {state['next']}"
    assert not state["has_report"]
    assert {"parsed_alert", "classification"} <= set(state["keys"])

    resumed = child("resume", redis_server, thread_id, incident, subprocess_env)
    assert resumed["report"] is not None, "the resumed run wrote no report"
    assert resumed["next_after"] == []
    assert "intake" not in resumed["ran"] and "classify" not in resumed["ran"], (
        f"resume re-ran finished nodes instead of continuing: {resumed['ran']}")
    assert resumed["ran"][-1] == "report"
    assert essentials(resumed["report"]) == essentials(straight)


def test_resumed_state_readable_in_this_process(redis_server: str, solved_incident: Path,
                                                subprocess_env: dict[str, str]) -> None:
    """After a resume elsewhere, this process reads the finished thread back as typed models."""
    incident = solved_incident
    thread_id = f"test-read-{uuid.uuid4().hex}"
    assert investigate(incident_dir=incident, redis_url=redis_server, thread_id=thread_id,
                       interrupt_after=["classify"]) is None
    resumed = child("resume", redis_server, thread_id, incident, subprocess_env)

    with checkpointer(redis_server) as saver:
        graph = build_graph().compile(checkpointer=saver)
        state = graph.get_state(run_config(thread_id))
        history = list(graph.get_state_history(run_config(thread_id)))
    assert state.next == ()
    report = state.values["report"]
    report = Report.model_validate(report) if isinstance(report, dict) else report
    assert isinstance(report, Report)
    assert essentials(report) == essentials(resumed["report"])
    assert len(history) >= 5, f"only {len(history)} checkpoints in the thread's history"
