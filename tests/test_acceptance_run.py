"""`forecourt run` end to end: the reference is accepted, each mutant is refused with exactly
the requirements it breaks, and `check`/`report` reproduce the verdict offline.

These are real runs (devices, collectors, broker, platform as processes) of the smoke
scenario, shortened to 0.6 simulated days so the collector crash at +6h still happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from acceptance.chain import write_scenario_variant

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
DAYS = "0.6"


def forecourt(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acceptance.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def failed_requirements(run: Path) -> set[str]:
    record = json.loads((run / "record.json").read_text(encoding="utf-8"))
    return {r["id"] for r in record["requirements"] if r["outcome"] in ("fail", "error")}


def test_reference_is_accepted_and_check_and_report_reproduce_it(tmp_path):
    run = tmp_path / "ref"
    res = forecourt("run", str(SMOKE), "--out", str(run), "--days", DAYS)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ACCEPTED")
    record = json.loads((run / "record.json").read_text(encoding="utf-8"))
    assert record["accepted"] is True
    outcomes = {r["id"]: r["outcome"] for r in record["requirements"]}
    for rid in ("COV-1", "COV-2", "DAT-1", "DAT-2", "DAT-3", "DAT-4", "STB-1"):
        assert outcomes[rid] == "pass", rid
    assert outcomes["SEC-1"] == "not_checked"
    # the crash happened at its simulated time and the data still arrived exactly once
    timeline = json.loads((run / "timeline.json").read_text(encoding="utf-8"))
    crash = next(t for t in timeline if t["kind"] == "collector_crash")
    assert crash["sim_start"] is not None and crash["sim_end"] > crash["sim_start"]
    # the harness posted the scenario's prices before the devices started, waited for the
    # detectors, and kept what the platform said (docs/run-record.md)
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["inputs_posted"]["counts"]["posted_price"] == {"posted": 6, "already_there": 0,
                                                               "failed": 0}
    assert all(i["sim_time"] is None for i in info["inputs_posted"]["items"]
               if i["kind"] == "posted_price")
    assert info["detection"]["done"] and info["detection"]["supported"]
    assert json.loads((run / "observed" / "detection_status.json").read_text())["done"]
    from acceptance.rundir import RunData

    data = RunData(run)
    assert {"as_of", "detector", "evidence"} <= set(data.alerts.columns)
    assert set(data.states["station_id"]) == {"UMB25", "UMB44"}
    suite = ET.parse(run / "junit.xml").getroot()
    assert suite.iter("testcase") and not list(suite.iter("failure"))
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "旗级自查验收报告" in html and "UMB25" in html

    first = (run / "record.json").read_text(encoding="utf-8")
    res = forecourt("check", str(run))
    assert res.returncode == 0 and res.stdout.startswith("ACCEPTED"), res.stderr
    again = json.loads((run / "record.json").read_text(encoding="utf-8"))
    before = json.loads(first)
    for d in (again, before):
        d.pop("created_at")
    assert again == before
    (run / "report.html").unlink()
    res = forecourt("report", str(run), "--lang", "en")
    assert res.returncode == 0, res.stderr
    assert "self-inspection" in (run / "report.html").read_text(encoding="utf-8").lower()


@pytest.mark.parametrize("mutant,expected", [
    ("drop", {"DAT-1", "STB-1"}),
    ("duplicate", {"DAT-1"}),
    ("round-volume", {"DAT-2", "STB-1"}),
    ("word-order", {"DAT-2", "STB-1"}),
])
def test_each_mutant_fails_exactly_its_requirements(tmp_path, mutant, expected):
    run = tmp_path / mutant
    res = forecourt("run", str(SMOKE), "--out", str(run), "--days", DAYS, "--sut-mutant", mutant)
    assert res.returncode == 1, res.stdout + res.stderr
    assert failed_requirements(run) == expected


def test_no_spool_mutant_loses_what_a_crash_catches_in_its_spool(tmp_path):
    # the collector crashes three hours into a network cut, while its spool holds data
    scenario = write_scenario_variant(SMOKE, tmp_path / "cut-then-crash.yaml", faults=[
        {"kind": "network_cut", "station": "UMB25", "at": "+9h", "duration": "4h"},
        {"kind": "collector_crash", "station": "UMB25", "at": "+12h", "duration": "10min"}])
    ref = forecourt("run", str(scenario), "--out", str(tmp_path / "ref"), "--days", DAYS)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    res = forecourt("run", str(scenario), "--out", str(tmp_path / "mutant"), "--days", DAYS,
                    "--sut-mutant", "no-spool")
    assert res.returncode == 1, res.stdout + res.stderr
    assert failed_requirements(tmp_path / "mutant") == {"DAT-1", "DAT-3", "STB-1"}


def test_harness_errors_exit_2_with_the_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", encoding="utf-8")
    res = forecourt("run", str(bad), "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    assert "bad.yaml" in res.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("x")
    res = forecourt("run", str(SMOKE), "--out", str(occupied))
    assert res.returncode == 2 and "not empty" in res.stderr


def test_pytest_plugin_runs_a_scenario_as_one_test_per_requirement(pytester):
    res = pytester.runpytest_subprocess("--scenario", str(SMOKE),
                                        "--scenario-days", DAYS, "--scenario-out",
                                        str(pytester.path / "runs"), timeout=300)
    res.assert_outcomes(passed=15, skipped=3)  # TAX-1, MET-1, SEC-1: no checker yet
