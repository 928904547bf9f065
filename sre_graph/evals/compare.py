"""``sre-graph eval --compare A.json B.json``: what changed between two eval runs.

A case *passes* in a run file when every one of its runs passed; with repeats
the pass fraction is shown beside it. Its concluded root cause is the one its
runs concluded most often.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sre_graph.evals.reports import pct


@dataclass
class CaseState:
    """One case in one results file."""

    runs: int
    passes: int
    root_cause: str
    """The most frequently concluded root cause (``error`` when the runs raised)."""

    @property
    def passed(self) -> bool:
        """Every run passed."""
        return self.passes == self.runs

    def label(self) -> str:
        """``pass``/``fail``, with the pass fraction when there were repeats."""
        word = "pass" if self.passed else "fail"
        return word if self.runs == 1 else f"{word} ({self.passes}/{self.runs})"


@dataclass
class CaseChange:
    """A case present in both files, before (A) and after (B)."""

    case_id: str
    before: CaseState
    after: CaseState


@dataclass
class Comparison:
    """The difference between results file A (before) and B (after)."""

    broken: list[CaseChange] = field(default_factory=list)
    """pass → fail."""
    fixed: list[CaseChange] = field(default_factory=list)
    """fail → pass."""
    cause_changed: list[CaseChange] = field(default_factory=list)
    """The concluded root cause differs."""
    added: list[str] = field(default_factory=list)
    """Cases only in B."""
    removed: list[str] = field(default_factory=list)
    """Cases only in A."""
    before_rate: float | None = None
    after_rate: float | None = None
    common_before_rate: float | None = None
    """The pass rates over the cases in both files."""
    common_after_rate: float | None = None
    before_label: str = "A"
    after_label: str = "B"

    @property
    def delta(self) -> float | None:
        """The overall pass-rate change, B minus A."""
        if self.before_rate is None or self.after_rate is None:
            return None
        return self.after_rate - self.before_rate


def case_states(results: dict[str, Any]) -> dict[str, CaseState]:
    """Per case id, its runs, passes and most concluded root cause, from a ``results.json`` document."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in results.get("cases") or []:
        case_id = case.get("case_id") or case.get("id")
        if case_id:
            runs[str(case_id)].append(case)
    states = {}
    for case_id, items in runs.items():
        causes = Counter(str(i.get("root_cause") or "error") for i in items)
        states[case_id] = CaseState(runs=len(items), passes=sum(1 for i in items if i.get("outcome") == "pass"),
                                    root_cause=causes.most_common(1)[0][0])
    return states


def _rate(states: dict[str, CaseState], ids: set[str] | None = None) -> float | None:
    chosen = [s for cid, s in states.items() if ids is None or cid in ids]
    total = sum(s.runs for s in chosen)
    return sum(s.passes for s in chosen) / total if total else None


def _label(results: dict[str, Any], fallback: str) -> str:
    meta = results.get("metadata") or {}
    git = meta.get("git") or {}
    parts = [fallback, f"model {meta.get('model')}" if meta.get("model") else "",
             f"commit {str(git.get('commit'))[:10]}" if git.get("commit") else "",
             str(meta.get("started_at") or "")]
    return ", ".join(p for p in parts if p)


def compare_results(before: dict[str, Any], after: dict[str, Any], *, before_name: str = "A",
                    after_name: str = "B") -> Comparison:
    """Compare two ``results.json`` documents (before = A, after = B)."""
    a, b = case_states(before), case_states(after)
    common = set(a) & set(b)
    out = Comparison(added=sorted(set(b) - set(a)), removed=sorted(set(a) - set(b)),
                     before_rate=_rate(a), after_rate=_rate(b),
                     common_before_rate=_rate(a, common), common_after_rate=_rate(b, common),
                     before_label=_label(before, before_name), after_label=_label(after, after_name))
    for case_id in sorted(common):
        change = CaseChange(case_id, a[case_id], b[case_id])
        if change.before.passed and not change.after.passed:
            out.broken.append(change)
        elif not change.before.passed and change.after.passed:
            out.fixed.append(change)
        if change.before.root_cause != change.after.root_cause:
            out.cause_changed.append(change)
    return out


def format_comparison(comparison: Comparison) -> str:
    """The text ``--compare`` prints."""
    c = comparison
    lines = [f"A: {c.before_label}", f"B: {c.after_label}", ""]
    delta = c.delta
    lines.append(f"pass rate: {pct(c.before_rate)} → {pct(c.after_rate)} "
                 f"({'n/a' if delta is None else f'{delta * 100:+.1f} points'})")
    if (c.added or c.removed) and c.common_before_rate is not None:
        lines.append(f"on the cases in both: {pct(c.common_before_rate)} → {pct(c.common_after_rate)}")
    sections = (("pass → fail", c.broken), ("fail → pass", c.fixed))
    for title, changes in sections:
        lines += ["", f"{title} ({len(changes)}):"]
        lines += [f"  {ch.case_id}: {ch.before.label()} → {ch.after.label()}  "
                  f"[{ch.before.root_cause} → {ch.after.root_cause}]" for ch in changes] or ["  none"]
    lines += ["", f"concluded root cause changed ({len(c.cause_changed)}):"]
    lines += [f"  {ch.case_id}: {ch.before.root_cause} → {ch.after.root_cause}" for ch in c.cause_changed] or [
        "  none"]
    if c.added:
        lines += ["", f"only in B ({len(c.added)}): {', '.join(c.added)}"]
    if c.removed:
        lines += ["", f"only in A ({len(c.removed)}): {', '.join(c.removed)}"]
    return "\n".join(lines)
