"""Nozzle meters (计量): true meter error, display rounding, electronic totalizers, prices.

A nozzle's displayed volume is the true volume × (1 + e) × f, where e is the meter's
true error of that fill and f the display (pulse-equivalent) factor, 1 unless a cheat
changes it. An honest meter's e (`Meter.honest_error`, docs/noise-budget.md) is its
calibration error as left at its last verification (`error`), plus a slow drift since then,
an error curve over flow rate and for small volumes, and a per-fill repeatability scatter;
its systematic part stays inside the ±0.30 % MPE of JJG 443. The display shows litres to
0.01 L and yuan to 0.01: all device-side quantities are exact integers (mL multiples of
10, fen), so totalizers never accumulate rounding error.

Two ways a fill ends (JJG 443-2023 lets the amount be off by at most the smallest payment
unit, and the price × volume product is only as good as the volume's resolution):
- fill to full: the display rounds the metered litres; amount = round(volume × price).
- prepaid amount: the pump stops when the amount reaches the preset; the amount is the
  preset and the volume shown is the preset / price rounded to 0.01 L, so
  |amount − volume × price| ≤ 0.005 L × price.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from sim.config import PriceChange

MPE = 0.003  # maximum permissible error of a dispenser meter, JJG 443 (±0.30 %)
MIN_MEASURED_L = 2.0  # minimum measured quantity (最小被测量) of the small-volume term
METER_ERROR_SD = 0.001  # spread of honest meters after verification
METER_ERROR_CLIP = 0.0025  # honest meters stay inside this, well within the MPE


def draw_meter_error(rng: np.random.Generator) -> float:
    """True relative error of an honest meter: N(0, 0.1 %) clipped to ±0.25 %."""
    e = float(rng.normal(0.0, METER_ERROR_SD))
    return min(max(e, -METER_ERROR_CLIP), METER_ERROR_CLIP)


def display_ml(litres: float) -> int:
    """Litres as the display shows them: mL, a multiple of 10 (0.01 L), halves up."""
    return int(math.floor(litres * 100.0 + 0.5)) * 10


def amount_fen(volume_ml: int, price_fen: int) -> int:
    """round(volume × price) to the fen, halves up, in exact integer arithmetic."""
    return (volume_ml * price_fen + 500) // 1000


def preset_volume_ml(preset_fen: int, price_fen: int) -> int:
    """Volume shown when a prepaid fill stops at `preset_fen`: preset / price to 0.01 L."""
    return (200 * preset_fen + price_fen) // (2 * price_fen) * 10


@dataclass(slots=True)
class Meter:
    """One nozzle's meter and electronic totalizers (电子总累)."""

    error: float  # calibration error e as left at the last verification
    volume_total_ml: int
    amount_total_fen: int
    factor: float = 1.0  # display (pulse-equivalent) factor; 1 = honest
    # A cheat whose factor depends on the fill (e.g. skim large fills only): litres of the
    # fill (as ordered or as shown) -> factor. None = `factor` for every fill.
    factor_rule: Callable[[float], float] | None = None
    # Honest imperfections (sim/imperfections.py); all 0 = the error is `error` for every fill.
    verified_at: float = 0.0  # epoch s of the last verification (检定)
    drift_per_day: float = 0.0
    repeatability: float = 0.0  # per-fill sd of the relative error
    flow_ref_lpm: float = 0.0  # 0 = no flow-rate term
    flow_slope: float = 0.0
    small_volume: float = 0.0

    @property
    def gain(self) -> float:
        """Displayed litres per true litre with the calibration error (of a fill the factor
        rule leaves alone)."""
        return (1.0 + self.error) * self.factor

    def gain_for(self, litres: float, honest: float | None = None) -> float:
        """Displayed litres per true litre of a fill of `litres`: (1 + honest error) × the
        display factor; `honest` defaults to the calibration error."""
        e = self.error if honest is None else honest
        rule = self.factor_rule
        return (1.0 + e) * (self.factor if rule is None else rule(litres))

    def honest_error(self, litres: float, flow_lps: float, t: float, z: float) -> float:
        """Honest relative error of one fill of `litres` at `flow_lps` (true L/s) at time `t`;
        `z` is the fill's standard normal (its repeatability scatter)."""
        e = self.error + self.drift_per_day * (t - self.verified_at) / 86400.0 \
            + self.repeatability * z
        if self.flow_ref_lpm > 0.0:
            e += self.flow_slope * (60.0 * flow_lps / self.flow_ref_lpm - 1.0)
        if self.small_volume != 0.0:
            e += self.small_volume * MIN_MEASURED_L / max(litres, 0.5 * MIN_MEASURED_L)
        return e

    def fill_full(self, true_l: float, price_fen: int,
                  honest: float | None = None) -> tuple[int, int]:
        """(displayed mL, amount fen) of a fill-to-full of `true_l` litres."""
        shown = display_ml(true_l * self.gain_for(true_l, honest))
        return shown, amount_fen(shown, price_fen)

    def fill_preset(self, preset_fen: int, price_fen: int,
                    honest: float | None = None) -> tuple[int, int, float]:
        """(displayed mL, amount fen, true litres) of a prepaid fill of `preset_fen`."""
        true_l = preset_fen / price_fen / self.gain_for(preset_fen / price_fen, honest)
        return preset_volume_ml(preset_fen, price_fen), preset_fen, true_l

    def book(self, volume_ml: int, amount: int) -> tuple[int, int, int, int]:
        """Add a finished fill to the totalizers; returns (volume before, volume after,
        amount before, amount after)."""
        v0, a0 = self.volume_total_ml, self.amount_total_fen
        self.volume_total_ml = v1 = v0 + volume_ml
        self.amount_total_fen = a1 = a0 + amount
        return v0, v1, a0, a1


class PriceSchedule:
    """Unit prices per grade over time from the configured price changes (调价).

    The price in force at the start is the latest change at or before the start; later
    changes (up to `end`) take effect at their time, in (time, grade) order.
    """

    def __init__(self, changes: Iterable[PriceChange], grades: Iterable[str], start: float,
                 end: float) -> None:
        grades = tuple(grades)
        by_grade: dict[str, list[tuple[float, int]]] = {g: [] for g in grades}
        for i, change in enumerate(changes):
            if change.grade not in by_grade:
                continue  # a grade this station does not sell
            if not (isinstance(change.price_fen, int) and change.price_fen > 0):
                raise ValueError(f"prices[{i}]: price_fen must be a whole number of fen > 0, "
                                 f"got {change.price_fen!r}")
            if not math.isfinite(change.at):
                raise ValueError(f"prices[{i}]: at must be a finite epoch time, got {change.at!r}")
            by_grade[change.grade].append((change.at, change.price_fen))
        self._times: dict[str, list[float]] = {}
        self._prices: dict[str, list[int]] = {}
        future: list[tuple[float, int, str, int]] = []
        for gi, grade in enumerate(grades):
            points = sorted(by_grade[grade], key=lambda p: p[0])  # stable: same-time keeps order
            before = [p for p in points if p[0] <= start]
            if not before:
                raise ValueError(
                    f"prices: no price for grade {grade!r} at or before the start ({start!r}); "
                    f"add a PriceChange(at <= start, grade={grade!r}, price_fen=...)")
            kept = [(start, before[-1][1])] + [p for p in points if start < p[0] <= end]
            self._times[grade] = [p[0] for p in kept]
            self._prices[grade] = [p[1] for p in kept]
            future.extend((t, gi, grade, price) for t, price in kept[1:])
        future.sort(key=lambda c: (c[0], c[1]))
        self.changes: tuple[tuple[float, str, int], ...] = tuple((t, g, p) for t, _, g, p in future)

    def initial(self, grade: str) -> int:
        return self._prices[grade][0]

    def price_at(self, grade: str, t: float) -> int:
        """Price (fen/L) in force at time t (a change at exactly t is in force)."""
        i = bisect_right(self._times[grade], t) - 1
        return self._prices[grade][max(i, 0)]

    def prices_at(self, grade: str, times: np.ndarray) -> np.ndarray:
        """`price_at` over an array of times."""
        i = np.searchsorted(np.asarray(self._times[grade]), times, side="right") - 1
        return np.asarray(self._prices[grade], dtype=np.int64)[np.maximum(i, 0)]
