"""A gauge's clock against its dispensers' (液位仪与加油机时钟不一致), seen in the data.

A gauge whose clock runs slow, or runs fast and has not been set back yet, leaves no trace
in its own records (clocks.py sees set-backs only). Its readings then show the tank's sales
at the wrong times: a reading timed t by a gauge δ ahead of its dispensers took the level at
dispenser time t − δ, so an idle stretch opens or closes on sales it should not hold and a
tank comparison sees product vanish (measured: a gauge 11 min slow raised a false
idle_loss). The level says when the product left, the dispensers say when they booked it:
for each candidate δ, the tank's drops are compared with the sales booked in the intervals
shifted by δ, over a trailing window, and the δ that explains them best — by a clear margin
over δ = 0 — is the gauge's apparent offset. idle_loss and gauge_step, which compare single
readings with the sales around them, leave an interval with an offset out. The detectors of
days-long windows keep it: a stretch of minutes barely moves them, and leaving it out
delayed a 2 % skim's first meter_skim alert by a week (a 6-h drift across the window's end,
tests/test_detectors_causality.py's station). Offsets come in 2-min steps: a fill's own
duration (1–3 min) blurs finer ones.

Causal (docs/detectors.md §1.2): the offset of the interval ending at reading t_j uses only
readings up to t_j and sales booked by t_j (+ the decision's wait, for idle_loss its 15-min
grace). A slow gauge's reading at t_j holds sales booked up to t_j + |δ|, so a slow shift is
judged on the intervals ending by t_j − |δ| (+ the wait).
"""

from __future__ import annotations

import numpy as np

SHIFTS_S = np.arange(-3600, 3601, 120)  # candidate offsets, gauge minus dispensers
ZERO = int(np.flatnonzero(SHIFTS_S == 0)[0])
WINDOW_S = 2 * 3600  # trailing window the offset is judged on
MIN_GAIN_ML = 30_000  # the better fit must explain this much more product than δ = 0 …
MAX_RATIO = 0.8  # … and leave at most this share of δ = 0's misfit


class Alignment:
    """A tank's gauge against its dispensers' sales, for each candidate offset.

    t: reading times (gauge clock, increasing); drop_ml[i]: 20 °C volume at t[i] minus at
    t[i+1]; usable[i]: the interval can be compared (no delivery, no dispenser off line, no
    frozen reading); booked_at/booked_ml: when (dispenser clocks, sorted) the tank's fills
    took their product out and their metered volumes; factor[i]: the interval's VCF."""

    def __init__(self, t: np.ndarray, drop_ml: np.ndarray, usable: np.ndarray,
                 booked_at: np.ndarray, booked_ml: np.ndarray, factor: np.ndarray) -> None:
        self.ends = t[1:]
        cum_booked = np.r_[0.0, np.cumsum(booked_ml.astype(float))]
        shifted = t[:, None] - SHIFTS_S[None, :]  # dispenser time of each reading, per shift
        booked = cum_booked[np.searchsorted(booked_at, shifted.ravel(), "right")]
        misfit = np.abs(drop_ml[:, None] - np.diff(booked.reshape(shifted.shape), axis=0)
                        * factor[:, None])
        misfit[~usable] = 0.0
        # cumulative misfit per shift: a window's misfit is a difference of two rows
        self.cum = np.vstack([np.zeros(len(SHIFTS_S)), np.cumsum(misfit, axis=0)])

    def offsets(self, rows: np.ndarray, lookahead_s: int = 0) -> np.ndarray:
        """The gauge's apparent offset (s, 0 = none seen) for the intervals `rows`. With
        `lookahead_s`, sales booked up to that long after an interval's end count for it
        (a decision that waits that long may use them)."""
        out = np.zeros(len(rows), dtype=np.int64)
        lo = np.searchsorted(self.ends, self.ends[rows] - WINDOW_S, "right")
        # no shift can explain more than δ = 0 leaves unexplained over the whole window
        ask = np.flatnonzero(self.cum[rows + 1, ZERO] - self.cum[lo, ZERO] >= MIN_GAIN_ML)
        if not len(ask):
            return out
        lo, ends = lo[ask], self.ends[rows[ask]]
        # a slow shift is judged on the intervals whose sales are booked by then
        lag = np.maximum(0, -SHIFTS_S - lookahead_s)[None, :]
        hi = np.maximum(np.searchsorted(self.ends, (ends[:, None] - lag).ravel(), "right")
                        .reshape(len(ask), len(SHIFTS_S)), lo[:, None])
        here = np.take_along_axis(self.cum, hi, axis=0) - self.cum[lo]
        zero = self.cum[hi, ZERO] - self.cum[lo, ZERO][:, None]  # δ = 0, same intervals
        gain = np.where((zero - here >= MIN_GAIN_ML) & (here <= MAX_RATIO * zero),
                        zero - here, 0.0)
        best = np.argmax(gain, axis=1)
        out[ask] = np.where(gain[np.arange(len(ask)), best] > 0, SHIFTS_S[best], 0)
        return out
