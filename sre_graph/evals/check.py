"""``sre-graph eval --check``: validate incident folders against ``shared/INCIDENT_FORMAT.md``.

Every problem is reported (not just the first), each as ``<folder>/<file>: message``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from sre_graph import taxonomy
from sre_graph.models import DATA_SOURCES
from sre_graph.timeutil import parse_time

DIFFICULTIES = ("easy", "medium", "hard")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
"""A full RFC 3339 date-time, as ``kubectl logs --timestamps`` prints it."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file of one incident folder."""

    folder: str
    file: str
    """The path inside the folder (``incident.yaml``, ``kubernetes/pods.json``…)."""
    message: str

    def __str__(self) -> str:
        """``<folder>/<file>: message``."""
        return f"{self.folder}/{self.file}: {self.message}"


class _Checker:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.problems: list[Problem] = []

    def add(self, file: str | Path, message: str) -> None:
        self.problems.append(Problem(self.folder.name, str(file), message))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    # ----------------------------------------------------------------- incident.yaml

    def meta(self) -> dict[str, Any] | None:
        path = self.folder / "incident.yaml"
        if not path.is_file():
            self.add("incident.yaml", "missing (every incident folder needs it)")
            return None
        try:
            meta = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            self.add("incident.yaml", f"invalid YAML: {' '.join(str(exc).split())}")
            return None
        if not isinstance(meta, dict):
            self.add("incident.yaml", "expected a mapping")
            return None
        self._top(meta)
        expected = meta.get("expected")
        if not isinstance(expected, dict):
            self.add("incident.yaml", "missing required key 'expected' (a mapping)")
        else:
            self._expected(expected)
        return meta

    def _top(self, meta: dict[str, Any]) -> None:
        for key in ("id", "title", "difficulty"):
            if meta.get(key) in (None, ""):
                self.add("incident.yaml", f"missing required key '{key}'")
        if meta.get("id") not in (None, "") and str(meta["id"]) != self.folder.name:
            self.add("incident.yaml", f"id {meta['id']!r} does not equal the folder name {self.folder.name!r}")
        if meta.get("difficulty") not in (None, "") and meta["difficulty"] not in DIFFICULTIES:
            self.add("incident.yaml", f"difficulty {meta['difficulty']!r} is not one of {', '.join(DIFFICULTIES)}")
        unavailable = meta.get("unavailable")
        if unavailable is not None:
            if not isinstance(unavailable, list):
                self.add("incident.yaml", "unavailable must be a list of source names")
            else:
                for name in unavailable:
                    if name not in DATA_SOURCES:
                        self.add("incident.yaml", f"unavailable names unknown source {name!r} "
                                                  f"(known: {', '.join(DATA_SOURCES)})")

    def _ids(self, expected: dict[str, Any], key: str) -> list[str]:
        value = expected.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add("incident.yaml", f"expected.{key} must be a list of root-cause ids")
            return []
        for item in value:
            if item not in taxonomy.ROOT_CAUSES:
                self.add("incident.yaml", f"expected.{key} names {item!r}, not a taxonomy id")
        return [str(v) for v in value]

    def _expected(self, expected: dict[str, Any]) -> None:
        domain = expected.get("domain")
        cause = expected.get("root_cause")
        if domain in (None, ""):
            self.add("incident.yaml", "missing required key 'expected.domain'")
        elif domain not in taxonomy.DOMAINS:
            self.add("incident.yaml", f"expected.domain {domain!r} is not one of {', '.join(taxonomy.DOMAINS)}")
        if cause in (None, ""):
            self.add("incident.yaml", "missing required key 'expected.root_cause'")
        elif cause not in taxonomy.ROOT_CAUSES:
            self.add("incident.yaml", f"expected.root_cause {cause!r} is not a taxonomy id")
        elif cause != taxonomy.UNKNOWN and domain in taxonomy.DOMAINS and taxonomy.domain_of(cause) != domain:
            self.add("incident.yaml", f"expected.domain {domain!r} does not match root cause {cause!r}, "
                                      f"which is {taxonomy.domain_of(cause)!r}")
        acceptable = self._ids(expected, "acceptable_root_causes")
        forbidden = self._ids(expected, "forbidden_root_causes")
        clash = sorted(set(forbidden) & {*acceptable, str(cause)})
        if clash:
            self.add("incident.yaml", f"expected.forbidden_root_causes also accepts {', '.join(clash)}")
        sources = expected.get("required_evidence_sources")
        if sources is not None:
            if not isinstance(sources, list):
                self.add("incident.yaml", "expected.required_evidence_sources must be a list")
            else:
                for name in sources:
                    if name not in DATA_SOURCES:
                        self.add("incident.yaml", f"expected.required_evidence_sources names unknown source "
                                                  f"{name!r} (known: {', '.join(DATA_SOURCES)})")
        for key in ("required_keywords", "remediation_keywords"):
            if expected.get(key) is not None and not isinstance(expected[key], list):
                self.add("incident.yaml", f"expected.{key} must be a list")

    # ----------------------------------------------------------------- alert.json and the clock

    def alert(self) -> datetime | None:
        """Check alert.json; return the alert's start time when it parses."""
        from sre_graph.ingest import AlertValidationError, parse_alert

        path = self.folder / "alert.json"
        if not path.is_file():
            self.add("alert.json", "missing (every incident folder needs it)")
            return None
        payload = self._json(path)
        if payload is None:
            return None
        try:
            return parse_alert(payload).timestamp
        except AlertValidationError as exc:
            self.add("alert.json", f"not an alert sre-graph ingests: {' '.join(str(exc).split())}")
            return None

    def now(self, meta: dict[str, Any], start: datetime | None) -> None:
        if meta.get("now") in (None, ""):
            return
        try:
            now = parse_time(meta["now"])
        except (ValueError, TypeError, OverflowError) as exc:
            self.add("incident.yaml", f"now {meta['now']!r} is not a time: {exc}")
            return
        if start is not None and now is not None and now <= start:
            self.add("incident.yaml", f"now {meta['now']} is not after the alert start {start.isoformat()}")

    # ----------------------------------------------------------------- data files

    def _json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            self.add(self.rel(path), f"invalid JSON at line {exc.lineno}: {exc.msg}")
        except (OSError, UnicodeDecodeError) as exc:
            self.add(self.rel(path), f"unreadable: {exc}")
        return None

    def _jsonl(self, path: Path) -> None:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            self.add(self.rel(path), f"unreadable: {exc}")
            return
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                self.add(self.rel(path), f"line {number}: invalid JSON: {exc.msg}")
                continue
            if not isinstance(row, dict):
                self.add(self.rel(path), f"line {number}: expected a JSON object")

    def data_files(self) -> None:
        for path in sorted(self.folder.rglob("*")):
            if not path.is_file() or (path.name == "alert.json" and path.parent == self.folder):
                continue
            if path.suffix == ".jsonl":
                self._jsonl(path)
            elif path.suffix == ".json":
                data = self._json(path)
                if data is not None and path.parent == self.folder / "kubernetes":
                    self._k8s_list(path, data)
            elif path.suffix == ".log" and (self.folder / "kubernetes" / "logs") in path.parents:
                self._log(path)

    def _k8s_list(self, path: Path, data: Any) -> None:
        if not isinstance(data, dict) or data.get("kind") != "List" or not isinstance(data.get("items"), list):
            self.add(self.rel(path), "expected a List object ({\"kind\": \"List\", \"items\": [...]}) "
                                     "as kubectl get -A -o json prints it")

    def _log(self, path: Path) -> None:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            self.add(self.rel(path), f"unreadable: {exc}")
            return
        bad = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            head = line.split(" ", 1)[0]
            try:
                ok = bool(RFC3339.match(head)) and parse_time(head) is not None
            except ValueError:
                ok = False
            if not ok:
                bad.append(number)
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            self.add(self.rel(path), f"line {bad[0]}{more}: does not start with an RFC 3339 timestamp "
                                     "(kubectl logs --timestamps)")


def check_incident(folder: str | Path) -> list[Problem]:
    """Every problem in one incident folder."""
    checker = _Checker(Path(folder))
    meta = checker.meta()
    start = checker.alert()
    if meta is not None:
        checker.now(meta, start)
    checker.data_files()
    return checker.problems


def incident_folders(root: str | Path) -> list[Path]:
    """The folders ``--check`` looks at.

    ``root`` itself if it holds ``incident.yaml``, else its visible sub-folders (a sub-folder without
    ``incident.yaml`` is itself a problem).
    """
    root = Path(root)
    if (root / "incident.yaml").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def check_all(root: str | Path) -> list[Problem]:
    """Every problem in every incident folder under ``root`` (or in ``root`` if it is one)."""
    problems: list[Problem] = []
    for folder in incident_folders(root):
        problems += check_incident(folder)
    return problems
