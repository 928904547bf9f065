"""The ``sre-graph`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from sre_graph.settings import load_settings

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """User input the CLI rejects with exit code 2 and a one-line message."""


def demo_dir() -> Path:
    """The incident bundled with the package for ``sre-graph demo``."""
    root = resources.files("sre_graph") / "demo"
    folders = sorted(p for p in Path(str(root)).iterdir() if p.is_dir() and (p / "incident.yaml").exists())
    if not folders:
        raise BadInput("the demo incident is missing from the package")
    return folders[0]


def _progress(stream: Any) -> Any:
    def show(node: str, update: dict[str, Any]) -> None:
        parts = []
        if node == "classify" and update.get("classification"):
            c = update["classification"]
            parts.append(f"domains {', '.join(c.domains)} · {c.priority}")
        if update.get("findings") is not None:
            parts.append(f"{len(update['findings'])} findings, {len(update.get('evidence') or {})} evidence")
        if update.get("unavailable"):
            parts.append("unavailable: " + ", ".join(u.split(":")[0] for u in update["unavailable"]))
        if node == "verify":
            ranked = update.get("ranked") or []
            if ranked:
                parts.append(f"leading {ranked[0].root_cause} ({ranked[0].score:.2f})")
            if update.get("next_domains"):
                parts.append("another round: " + ", ".join(update["next_domains"]))
        if node == "report" and update.get("report"):
            parts.append(f"root cause {update['report'].root_cause}")
        print(f"  ✓ {node}" + (f"  {' · '.join(parts)}" if parts else ""), file=stream, flush=True)

    return show


def _load_alert_file(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror}") from None
    if not isinstance(payload, dict):
        raise BadInput(f"{path}: expected a JSON object")
    return payload


def cmd_investigate(args: argparse.Namespace, path: Path | None = None) -> int:
    """Investigate an incident folder (replay) or an alert file (live sources)."""
    from sre_graph.ingest import AlertValidationError, parse_alert
    from sre_graph.render import to_json, to_markdown
    from sre_graph.runner import investigate
    from sre_graph.tools.replay import IncidentFormatError, load_incident

    path = path or Path(args.path)
    settings = load_settings(model=args.model, redis_url=args.redis_url, base_url=getattr(args, "base_url", None))
    incident_dir = None
    if path.is_dir():
        try:
            incident = load_incident(path)
        except IncidentFormatError as exc:
            raise BadInput(str(exc)) from None
        payload, incident_dir = incident.alert_payload, path
    elif path.exists():
        payload = _load_alert_file(path)
    else:
        raise BadInput(f"{path}: no such incident folder or alert file")
    try:
        parse_alert(payload)
    except AlertValidationError as exc:
        raise BadInput(f"{path}: {exc}") from None
    if not args.quiet:
        print(f"sre-graph: investigating {path} ({'replay' if incident_dir else 'live sources'})", file=sys.stderr)
    report = investigate(payload, incident_dir=incident_dir, settings=settings, thread_id=args.thread_id,
                         progress=None if args.quiet else _progress(sys.stderr))
    if report is None:
        raise BadInput("the investigation stopped before writing a report")
    print(to_json(report) if args.format == "json" else to_markdown(report))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Record an incident folder for an alert from the live sources in settings."""
    from sre_graph.context import live_sources
    from sre_graph.ingest import AlertValidationError, parse_alert
    from sre_graph.tools.record import record_incident

    if args.window_minutes <= 0:
        raise BadInput(f"--window-minutes must be positive, got {args.window_minutes}")
    path = Path(args.alert)
    payload = _load_alert_file(path)
    try:
        alert = parse_alert(payload)
    except AlertValidationError as exc:
        raise BadInput(f"{path}: {exc}") from None
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out}: already exists and is not an empty folder")
    from datetime import timedelta

    sources = live_sources(load_settings())
    if not any((sources.kubernetes, sources.signoz, sources.mongodb)):
        raise BadInput("no live source is configured: " + "; ".join(f"{k}: {v}" for k, v in
                                                                   sorted(sources.unavailable.items())))
    summary = record_incident(payload, alert, out, sources, namespaces=args.namespace,
                              window=timedelta(minutes=args.window_minutes))
    for source, reason in summary["failed"].items():
        print(f"sre-graph: {source} not recorded: {reason}", file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if v}, indent=1))
    print(f"sre-graph: recorded {out}; fill in expected in {out / 'incident.yaml'}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP service (configured from the environment) until interrupted."""
    import logging

    import uvicorn

    from sre_graph.server.app import create_app

    if not 0 < args.port < 65536:
        raise BadInput(f"--port must be between 1 and 65535, got {args.port}")
    settings = load_settings(replay_dir=str(demo_dir())) if args.demo else None
    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="sre-graph", description="Evidence-first root-cause analysis for alerts.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=("markdown", "json"), default="markdown", help="report format")
        p.add_argument("--model", default=None, help="'rules' (default) or an OpenAI-compatible model name")
        p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for --model")
        p.add_argument("--redis-url", default=None, help="checkpoint to Redis (default: in memory)")
        p.add_argument("--thread-id", default=None, help="checkpoint thread id (default: a new one)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    demo = sub.add_parser("demo", help="investigate the bundled demo incident, offline")
    common(demo)
    inv = sub.add_parser("investigate", help="investigate an incident folder or an alert JSON file")
    inv.add_argument("path", help="an incident folder (replayed) or an alert JSON file (live sources)")
    common(inv)
    rec = sub.add_parser("record", help="record an incident folder from live sources, for replay and evals")
    rec.add_argument("--alert", required=True, help="the alert JSON file (any supported payload)")
    rec.add_argument("--out", required=True, help="the incident folder to write (must not exist or be empty)")
    rec.add_argument("--namespace", action="append", default=[], help="namespace to record (repeatable; default: "
                     "the alert's namespace)")
    rec.add_argument("--window-minutes", type=int, default=180, help="minutes before the alert to record")
    srv = sub.add_parser("serve", help="run the HTTP service: alert webhooks, the Slack app, the incidents API")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    srv.add_argument("--demo", action="store_true", help="investigate every alert against the bundled demo "
                     "incident instead of live sources (sets SRE_GRAPH_REPLAY_DIR; demo only)")
    from sre_graph.evals.cli import add_eval_parser

    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return cmd_investigate(args, demo_dir())
        if args.command == "investigate":
            return cmd_investigate(args)
        if args.command == "record":
            return cmd_record(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "eval":
            from sre_graph.evals.cli import cmd_eval

            return cmd_eval(args)
    except BadInput as exc:
        print(f"sre-graph: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
