"""Stretches in which a device's clock was wrong (设备时钟异常), seen in its own records.

A device numbers what it makes (FIFO sequence numbers); its clock stamps it. In the order it
made them (base.sequence_order), a record timed before one made earlier means the clock was
set back: a drift corrected (it ran fast) or an RTC reset (to 2000-01-01 after a flat backup
battery). The platform cannot place that device's records on the station's time line around
such a jump, so comparisons across devices (a tank's level against its dispensers' sales)
leave the stretch out, as they do a dispenser off line:

- a set-back by at most MAX_DRIFT_S (a corrected drift): the clock was ahead by up to that
  before the jump, so the stretch is [latest time shown − set-back, first time shown after
  the clock caught up again];
- a larger set-back (a reset): the clock was right before it and is right again once it
  was set right, so the stretch is [latest time shown before, first time shown after].

A clock running slow and set forward leaves no such trace (a gap, not an overlap).
"""

from __future__ import annotations

import numpy as np

from central.detectors.base import sequence_order
from central.detectors.data import DEVICE_STREAMS, StationData

MAX_DRIFT_S = 86400  # a larger set-back is a reset, not a corrected drift


def clock_stretches(data: StationData, device: str) -> list[tuple[int, int]]:
    """Device-time stretches in which `device`'s clock was wrong (merged, in time order)."""
    key = ("clock_stretches", device)
    if key not in data.cache:
        found: list[tuple[int, int]] = []
        for name in DEVICE_STREAMS:
            dev, t, seq, _ = data.made_rows(name)  # with the records timed after `through`
            rows = np.flatnonzero(dev == device)
            if len(rows) > 1:
                found += _set_backs(t[rows][sequence_order(dev[rows], t[rows], seq[rows])],
                                    data.through)
        data.cache[key] = _merged(found)
    return list(data.cache[key])


def _set_backs(t: np.ndarray, through: int) -> list[tuple[int, int]]:
    """The stretch of each set-back in `t` (times in the order they were made)."""
    latest = np.maximum.accumulate(t)
    out: list[tuple[int, int]] = []
    k = 1
    while True:
        back = np.flatnonzero(t[k:] < latest[k - 1:-1])
        if not len(back):
            return out
        k += int(back[0])
        shown = int(latest[k - 1])  # the latest time shown before the jump
        caught_up = np.flatnonzero(t[k:] > shown)
        end = int(t[k + int(caught_up[0])]) if len(caught_up) else through
        step = shown - int(t[k])
        out.append((shown - step if step <= MAX_DRIFT_S else shown, max(end, shown)))
        if not len(caught_up):
            return out
        k += int(caught_up[0]) + 1


def _merged(stretches: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(stretches):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
