"""The ``sre-graph`` command line, run as a real subprocess: output streams, formats and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sre_graph.cli import demo_dir

SRE_GRAPH = Path(sys.executable).parent / "sre-graph"


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    assert SRE_GRAPH.exists(), f"{SRE_GRAPH} is not installed (pip install -e '.[test]')"
    return subprocess.run([str(SRE_GRAPH), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=180)


def assert_bad_input(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one ``sre-graph: error:`` line on stderr naming every needle."""
    assert proc.returncode == 2, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == "", f"stdout should be empty on bad input: {proc.stdout!r}"
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("sre-graph: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not named in {line!r}"
    return line


# --------------------------------------------------------------------- the demo


def test_demo_folder_is_packaged() -> None:
    folder = demo_dir()
    assert (folder / "incident.yaml").is_file() and (folder / "alert.json").is_file()


def test_demo_markdown(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli("demo", env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    assert proc.stdout.startswith("# "), proc.stdout[:300]
    assert "**Root cause:**" in proc.stdout
    assert "## Evidence" in proc.stdout and "## Remediation" in proc.stdout
    assert "✓" not in proc.stdout, "progress leaked into stdout"
    assert "✓ report" in proc.stderr, f"no progress on stderr:\n{proc.stderr}"


def test_demo_json(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli("demo", "--format", "json", "-q", env=subprocess_env, cwd=tmp_path)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    assert report["root_cause"]
    assert report["evidence"]
    assert proc.stderr == "", f"-q must keep stderr quiet: {proc.stderr!r}"


# --------------------------------------------------------------------- a recorded incident


def test_investigate_incident_json(solved_incident: Path, subprocess_env: dict[str, str]) -> None:
    incident = solved_incident
    proc = run_cli("investigate", str(incident), "--format", "json", env=subprocess_env)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)  # stdout is the report and nothing else
    assert report["root_cause"] and report["root_cause_statement"]
    assert report["evidence"], "the report cites no evidence"
    for evidence in report["evidence"]:
        assert evidence["id"] and evidence["source"] in ("kubernetes", "signoz", "mongodb") and evidence["query"]
    assert len({e["id"] for e in report["evidence"]}) == len(report["evidence"]), "duplicate evidence ids"
    stderr = proc.stderr.splitlines()
    assert stderr[0].startswith(f"sre-graph: investigating {incident}"), proc.stderr
    assert any(line.strip().startswith("✓ classify") for line in stderr), proc.stderr
    assert stderr[-1].strip().startswith("✓ report"), proc.stderr


def test_investigate_quiet_markdown(solved_incident: Path, subprocess_env: dict[str, str]) -> None:
    proc = run_cli("investigate", str(solved_incident), "-q", env=subprocess_env)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    assert proc.stderr == ""
    assert proc.stdout.startswith("# ") and "**Root cause:**" in proc.stdout


# --------------------------------------------------------------------- bad input: exit 2, one line


def test_malformed_generic_alert(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"alert_id": "a-1", "severity": "urgent", "message": "checkout is slow"}))
    line = assert_bad_input(run_cli("investigate", str(alert), env=subprocess_env), str(alert), "service_name",
                            "severity")
    assert "urgent" in line


def test_missing_path(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    missing = tmp_path / "no-such-incident"
    assert_bad_input(run_cli("investigate", str(missing), env=subprocess_env), str(missing))


def test_alert_file_not_json(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text("alertname: CheckoutDown\nseverity: critical\n")
    assert_bad_input(run_cli("investigate", str(alert), env=subprocess_env), str(alert), "JSON")


def test_alert_file_json_array(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text("[1, 2, 3]")
    assert_bad_input(run_cli("investigate", str(alert), env=subprocess_env), str(alert))


def test_broken_incident_yaml(solved_incident: Path, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    broken = tmp_path / "broken-incident"
    shutil.copytree(solved_incident, broken)
    (broken / "incident.yaml").write_text("id: [unclosed\nexpected:\n  domain: network\n")
    assert_bad_input(run_cli("investigate", str(broken), env=subprocess_env), str(broken / "incident.yaml"))


def test_incident_folder_without_alert(solved_incident: Path, tmp_path: Path,
                                       subprocess_env: dict[str, str]) -> None:
    broken = tmp_path / "no-alert"
    shutil.copytree(solved_incident, broken)
    (broken / "alert.json").unlink()
    assert_bad_input(run_cli("investigate", str(broken), env=subprocess_env), "alert.json")


@pytest.mark.parametrize("args", [["investigate"], ["investigate", ".", "--format", "xml"], ["nonsense"]])
def test_usage_errors(args: list[str], subprocess_env: dict[str, str]) -> None:
    proc = run_cli(*args, env=subprocess_env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert "sre-graph" in proc.stderr and "error:" in proc.stderr
