"""Wrong device clocks at the reference platform's detectors (docs/faults.md, device_clock_*):
a device's records in the order it made them (its FIFO sequence), not in its clock's order;
what was made before a clock was set back is no more complete than what came after; and a
stretch in which a clock was seen wrong is left out of the tank comparisons, like a
dispenser off line; idle_loss and gauge_step also leave out a stretch in which a gauge's
level moves off its dispensers' sales (a clock running slow or fast). Each case raised false
alerts before."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from detectors_synth import (
    DAY,
    M0,
    NozzleSpec,
    Spec,
    Synth,
    TankSpec,
    drifting_clock,
    generate,
)
from detectors_synth import with_clock as synth_with_clock

from central.detectors import alignment
from central.detectors.base import Context, Settings, sequence_order
from central.detectors.clocks import clock_stretches
from central.detectors.data import StationData
from central.detectors.registry import DETECTORS
from central.detectors.wetstock import tank_series

TANKS = {1: TankSpec("92"), 2: TankSpec("0", 50000.0, 30000.0, 23.0)}
NOZZLES = (NozzleSpec("D1", 1, 1), NozzleSpec("D1", 2, 2), NozzleSpec("D2", 1, 1),
           NozzleSpec("D2", 2, 2))
Y2000 = 946656000  # 2000-01-01T00:00:00+08:00: an RTC's zero after its battery went flat


@cache
def station() -> Synth:
    return generate(Spec(days=20, seed=11, tanks=TANKS, nozzles=NOZZLES))


def alerts(data: StationData) -> list[tuple[str, str | None, int | None]]:
    ctx = Context()
    return sorted((p.kind, p.device, p.tank) for d in DETECTORS for p in d.evaluate(data, ctx))


def with_clock(device: str, shown: Callable[[np.ndarray], np.ndarray]) -> StationData:
    """The honest station with `device`'s clock wrong as `shown` says."""
    return synth_with_clock(station(), device, shown)


def drifting(rate: float, hours: float, day: int, hour: int) -> StationData:
    """The honest station with its gauge's clock gaining `rate` s/day from `hour` o'clock of
    `day` for `hours`, then set right."""
    a = M0 + day * DAY + hour * 3600
    return with_clock("G", drifting_clock(a, a + int(hours * 3600), rate))


def misaligned(data: StationData, settings: Settings | None = None) -> np.ndarray:
    """Device times of the intervals whose gauge clock is seen off its dispensers'."""
    ctx = Context(settings=settings or Settings())
    found = [tank_series(data, tank, ctx) for tank in TANKS]
    return np.concatenate([s.t[1:][s.misaligned()] for s in found if s is not None])


def test_the_honest_station_raises_nothing() -> None:
    assert alerts(station().data) == []
    assert not len(misaligned(station().data))


def test_pumps_that_deliver_while_running_are_aligned_when_fills_are_apportioned() -> None:
    """A real pump takes product out while it runs; counted whole at hang-up, the level
    seems to lead the sales by half a fill and some intervals are left out. With
    fill_attribution: apportioned the alignment books each fill at mid-fill instead."""
    pumps = generate(Spec(days=20, seed=11, tanks=TANKS, nozzles=NOZZLES, continuous_flow=True))
    intervals = 2 * 20 * 96
    assert len(misaligned(pumps.data)) > 0.05 * intervals
    assert len(misaligned(pumps.data, Settings(fill_attribution="apportioned"))) \
        < 0.005 * intervals


@pytest.mark.parametrize(("rate", "hours", "day", "hour", "kind"), [
    (600, 24, 2, 9, "idle_loss"), (-3600, 4.5, 3, 6, "idle_loss"),
    (7200, 4, 2, 16, "idle_loss"), (-7200, 6, 2, 13, "idle_loss"),
    (-3600, 12, 13, 16, "gauge_step")])
def test_a_gauge_clock_off_its_dispensers_is_seen_and_raises_nothing(
        rate: float, hours: float, day: int, hour: int, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No set-back in the gauge's own records while it drifts (a slow clock is set
    forward, a fast one has not been set back yet); its level is compared with the wrong
    stretch of sales unless the alignment sees the offset."""
    a = M0 + day * DAY + hour * 3600
    seen = misaligned(drifting(rate, hours, day, hour))
    assert len(seen) and a < seen.min() and seen.max() < a + (hours + 3) * 3600
    assert alerts(drifting(rate, hours, day, hour)) == []
    monkeypatch.setattr(alignment, "MIN_GAIN_ML", float("inf"))  # no offset is ever seen
    assert kind in {k for k, _, _ in alerts(drifting(rate, hours, day, hour))}


def test_sequence_order_follows_the_sequence_through_wraps_and_clock_jumps() -> None:
    device = np.array(["G"] * 6 + ["D1"] * 3)
    # G: 65534, 65535, 0 made in order; then its clock set back 40 min; 1, 2 after it
    time = np.array([100, 200, 300, 2700 - 2400, 2800 - 2400, 290, 5, 5, 5])
    seq = np.array([65534, 65535, 0, 1, 2, 65533, 65535, 0, 1])
    order = sequence_order(device, time, seq)
    assert [(str(device[i]), int(seq[i])) for i in order] == [
        ("D1", 65535), ("D1", 0), ("D1", 1), ("G", 65533), ("G", 65534), ("G", 65535),
        ("G", 0), ("G", 1), ("G", 2)]


@pytest.mark.parametrize("device", ["D2", "G"])
def test_a_reset_to_2000_in_the_busy_hours_raises_nothing(device: str) -> None:
    a, b = M0 + 9 * DAY + 9 * 3600, M0 + 9 * DAY + 17 * 3600
    data = with_clock(device, lambda t: np.where((t >= a) & (t < b), Y2000 + (t - a), t))
    stream = data.inventory if device == "G" else data.transactions
    assert (stream.time < M0).sum() > 5  # what it made meanwhile
    # from its last time before the reset to its first after it was set right
    [(start, end)] = clock_stretches(data, device)
    assert a - 3600 < start < a and b <= end < b + 3600
    assert alerts(data) == []


def test_a_gauge_set_back_after_running_fast_raises_nothing() -> None:
    """Its readings overlap in time once it is set back 40 min; before that, it runs up
    to 40 min ahead of its dispensers."""
    a, b, rate = M0 + 6 * DAY + 8 * 3600, M0 + 6 * DAY + 16 * 3600, 7200 / 86400
    data = with_clock("G", lambda t: np.where((t >= a) & (t < b), t + (t - a) * rate, t))
    [(start, end)] = clock_stretches(data, "G")
    set_back = (b - a) * rate
    # from the set-back until the clock shows again what it showed before it (±1 reading)
    assert start == pytest.approx(b, abs=900) and end == pytest.approx(b + set_back, abs=900)
    assert alerts(data) == []


@pytest.mark.parametrize("device", ["G", "D1"])
def test_records_made_before_a_set_back_wait_for_those_timed_after_the_cut(
        device: str) -> None:
    """Cut while the records made just before the set-back are timed after the cut and the
    ones made after it before: a sequence or totalizer gap until the rest arrives, unless
    the records timed after the cut (StationData.later) say they exist."""
    a, b, rate = M0 + 5 * DAY + 8 * 3600, M0 + 5 * DAY + 20 * 3600, 7200 / 86400
    full = with_clock(device, lambda t: np.where((t >= a) & (t < b), t + (t - a) * rate, t))
    cut = full.cut(b + 600)  # 10 min after it was set right: 1 h of fast times are later
    assert len(cut.later["inventory" if device == "G" else "transactions"][0])
    kinds = {k for k, _, _ in alerts(cut)}
    assert not kinds & {"sequence_gap", "totalizer_gap", "totalizer_reset", "gauge_step"}
