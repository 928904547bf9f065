"""Output control for tool results: whole records only, a character cap, repeated lines grouped."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_MAX_CHARS = 8000

_VARIABLE = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"  # uuids
    r"|\b[0-9a-f]{12,}\b"  # hex ids
    r"|\b\d+(?:\.\d+)?(?:ms|s|%)?\b",  # numbers
    re.IGNORECASE,
)


def line_shape(text: str) -> str:
    """A line with its variable parts (ids, numbers) blanked, so repeats group together."""
    return _VARIABLE.sub("#", text)


@dataclass
class Capped:
    """Records that fit the cap, and how many were left out."""

    text: str
    shown: int
    omitted: int


def cap_records(records: Iterable[str], max_chars: int = DEFAULT_MAX_CHARS, *, hint: str = "") -> Capped:
    """Join whole records (never cut one) until the next would pass ``max_chars``; say how many were left out."""
    items = list(records)
    out: list[str] = []
    used = 0
    for record in items:
        cost = len(record) + 1
        if out and used + cost > max_chars:
            break
        if not out and cost > max_chars:
            # a single record larger than the cap: keep its head, marked, rather than nothing
            out.append(record[: max_chars - 40] + f" …[record cut at {max_chars} chars]")
            used = max_chars
            break
        out.append(record)
        used += cost
    omitted = len(items) - len(out)
    text = "\n".join(out)
    if omitted:
        text += f"\n… {omitted} more record(s) left out to stay under {max_chars} characters" + (
            f"; {hint}" if hint else "")
    return Capped(text=text, shown=len(out), omitted=omitted)


@dataclass
class Group:
    """Lines of one shape: how many, first and last time, one example."""

    example: str
    count: int
    first: str
    last: str


def group_lines(lines: Iterable[tuple[str, str]]) -> list[Group]:
    """Group ``(timestamp, text)`` lines by shape, in order of first appearance."""
    groups: dict[str, Group] = {}
    for ts, text in lines:
        key = line_shape(text)
        group = groups.get(key)
        if group is None:
            groups[key] = Group(example=text, count=1, first=ts, last=ts)
        else:
            group.count += 1
            if ts and (not group.first or ts < group.first):
                group.first = ts
            if ts and ts > group.last:
                group.last = ts
    return list(groups.values())


def render_groups(groups: list[Group]) -> list[str]:
    """One record per group: single lines as they are, repeats with their count and span."""
    out = []
    for g in groups:
        if g.count == 1:
            out.append(f"{g.first} {g.example}".strip())
        else:
            out.append(f"×{g.count} {g.first} … {g.last} {g.example}")
    return out
