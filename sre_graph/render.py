"""Render a :class:`Report` as markdown for people or JSON for machines."""

from __future__ import annotations

from sre_graph.models import Report
from sre_graph.timeutil import iso


def to_json(report: Report) -> str:
    """The report as indented JSON."""
    return report.model_dump_json(indent=2)


def to_markdown(report: Report) -> str:
    """The report as markdown a person can read at a glance."""
    lines = [
        f"# {report.priority} · {report.title}",
        "",
        f"**Root cause:** {report.root_cause_title} (`{report.root_cause}`, domain: {report.domain or 'n/a'}) · "
        f"**confidence {report.confidence:.0%}**",
        "",
        report.root_cause_statement,
        "",
        "## Summary",
        report.summary,
        "",
        "## Impact",
        report.impact,
        "",
        "## Evidence",
    ]
    if not report.evidence:
        lines.append("_No evidence supports a conclusion._")
    for ev in report.evidence:
        when = f" ({iso(ev.timestamp)})" if ev.timestamp else ""
        lines.append(f"- **[{ev.id}]** {ev.source}{when}: {ev.summary}")
        lines.append(f"  - query: `{ev.query}`")
        if ev.excerpt:
            excerpt = "\n".join(ev.excerpt.splitlines()[:4])
            lines.append("  - excerpt:")
            lines.append("    ```")
            lines.extend(f"    {line[:200]}" for line in excerpt.splitlines())
            lines.append("    ```")
    lines += ["", "## Timeline"]
    for entry in report.timeline:
        cite = f" [{entry.evidence_id}]" if entry.evidence_id else ""
        lines.append(f"- {iso(entry.timestamp)} {entry.event}{cite}")
    lines += ["", "## Remediation"]
    lines += [f"{i}. {step}" for i, step in enumerate(report.remediation, 1)]
    if report.ruled_out:
        lines += ["", "## Ruled out"]
        lines += [f"- `{r.root_cause}`: {r.statement} — {r.reason}" for r in report.ruled_out]
    if report.unavailable_sources:
        lines += ["", "## Sources unavailable"]
        lines += [f"- {u}" for u in report.unavailable_sources]
    if report.dropped_claims:
        lines += ["", "## Claims dropped by verification"]
        lines += [f"- {d}" for d in report.dropped_claims]
    if report.root_cause == "unknown" and report.checked:
        lines += ["", "## What was checked"]
        lines += [f"- `{c}`" for c in report.checked[:30]]
    if report.model_notes:
        lines += ["", "## Model fallbacks"]
        lines += [f"- {n}" for n in report.model_notes]
    footer = (f"_sre-graph · model: {report.model} · rounds: {report.rounds} · data-source calls: "
              f"{report.tool_calls}")
    if report.tokens:
        prompt = sum(v.get("prompt_tokens", 0) for v in report.tokens.values())
        completion = sum(v.get("completion_tokens", 0) for v in report.tokens.values())
        footer += f" · tokens: {prompt} prompt + {completion} completion"
        footer += f" ({', '.join(f'{k} {sum(v.values())}' for k, v in report.tokens.items())})"
        footer += f" · cost ${report.cost:.4f}"
    footer += f" · alert at {iso(report.alert_time)} · generated {iso(report.generated_at)}_"
    lines += ["", footer, ""]
    return "\n".join(lines)
