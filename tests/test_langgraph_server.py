"""The graph served by ``langgraph dev`` from the repo's ``langgraph.json``, driven through the SDK."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from langgraph_sdk import get_sync_client

from sre_graph.runner import investigate

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

GRAPH_ID = "sre_graph"


def expected_causes(incident: Path) -> set[str]:
    """The root causes the incident accepts as right."""
    expected = yaml.safe_load((incident / "incident.yaml").read_text())["expected"]
    return {expected["root_cause"], *(expected.get("acceptable_root_causes") or [])}


def test_assistant_is_registered(langgraph_dev: str) -> None:
    client = get_sync_client(url=langgraph_dev, timeout=30)
    assistants = client.assistants.search(graph_id=GRAPH_ID)
    assert assistants, f"langgraph dev serves no assistant for graph {GRAPH_ID!r}"
    schemas = client.assistants.get_schemas(assistants[0]["assistant_id"])
    assert "alert" in json.dumps(schemas.get("input_schema") or {}), "the input schema does not name 'alert'"
    assert "incident_dir" in json.dumps(schemas.get("context_schema") or {}), (
        "the context schema does not name 'incident_dir'")


def test_run_incident_on_server(langgraph_dev: str, solved_incident: Path) -> None:
    incident = solved_incident
    alert = json.loads((incident / "alert.json").read_text())
    client = get_sync_client(url=langgraph_dev, timeout=120)

    thread = client.threads.create(metadata={"test": "sre-graph"})
    output: Any = client.runs.wait(
        thread["thread_id"], GRAPH_ID,
        input={"alert": alert},
        context={"incident_dir": str(incident.resolve())},
        raise_error=False,
    )
    assert isinstance(output, dict) and "__error__" not in output, f"the run failed: {output}"
    assert set(output) == {"report"}, f"output schema leaked internal state: {sorted(output)}"

    runs = client.runs.list(thread["thread_id"])
    assert [r["status"] for r in runs] == ["success"], runs

    state = client.threads.get_state(thread["thread_id"])
    report = state["values"]["report"]
    assert report["root_cause"] in expected_causes(incident), (
        f"{incident.name}: server concluded {report['root_cause']}, expected one of {expected_causes(incident)}")
    assert report == output["report"]
    library = json.loads(investigate(incident_dir=incident).model_dump_json())
    for key in ("root_cause", "domain", "root_cause_statement"):
        assert report[key] == library[key], f"server and library disagree on {key}"
    assert [e["id"] for e in report["evidence"]] == [e["id"] for e in library["evidence"]]
    assert state["next"] == []
    assert report["evidence"], "the server's report cites no evidence"
    assert all(e["id"] and e["source"] and e["query"] for e in report["evidence"])

    history = client.threads.get_history(thread["thread_id"], limit=100)
    assert len(history) >= 5, f"only {len(history)} checkpoints in the thread history"
    stepped = {node for checkpoint in history for node in checkpoint["next"]}
    assert {"intake", "classify", "verify", "report"} <= stepped, f"nodes seen in history: {sorted(stepped)}"
    assert any(node.startswith("investigate_") for node in stepped), f"no investigator ran: {sorted(stepped)}"

    assert client.threads.get(thread["thread_id"])["status"] == "idle"


def test_webhook_routes_are_served_by_langgraph_dev(langgraph_dev: str) -> None:
    """One `langgraph dev` serves the graph API and the webhooks: an Alertmanager payload in, a report out."""
    import httpx

    demo = next(p for p in (REPO / "sre_graph" / "demo").iterdir() if (p / "incident.yaml").exists())
    payload = json.loads((demo / "alert.json").read_text())
    with httpx.Client(base_url=langgraph_dev, timeout=30) as client:
        accepted = client.post("/api/v1/webhooks/alertmanager", json=payload)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] == "accepted" and body["incident_id"]
        deadline = time.monotonic() + 90
        incident = {}
        while time.monotonic() < deadline:
            incident = client.get(f"/api/v1/incidents/{body['incident_id']}").json()
            if incident.get("report"):
                break
            time.sleep(0.5)
        assert incident.get("report"), f"no report within 90 s: {incident}"
        assert incident["report"]["root_cause"] == "network_policy_block"
        assert client.post("/assistants/search", json={}).status_code == 200, "the graph API is still served"
