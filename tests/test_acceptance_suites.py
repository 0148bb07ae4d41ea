"""The official acceptance suites (scenarios/acceptance/): built so that every known broken
SUT is refused within their first two days, and never shortened or made lenient."""

from __future__ import annotations

from pathlib import Path

import pytest

from acceptance.criteria import PLAN_STABILITY_DAYS, defaults, resolve_criteria
from acceptance.suites import CLASSES, OFFICIAL, missing
from scenarios.loader import load_scenario
from scenarios.variant import write_scenario_variant

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", OFFICIAL)
def test_an_official_suite_covers_the_whole_banner_for_six_months_at_the_plans_limits(path):
    scenario = load_scenario(REPO / path)
    assert len(scenario.station_ids) == 46 and scenario.data["days"] >= PLAN_STABILITY_DAYS
    assert scenario.data["criteria"] == {}
    assert resolve_criteria(scenario.data["criteria"], run_days=180) == defaults()


@pytest.mark.parametrize("path", [*OFFICIAL, "scenarios/smoke.yaml"])
def test_every_failure_class_is_in_the_first_two_days(path):
    """The official suites and the demonstration scenario catch every mutant by design."""
    assert missing(load_scenario(REPO / path)) == []


def test_a_scenario_without_what_a_class_needs_is_told_so(tmp_path):
    base = REPO / "scenarios" / "smoke.yaml"
    data = load_scenario(base).data
    # the crash after the cut has ended: nothing is in flight when the collector dies
    faults = [f if f["kind"] != "collector_crash" else {**f, "at": "+14h"}
              for f in data["faults"] if f["kind"] != "device_silent"]
    scenario = load_scenario(write_scenario_variant(base, tmp_path / "s.yaml", faults=faults,
                                                    cheats=None))
    by_mutant = {c.mutant: c.needs for c in CLASSES}
    assert missing(scenario) == [f"{m}: {by_mutant[m]}"
                                 for m in ("no-spool", "always-online", "blind", "no-tax",
                                           "no-metrology", "flat-credit")]
    # a cheat whose detection limit ends after the gauntlet: a blind platform is not refused
    late = [{"kind": "price_tamper", "station": "UMB44", "dispenser": 1, "start": "+40h",
             "markup": 0.02}]
    scenario = load_scenario(write_scenario_variant(base, tmp_path / "t.yaml", cheats=late))
    assert missing(scenario) == [f"{m}: {by_mutant[m]}"
                                 for m in ("blind", "no-tax", "no-metrology", "flat-credit")]
    # an under-declaration whose first period ends after the gauntlet: no-tax is not refused
    late = [{"kind": "tax_under_declaration", "station": "UMB25", "start": "+47h"}]
    scenario = load_scenario(write_scenario_variant(base, tmp_path / "u.yaml", cheats=late))
    assert f"no-tax: {by_mutant['no-tax']}" in missing(scenario)
    # a seal swap whose record comes after the gauntlet: no-metrology is not refused by it
    late = [{"kind": "seal_mismatch", "station": "UMB25", "dispenser": 1, "start": "+20h",
             "record_after_h": 27}]
    scenario = load_scenario(write_scenario_variant(base, tmp_path / "v.yaml", cheats=late))
    assert f"no-metrology: {by_mutant['no-metrology']}" in missing(scenario)
