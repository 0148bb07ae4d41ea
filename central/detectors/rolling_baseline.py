"""The rolling baseline of tank_variance (进销存差异基线): what a tank's daily variance v
should be given its sales s and deliveries D, v ≈ β s + δ D, fitted on the days before the
one judged.

It follows what moves slowly — honest meter drift, the seasons (docs/noise-budget.md) — but
must not learn a cheat: days inside an alarm are *suspect* and never enter a later fit.
Without that, six months of a steady cheat become the baseline, and the day the cheat
pauses or stops reads as the opposite cheat (a blind-sales station "gains", a skimming one
"loses"; the banner's first six-month run raised nine such alerts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class _Day(Protocol):
    @property
    def variance(self) -> float: ...
    @property
    def sales(self) -> float: ...
    @property
    def delivered(self) -> float: ...
    @property
    def as_of(self) -> int: ...


class RollingBaseline:
    """Residuals v − β s − δ D of the segments after the first `learn`, each against a fit on
    the last `days` (never fewer than `learn`) trusted segments that end `lag_days` before
    it. Call `residual(j)` in order of j; `suspect(first, last, until)` marks segments first …
    last and every later one whose day ends by `until` as untrusted."""

    def __init__(self, segments: Sequence[_Day], learn: int, days: int, lag_days: int,
                 outlier_z: float) -> None:
        self.v = np.array([x.variance for x in segments])
        self.sales = np.array([x.sales for x in segments])
        self.dl = np.array([x.delivered for x in segments])
        self.as_of = np.array([x.as_of for x in segments], dtype=np.int64)
        self.trusted = np.ones(len(segments), dtype=bool)
        self.learn, self.days, self.lag_days, self.outlier_z = learn, days, lag_days, outlier_z
        self.suspect_until = -1

    def residual(self, j: int) -> float:
        if self.as_of[j] <= self.suspect_until:
            self.trusted[j] = False
        hi = max(self.learn, j - self.lag_days)
        # the learning days are always trusted (the baseline starts from them)
        use = np.flatnonzero(self.trusted[:hi])[-max(self.days, self.learn):]
        b, d = fit_baseline(self.v[use], self.sales[use], self.dl[use], self.outlier_z)
        return float(self.v[j] - b * self.sales[j] - d * self.dl[j])

    def suspect(self, first: int, last: int, until: int) -> None:
        self.trusted[max(first, self.learn):last + 1] = False
        self.suspect_until = max(self.suspect_until, until)


def fit_baseline(v: np.ndarray, sales: np.ndarray, dl: np.ndarray,
                 outlier_z: float) -> tuple[float, float]:
    """Least squares v ≈ β·sales + δ·delivered, once more without the residuals beyond
    `outlier_z` robust σ; δ = 0 when the window had no drop."""
    keep = np.ones(len(v), dtype=bool)
    b = d = 0.0
    for _ in range(2):
        x = np.column_stack([sales[keep], dl[keep]]) if dl[keep].any() else sales[keep, None]
        if not len(x) or not np.any(x):
            return 0.0, 0.0
        coef = np.linalg.lstsq(x, v[keep], rcond=None)[0]
        b, d = float(coef[0]), float(coef[1]) if len(coef) > 1 else 0.0
        e = v - b * sales - d * dl
        centre = median(e[keep])
        mad = 1.4826 * median(np.abs(e[keep] - centre))
        if mad <= 0:
            break
        keep = np.abs(e - centre) <= outlier_z * mad
    return b, d


def median(values: np.ndarray) -> float:
    """np.median of a short float array, to the bit (the middle value, or the mean of the
    two middle ones), without numpy's per-call cost (≈ 20 µs, called some 150 000 times in a
    six-month pass of the banner's tanks)."""
    if len(values) == 0 or np.isnan(values).any():
        return float(np.median(values))
    s = sorted(values.tolist())
    k = len(s) // 2
    # + 0.0: numpy's mean sums from +0, so a median of −0 comes out +0
    return (s[k] if len(s) % 2 else (s[k - 1] + s[k]) / 2) + 0.0
