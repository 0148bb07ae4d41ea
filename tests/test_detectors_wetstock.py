"""Wetstock detectors on synthetic stations: each fires on its cheat and stays quiet on the
honest look-alike (tank_variance, nozzle_attribution, idle_loss, gauge_plausibility,
delivery)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from detectors_synth import DAY, M0, NozzleSpec, Spec, Synth, TankSpec, generate
from hypothesis import given, settings
from hypothesis import strategies as st

from central.detectors.base import AlertProposal, Context, Settings
from central.detectors.delivery import DeliveryDetector
from central.detectors.gauge_plausibility import GaugePlausibilityDetector
from central.detectors.idle_loss import IdleLossDetector
from central.detectors.nozzle_attribution import NozzleAttributionDetector
from central.detectors.tank_variance import TankVarianceDetector
from mutants.platform import settings as mutant_settings

TANKS = {1: TankSpec("92"), 2: TankSpec("0", 50000.0, 30000.0, 23.0)}
NOZZLES = (NozzleSpec("D1", 1, 1, error=0.001), NozzleSpec("D1", 2, 2, truck_share=0.1),
           NozzleSpec("D2", 1, 1, error=-0.002), NozzleSpec("D2", 2, 2, error=0.002))


@cache
def station(days: int = 45, seed: int = 7, **cheats: object) -> Synth:
    """A two-tank, two-dispenser station with cheats given in hashable form (cached)."""
    spec: dict[str, object] = {}
    for name, value in cheats.items():
        if name in ("skim", "filter_every"):
            key, *rest = value  # type: ignore[misc]
            spec[name] = {key: tuple(rest) if len(rest) > 1 else rest[0]}
        elif name == "leak":
            spec["leak_l_per_h"] = dict(value)  # type: ignore[arg-type]
        elif name in ("frozen", "offset", "offline", "short_drop"):
            spec[name] = dict(value)  # type: ignore[arg-type]
        elif name == "withdrawals":
            spec[name] = list(value)  # type: ignore[arg-type]
        else:
            spec[name] = value
    return generate(Spec(days=days, seed=seed, tanks=TANKS, nozzles=NOZZLES,
                         **spec))  # type: ignore[arg-type]


def run(detector: object, s: Synth, settings: Settings | None = None) -> list[AlertProposal]:
    ctx = Context(settings=settings or Settings())
    return detector.evaluate(s.data, ctx)  # type: ignore[attr-defined]


def kinds(props: list[AlertProposal]) -> set[str]:
    return {p.kind for p in props}


# -- honest stations: every wetstock detector is quiet ------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("detector", [TankVarianceDetector(), NozzleAttributionDetector(),
                                      IdleLossDetector(), GaugePlausibilityDetector(),
                                      DeliveryDetector()], ids=lambda d: d.name)
def test_honest_station_raises_nothing(detector: object, seed: int) -> None:
    assert run(detector, station(60, seed)) == []


def test_jumpy_mutant_fires_on_an_honest_station() -> None:
    props = run(TankVarianceDetector(), station(60, 1), mutant_settings("jumpy"))
    assert {"tank_gain", "tank_loss"} <= kinds(props)


# -- tank_variance --------------------------------------------------------------------------------
def test_tank_gain_on_a_skimming_nozzle() -> None:
    start = M0 + 20 * DAY
    props = run(TankVarianceDetector(), station(skim=(("D1", 1), 0.02, start)))
    gains = [p for p in props if p.kind == "tank_gain"]
    assert gains and {p.tank for p in gains} == {1}
    first = gains[0]
    assert start < first.as_of <= start + 7 * DAY  # 2 % of 750 L/day against σ ≈ 5 L/day
    assert (first.as_of - M0) % DAY == 0  # a daily statistic: decided at local midnight
    ev = first.evidence
    assert ev["excess_ml"] < 0
    assert ev["cusum"] > ev["h"] or ev["window_statistic"] > ev["window_h"]
    assert len(gains) <= 1 + (45 * DAY - (first.as_of - M0)) // (7 * DAY)  # re-alert ≥ 7 days


def test_a_cheat_is_never_learnt_into_the_baseline() -> None:
    # a 3 % skim from day 20 to day 80 of 130: alerted until it stops, never read as a loss
    # when it stops (the rolling baseline leaves alarmed days out)
    start, end = M0 + 20 * DAY, M0 + 80 * DAY
    props = run(TankVarianceDetector(), station(130, 4, skim=(("D1", 1), 0.03, start, end)))
    gains = [p.as_of for p in props if p.kind == "tank_gain"]
    assert kinds(props) == {"tank_gain"}
    assert min(gains) <= start + 7 * DAY and max(gains) > end - 14 * DAY
    assert max(gains) <= end + 7 * DAY


def test_blind_sales_is_a_tank_loss_and_a_leak_is_not() -> None:
    # a hidden nozzle: every 30th fill of D2/2 never reaches the books, the tank pays for it
    loss = run(TankVarianceDetector(), station(60, 2, filter_every=(("D2", 2), 8)))
    assert "tank_loss" in kinds(loss) and "leak_suspected" not in kinds(loss)
    leak = run(TankVarianceDetector(), station(60, 2, leak=((2, 0.76),)))
    assert kinds(leak) == {"leak_suspected"}
    assert all(p.severity == "warning" for p in leak)


def test_leak_starting_mid_run_is_classified_as_a_leak() -> None:
    start = M0 + 25 * DAY
    props = run(TankVarianceDetector(), station(60, 3, leak=((1, 1.5),), leak_from=start))
    assert props and kinds(props) == {"leak_suspected"} and {p.tank for p in props} == {1}
    assert start < min(p.as_of for p in props) <= start + 3 * DAY
    rates = [p.evidence["rate_l_per_h"] for p in props if "rate_l_per_h" in p.evidence]
    assert rates and all(r >= 0.38 for r in rates)  # the SIR limit, 0.1 gph
    assert rates[-1] == pytest.approx(1.5, abs=0.4)  # a window wholly inside the leak
    # the CUSUM also trips on the loss and classifies it as a leak, not a cheat
    assert any("loss_rate" in p.evidence for p in props)


# -- nozzle_attribution ---------------------------------------------------------------------------
def test_meter_skim_names_the_skimming_nozzle() -> None:
    start = M0 + 20 * DAY
    props = run(NozzleAttributionDetector(), station(skim=(("D1", 1), 0.02, start)))
    assert props and {(p.device, p.nozzle, p.tank) for p in props} == {("D1", 1, 1)}
    first = props[0]
    assert start < first.as_of <= start + 8 * DAY
    assert first.evidence["estimate_pct"] == pytest.approx(2.0, abs=0.8)
    assert first.evidence["se_pct"] > 0 and first.evidence["test"] == "shift"


def test_meter_skim_active_from_the_start_is_caught_by_the_level_test() -> None:
    props = run(NozzleAttributionDetector(), station(skim=(("D2", 2), 0.015, M0)))
    assert props and {(p.device, p.nozzle) for p in props} == {("D2", 2)}
    assert props[0].evidence["test"] == "level"


@pytest.mark.parametrize("change", [0.0025, -0.0025], ids=["drift_up", "recalibrated_down"])
def test_honest_meter_change_inside_the_mpe_is_quiet(change: float) -> None:
    for seed in (1, 3):
        s = station(60, seed, skim=(("D1", 1), change, M0 + 20 * DAY))
        assert run(NozzleAttributionDetector(), s) == []


def test_hidden_fills_are_not_attributed_as_a_skim() -> None:
    s = station(45, 7, filter_every=(("D1", 1), 20))
    assert run(NozzleAttributionDetector(), s) == []


# -- idle_loss ------------------------------------------------------------------------------------
def test_night_withdrawal_is_an_idle_loss() -> None:
    when = M0 + 25 * DAY + 3 * 3600
    props = run(IdleLossDetector(), station(withdrawals=((1, when, 300.0),)))
    assert len(props) == 1 and props[0].tank == 1 and props[0].kind == "idle_loss"
    assert when < props[0].as_of <= when + 2 * 3600
    assert props[0].evidence["drop_l"] == pytest.approx(300.0, abs=20.0)


def test_slow_leak_and_hot_delivery_are_not_idle_losses() -> None:
    assert run(IdleLossDetector(), station(60, 2, leak=((2, 0.76),))) == []
    assert run(IdleLossDetector(), station(45, 1, hot_delivery_c=8.0)) == []


def test_idle_loss_ignores_intervals_with_a_dispenser_off_line() -> None:
    off = (M0 + 22 * DAY + 9 * 3600, M0 + 22 * DAY + 17 * 3600)
    assert run(IdleLossDetector(), station(offline=(("D2", off),))) == []


# -- gauge_plausibility ---------------------------------------------------------------------------
def test_frozen_gauge() -> None:
    t0 = M0 + 30 * DAY
    props = run(GaugePlausibilityDetector(), station(frozen=((2, (t0, t0 + DAY)),)))
    assert kinds(props) == {"gauge_frozen"} and {p.tank for p in props} == {2}
    assert t0 < props[0].as_of < t0 + DAY and props[0].evidence["sold_ml"] >= 100_000
    # and the catch-up drop afterwards is not taken for a night withdrawal
    assert run(IdleLossDetector(), station(frozen=((2, (t0, t0 + DAY)),))) == []


def test_gauge_step_up_without_delivery() -> None:
    when = M0 + 28 * DAY + 3 * 3600
    props = run(GaugePlausibilityDetector(), station(offset=((1, (when, 150.0)),)))
    assert kinds(props) == {"gauge_step"} and props[0].tank == 1
    assert props[0].as_of == props[0].evidence["to_time"] + 7200
    assert props[0].evidence["rise_l"] == pytest.approx(150.0, abs=20.0)


# -- delivery -------------------------------------------------------------------------------------
def test_short_drop_against_the_bill_of_lading() -> None:
    s = station(short_drop=((1, 0.02),))
    props = run(DeliveryDetector(), s)
    drops = [d for d in s.deliveries if d["tank"] == 1]
    assert kinds(props) == {"delivery_short"} and len(props) == len(drops)
    assert {p.as_of for p in props} == {d["end"] for d in drops}
    assert all(1.5 < p.evidence["shortfall_pct"] < 2.6 for p in props)


def test_apportioned_fills_for_pumps_that_deliver_while_running() -> None:
    """With product leaving while the nozzle runs, a truck fill across a drop's end would
    look like a shortfall when counted whole at its end; apportioned, it does not."""
    apportioned = Settings(fill_attribution="apportioned")
    for seed in (1, 2, 3):
        honest = station(60, seed, continuous_flow=True)
        assert run(DeliveryDetector(), honest, apportioned) == []
        assert run(TankVarianceDetector(), honest, apportioned) == []
        assert run(NozzleAttributionDetector(), honest, apportioned) == []
    s = station(continuous_flow=True, short_drop=((1, 0.02),))
    props = run(DeliveryDetector(), s, apportioned)
    drops = [d for d in s.deliveries if d["tank"] == 1]
    assert {p.as_of for p in props} == {d["end"] + 900 for d in drops}


def test_unbooked_and_unreported_bills_of_lading() -> None:
    s = station(bol="zero")
    props = run(DeliveryDetector(), s)
    assert kinds(props) == {"delivery_unbooked"} and len(props) == len(s.deliveries)
    ctx = Context()
    assert DeliveryDetector().evaluate(station(bol="none").data, ctx) == []
    assert any("bill of lading not reported" in n["message"] for n in ctx.notes)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=40))
def test_the_baselines_median_is_numpys_to_the_bit(values):
    """rolling_baseline.median replaces np.median in the hot loop: same value, same bits
    (NaN stays NaN; an empty window gives NaN as numpy does)."""
    import warnings

    from central.detectors.rolling_baseline import median

    a = np.array(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on an empty array
        want = float(np.median(a))
        got = median(a)
    assert type(got) is float
    assert (math.isnan(got) and math.isnan(want)) or np.float64(got).tobytes() == \
        np.float64(want).tobytes()
