"""What an official acceptance suite must hold (验收套件): scenarios/acceptance/ are the
scenarios a vendor is judged on, built so that every known broken SUT is refused within the
suite's first two days — the gauntlet — whatever else the six months bring.

Each known failure class (the mutants of docs/sut.md) names what a scenario must contain to
catch it; `missing` lists what a scenario lacks. Two days, because a cheat can only count as
missed once its class's detection limit (ALM-*, at least a day) has passed inside the run. tests/test_acceptance_suites.py holds the
official suites to it, and runs them against the mutants (docs/acceptance-suites.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from acceptance.criteria import defaults
from acceptance.schedule import Fault, scenario_faults
from acceptance.world_config import tax_policy
from mutants.collector import MUTANTS
from mutants.platform import MUTANTS as PLATFORM_MUTANTS
from scenarios.loader import Scenario
from sim.cheats.registry import CHEAT_KINDS
from sim.tax import period_bounds

OFFICIAL = ("scenarios/acceptance/county.yaml", "scenarios/acceptance/city.yaml")
GAUNTLET_S = 2 * 86400.0  # every class is caught within the first two simulated days
MARGIN_S = 2 * 3600.0  # a cheat's detection limit ends this long before the gauntlet does


@dataclass(frozen=True)
class FailureClass:
    mutant: str  # --sut-mutant or --platform-mutant name
    needs: str  # what the scenario must contain, in words (docs)
    present: Callable[[Scenario, list[Fault], float], bool]


def _crash_in_cut(_s: Scenario, faults: list[Fault], until: float) -> bool:
    """A collector crash while its station's network is cut: the spool holds unsent records."""
    return any(c.kind == "collector_crash" and n.kind == "network_cut"
               and c.station == n.station and n.at < c.at and c.end <= n.end and c.end <= until
               for c in faults for n in faults)


def _device_off_line(_s: Scenario, faults: list[Fault], until: float) -> bool:
    return any(f.kind in ("device_silent", "device_power_loss") and f.end <= until
               for f in faults)


def _judged_cheat(s: Scenario, _f: list[Fault], until: float) -> bool:
    """A cheat whose class's detection limit (the plan's, ALM-*) passes within the gauntlet:
    no alert by then is a miss, not a run too short to judge."""
    limits = defaults()
    cheats: list[dict[str, Any]] = s.data.get("cheats") or []
    for c in cheats:
        cls = CHEAT_KINDS[c["kind"]].cheat_class
        key = f"alarm_days_{str(cls).lower()}"
        if key in limits and s.instant(c["start"]) + limits[key] * 86400.0 <= until - MARGIN_S:
            return True
    return False


def _under_declared(s: Scenario, _f: list[Fault], until: float) -> bool:
    """A tax_under_declaration cheat on while a declaration period ends, MARGIN_S before the
    gauntlet does: the platform then holds an under-declared period to flag (TAX-1)."""
    cheats: list[dict[str, Any]] = s.data.get("cheats") or []
    ends = [b for _a, b in period_bounds(s.start_epoch, until - MARGIN_S,
                                         tax_policy(s.data.get("tax") or {}),
                                         ZoneInfo(s.timezone))]
    for c in cheats:
        if c["kind"] != "tax_under_declaration":
            continue
        on, off = s.instant(c["start"]), None if c.get("end") is None else s.instant(c["end"])
        if any(on < b and (off is None or b < off) for b in ends):
            return True
    return False


def _metrology_finding(s: Scenario, _f: list[Fault], until: float) -> bool:
    """A metrology finding (a lapsed verification, an unsigned record, a broken seal chain:
    the MET kinds of docs/cheats.md) MARGIN_S before the gauntlet ends: the platform holds a
    record it must audit and flag (MET-1)."""
    cheats: list[dict[str, Any]] = s.data.get("cheats") or []
    for c in cheats:
        if CHEAT_KINDS[c["kind"]].cheat_class != "MET":
            continue
        at = s.instant(c["start"])
        if c["kind"] == "seal_mismatch":  # the record that shows the broken chain comes later
            spec = CHEAT_KINDS["seal_mismatch"].param_spec["record_after_h"]
            at += 3600.0 * float(c.get("record_after_h", spec.default))
        if at <= until - MARGIN_S:
            return True
    return False


def _graded_finding(s: Scenario, f: list[Fault], until: float) -> bool:
    """A finding the platform must flag within the gauntlet (a judged cheat, an
    under-declaration, a metrology finding): its station may then not be graded A (CRD-1)."""
    return (_judged_cheat(s, f, until) or _under_declared(s, f, until)
            or _metrology_finding(s, f, until))


def _records(s: Scenario, _f: list[Fault], _u: float) -> bool:
    return bool(s.station_ids)


def _two_stations(s: Scenario, _f: list[Fault], _u: float) -> bool:
    """Every run has the SEC-1 attack phase (docs/security.md); a station can only be
    attacked as another with a second one."""
    return len(s.station_ids) >= 2


CLASSES = (
    FailureClass("drop", "records (any station)", _records),
    FailureClass("duplicate", "records (any station)", _records),
    FailureClass("round-volume", "records (any station)", _records),
    FailureClass("word-order", "records (any station)", _records),
    FailureClass("no-spool", "a collector_crash inside a network_cut of the same station",
                 _crash_in_cut),
    FailureClass("always-online", "a device_silent or device_power_loss", _device_off_line),
    FailureClass("blind", "a cheat whose class's detection limit (ALM-*) ends at least 2 h "
                          "before the gauntlet does (e.g. price_tamper, 1 day, from +4 h)",
                 _judged_cheat),
    # limits 20× too tight alert on honest variance at any station, cheating or not
    FailureClass("jumpy", "records (any station)", _records),
    FailureClass("no-tax", "a tax_under_declaration cheat on when a declaration period ends, "
                           "at least 2 h before the gauntlet does (a shortened tax period, "
                           "e.g. tax: {period_days: 1})", _under_declared),
    FailureClass("no-metrology", "a verification_lapse, unsigned_record or seal_mismatch "
                                 "whose record or expiry falls at least 2 h before the "
                                 "gauntlet ends", _metrology_finding),
    FailureClass("flat-credit", "a finding the platform must flag within the gauntlet (any "
                                "of what blind, no-tax or no-metrology need)", _graded_finding),
    FailureClass("trusting", "two stations (the attack phase of every run, docs/security.md)",
                 _two_stations),
)
assert {c.mutant for c in CLASSES} == {*MUTANTS, *PLATFORM_MUTANTS}, "a mutant without a class"


def missing(scenario: Scenario, within_s: float = GAUNTLET_S) -> list[str]:
    """The failure classes `scenario` cannot catch within its first `within_s` seconds:
    "mutant: what is needed" each."""
    faults = scenario_faults(scenario)
    until = scenario.start_epoch + within_s
    return [f"{c.mutant}: {c.needs}" for c in CLASSES if not c.present(scenario, faults, until)]
