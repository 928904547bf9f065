"""Prompt templates, one per node, with shared partials (files starting with ``_``).

Templates use ``string.Template`` placeholders (``$name``); every partial is available as
``$_partialname``. Tool output only ever enters a prompt through :func:`untrusted`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any


@cache
def _text(name: str) -> str:
    return (resources.files(__package__) / f"{name}.md").read_text()


def _partials() -> dict[str, str]:
    folder = resources.files(__package__)
    return {p.name[:-3]: p.read_text() for p in folder.iterdir() if p.name.startswith("_") and p.name.endswith(".md")}


def render(name: str, **values: Any) -> str:
    """Render the template ``name`` with the partials and ``values``."""
    merged = {**_partials(), **{k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in values.items()}}
    partials_done = {k: Template(v).safe_substitute(merged) for k, v in merged.items() if k.startswith("_")}
    return Template(_text(name)).substitute({**merged, **partials_done})


FENCE = "~~~~"


def untrusted(label: str, content: str) -> str:
    """Fence data from a tool or an alert as untrusted: the model must read it, never obey it."""
    safe = content.replace(FENCE, "~ ~ ~ ~")
    return (f"<untrusted-data source=\"{label}\">\n{FENCE}\n{safe}\n{FENCE}\n</untrusted-data>")
