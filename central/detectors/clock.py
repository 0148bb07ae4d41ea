"""Device clocks against their station (设备时钟): records stamped by a wrong clock are put
on the station's time before detection, and a device's records are ordered by sequence.

A device's real-time clock can drift, or reset to its zero when its backup battery goes
flat (2000-01-01). Its records keep the times it showed (part of their keys, docs/uplink.md
§3), but the detectors compare devices in time (a gauge's readings against the dispensers'
fills). So (docs/detectors.md §1.1):

- `StationClock.from_heartbeats`: each heartbeat's fresh device clocks, carried to one
  instant with their read times (uplink 1.2 `rtc_read_at`); with at least three, their
  median is the station's time and each device's offset its clock minus that (one wrong
  clock is outvoted; two devices cannot tell which is wrong); offsets smoothed by a running
  median of three reads;
- `offsets_for`: each record moved by its device's offset between the reads before and
  after the collector read it — interpolated while the clock drifted, the earlier or the
  later across a jump as the record sequence places it; offsets within the tolerance count
  as a right clock; records after a set-back no read has measured yet wait;
- `sequence_order`: a device's records by their 16-bit sequence unwrapped in the order they
  were read, never by their time.

Not handled: a record made while a clock was wrong and read only after it was set right
keeps its wrong time. Cost: every heartbeat of the station is read at each evaluation, as
every record is (an incremental state is for six-month runs, issue 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEQ_MOD = 65536
# the time columns of each device stream, first the one the stream is ordered by
CLOCK_COLUMNS = {"transactions": ("end_time", "start_time"), "inventory": ("device_time",),
                "deliveries": ("end_time", "start_time"), "events": ("device_time",),
                "states": ("device_time",)}


@dataclass(frozen=True)
class ClockLimits:
    tolerance_s: float = 120.0
    min_devices: int = 3
    max_drift: float = 0.1  # s per s (8,640 s/day): a faster change is a jump
    read_spread: float = 0.25  # of the station's advance between heartbeats: noise
    ahead_s: int = 86400  # records stamped up to this far beyond `through` are looked at
    smooth: int = 3  # header reads per running median of a device's offsets


@dataclass
class StationClock:
    """Heartbeat samples of one station: the instant of each (the collector's clock at its
    latest header read; without read times, the heartbeat's arrival at the platform), the
    station's time then, and per device the (instant, device time, offset, noise bound) of
    each fresh header read (one repeated from the heartbeat before does not count)."""

    instants: np.ndarray = field(default_factory=lambda: np.zeros(0))
    station_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    samples: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    @classmethod
    def from_heartbeats(cls, rows: Sequence[Sequence[Any]],
                        limits: ClockLimits) -> StationClock:
        """`rows`: (received_at, msg_seq, device, device_time, rtc_read_at or None) of the
        devices reported on line, ordered by (received_at, msg_seq)."""
        instants: list[float] = []
        station: list[float] = []
        per_device: dict[str, list[tuple[float, float, float, float]]] = {}
        last: dict[str, tuple[float, float | None]] = {}  # device → (clock, read at) before
        i = 0
        while i < len(rows):
            j = i
            while j < len(rows) and tuple(rows[j][:2]) == tuple(rows[i][:2]):
                j += 1
            beat = [(str(r[2]), float(r[3]), None if r[4] is None else float(r[4]))
                    for r in rows[i:j]]
            arrived = float(rows[i][0])
            i = j
            # a clock repeated from the heartbeat before is an old read (the device was
            # slow, failing, or not yet polled again): only fresh reads vote
            fresh = [b for b in beat if b[0] not in last or last[b[0]][0] != b[1]]
            at_once = _at_one_instant(fresh, last)
            last.update((d, (t, w)) for d, t, w in beat)
            if len(fresh) < limits.min_devices or at_once is None:
                continue
            instant, shown = at_once
            ref = float(np.median(shown))
            # clocks compared without read times were read up to a sweep apart while the
            # world moved on: a share of its advance since the heartbeat before is noise
            noise = 0.0 if instant is not None or not station else \
                limits.read_spread * max(ref - station[-1], 0.0)
            instant = arrived if instant is None else instant
            instants.append(instant)
            station.append(ref)
            for (dev, _, _), t in zip(fresh, shown, strict=True):
                per_device.setdefault(dev, []).append((instant, t, t - ref, noise))
        samples: dict[str, tuple[np.ndarray, ...]] = {}
        for d, v in per_device.items():
            wall, read, off, bound = (np.array(c) for c in zip(*v, strict=True))
            smooth = _running_median(off, limits.smooth)
            samples[d] = (wall, read - off + smooth, smooth, bound)
        return cls(np.array(instants), np.array(station), samples)

    def offsets_for(self, device: str, collected_at: np.ndarray, t: np.ndarray,
                    rank: np.ndarray, limits: ClockLimits) -> tuple[np.ndarray, np.ndarray]:
        """Seconds to subtract from each of one device stream's record times `t` (read at
        `collected_at`, `rank` its unwrapped sequence). Take the device's header reads
        before (p) and after (n) a record was read. If the clock drifted between them,
        the offset is interpolated in device time. If it jumped (the offset changed faster
        than any drift), the record takes n's offset if it comes at or after the jump in
        the stream's sequence — the step between consecutive records that moves device
        time the jump's way by more than half of it — else p's, extrapolated along the
        drift before p. 0 where neither read is off by more than the tolerance.
        Returns (offsets, unplaced): unplaced are records read after the device's latest
        header read, from a step back of device time on — the clock was set back and no
        read has shown by how much yet; they wait for the next heartbeat."""
        out = np.zeros(len(t), dtype=np.int64)
        unplaced = np.zeros(len(t), dtype=bool)
        if device not in self.samples or not len(t):
            return out, unplaced
        wall, shown, off, noise = self.samples[device]
        # per header read k ≥ 1: did the clock jump since read k-1, and how fast it drifted
        station = shown - off
        d_off, d_station = np.diff(off), np.maximum(np.diff(station), 1.0)
        tol = np.maximum(limits.tolerance_s, noise)
        jump = np.r_[False, np.abs(d_off) > tol[1:] + limits.max_drift * d_station]
        slope = np.r_[0.0, np.where(jump[1:], 0.0, np.clip(d_off / d_station, -limits.max_drift,
                                                            limits.max_drift))]
        eff = np.where(np.abs(off) > tol, off, 0.0)  # within the noise: taken as right
        known = np.flatnonzero(np.isfinite(collected_at))
        c, tk, rk = collected_at[known], t[known], rank[known]
        n = np.minimum(np.searchsorted(wall, c, "right"), len(wall) - 1)
        p = np.maximum(n - 1, 0)
        # (a record may be newer than the read after it: extrapolate, a bracket at most)
        frac = np.clip((tk - shown[p]) / np.maximum(shown[n] - shown[p], 1.0), 0.0, 2.0)
        chosen = eff[p] + frac * (eff[n] - eff[p])
        in_seq = np.argsort(rk, kind="stable")
        step = np.zeros(len(tk))  # device time since the record before in sequence
        step[in_seq[1:]] = np.diff(tk[in_seq])
        # a clock set back shows in the records themselves: device time steps back
        set_back = (off[n] - off[p] < -tol[n]) & (step < -np.maximum(tol[n], np.abs(
            off[n] - off[p]) / 2))
        jumped = jump[n].copy()
        jumped[np.isin(n, n[set_back])] = True
        j = np.flatnonzero(jumped)
        if len(j):
            delta = off[n[j]] - off[p[j]]
            at_jump = step[j] * np.sign(delta) > np.abs(delta) / 2
            first: dict[int, float] = {}  # per jump: the rank of its first record
            for k in np.flatnonzero(at_jump):
                first[int(n[j[k]])] = min(first.get(int(n[j[k]]), np.inf), float(rk[j[k]]))
            after = np.array([rk[k] >= first.get(int(n[k]), np.inf) for k in j], dtype=bool)
            before = np.where(eff[p[j]] != 0, eff[p[j]] + slope[p[j]] * (tk[j] - shown[p[j]]),
                              0.0)
            chosen[j] = np.where(after, eff[n[j]], before)
        # a record is made before it is read: one put ahead of the station's time when it
        # was read (by more than the tolerance and the bracket's advance) was made before
        # the jump — a record made just before a reset, read just after it — and takes the
        # earlier read's offset, or none
        ref = np.interp(c, self.instants, self.station_time)
        slack = np.maximum(tol[n], station[n] - station[p])
        for fallback in (eff[p], 0.0):
            chosen = np.where(tk - chosen > ref + slack, fallback, chosen)
        out[known] = np.round(chosen).astype(np.int64)
        open_back = (c > wall[-1]) & (step < -tol[-1])
        if open_back.any():
            unplaced[known] = rk >= rk[open_back].min()
        return out, unplaced


def _running_median(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running median (`width` odd, the ends reflected): a lone outlier vanishes, a
    step (a clock jump) stays where it is, so does a plateau of more than width // 2."""
    if width < 2 or len(x) <= width // 2:
        return x
    half = width // 2
    padded = np.pad(x, half, mode="reflect")  # an outlier at either end vanishes too
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def _at_one_instant(fresh: list[tuple[str, float, float | None]],
                    last: dict[str, tuple[float, float | None]]
                    ) -> tuple[float | None, list[float]] | None:
    """(the instant, the fresh clocks of one heartbeat at it): each clock carried forward to
    its latest read (uplink 1.2 `rtc_read_at`) at the rate the station's clocks advanced
    since their reads before (their median: a wrong clock is outvoted). Clocks read a sweep
    apart differ by the sweep times that rate — minutes when the world runs compressed.
    None when read times are given but no rate is known yet (not comparable); without read
    times, (None, the clocks as read)."""
    reads = [(d, t, w) for d, t, w in fresh if w is not None]
    if len(reads) < len(fresh) or not reads:
        return None, [t for _, t, _ in fresh]
    rates = []
    for d, t, w in reads:
        t0, w0 = last.get(d, (t, None))
        if w0 is not None and w > w0:
            rates.append((t - t0) / (w - w0))
    if not rates:
        return None
    rate = max(float(np.median(rates)), 0.0)
    latest = max(w for _, _, w in reads)
    return latest, [t + rate * (latest - w) for _, t, w in reads]


def sequence_order(device: np.ndarray, seq: np.ndarray,
                   read_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices ordering records by device and sequence, each record's unwrapped sequence):
    the 16-bit sequence is unwrapped per device walking the records in `read_order` (the
    order they were read, which may differ locally), so 65535, 0, 1 stay in that order and
    a clock set back changes nothing."""
    walk = np.lexsort((seq, read_order, device))
    d, s = device[walk], seq[walk].astype(np.int64)
    step = (s[1:] - s[:-1] + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2
    step = np.where(d[1:] == d[:-1], step, 0)
    # restart the running sum at each device's first record
    run = np.cumsum(np.r_[0, step]).astype(np.int64)
    first = np.r_[True, d[1:] != d[:-1]] if len(s) else np.zeros(0, dtype=bool)
    base = np.maximum.accumulate(np.where(first, np.arange(len(s)), 0))
    unwrapped = s[base] + run - run[base]
    rank = np.empty(len(s), dtype=np.int64)
    rank[walk] = unwrapped
    return np.lexsort((rank, device)), rank


def read_order(stream: Any, rows: np.ndarray) -> np.ndarray:
    """The order in which the collector read `rows` of a stream: `collected_at`, or, where
    that is unknown (data built without it), the record's time."""
    read = stream.collected_at[rows]
    return np.where(np.isfinite(read), read, stream.time[rows].astype(float))
