"""Replay every bundled incident N times; print the median wall time per investigation and per node.

    python bench/replay.py [--repeat 5] [--dir evals/incidents]

Times come from the graph's task events (``stream_mode="tasks"``): a node's time
runs from its task's start event to its result event, measured in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

from sre_graph.context import Context
from sre_graph.graph import build_graph
from sre_graph.runner import checkpointer, run_config
from sre_graph.tools.replay import load_incident


def replay_once(graph, folder: Path, thread: str) -> tuple[float, dict[str, float]]:
    """One investigation: total seconds and seconds per node (summed over rounds)."""
    incident = load_incident(folder)
    started: dict[str, float] = {}
    per_node: dict[str, float] = defaultdict(float)
    begin = time.perf_counter()
    for event in graph.stream({"alert": incident.alert_payload}, config=run_config(thread),
                              context=Context(incident_dir=str(folder)), stream_mode="tasks"):
        now = time.perf_counter()
        if "input" in event:
            started[event["id"]] = now
        elif event.get("id") in started:
            per_node[event["name"]] += now - started.pop(event["id"])
    return time.perf_counter() - begin, per_node


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "evals" / "incidents"))
    args = parser.parse_args()
    folders = sorted(p for p in Path(args.dir).iterdir() if (p / "incident.yaml").exists())
    totals: dict[str, list[float]] = defaultdict(list)
    nodes: dict[str, list[float]] = defaultdict(list)
    with checkpointer(None) as saver:
        graph = build_graph().compile(checkpointer=saver)
        for n in range(args.repeat):
            for folder in folders:
                total, per_node = replay_once(graph, folder, f"bench-{folder.name}-{n}")
                totals[folder.name].append(total)
                for node, seconds in per_node.items():
                    nodes[node].append(seconds)
    print(f"{len(folders)} incidents × {args.repeat} runs")
    print(f"{'incident':56s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s}")
    for name, values in sorted(totals.items()):
        print(f"{name:56s} {statistics.median(values) * 1000:10.1f} {min(values) * 1000:8.1f} "
              f"{max(values) * 1000:8.1f}")
    every = [v for values in totals.values() for v in values]
    print(f"{'ALL investigations':56s} {statistics.median(every) * 1000:10.1f} {min(every) * 1000:8.1f} "
          f"{max(every) * 1000:8.1f}")
    print()
    print(f"{'node':32s} {'median ms':>10s} {'p90 ms':>8s} {'runs':>6s}")
    for node, values in sorted(nodes.items(), key=lambda kv: -statistics.median(kv[1])):
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"{node:32s} {statistics.median(values) * 1000:10.1f} {p90 * 1000:8.1f} {len(values):6d}")


if __name__ == "__main__":
    main()
