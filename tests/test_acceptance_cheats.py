"""Cheat warning end to end: a cheat of the catalogue through devices, Modbus, collectors,
broker and the platform process, judged by the oracle — the reference platform passes every
cheat-warning requirement (the verdict is incomplete only for the MUST requirement without a
checker yet, SEC-1, TAX-1: no tax declaration period ends in its 22 days, MET-1: no
verification lapses and no unsigned record or change is made in it, and DAT-6: no device
stops working in it), a blind one (detectors off) and a jumpy one (limits 20× too tight) are refused with exactly
the cheat-warning requirements they break (docs/sut.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
PULSE = ROOT / "scenarios" / "cheats" / "pulse_factor.yaml"
ALM = ("ALM-PULSE", "ALM-PART", "ALM-DATA", "ALM-PRICE", "ALM-STOCK", "ALM-DELIV", "ALM-FP")


def run(tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "acceptance.cli", "run", str(PULSE), "--out",
                          str(out), *extra], capture_output=True, text=True, timeout=1200,
                         cwd=ROOT)
    record = json.loads((out / "record.json").read_text(encoding="utf-8"))
    return res.returncode, record, res.stdout + res.stderr


def outcomes(record: dict) -> dict[str, str]:
    return {r["id"]: r["outcome"] for r in record["requirements"]}


def test_reference_platform_catches_the_skim(tmp_path: Path) -> None:
    code, record, log = run(tmp_path)
    assert code == 3, log
    got = outcomes(record)
    assert {rid for rid, o in got.items() if o != "pass"} == {"TAX-1", "MET-1", "DAT-6"}
    assert all(got[rid] == "pass" for rid in ALM), got
    (days,) = [m for m in record["measurements"] if m["name"] == "cheat.days_to_detect"]
    assert days["station_id"] == "UMB07" and 0 < days["value"] <= 7
    assert days["evidence"]["first_alert"]["kind"] in ("tank_gain", "meter_skim")
    attributed = next(m for m in record["measurements"] if m["name"] == "cheat.attributed")
    assert attributed["value"] == 1  # dispenser 2 nozzle 1 named
    cheats = record["tables"]["cheats"]
    assert [c["kind"] for c in cheats] == ["pulse_factor"] and cheats[0]["detected"]


def test_blind_platform_is_refused_on_the_cheat_class(tmp_path: Path) -> None:
    code, record, log = run(tmp_path, "--platform-mutant", "blind")
    assert code == 1, log
    got = outcomes(record)
    assert got["ALM-PULSE"] == "fail"
    assert all(got[rid] == "pass" for rid in ALM if rid != "ALM-PULSE"), got
    days = next(m for m in record["measurements"] if m["name"] == "cheat.days_to_detect")
    assert days["value"] is None and "no matching alert" in days["evidence"]["reason"]


def test_jumpy_platform_is_refused_on_false_alerts(tmp_path: Path) -> None:
    code, record, log = run(tmp_path, "--platform-mutant", "jumpy")
    assert code == 1, log
    got = outcomes(record)
    assert got["ALM-FP"] == "fail"
    fp = next(m for m in record["measurements"] if m["name"] == "alerts.false_per_station_month")
    assert fp["evidence"]["false_alerts"] > 0
