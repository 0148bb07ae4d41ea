"""Ground temperature at tank depth and fuel-temperature relaxation.

Urad Middle Banner (乌拉特中旗, Bayannur) has cold winters and warm summers; at the ~1 m
depth of an underground tank the seasonal wave is damped and delayed (coldest late
February, warmest late August) and the daily swing is nearly gone (±0.3 °C, peaking in
the late evening because the wave takes hours to reach that depth).
"""

from __future__ import annotations

import math

GROUND_MEAN_C = 10.0
GROUND_SEASONAL_AMPLITUDE_C = 8.0  # min ~2 °C, max ~18 °C
GROUND_COLDEST_DAY = 54.0  # days after 1 January (≈ 24 February)
GROUND_DIURNAL_AMPLITUDE_C = 0.3
GROUND_DIURNAL_PEAK_H = 22.0  # local hour of the diurnal maximum at tank depth

_YEAR_DAYS = 365.2425  # Gregorian mean year: the phase stays within a day of the calendar
_DAY_S = 86400.0

# Ground temperature as mean + Σ amplitude·cos(ω·s + phase), s = local seconds since the
# epoch (1970-01-01 is day 0 of a year). The form lets the fuel temperature be solved exactly.
_COMPONENTS: tuple[tuple[float, float, float], ...] = (
    (-GROUND_SEASONAL_AMPLITUDE_C, 2.0 * math.pi / (_YEAR_DAYS * _DAY_S),
     -2.0 * math.pi * GROUND_COLDEST_DAY / _YEAR_DAYS),
    (GROUND_DIURNAL_AMPLITUDE_C, 2.0 * math.pi / _DAY_S,
     -2.0 * math.pi * GROUND_DIURNAL_PEAK_H / 24.0),
)


def ground_temperature_c(epoch_s: float, utc_offset_h: float = 8.0) -> float:
    """Ground temperature (°C) around the tank at POSIX time `epoch_s`."""
    s = epoch_s + utc_offset_h * 3600.0
    return GROUND_MEAN_C + sum(a * math.cos(w * s + p) for a, w, p in _COMPONENTS)


def _steady_fuel_c(local_s: float, tau_s: float) -> float:
    """Periodic solution of dT/dt = (ground − T)/τ: each ground wave, damped by
    1/√(1+(ωτ)²) and delayed by atan(ωτ)/ω."""
    total = GROUND_MEAN_C
    for a, w, p in _COMPONENTS:
        wt = w * tau_s
        total += a / math.sqrt(1.0 + wt * wt) * math.cos(w * local_s + p - math.atan(wt))
    return total


def steady_fuel_temperature_c(epoch_s: float, tau_s: float, utc_offset_h: float = 8.0) -> float:
    """Temperature a tank's fuel settles to (long after any delivery) at `epoch_s`."""
    return _steady_fuel_c(epoch_s + utc_offset_h * 3600.0, tau_s)


def fuel_temperature_c(temp_c: float, t0: float, t1: float, tau_s: float,
                       utc_offset_h: float = 8.0) -> float:
    """Fuel temperature at `t1` given `temp_c` at `t0`, relaxing with time constant `tau_s`
    towards the (moving) ground temperature. Exact, so it does not depend on how the
    interval is split into steps."""
    if t1 < t0:
        raise ValueError(f"fuel_temperature_c: t1 ({t1!r}) is before t0 ({t0!r})")
    if not tau_s > 0:
        raise ValueError(f"fuel_temperature_c: tau_s must be > 0, got {tau_s!r}")
    offset = utc_offset_h * 3600.0
    p0 = _steady_fuel_c(t0 + offset, tau_s)
    p1 = _steady_fuel_c(t1 + offset, tau_s)
    return p1 + (temp_c - p0) * math.exp(-(t1 - t0) / tau_s)


def relax(temp_c: float, target_c: float, dt_s: float, tau_s: float) -> float:
    """Temperature after `dt_s` of first-order relaxation towards a constant target."""
    if dt_s < 0:
        raise ValueError(f"relax: dt_s must be >= 0, got {dt_s!r}")
    if not tau_s > 0:
        raise ValueError(f"relax: tau_s must be > 0, got {tau_s!r}")
    return target_c + (temp_c - target_c) * math.exp(-dt_s / tau_s)
