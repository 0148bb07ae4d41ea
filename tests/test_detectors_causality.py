"""Causality and determinism of every registered detector, and evaluation time.

A proposal with as_of = T may use only data with device time ≤ T; then evaluating the data
known at any cut point T gives exactly the final proposals with as_of ≤ T (same dedup keys,
kinds, targets and as_of), and evaluating day by day gives the same alerts as evaluating
once at the end."""

from __future__ import annotations

from functools import cache

import pytest
from detectors_synth import (
    DAY,
    M0,
    NozzleSpec,
    Spec,
    Synth,
    TankSpec,
    add_rows,
    drifting_clock,
    generate,
    with_clock,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.detectors.base import AlertProposal, Context
from central.detectors.data import StationData
from central.detectors.registry import DETECTORS
from central.detectors.runner import detect
from central.detectors.wetstock import tank_series

DAYS = 40


@cache
def busy_station() -> Synth:
    """One station with a bit of everything: every detector has something to say."""
    s = generate(Spec(
        days=DAYS, seed=11,
        tanks={1: TankSpec("92"), 2: TankSpec("0", 50000.0, 30000.0, 23.0)},
        nozzles=(NozzleSpec("D1", 1, 1, error=0.001), NozzleSpec("D1", 2, 2, truck_share=0.1),
                 NozzleSpec("D2", 1, 1, error=-0.002), NozzleSpec("D2", 2, 2, error=0.002)),
        skim={("D1", 1): (0.02, M0 + 18 * DAY)}, leak_l_per_h={2: 0.5},
        withdrawals=[(1, M0 + 25 * DAY + 3 * 3600, 300.0)],
        frozen={2: (M0 + 30 * DAY, M0 + 31 * DAY)},
        offset={1: (M0 + 28 * DAY + 3 * 3600, 150.0)}, filter_every={("D2", 2): 30},
        reset_at={("D1", 2): M0 + 15 * DAY + 5 * 3600},
        price_tamper={("D2", 1): (M0 + 10 * DAY, 730)},
        amount_tamper={("D1", 1): (M0 + 12 * DAY, 9)}, short_drop={1: 0.02},
        drop_seq_every={"D1": 99},
        offline={"D2": (M0 + 22 * DAY + 9 * 3600, M0 + 22 * DAY + 17 * 3600)}))
    add_rows(s.data, "states", [
        {"device": "D1", "seq": 1, "device_time": M0 + 60, "mainboard_id": "MB-1"},
        {"device": "D1", "seq": 2, "device_time": M0 + 9 * DAY, "mainboard_id": "MB-X"},
        {"device": "D1", "seq": 3, "device_time": M0 + 19 * DAY, "mainboard_id": "MB-X",
         "seal_state": 1}])
    add_rows(s.data, "events", [{"device": "D2", "code": 12, "unit": 1,
                                 "device_time": M0 + 14 * DAY + 100}])
    # metrology paperwork: D1 renewed in time, D2's verification runs out on day 20, an
    # unsigned maintenance on D1, and a seal found that the last record did not leave
    seals = '[{"position": "transducer", "before": "%s", "after": "%s"}]'
    add_rows(s.data, "records", [
        {"id": "r1", "device": "D1", "kind": "verification", "performed_at": M0 - 100 * DAY,
         "fully_signed": 1, "valid_until": M0 + 82 * DAY + 0.5, "result": "pass",
         "seals": seals % ("QF1", "QF1")},
        {"id": "r2", "device": "D2", "kind": "verification", "performed_at": M0 - 162 * DAY,
         "fully_signed": 1, "valid_until": M0 + 20 * DAY + 1800, "result": "pass",
         "seals": seals % ("QF2", "QF2")},
        {"id": "r3", "device": "D1", "kind": "maintenance", "performed_at": M0 + 12 * DAY,
         "fully_signed": 0, "missing": "verifier", "nozzle": 1,
         "seals": seals % ("QF1", "QF3")},
        {"id": "r4", "device": "D1", "kind": "maintenance", "performed_at": M0 + 26 * DAY + 7,
         "fully_signed": 1, "seals": seals % ("ZS9", "ZS9")}])
    return s


def signature(props: list[AlertProposal]) -> set[tuple]:
    return {(p.dedup_key, p.kind, p.target, p.as_of) for p in props}


@cache
def final(name: str) -> frozenset[tuple]:
    det = next(d for d in DETECTORS if d.name == name)
    return frozenset(signature(det.evaluate(busy_station().data, Context())))


@pytest.mark.parametrize("name", [d.name for d in DETECTORS])
def test_each_detector_has_something_to_say_on_the_busy_station(name: str) -> None:
    assert final(name), f"{name} raises nothing: the causality test would prove nothing"


@pytest.mark.parametrize("name", [d.name for d in DETECTORS])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=M0, max_value=M0 + DAYS * DAY))
def test_a_cut_sees_exactly_the_final_alerts_up_to_it(name: str, cut: int) -> None:
    det = next(d for d in DETECTORS if d.name == name)
    seen = signature(det.evaluate(busy_station().data.cut(cut), Context()))
    assert seen == {a for a in final(name) if a[3] <= cut}


@cache
def drifting_gauge() -> StationData:
    """The busy station with its gauge's clock losing 2 h a day from 22:00 of day 24 for
    6 h (30 min slow, then set right) across the night of its withdrawal: idle_loss leaves
    stretches out by the clock alignment (alignment.py), judged on the sales booked by each
    decision; the 2 % skim is still found at the first midnight after it."""
    a = M0 + 24 * DAY + 22 * 3600
    data = with_clock(busy_station(), "G", drifting_clock(a, a + 6 * 3600, -7200))
    assert any(tank_series(data, tank, Context()).misaligned().any() for tank in (1, 2))
    assert ("meter_skim", M0 + 25 * DAY) in {(p.kind, p.as_of) for _, p in detect(data, Context())}
    return data


@pytest.mark.parametrize("hours", [0.5, 2.25, 4, 5.75, 6.5, 8, 27])
def test_a_drifting_gauge_clock_keeps_every_detector_causal(hours: float) -> None:
    data = drifting_gauge()
    cut = M0 + 24 * DAY + 22 * 3600 + int(hours * 3600)
    for det in DETECTORS:
        whole = signature(det.evaluate(data, Context()))
        assert signature(det.evaluate(data.cut(cut), Context())) == {
            a for a in whole if a[3] <= cut}, det.name


def test_day_by_day_equals_once_at_the_end() -> None:
    data = busy_station().data
    raised: dict[str, tuple] = {}
    for day in range(1, DAYS + 1):  # the first raise of a key is the one stored
        for name, p in detect(data.cut(M0 + day * DAY), Context()):
            raised.setdefault(f"{name}/{p.dedup_key}", (p.kind, p.target, p.as_of))
    at_end = {f"{name}/{p.dedup_key}": (p.kind, p.target, p.as_of)
              for name, p in detect(data, Context())}
    assert raised == at_end


def test_a_busy_station_over_180_days_is_evaluated_alike_each_time() -> None:
    """The 180-day busy station of benchmarks/bench_detectors.py (its speed is measured
    there, not here: tests do not depend on the machine's speed)."""
    s = half_year_station()
    assert 850 < len(s.data.transactions) / 180 < 950 and len(s.data.inventory) / 180 > 280
    first = detect(s.data.cut(s.end), Context())
    assert first == detect(s.data.cut(s.end), Context())  # a fresh snapshot, the same alerts


def half_year_station() -> Synth:
    """Four dispensers, three tanks, ≈ 900 fills and ≈ 290 gauge readings a day, 180 days."""
    nozzles = tuple(NozzleSpec(f"D{d}", n, t, daily_l=4500.0)
                    for d in (1, 2, 3, 4)
                    for n, t in (((1, 1), (2, 2)) if d < 3 else ((1, 3), (2, 3))))
    return generate(Spec(days=180, seed=5, nozzles=nozzles, tanks={
        1: TankSpec("92", 50000, 40000, 23), 2: TankSpec("95", 50000, 40000, 23),
        3: TankSpec("0", 50000, 40000, 23)}))
