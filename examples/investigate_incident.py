"""Investigate a recorded incident from Python and print the conclusion with its evidence.

    python examples/investigate_incident.py [INCIDENT_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sre_graph import investigate

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "evals" / "incidents" / \
    "db-shop-orders-email-collscan"
report = investigate(incident_dir=folder)
print(f"{report.priority} {report.title}")
print(f"root cause: {report.root_cause} ({report.domain}), confidence {report.confidence:.0%}")
print(report.root_cause_statement)
for evidence in report.evidence:
    print(f"  [{evidence.id}] {evidence.source}: {evidence.summary}")
