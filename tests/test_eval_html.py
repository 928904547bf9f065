"""``report.html`` in a real browser: headless Chromium renders it, the charts are in the DOM, nothing errors.

Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``); the test fails, never skips,
without it.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from sre_graph.evals.metrics import compute_metrics
from sre_graph.evals.reports import write_reports
from sre_graph.evals.runner import CaseResult, EvalRun, discover_cases, run_eval
from sre_graph.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--enable-logging=stderr", "--v=0"]
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own throwaway profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (scripts/test.sh installs it)")
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``report.html`` for a small real run (three incidents), plus a failing and an erroring run."""
    cases = discover_cases(REPO / "evals" / "incidents")[:3]
    assert len(cases) == 3
    run = run_eval(cases, settings=load_settings(model="rules"), concurrency=2)
    wrong = CaseResult(case_id="synthetic-wrong", run=0, title="t", difficulty="hard",
                       expected={"domain": "database", "root_cause": "missing_index",
                                 "required_keywords": ["orders"], "required_evidence_sources": ["mongodb"],
                                 "forbidden_root_causes": ["oom_killed"]},
                       outcome="wrong", root_cause="oom_killed", domain="infrastructure", statement=HOSTILE,
                       score={"passed": False, "domain_ok": False, "root_cause_ok": False, "forbidden_hit": True,
                              "keywords_missing": ["orders"], "keyword_recall": 0.0,
                              "sources_missing": ["mongodb"], "source_coverage": 0.0, "remediation_recall": 0.0,
                              "outcome": "wrong"},
                       evidence=[{"id": "k8s-1", "source": "kubernetes", "summary": "OOMKilled"}],
                       wall_time_s=0.7, tool_calls=12)
    error = CaseResult(case_id="synthetic-error", run=0, title="t", difficulty="easy",
                       expected={"domain": "network", "root_cause": "dns_failure"}, outcome="error",
                       error="IncidentFormatError: alert.json: invalid JSON", wall_time_s=0.01)
    results = [*run.results, wrong, error]
    full = EvalRun(results=results, metrics=compute_metrics(results), metadata=run.metadata)
    return write_reports(full, tmp_path_factory.mktemp("report"))["html"]


def test_html_is_self_contained(report_html: Path) -> None:
    """No scripts, stylesheets, fonts or images from anywhere; report text is escaped."""
    html = report_html.read_text()
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I), "the page must not load or run code"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I), "nothing fetched from anywhere"
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "@import" not in style and "url(" not in style, "no fonts or images from the stylesheet"
    assert "&lt;script&gt;" in html, "report text is escaped"


def test_html_renders_in_chromium(report_html: Path, tmp_path: Path) -> None:
    """Chromium renders the page without errors; charts and failing runs are in the DOM."""
    proc = chromium(tmp_path / "profile", "--dump-dom", report_html.as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = proc.stdout
    assert "Uncaught" not in proc.stderr, proc.stderr[-3000:]
    assert not re.search(r"CONSOLE.*(error|Error)", proc.stderr), proc.stderr[-3000:]
    assert "Failed to load resource" not in proc.stderr, proc.stderr[-3000:]
    assert len(re.findall(r"<svg\b", dom)) >= 4, "four charts: domain, difficulty, confusion matrix, time"
    for label in ("Pass rate by domain", "Pass rate by difficulty", "Root cause: expected × concluded",
                  "Wall time per case"):
        assert f'aria-label="{label}"' in dom, f"chart {label!r} missing from the DOM"
    assert dom.count('class="bar"') >= 2 + 2 + 5, "bars for the domains, the difficulties and every case"
    assert 'class="cell"' in dom, "confusion-matrix cells"
    assert "<title>sre-graph eval" in dom and "pwned" not in dom.split("<body", 1)[0], "the hostile text ran"
    failed = dom.split("Failing runs (", 1)[1]
    assert failed.startswith("2)"), failed[:80]
    for needle in ("synthetic-wrong", "missing_index", "oom_killed", "red herring concluded", "mongodb",
                   "synthetic-error", "IncidentFormatError"):
        assert needle in failed, f"{needle!r} not in the failing-runs table"


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (no imaging library needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_screenshot_is_not_blank(report_html: Path, tmp_path: Path) -> None:
    """A screenshot of the page is a real picture, not a blank canvas."""
    shot = tmp_path / "report.png"
    proc = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2000",
                    "--hide-scrollbars", report_html.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-3000:]
    assert "Uncaught" not in proc.stderr, proc.stderr[-3000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1400, 2000)
    assert shot.stat().st_size > 20_000, "a page with charts compresses to more than this"
    assert len(set(pixels)) > 64, "the screenshot is (nearly) a single color"
