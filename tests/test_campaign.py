"""Detection campaigns: the spec, the worlds, the figures, determinism, a blind platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from acceptance.campaign.runner import main, run_campaign
from acceptance.campaign.spec import SpecError, load_spec, median_station
from acceptance.campaign.stats import median_days, pd_by_day, pfa
from acceptance.campaign.tasks import make_tasks

ROOT = Path(__file__).resolve().parent.parent
BANNER = ROOT / "scenarios" / "urad-middle-banner.yaml"


def write_spec(tmp_path: Path, **over) -> Path:
    doc = {"name": "t", "scenario": str(BANNER), "seed": 11,
           "honest": {"stations": ["UMB22"], "days": 20},
           "cheats": [{"kind": "price_tamper", "size": "+2 %", "params": {"markup": 0.02},
                       "target": {"dispenser": "random"}, "stations": ["UMB22"], "days": 17,
                       "start_day": 15, "instances": 2}]}
    doc.update(over)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


@pytest.mark.parametrize("over, message", [
    ({"name": ""}, "$.name"),
    ({"seed": -1}, "$.seed"),
    ({"surprise": 1}, "only the keys"),
    ({"honest": {"stations": ["NOPE"], "days": 10}}, "$.honest.stations"),
    ({"cheats": [{"kind": "pulse_factor", "days": 10, "start_day": 10, "instances": 1}]},
     "$.cheats[0].start_day"),
    ({"cheats": [{"kind": "pulse_factor", "days": 10, "instances": 0}]},
     "$.cheats[0].instances"),
    ({"cheats": [{"kind": "pulse_factor", "days": 10, "instances": 1,
                  "target": {"nozzle": "any"}}]}, "$.cheats[0].target.nozzle"),
])
def test_spec_errors_name_the_field(tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, **over))
    assert message in str(err.value) and str(tmp_path / "spec.yaml") in str(err.value)


def test_worlds_are_derived_from_the_spec_alone(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    a = make_tasks(spec, tmp_path / "a")
    b = make_tasks(spec, tmp_path / "b")
    assert [(t.id, t.seed, t.cheat) for t in a] == [(t.id, t.seed, t.cheat) for t in b]
    assert len({t.seed for t in a}) == len(a)  # every world its own seed
    assert median_station(spec.scenario) in {"UMB06", "UMB08"}  # 6,800 L/day, the median


def test_statistics() -> None:
    inst = [{"detected": True, "days_to_detect": 0.5, "observed_days": 10},
            {"detected": True, "days_to_detect": 4.0, "observed_days": 10},
            {"detected": False, "days_to_detect": None, "observed_days": 2}]
    pd = pd_by_day(inst, (1, 3, 7))
    assert pd["1"]["pd"] == pytest.approx(1 / 3, abs=1e-4) and pd["1"]["n"] == 3
    assert pd["7"]["pd"] == 1.0 and pd["7"]["n"] == 2  # the 2-day world had no time for day 7
    assert median_days(inst) == 4.0
    assert median_days(inst[2:]) is None  # most missed: no median
    assert pfa(0, 10.0)["ci95_high"] == pytest.approx(0.36889, abs=1e-4)


def test_a_campaign_end_to_end_and_deterministic(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    one = run_campaign(spec, tmp_path / "w1", workers=1)
    two = run_campaign(spec, tmp_path / "w2", workers=2)
    strip = [{k: v for k, v in w.items() if k != "wall_s"} for w in one["per_world"]]
    assert strip == [{k: v for k, v in w.items() if k != "wall_s"} for w in two["per_world"]]
    doc = json.loads((tmp_path / "w1" / "campaign.json").read_text())
    assert doc["honest_station_months"] == pytest.approx(20 / 30.4375, abs=1e-3)
    assert set(doc["pfa_per_station_month"]) >= {"estimate", "ci95_high"}
    (cls,) = doc["classes"]
    assert cls["kind"] == "price_tamper" and cls["instances"] == 2
    assert set(cls["pd_by_day"]) == {"1", "3", "7", "14", "30"}
    assert cls["pd_by_day"]["1"] == 1.0  # every tampered sale shows it
    assert cls["attribution_rate"] == 1.0
    assert doc["noise"]["tanks"] >= 1 and doc["noise"]["median_daily_variance_sd_pct"] > 0
    assert (tmp_path / "w1" / "campaign.html").read_text().count("<svg") == 1
    assert len(list((tmp_path / "w1" / "worlds").glob("*.yaml"))) == 3


def test_a_blind_platform_detects_nothing(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, honest=None))
    doc = run_campaign(spec, tmp_path / "blind", workers=1, platform_mutant="blind")
    assert doc["classes"][0]["detected"] == 0
    assert doc["classes"][0]["pd_by_day"]["1"] == 0.0


def test_the_command_refuses_a_bad_spec_and_a_used_directory(tmp_path: Path, capsys) -> None:
    assert main([str(write_spec(tmp_path, seed="x")), "--out", str(tmp_path / "o")]) == 2
    assert "$.seed" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "f").write_text("x")
    assert main([str(write_spec(tmp_path)), "--out", str(tmp_path / "used")]) == 2
