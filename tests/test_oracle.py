"""The detection oracle and the ALM checkers, on hand-made cheat instances and alerts."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from acceptance.checkers import alarms
from acceptance.criteria import resolve_criteria
from acceptance.oracle import (
    OracleError,
    normalise_alerts,
    poisson_upper,
    score,
    wilson,
)

DAY = 86400.0
T0 = 1775001600.0  # 2026-04-01T00:00:00+08:00
END = T0 + 10 * DAY


def instance(cheat: int, kind: str, cls: str, expected: list[str], attribution: str, *,
             station: str = "S1", device: str = "D1", nozzle: int = 2, tank: int = 1,
             start: float = T0 + 3 * DAY, end: float = math.nan,
             lookalike: bool = False) -> dict[str, Any]:
    return {"station_id": station, "cheat": cheat, "kind": kind, "class": cls,
            "lookalike": lookalike, "device": device, "dispenser": 1, "nozzle": nozzle,
            "tank": tank, "first_start": start, "last_end": end,
            "expected_alerts": json.dumps(expected), "attribution": attribution}


def alert(aid: str, kind: str, as_of: float, *, station: str = "S1", device: Any = "D1",
          nozzle: Any = 2, tank: Any = 1) -> dict[str, Any]:
    return {"id": aid, "station_id": station, "kind": kind, "as_of": as_of, "device": device,
            "nozzle": nozzle, "tank": tank}


SKIM = instance(0, "pulse_factor", "PULSE", ["meter_skim", "tank_gain"], "nozzle")
PRICE = instance(1, "price_tamper", "PRICE", ["price_mismatch"], "nozzle", station="S2")
LEAK = instance(2, "leak", "LOOK", ["leak_suspected"], "tank", station="S3", device="G",
                nozzle=0, tank=2, lookalike=True)


def instances(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_detected_in_time_and_attributed() -> None:
    al = pd.DataFrame([alert("a1", "tank_gain", T0 + 4 * DAY, device=None, nozzle=None),
                       alert("a2", "meter_skim", T0 + 5 * DAY)])
    s = score(instances(SKIM), al, END).instances[0]
    assert s.detected and s.days_to_detect == pytest.approx(1.0)
    assert s.first_alert["id"] == "a1"  # the tank-level alert came first …
    assert s.attributed and s.attributed_alert["id"] == "a2"  # … the nozzle named later


def test_wrong_nozzle_is_detected_but_not_attributed() -> None:
    al = pd.DataFrame([alert("a1", "meter_skim", T0 + 4 * DAY, nozzle=1)])
    s = score(instances(SKIM), al, END).instances[0]
    assert s.detected and not s.attributed


def test_wrong_station_kind_or_time_does_not_match() -> None:
    al = pd.DataFrame([
        alert("other-station", "meter_skim", T0 + 4 * DAY, station="S9"),
        alert("other-kind", "price_mismatch", T0 + 4 * DAY),
        alert("before", "meter_skim", T0 + 3 * DAY - 2 * 3600),
        alert("no-as-of", "meter_skim", math.nan)])
    sc = score(instances(SKIM), al, END)
    assert not sc.instances[0].detected
    assert sorted(sc.false_alerts["id"]) == ["before", "no-as-of", "other-kind",
                                             "other-station"]


def test_lookalike_alerts_are_false_and_reported() -> None:
    al = pd.DataFrame([alert("leak-ok", "leak_suspected", T0 + 5 * DAY, station="S3",
                             device=None, nozzle=None, tank=2),
                       alert("leak-as-theft", "tank_loss", T0 + 5 * DAY, station="S3",
                             device=None, nozzle=None, tank=2)])
    sc = score(instances(LEAK), al, END)
    assert list(sc.false_alerts["id"]) == ["leak-as-theft"]  # operational kinds not judged
    assert sc.lookalikes_triggered[0]["alert"]["id"] == "leak-as-theft"
    assert sc.instances == []  # a look-alike is nothing to detect


def test_missing_columns_are_named() -> None:
    with pytest.raises(OracleError, match="as_of"):
        normalise_alerts(pd.DataFrame([{"station_id": "S1", "kind": "tank_gain"}]))
    with pytest.raises(OracleError, match="expected_alerts"):
        score(pd.DataFrame([{"station_id": "S1"}]), pd.DataFrame(
            columns=["station_id", "kind", "as_of"]), END)


def test_intervals() -> None:
    assert poisson_upper(0) == pytest.approx(3.6889, abs=1e-3)  # −ln(0.025)
    assert poisson_upper(3) == pytest.approx(8.7673, abs=1e-3)
    lo, hi = wilson(95, 100)
    assert lo == pytest.approx(0.8882, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


# ---- the checkers, over a stand-in for RunData --------------------------------------------

class FakeRun:
    """What the ALM checkers read of a run directory."""

    def __init__(self, cheat_instances: pd.DataFrame, alerts: pd.DataFrame,
                 stations: tuple[str, ...] = ("S1", "S2", "S3"), days: float = 10.0) -> None:
        self._instances, self.alerts = cheat_instances, alerts
        self.station_ids = list(stations)
        self.start, self.end = T0, T0 + days * DAY
        self._memo: dict[str, Any] = {}
        # RunData.comparison: no record lost or altered on the way
        self.comparison = SimpleNamespace(records=pd.DataFrame(
            columns=["station_id", "status", "time"]))
        self.detection_status = None  # an older run: no record of the detection wait

    def truth_table(self, name: str) -> pd.DataFrame:
        assert name == "cheat_instances"
        return self._instances

    def simulated_until(self, station_id: str) -> float:
        return self.end

    def derive(self, name: str, compute: Any) -> Any:
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]


CRITERIA = resolve_criteria({}, run_days=10)
ALL = (alarms.pulse, alarms.part, alarms.data_cheats, alarms.price, alarms.stock,
       alarms.delivery, alarms.false_alerts)


def outcomes(run: FakeRun) -> dict[str, bool]:
    out = {}
    for check in ALL:
        ms = check(run, CRITERIA)
        out[ms[0].requirement] = all(m.passed for m in ms)
    return out


GOOD_ALERTS = pd.DataFrame([alert("a1", "meter_skim", T0 + 4 * DAY),
                            alert("a2", "price_mismatch", T0 + 3 * DAY + 60, station="S2")])


def test_a_platform_that_catches_everything_passes() -> None:
    assert all(outcomes(FakeRun(instances(SKIM, PRICE, LEAK), GOOD_ALERTS)).values())


def test_a_blind_platform_fails_every_class_that_had_a_cheat() -> None:
    got = outcomes(FakeRun(instances(SKIM, PRICE, LEAK), GOOD_ALERTS.iloc[0:0]))
    assert not got["ALM-PULSE"] and not got["ALM-PRICE"]
    assert got["ALM-PART"] and got["ALM-FP"]  # nothing to detect / nothing false


def test_a_jumpy_platform_fails_false_alerts() -> None:
    noisy = pd.concat([GOOD_ALERTS, pd.DataFrame([
        alert("x1", "tank_loss", T0 + 1 * DAY, station="S3", device=None, nozzle=None)])])
    got = outcomes(FakeRun(instances(SKIM, PRICE, LEAK), noisy))
    assert not got["ALM-FP"] and not got["ALM-STOCK"]  # the class of the false kind too
    assert got["ALM-PULSE"] and got["ALM-PRICE"]


def test_late_detection_fails_its_limit() -> None:
    late = pd.DataFrame([alert("a1", "meter_skim", T0 + 3 * DAY + 8 * DAY)])
    ms = alarms.pulse(FakeRun(instances(SKIM), late, days=12), CRITERIA)
    days = next(m for m in ms if m.name == "cheat.days_to_detect")
    assert days.value == pytest.approx(8.0) and not days.passed


def test_run_too_short_is_neither_a_pass_nor_a_fail() -> None:
    """No alert yet and the run ended before the limit: ALM-PULSE is incomplete."""
    from acceptance.record import decide

    def outcome_of(ms):
        return decide(ms, [{"id": "ALM-PULSE", "level": "MUST", "checker": "pulse"}])[0][0].outcome

    ms = alarms.pulse(FakeRun(instances(SKIM), GOOD_ALERTS.iloc[0:0], days=5), CRITERIA)
    days = next(m for m in ms if m.name == "cheat.days_to_detect")
    assert days.value is None and not days.passed and days.scope
    assert "run too short" in days.evidence["reason"]
    assert outcome_of(ms) == "incomplete"
    # once the run is past the limit, no alert is a failure
    ms = alarms.pulse(FakeRun(instances(SKIM), GOOD_ALERTS.iloc[0:0], days=12), CRITERIA)
    assert not any(m.scope for m in ms) and outcome_of(ms) == "fail"


def test_class_without_cheat_says_detection_was_not_exercised() -> None:
    ms = alarms.part(FakeRun(instances(SKIM), GOOD_ALERTS), CRITERIA)
    assert [m.name for m in ms] == ["alerts.unexplained"] and ms[0].passed
    assert "not exercised" in ms[0].evidence["note"]


def test_alerts_the_sut_caused_by_losing_data_are_not_false() -> None:
    gap = pd.DataFrame([alert("g1", "totalizer_gap", T0 + 2 * DAY, station="S2"),
                        alert("g2", "totalizer_gap", T0 + 9 * DAY, station="S2")])
    lost = pd.DataFrame([{"station_id": "S2", "start": T0 + DAY, "end": T0 + 2 * DAY}])
    sc = score(instances(SKIM), gap, END, lost)
    assert list(sc.false_alerts["id"]) == ["g2"]  # outside the incident's window: false
    assert sc.explained_by_incidents == 1
    assert len(score(instances(SKIM), gap, END).false_alerts) == 2  # no incident: both false
