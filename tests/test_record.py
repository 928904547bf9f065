"""`sre-graph record` against the real test servers writes a folder that replays to the same root cause."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from sre_graph.evals.check import check_all
from sre_graph.ingest import parse_alert
from sre_graph.runner import investigate
from sre_graph.tools.base import Sources
from sre_graph.tools.kubernetes import LiveKubernetes
from sre_graph.tools.record import record_incident
from sre_graph.tools.replay import load_incident
from sre_graph.tools.signoz import LiveSignoz
from tests.kube import KubeCluster, clear_cluster, load_incident_into_cluster
from tests.signoz_server import SignozServer

REPO = Path(__file__).resolve().parent.parent
CASE = REPO / "evals" / "incidents" / "app-payments-psp-outage"


def _namespaces(folder: Path) -> list[str]:
    pods = json.loads((folder / "kubernetes" / "pods.json").read_text())["items"]
    return sorted({p["metadata"]["namespace"] for p in pods})


def test_recorded_folder_replays_to_the_same_root_cause(kube_apiserver: KubeCluster, tmp_path: Path) -> None:
    incident = load_incident(CASE)
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        clear_cluster(admin, kube_apiserver)
        load_incident_into_cluster(admin, CASE, cluster=kube_apiserver)
    with SignozServer(CASE) as signoz:
        sources = Sources(
            kubernetes=LiveKubernetes(kubeconfig=str(kube_apiserver.agent_kubeconfig), timeout=20),
            signoz=LiveSignoz(signoz.url, signoz.api_key, clock=lambda: incident.now),
            clock=incident.now, unavailable={"mongodb": "not configured"})
        out = tmp_path / "recorded"
        summary = record_incident(incident.alert_payload, parse_alert(incident.alert_payload), out, sources,
                                  namespaces=_namespaces(CASE))
    assert summary["kubernetes"]["pods"] > 0 and summary["signoz"]["traces"] > 0
    assert (out / "kubernetes" / "logs").is_dir(), "container logs came through the kubelet"
    problems = check_all(out.parent)
    assert not problems, problems
    recorded = load_incident(out)
    assert recorded.unavailable == ["mongodb"]
    original = investigate(incident_dir=CASE)
    replayed = investigate(incident_dir=out)
    assert replayed.root_cause == original.root_cause == incident.expected["root_cause"]
    assert replayed.domain == original.domain


def test_record_cli_writes_an_incident_folder(kube_apiserver: KubeCluster, tmp_path: Path) -> None:
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        clear_cluster(admin, kube_apiserver)
        load_incident_into_cluster(admin, CASE, cluster=kube_apiserver)
    out = tmp_path / "cli-recorded"
    with SignozServer(CASE) as signoz:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_GRAPH_")}
        env.update(SRE_GRAPH_KUBECONFIG=str(kube_apiserver.agent_kubeconfig), SRE_GRAPH_SIGNOZ_URL=signoz.url,
                   SRE_GRAPH_SIGNOZ_API_KEY=signoz.api_key)
        done = subprocess.run([sys.executable, "-m", "sre_graph.cli", "record", "--alert", str(CASE / "alert.json"),
                               "--out", str(out), *sum((["--namespace", ns] for ns in _namespaces(CASE)), [])],
                              capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "mongodb not recorded" in done.stderr
    assert json.loads(done.stdout)["kubernetes"]["pods"] > 0
    assert (out / "incident.yaml").exists() and (out / "signoz" / "traces.jsonl").stat().st_size > 0
    again = subprocess.run([sys.executable, "-m", "sre_graph.cli", "record", "--alert", str(CASE / "alert.json"),
                            "--out", str(out)], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr
