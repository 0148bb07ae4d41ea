"""What a device's clock (RTC, 设备时钟) shows at a true instant, under the scenario's clock
faults (sim.config.ClockFault). The devices stamp records and the header's RTC with it; the
harness maps the ground truth's true times through it to know which device times to expect.
One function for both, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sim.config import ClockFault

DAY_S = 86400.0


def device_faults(faults: Iterable[ClockFault], station_id: str, device: str
                  ) -> tuple[ClockFault, ...]:
    return tuple(f for f in faults if f.station_id == station_id and f.device == device)


def offset(fault: ClockFault, t: np.ndarray) -> np.ndarray:
    """Seconds the device's clock is ahead of true time `t` because of `fault` (0 outside)."""
    inside = (t >= fault.at) & (t < fault.at + fault.duration_s)
    if fault.reset_to is not None:
        error = np.full_like(t, fault.reset_to - fault.at)
    else:
        error = (t - fault.at) * (fault.drift_s_per_day / DAY_S)
    return np.where(inside, error, 0.0)


def shown(faults: tuple[ClockFault, ...], t: float) -> float:
    """The device clock at true time `t` (its faults only; they never overlap)."""
    if not faults:
        return t
    return float(shown_array(faults, np.array([t], dtype=np.float64))[0])


def shown_array(faults: tuple[ClockFault, ...], t: np.ndarray) -> np.ndarray:
    out = np.asarray(t, dtype=np.float64)
    return out + sum((offset(f, out) for f in faults), np.zeros_like(out))
