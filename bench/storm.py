"""An alert storm against the service: how fast alerts are accepted and every investigation started.

    python bench/storm.py [--alerts 1000] [--fingerprints 50] [--concurrency 32] [--workers 4]
                          [--run-seconds 0.05] [--replay]

Sends ``--alerts`` Alertmanager webhooks carrying ``--fingerprints`` distinct alerts, ``--concurrency``
requests at a time, twice: to the app in process (httpx's ASGI transport) and to the app behind uvicorn
in a child process on a loopback port (real HTTP). Investigations are a stand-in that takes ``--run-seconds`` (or, with
``--replay``, real replays of the demo incident). Prints accepted alerts per second, request latency,
the time from the first alert until every investigation had started, and checks that exactly one
investigation ran per fingerprint and that every alert was stored on its incident.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sre_graph.models import Report
from sre_graph.runner import investigate
from sre_graph.server.app import create_app
from sre_graph.server.store import SQLiteStore
from sre_graph.settings import Settings

INCIDENT = Path(__file__).resolve().parent.parent / "evals" / "incidents" / "net-orders-inventory-netpol"


class TimedRunner:
    """Records when each investigation starts; then sleeps (stand-in) or replays the demo incident."""

    def __init__(self, report: Report, seconds: float, replay: bool) -> None:
        self.report = report
        self.seconds = seconds
        self.replay = replay
        self.started: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, alert: dict[str, Any], *, thread_id: str) -> Report | None:
        with self._lock:
            self.started.append(time.perf_counter())
        if self.replay:
            return investigate(alert, incident_dir=INCIDENT, thread_id=thread_id)
        time.sleep(self.seconds)
        return self.report


def storm_bodies(alerts: int, fingerprints: int) -> list[dict[str, Any]]:
    """One Alertmanager body per alert, cycling through the fingerprints (distinct alert names and services)."""
    bodies = []
    for i in range(alerts):
        k = i % fingerprints
        bodies.append({"version": "4", "status": "firing", "receiver": "sre-graph", "alerts": [{
            "status": "firing", "fingerprint": f"storm-{k:04d}", "startsAt": "2026-03-03T15:46:10Z",
            "labels": {"alertname": f"Storm{k}", "service": f"svc-{k}", "severity": "critical", "n": str(i)},
            "annotations": {"summary": "storm"}}]})
    return bodies


async def fire(client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, list[float]]:
    """Post every body, ``concurrency`` at a time; returns the start time and each request's latency."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            begin = time.perf_counter()
            response = await client.post("/api/v1/webhooks/alertmanager", json=body)
            latencies.append(time.perf_counter() - begin)
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code}: {response.text}")

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    return start, latencies


def summarise(name: str, start: float, latencies: list[float], done: float, runner: TimedRunner,
              store: SQLiteStore, alerts: int, fingerprints: int, finished: float) -> None:
    """Print one result row and check nothing was lost."""
    incidents = store.list(limit=1000)
    stored = sum(len(i.alerts) for i in incidents)
    last_start = max(runner.started) - start if runner.started else float("nan")
    ordered = sorted(latencies)
    print(f"{name:<12} {alerts / (done - start):>9.0f} alerts/s accepted · latency p50 "
          f"{statistics.median(ordered) * 1000:6.1f} ms p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:6.1f} ms"
          f" · all {len(runner.started)} investigations started after {last_start:.3f} s"
          f" · all finished after {finished - start:.2f} s")
    if len(runner.started) != fingerprints or len(incidents) != fingerprints or stored != alerts:
        raise SystemExit(f"{name}: {len(runner.started)} investigations, {len(incidents)} incidents, "
                         f"{stored} alerts stored (expected {fingerprints}, {fingerprints}, {alerts})")


async def in_process(make: Callable[[], tuple[Any, TimedRunner, SQLiteStore]], bodies: list[dict[str, Any]],
                     args: argparse.Namespace) -> None:
    """The app through httpx's ASGI transport, its lifespan run by hand."""
    app, runner, store = make()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://storm") as client:
            start, latencies = await fire(client, bodies, args.concurrency)
            done = time.perf_counter()
        await asyncio.to_thread(app.state.service.pool.wait_idle, 600)
        finished = time.perf_counter()
    summarise("in-process", start, latencies, done, runner, store, args.alerts, args.fingerprints, finished)
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(args: argparse.Namespace, report: Report) -> None:
    """The child process of :func:`over_uvicorn`: the app with the stand-in runner, behind uvicorn."""
    runner = TimedRunner(report, args.run_seconds, args.replay)
    settings = Settings(max_concurrent_investigations=args.workers, dedup_window_minutes=30)
    app = create_app(settings, store=SQLiteStore(args.db), runner=runner)
    uvicorn.run(app, host="127.0.0.1", port=args.serve_port, log_level="warning")


async def over_uvicorn(bodies: list[dict[str, Any]], args: argparse.Namespace, scratch: Path) -> None:
    """The app behind uvicorn in its own process, on a loopback port, over real HTTP.

    Investigation start times come from the incidents' timelines in the shared SQLite file.
    """
    port = free_port()
    db = scratch / "incidents-uvicorn.db"
    command = [sys.executable, __file__, "--serve-port", str(port), "--db", str(db), "--workers", str(args.workers),
               "--run-seconds", str(args.run_seconds)] + (["--replay"] if args.replay else [])
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            wall = time.time()
            start, latencies = await fire(client, bodies, args.concurrency)
            done = time.perf_counter()
            while True:
                answer = (await client.get("/api/v1/incidents", params={"limit": 1000})).json()
                if answer["count"] >= args.fingerprints and all(i["status"] != "investigating"
                                                                for i in answer["incidents"]):
                    break
                await asyncio.sleep(0.05)
            finished = time.perf_counter()
    finally:
        child.terminate()
        child.wait(30)
    store = SQLiteStore(db)
    started = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() - wall + start
               for i in store.list(limit=1000) for e in i.timeline if e["event"] == "investigation started"]
    runner = TimedRunner(Report.model_construct(), 0, False)
    runner.started = started
    summarise("uvicorn", start, latencies, done, runner, store, args.alerts, args.fingerprints, finished)
    store.close()


def main() -> None:
    """Run the storm in process and over uvicorn; print a row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--fingerprints", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--workers", type=int, default=4, help="max_concurrent_investigations")
    parser.add_argument("--run-seconds", type=float, default=0.05, help="stand-in investigation time")
    parser.add_argument("--replay", action="store_true", help="real replays of the demo incident instead")
    parser.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    report = investigate(incident_dir=INCIDENT)
    assert report is not None
    if args.serve_port:
        serve(args, report)
        return
    bodies = storm_bodies(args.alerts, args.fingerprints)
    with tempfile.TemporaryDirectory(prefix="sre-graph-storm-") as tmp:
        run(args, report, bodies, Path(tmp))


def run(args: argparse.Namespace, report: Report, bodies: list[dict[str, Any]], scratch: Path) -> None:
    """Both storms, with their stores under ``scratch``."""

    def make() -> tuple[Any, TimedRunner, SQLiteStore]:
        runner = TimedRunner(report, args.run_seconds, args.replay)
        store = SQLiteStore(scratch / f"incidents-{time.monotonic_ns()}.db")
        settings = Settings(max_concurrent_investigations=args.workers, dedup_window_minutes=30)
        return create_app(settings, store=store, runner=runner), runner, store

    print(f"{args.alerts} alerts, {args.fingerprints} fingerprints, {args.concurrency} in flight, "
          f"{args.workers} workers, investigations: "
          f"{'demo replay' if args.replay else f'stand-in of {args.run_seconds:g} s'}; store: SQLite")
    asyncio.run(in_process(make, bodies, args))
    asyncio.run(over_uvicorn(bodies, args, scratch))


if __name__ == "__main__":
    main()
