"""The examples in examples/ run and say what they should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sre_graph.ingest import detect_kind, parse_alert

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script,expected", [("investigate_incident.py", "missing_index"),
                                             ("stream_progress.py", "network_policy_block")])
def test_example_scripts_run(script, expected):
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"root cause: {expected}" in done.stdout


@pytest.mark.parametrize("name,kind", [("alertmanager.json", "alertmanager"), ("signoz.json", "signoz"),
                                       ("slack_event.json", "slack"), ("generic.json", "generic")])
def test_example_alerts_parse(name, kind):
    payload = json.loads((EXAMPLES / "alerts" / name).read_text())
    assert detect_kind(payload) == kind
    alert = parse_alert(payload)
    assert alert.service_name in ("checkout", "orders-api")
