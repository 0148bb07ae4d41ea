"""The reference platform under wrong device clocks (central/detectors/clock.py): an honest
station whose gauge clock drifts and is set right, and whose dispenser's clock resets to
2000-01-01 for hours, raises no alert once its records are put on the station's time from
the heartbeats — and, left on the devices' clocks, it does (the guard can fail)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from detectors_synth import DAY, M0, NozzleSpec, Spec, Synth, TankSpec, generate

from central.detectors.base import Context
from central.detectors.clock import CLOCK_COLUMNS, ClockLimits, StationClock, sequence_order
from central.detectors.data import StationData, Stream, align_clocks
from central.detectors.runner import detect
from sim.config import ClockFault
from sim.device_clock import shown_array

H = 3600
Y2000 = 946656000  # 2000-01-01 00:00 +08:00
NOZZLES = (NozzleSpec("D1", 1, 1), NozzleSpec("D2", 1, 1))
FAULTS = {"G": (ClockFault("S", "G", M0 + 16 * DAY + 2 * H, 12 * H, drift_s_per_day=7200),),
          "D1": (ClockFault("S", "D1", M0 + 17 * DAY + 8 * H, 6 * H, reset_to=Y2000),)}


@cache
def honest() -> Synth:
    return generate(Spec(days=20, seed=11, tanks={1: TankSpec()}, nozzles=NOZZLES))


def kinds(data: StationData) -> set[tuple[str, str | None]]:
    return {(p.kind, p.device) for _, p in detect(data, Context())}


def as_shown(data: StationData, faults: dict, read_after_s: float = 2.0
             ) -> tuple[dict[str, Stream], list[tuple]]:
    """The station's streams as the devices stamped them under `faults` (each record read
    `read_after_s` after it was made, at real time), and a heartbeat a minute with every
    device's clock at its last header read, the reads up to 50 s apart."""
    streams = dict(data.streams)
    for name, columns in CLOCK_COLUMNS.items():
        s = data.streams[name]
        cols = dict(s.columns)
        cols["collected_at"] = s.columns[columns[0]].astype(float) + read_after_s
        for dev, fs in faults.items():
            m = s.device == dev
            for c in columns:
                cols[c] = cols[c].copy()
                cols[c][m] = np.round(shown_array(fs, s.columns[c][m].astype(float)))
        streams[name] = Stream(name, cols)
    return streams, heartbeats(data, faults, spread_s=50.0)


def heartbeats(data: StationData, faults: dict, spread_s: float = 0.0,
               seed: int = 1) -> list[tuple]:
    """A heartbeat a minute: each device's clock at its header read, made up to `spread_s`
    before the heartbeat (a slow sweep, or compressed time), and when it was read."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, t in enumerate(np.arange(M0 + 60, data.through, 60.0)):
        for dev in ("D1", "D2", "G"):
            read = float(t) - 1.0 - float(rng.uniform(0.0, spread_s))
            rows.append((float(t), k, dev,
                         float(shown_array(faults.get(dev, ()), np.array([read]))[0]), read))
    return rows


def station(streams: dict[str, Stream], data: StationData) -> StationData:
    return StationData(data.station_id, data.through, dict(data.tanks), dict(data.nozzles),
                       streams, dict(data.device_through))


def test_an_honest_station_with_wrong_clocks_raises_nothing_on_the_station_time() -> None:
    data = honest().data
    assert kinds(data) == set()  # the baseline: honest and quiet
    streams, beats = as_shown(data, FAULTS)
    limits = ClockLimits()
    align_clocks(streams, StationClock.from_heartbeats(beats, limits), data.through, limits)
    aligned = station(streams, data)
    assert kinds(aligned) == set()
    # the wrong clocks' records moved back to within the tolerance of their true times
    for name, columns in CLOCK_COLUMNS.items():
        got, true = aligned.streams[name], data.streams[name]
        at = {(d, q): t for d, q, t in zip(got.device, got.seq, got.columns[columns[0]],
                                           strict=True)}
        err = [abs(at[(d, q)] - t) for d, q, t in zip(true.device, true.seq,
                                                      true.columns[columns[0]], strict=True)]
        assert len(at) == len(true) and max(err, default=0) <= limits.tolerance_s, name
    moved = {name: set(aligned.streams[name].device[aligned.streams[name].clock_offset_s != 0])
             for name in ("transactions", "inventory")}
    assert moved == {"transactions": {"D1"}, "inventory": {"G"}}


def test_left_on_the_devices_clocks_the_same_station_raises_false_alerts() -> None:
    data = honest().data
    streams, _ = as_shown(data, FAULTS)
    for name, columns in CLOCK_COLUMNS.items():  # stored order: by device time
        s = streams[name]
        streams[name] = s.select(np.argsort(s.columns[columns[0]], kind="stable"))
    assert kinds(station(streams, data))  # e.g. gauge_step, idle_loss, totalizer alerts


@pytest.mark.parametrize("with_read_times", [True, False])
def test_an_honest_clock_read_a_sweep_apart_is_never_moved(with_read_times: bool) -> None:
    """Clocks read up to 50 s apart (40 s with no read times, which the tolerance must
    absorb); with read times they are compared at one instant, so even 50 s is no offset."""
    data = honest().data
    streams, _ = as_shown(data, {})
    beats = heartbeats(data, {}, spread_s=50.0 if with_read_times else 40.0)
    if not with_read_times:
        beats = [(*b[:4], None) for b in beats]
    limits = ClockLimits()
    clock = StationClock.from_heartbeats(beats, limits)
    if with_read_times:
        assert max(np.abs(o).max() for _, _, o, _ in clock.samples.values()) < 1.0
    align_clocks(streams, clock, data.through, limits)
    for name in CLOCK_COLUMNS:
        assert not streams[name].clock_offset_s.any(), name


def test_two_devices_cannot_outvote_each_other() -> None:
    rows = [(100.0, 1, "D1", 1000.0, None), (100.0, 1, "G", 5000.0, None)]
    assert StationClock.from_heartbeats(rows, ClockLimits()).samples == {}


@pytest.mark.parametrize("read", [[0, 1, 2, 3, 4], [0, 2, 1, 3, 4]])
def test_sequence_order_unwraps_in_read_order_whatever_the_clock(read: list[int]) -> None:
    """65534, 65535, 0, 1, 2 read in (about) that order stay in it, even when the device
    times say otherwise (a clock set back between them)."""
    dev = np.array(["D1"] * 5)
    seq = np.array([65534, 65535, 0, 1, 2])
    order, rank = sequence_order(dev, seq, np.array(read, dtype=float))
    assert order.tolist() == [0, 1, 2, 3, 4]
    assert rank.tolist() == [65534, 65535, 65536, 65537, 65538]


def beats_of(clocks: dict[str, list[float]]) -> list[tuple]:
    """Heartbeat rows, one a wall second, every device's clock read at that instant."""
    n = len(next(iter(clocks.values())))
    return [(k + 1.0, k + 1, d, clocks[d][k], k + 1.0) for k in range(n) for d in clocks]


def test_records_after_a_set_back_no_read_has_shown_yet_wait() -> None:
    """A gauge 600 s ahead; after its latest header read it is set right, which only its
    records show (device time steps back): those from the step on wait for the next read,
    the ones before are moved by the 600 s."""
    station = [1000.0 * k for k in range(1, 11)]
    limits = ClockLimits()
    clock = StationClock.from_heartbeats(beats_of(
        {"D1": station, "D2": station, "G": [t + 600 for t in station]}), limits)
    t = np.array([9500.0, 10000.0, 10500.0, 10200.0, 10300.0]) + np.array([600] * 3 + [0] * 2)
    read = np.array([9.6, 10.2, 10.6, 10.8, 10.9])
    off, unplaced = clock.offsets_for("G", read, t, np.arange(5), limits)
    assert off[:3].tolist() == [600, 600, 600]
    assert unplaced.tolist() == [False, False, False, True, True]


def test_a_record_made_before_a_reset_and_read_after_it_keeps_its_time() -> None:
    station = [1000.0 * k for k in range(1, 11)]
    reset = [t if k < 5 else 50.0 + 1000.0 * (k - 5) for k, t in enumerate(station)]
    limits = ClockLimits()
    clock = StationClock.from_heartbeats(beats_of({"D1": station, "D2": station, "G": reset}),
                                         limits)
    # made at 5900 on the right clock, read at wall 6.2; made at 6300 on the reset clock
    t = np.array([5900.0, 6300.0 - 5950.0])
    off, unplaced = clock.offsets_for("G", np.array([6.2, 6.4]), t, np.arange(2), limits)
    assert off[0] == 0 and abs(t[1] - off[1] - 6300.0) <= limits.tolerance_s
    assert not unplaced.any()
