"""The eval's outputs: ``results.json``, ``report.md``, a self-contained ``report.html`` and the stdout summary.

The HTML page loads nothing: no scripts, stylesheets, fonts or images from
anywhere. Its charts are SVG drawn here, inline.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from sre_graph import taxonomy
from sre_graph.evals.runner import CaseResult, EvalRun

OUTCOME_COLORS = {"pass": "#2e7d32", "partial": "#e0a000", "wrong": "#c62828", "unknown": "#757575",
                  "error": "#6a1b9a"}
"""One color per outcome, used by every chart and table."""


# --------------------------------------------------------------------- formatting helpers


def pct(value: float | None) -> str:
    """``0.9375`` → ``93.8%``; ``None`` → ``–``."""
    return "–" if value is None else f"{value * 100:.1f}%"


def secs(value: float | None) -> str:
    """Seconds with a unit, ``–`` for ``None``."""
    return "–" if value is None else f"{value:.2f}s"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (first column left-aligned, the rest right-aligned)."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


SUMMARY_HEADERS = ("group", "runs", "pass", "domain", "cause", "keywords", "sources", "red herring",
                   "median time", "tool calls")


def _summary_row(name: str, m: dict[str, Any]) -> list[str]:
    return [name, str(m["runs"]), pct(m["pass_rate"]), pct(m["domain_accuracy"]), pct(m["root_cause_accuracy"]),
            pct(m["keyword_recall"]), pct(m["evidence_source_coverage"]), pct(m["red_herring_rate"]),
            secs(m["wall_time_s"]["median"]), f"{m['tool_calls']['mean']:.0f}" if m["runs"] else "–"]


def summary_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """The summary table's rows: overall, then each domain, then each difficulty."""
    rows = [_summary_row("overall", metrics["overall"])]
    rows += [_summary_row(f"domain {name}", m) for name, m in metrics["by_domain"].items()]
    rows += [_summary_row(f"difficulty {name}", m) for name, m in metrics["by_difficulty"].items()]
    return rows


def summary_text(run: EvalRun) -> str:
    """What ``sre-graph eval`` prints on stdout: the summary table, then the failing cases."""
    metrics = run.metrics
    overall = metrics["overall"]
    lines = [text_table(SUMMARY_HEADERS, summary_rows(metrics)), ""]
    split = ", ".join(f"{o} {overall['outcomes'][o]}" for o in ("partial", "wrong", "unknown", "error")
                      if overall["outcomes"][o])
    lines.append(f"passed {overall['passed']}/{overall['runs']} runs ({pct(overall['pass_rate'])})"
                 + (f"; failures: {split}" if split else ""))
    times = overall["wall_time_s"]
    lines.append(f"time: median {secs(times['median'])}, p90 {secs(times['p90'])}, total {secs(times['total'])}")
    if overall["tokens"]:
        lines.append(f"tokens: {overall['tokens']['total']}" + (
            f", cost ${overall['cost_usd']['total']:.4f}" if overall["cost_usd"] else ""))
    if "repeats" in metrics:
        rep = metrics["repeats"]
        lines.append(f"pass rate over {len(rep['pass_rates'])} repeats: min {pct(rep['min'])}, "
                     f"max {pct(rep['max'])}, stdev {pct(rep['stdev'])}")
        lines.append("flaky: " + (", ".join(metrics["flaky_cases"]) or "none"))
    lines.append("failing: " + (", ".join(metrics["failing_cases"]) or "none"))
    return "\n".join(lines)


# --------------------------------------------------------------------- results.json


def write_results_json(run: EvalRun, path: Path) -> Path:
    """Write every case, criterion, conclusion, evidence, the metrics and the metadata."""
    path.write_text(json.dumps(run.as_dict(), indent=2, default=str) + "\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` back.

    Raises:
        ValueError: The file is missing, not JSON, or not an eval results document.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ValueError(f"{path}: not an eval results file (no 'cases' list)")
    return data


# --------------------------------------------------------------------- failing runs


def failed_results(results: Sequence[CaseResult]) -> list[CaseResult]:
    """Runs that did not pass, in case order."""
    return [r for r in results if not r.passed]


def _concluded(r: CaseResult) -> str:
    return r.root_cause or "error"


# --------------------------------------------------------------------- report.md


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _metadata_pairs(meta: dict[str, Any]) -> list[tuple[str, str]]:
    git = meta.get("git") or {}
    commit = git.get("commit", "")[:12] + (" (uncommitted changes)" if git.get("dirty") else "") if git else "n/a"
    return [
        ("model", str(meta.get("model"))),
        ("commit", commit),
        ("started", str(meta.get("started_at"))),
        ("duration", secs(meta.get("duration_s"))),
        ("incidents", str(meta.get("incidents_dir"))),
        ("cases × repeats", f"{meta.get('cases')} × {meta.get('repeat')} (concurrency {meta.get('concurrency')})"),
        ("filters", ", ".join(meta.get("filters") or []) or "none"),
    ]


def render_markdown(run: EvalRun) -> str:
    """``report.md``: metadata, the summary, failing cases side by side, every case, flakiness."""
    m = run.metrics
    o = m["overall"]
    parts = ["# sre-graph eval", ""]
    parts += [f"- **{k}**: {v}" for k, v in _metadata_pairs(run.metadata)]
    parts += ["", "## Summary", "", _md_table(SUMMARY_HEADERS, summary_rows(m)), ""]
    parts.append("Outcomes: " + ", ".join(f"{k} {v}" for k, v in o["outcomes"].items()) + ".  ")
    parts.append(f"Remediation keyword recall {pct(o['remediation_recall'])}; red herrings concluded in "
                 f"{pct(o['red_herring_rate'])} of {o['red_herring_runs']} runs with forbidden causes.  ")
    times = o["wall_time_s"]
    parts.append(f"Time per run: median {secs(times['median'])}, p90 {secs(times['p90'])}, "
                 f"total {secs(times['total'])}; tool calls {o['tool_calls']['total']} in all.")
    if o["tokens"]:
        parts.append(f"Tokens: {o['tokens']['total']} (input {o['tokens']['input']}, output {o['tokens']['output']})"
                     + (f"; cost ${o['cost_usd']['total']:.4f}" if o["cost_usd"] else "") + ".")
    if "repeats" in m:
        rep = m["repeats"]
        parts += ["", "## Repeats", "",
                  f"Pass rate per repeat: {', '.join(pct(x) for x in rep['pass_rates'])} "
                  f"(min {pct(rep['min'])}, max {pct(rep['max'])}, stdev {pct(rep['stdev'])}).", ""]
        flaky = [(cid, info) for cid, info in m["flakiness"].items() if info["flaky"]]
        if flaky:
            parts.append(_md_table(("case", "passes", "root causes concluded"),
                                   [(cid, f"{i['passes']}/{i['runs']}",
                                     ", ".join(f"{k} ×{v}" for k, v in i["root_causes"].items()))
                                    for cid, i in flaky]))
        else:
            parts.append("No flaky cases.")
    failed = failed_results(run.results)
    parts += ["", f"## Failing runs ({len(failed)})", ""]
    if failed:
        parts.append(_md_table(
            ("case", "run", "outcome", "expected cause", "concluded cause", "expected domain", "concluded domain",
             "missing keywords", "missing sources", "statement / error"),
            [(r.case_id, str(r.run), r.outcome, r.expected_root_cause, _concluded(r), r.expected_domain,
              str(r.domain or "–"), ", ".join(r.criterion("keywords_missing", []) or []) or "–",
              ", ".join(r.criterion("sources_missing", []) or []) or "–", r.error or r.statement)
             for r in failed]))
    else:
        parts.append("Every run passed.")
    parts += ["", "## Every run", "", _md_table(
        ("case", "run", "difficulty", "expected", "concluded", "outcome", "time", "tool calls"),
        [(r.case_id, str(r.run), r.difficulty, r.expected_root_cause, _concluded(r), r.outcome,
          secs(r.wall_time_s), str(r.tool_calls)) for r in run.results]), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------- SVG charts

_FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


def _rate_color(rate: float | None) -> str:
    if rate is None:
        return "#bdbdbd"
    if rate >= 0.9:
        return OUTCOME_COLORS["pass"]
    if rate >= 0.6:
        return OUTCOME_COLORS["partial"]
    return OUTCOME_COLORS["wrong"]


def svg_rate_bars(groups: dict[str, dict[str, Any]], title: str) -> str:
    """A vertical bar chart of pass rate per group (0–100 %), each bar labelled with its rate and counts."""
    names = list(groups)
    bar, gap, left, top, plot_h = 56, 24, 44, 34, 160
    width = max(left + len(names) * (bar + gap) + gap, 320)
    height = top + plot_h + 46
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {_FONT} font-size="12">',
           f"<title>{escape(title)}</title>",
           f'<text x="{left}" y="16" font-size="14" font-weight="600" fill="#222">{escape(title)}</text>']
    for tick in (0, 25, 50, 75, 100):
        y = top + plot_h - plot_h * tick / 100
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#666">{tick}%</text>')
    for i, name in enumerate(names):
        m = groups[name]
        rate = m["pass_rate"]
        x = left + gap + i * (bar + gap)
        h = plot_h * (rate or 0)
        y = top + plot_h - h
        label = f"{pct(rate)} ({m['passed']}/{m['runs']})"
        out.append(f'<rect class="bar" x="{x}" y="{y:.1f}" width="{bar}" height="{max(h, 1):.1f}" rx="3" '
                   f'fill="{_rate_color(rate)}"><title>{escape(name)}: {escape(label)}</title></rect>')
        out.append(f'<text x="{x + bar / 2}" y="{y - 5:.1f}" text-anchor="middle" fill="#222" font-size="11">'
                   f"{escape(pct(rate))}</text>")
        out.append(f'<text x="{x + bar / 2}" y="{top + plot_h + 16}" text-anchor="middle" fill="#222">'
                   f"{escape(name)}</text>")
        out.append(f'<text x="{x + bar / 2}" y="{top + plot_h + 31}" text-anchor="middle" fill="#777" '
                   f'font-size="10">{m["passed"]}/{m["runs"]}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _taxonomy_order(ids: set[str]) -> list[str]:
    known = [rc for rc in taxonomy.ROOT_CAUSES if rc in ids]
    return known + sorted(i for i in ids if i not in taxonomy.ROOT_CAUSES)


def svg_confusion_matrix(results: Sequence[CaseResult]) -> str:
    """Expected root cause (rows) × concluded root cause (columns), one cell per pair seen.

    Cells are green when every run in them concluded an accepted cause, red when none did,
    amber when mixed; the stronger the color, the more runs.
    """
    cells: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for r in results:
        cells[(r.expected_root_cause, _concluded(r))].append(r)
    rows = _taxonomy_order({k[0] for k in cells})
    cols = _taxonomy_order({k[1] for k in cells})
    size, left, top = 30, 190, 150
    width, height = left + len(cols) * size + 20, top + len(rows) * size + 36
    most = max((len(v) for v in cells.values()), default=1)
    title = "Root cause: expected × concluded"
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}" {_FONT} font-size="11">',
           f"<title>{title}</title>",
           f'<text x="8" y="16" font-size="14" font-weight="600" fill="#222">{title}</text>',
           f'<text x="{left - 8}" y="{top - 8}" text-anchor="end" fill="#666" font-style="italic">'
           "expected ↓ / concluded →</text>"]
    for j, col in enumerate(cols):
        x = left + j * size + size / 2
        out.append(f'<text transform="translate({x + 4:.1f},{top - 6}) rotate(-55)" fill="#222">{escape(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * size
        out.append(f'<text x="{left - 8}" y="{y + size / 2 + 4:.1f}" text-anchor="end" fill="#222">'
                   f"{escape(row)}</text>")
        for j, col in enumerate(cols):
            x = left + j * size
            runs = cells.get((row, col), [])
            if not runs:
                out.append(f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="#fafafa" stroke="#eee"/>')
                continue
            right = sum(1 for r in runs if r.criterion("root_cause_ok", False))
            color = OUTCOME_COLORS["pass"] if right == len(runs) else (
                OUTCOME_COLORS["wrong"] if right == 0 else OUTCOME_COLORS["partial"])
            opacity = 0.35 + 0.65 * len(runs) / most
            cases = ", ".join(sorted({r.case_id for r in runs}))
            out.append(f'<rect class="cell" x="{x}" y="{y}" width="{size}" height="{size}" fill="{color}" '
                       f'fill-opacity="{opacity:.2f}" stroke="#fff"><title>{escape(row)} → {escape(col)}: '
                       f"{len(runs)} run(s): {escape(cases)}</title></rect>")
            out.append(f'<text x="{x + size / 2}" y="{y + size / 2 + 4:.1f}" text-anchor="middle" fill="#fff" '
                       f'font-weight="600">{len(runs)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def svg_time_bars(results: Sequence[CaseResult]) -> str:
    """Horizontal bars: mean wall time per case, colored by the case's worst outcome."""
    by_case: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_case[r.case_id].append(r)
    rank = {o: i for i, o in enumerate(OUTCOME_COLORS)}
    rows = []
    for case_id, runs in by_case.items():
        mean = sum(r.wall_time_s for r in runs) / len(runs)
        worst = max((r.outcome for r in runs), key=lambda o: rank.get(o, 0))
        rows.append((case_id, mean, worst))
    longest = max((len(c) for c, _, _ in rows), default=10)
    left = min(max(120, longest * 6.6 + 12), 330)
    bar_h, gap, top, plot_w = 16, 6, 30, 300
    width = int(left + plot_w + 70)
    height = top + len(rows) * (bar_h + gap) + 30
    most = max((t for _, t, _ in rows), default=0) or 1.0
    title = "Wall time per case"
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}" {_FONT} font-size="11">',
           f"<title>{title}</title>",
           f'<text x="8" y="16" font-size="14" font-weight="600" fill="#222">{title}</text>']
    for i, (case_id, mean, worst) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = max(plot_w * mean / most, 1)
        out.append(f'<text x="{left - 6:.0f}" y="{y + bar_h - 4}" text-anchor="end" fill="#222">'
                   f"{escape(case_id)}</text>")
        out.append(f'<rect class="bar" x="{left:.0f}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" '
                   f'fill="{OUTCOME_COLORS.get(worst, "#999")}"><title>{escape(case_id)}: {secs(mean)} '
                   f"({escape(worst)})</title></rect>")
        out.append(f'<text x="{left + w + 5:.1f}" y="{y + bar_h - 4}" fill="#444">{secs(mean)}</text>')
    legend_y = height - 10
    x = left
    for outcome, color in OUTCOME_COLORS.items():
        out.append(f'<rect x="{x:.0f}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{legend_y}" fill="#444">{outcome}</text>')
        x += 22 + len(outcome) * 6.5
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------- report.html

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px 32px; color: #222;
       background: #fff; font-size: 14px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta { color: #555; margin-bottom: 16px; display: flex; flex-wrap: wrap; gap: 4px 18px; }
.meta span { overflow-wrap: anywhere; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 8px; }
.kpi { border: 1px solid #e3e3e3; border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.kpi .v { font-size: 20px; font-weight: 600; } .kpi .l { color: #666; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.charts figure { margin: 0; border: 1px solid #eee; border-radius: 8px; padding: 10px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; color: #fff; font-size: 12px; }
.bad { color: #c62828; font-weight: 600; } .ok { color: #2e7d32; }
.statement { max-width: 460px; color: #333; } code { font-size: 12px; }
.failed td { background: #fffafa; } .failed td:first-child { min-width: 230px; }
"""


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counts.items())


def _badge(outcome: str) -> str:
    return f'<span class="badge" style="background:{OUTCOME_COLORS.get(outcome, "#999")}">{escape(outcome)}</span>'


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "",
                numeric: Sequence[int] = ()) -> str:
    """A table; cells are trusted HTML (escape them before)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _vs(expected: str, concluded: str, ok: bool) -> tuple[str, str]:
    return f"<code>{escape(expected)}</code>", f'<code class="{"ok" if ok else "bad"}">{escape(concluded)}</code>'


def _failed_rows(failed: Sequence[CaseResult]) -> list[list[str]]:
    rows = []
    for r in failed:
        exp_rc, got_rc = _vs(r.expected_root_cause, _concluded(r), bool(r.criterion("root_cause_ok", False)))
        exp_d, got_d = _vs(r.expected_domain, str(r.domain or "–"), bool(r.criterion("domain_ok", False)))
        missing_kw = r.criterion("keywords_missing", []) or []
        missing_src = r.criterion("sources_missing", []) or []
        note = escape(r.error) if r.error else escape(r.statement)
        if r.criterion("forbidden_hit", False):
            note = '<span class="bad">red herring concluded.</span> ' + note
        rows.append([f"<b>{escape(r.case_id)}</b><br><small>{escape(r.difficulty)} · run {r.run}</small>",
                     _badge(r.outcome), exp_rc, got_rc, exp_d, got_d,
                     escape(", ".join(missing_kw)) or "–", escape(", ".join(missing_src)) or "–",
                     f'<div class="statement">{note}</div>'])
    return rows


def _group_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[escape(name), str(m["runs"]), pct(m["pass_rate"]), pct(m["domain_accuracy"]),
             pct(m["root_cause_accuracy"]), pct(m["keyword_recall"]), pct(m["evidence_source_coverage"]),
             pct(m["red_herring_rate"]), pct(m["remediation_recall"]), secs(m["wall_time_s"]["median"]),
             secs(m["wall_time_s"]["p90"])] for name, m in groups.items()]


def render_html(run: EvalRun) -> str:
    """``report.html``: one self-contained page (inline CSS and SVG, no scripts, nothing fetched)."""
    m = run.metrics
    o = m["overall"]
    meta = "".join(f"<span><b>{escape(k)}</b>: {escape(v)}</span>" for k, v in _metadata_pairs(run.metadata))
    kpis = [("pass rate", f"{pct(o['pass_rate'])}", f"{o['passed']}/{o['runs']} runs"),
            ("domain accuracy", pct(o["domain_accuracy"]), ""),
            ("root-cause accuracy", pct(o["root_cause_accuracy"]), ""),
            ("keyword recall", pct(o["keyword_recall"]), ""),
            ("evidence sources", pct(o["evidence_source_coverage"]), "coverage"),
            ("red herrings", pct(o["red_herring_rate"]), f"of {o['red_herring_runs']} runs"),
            ("remediation recall", pct(o["remediation_recall"]), ""),
            ("median time", secs(o["wall_time_s"]["median"]), f"p90 {secs(o['wall_time_s']['p90'])}"),
            ("tool calls", str(o["tool_calls"]["total"]), f"mean {o['tool_calls']['mean']}")]
    if o["tokens"]:
        kpis.append(("tokens", str(o["tokens"]["total"]),
                     f"${o['cost_usd']['total']:.4f}" if o["cost_usd"] else ""))
    if "repeats" in m:
        rep = m["repeats"]
        kpis.append(("pass-rate spread", f"{pct(rep['min'])}–{pct(rep['max'])}", f"stdev {pct(rep['stdev'])}"))
    kpi_html = "".join(f'<div class="kpi"><div class="v">{escape(v)}</div><div class="l">{escape(label)}'
                       f"{(' · ' + escape(sub)) if sub else ''}</div></div>" for label, v, sub in kpis)
    split = " · ".join(f"{_badge(k)} {v}" for k, v in o["outcomes"].items())
    charts = "".join(f"<figure>{svg}</figure>" for svg in (
        svg_rate_bars(m["by_domain"], "Pass rate by domain"),
        svg_rate_bars(m["by_difficulty"], "Pass rate by difficulty"),
        svg_confusion_matrix(run.results),
        svg_time_bars(run.results)))
    group_headers = ("group", "runs", "pass", "domain", "root cause", "keywords", "sources", "red herring",
                     "remediation", "median time", "p90 time")
    failed = failed_results(run.results)
    failed_html = _html_table(
        ("case", "outcome", "expected cause", "concluded cause", "expected domain", "concluded domain",
         "missing keywords", "missing sources", "root-cause statement / error"),
        _failed_rows(failed), cls="failed") if failed else "<p>Every run passed.</p>"
    every = _html_table(
        ("case", "run", "difficulty", "expected", "concluded", "outcome", "evidence", "time", "tool calls"),
        [[escape(r.case_id), str(r.run), escape(r.difficulty), f"<code>{escape(r.expected_root_cause)}</code>",
          f"<code>{escape(_concluded(r))}</code>", _badge(r.outcome),
          escape(", ".join(f"{k} ×{v}" for k, v in Counter(e["source"] for e in r.evidence).items())) or "–",
          secs(r.wall_time_s), str(r.tool_calls)] for r in run.results], numeric=(1, 7, 8))
    flaky_html = ""
    if "flakiness" in m:
        flaky = [(cid, i) for cid, i in m["flakiness"].items() if i["flaky"]]
        flaky_html = "<h2>Flaky cases</h2>" + (_html_table(
            ("case", "passes", "outcomes", "root causes concluded"),
            [[escape(cid), f"{i['passes']}/{i['runs']}", escape(_counts(i["outcomes"])),
              escape(_counts(i["root_causes"]))] for cid, i in flaky])
            if flaky else "<p>No flaky cases.</p>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sre-graph eval · {escape(pct(o['pass_rate']))} pass</title>
<style>{_CSS}</style>
</head>
<body>
<h1>sre-graph eval</h1>
<div class="meta">{meta}</div>
<div class="kpis">{kpi_html}</div>
<p>Outcomes: {split}</p>
<h2 id="charts">Charts</h2>
<div class="charts">{charts}</div>
<h2>By domain</h2>
{_html_table(group_headers, _group_rows(m["by_domain"]), numeric=(1,))}
<h2>By difficulty</h2>
{_html_table(group_headers, _group_rows(m["by_difficulty"]), numeric=(1,))}
<h2 id="failing">Failing runs ({len(failed)})</h2>
{failed_html}
{flaky_html}
<h2 id="runs">Every run</h2>
{every}
</body>
</html>
"""


def write_reports(run: EvalRun, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and ``report.html`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_results_json(run, out / "results.json"),
             "markdown": out / "report.md", "html": out / "report.html"}
    paths["markdown"].write_text(render_markdown(run))
    paths["html"].write_text(render_html(run))
    return paths
