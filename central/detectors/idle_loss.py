"""Idle loss (非营业时段失油): product leaving a tank while none of its nozzles sells and no
delivery runs — an off-book withdrawal (偷油/私自抽油), typically at night.

Idle stretches are maximal runs of reading intervals with no fill of the tank's nozzles
overlapping them, no delivery, no dispenser of the tank reported off line (its unreported
sales are device_offline_sales' business), no repeated gauge reading (a frozen gauge
catching up is gauge_frozen's) and no gauge clock seen off its dispensers' (alignment.py,
with the sales booked in the grace: a slow gauge's reading holds sales booked after it).
Within a stretch starting at reading a, the drop at reading j is v20[a] − v20[j]; it
alarms when

    drop > max(`min_l`, `k` × √2 σ_g) + `leak_allow_l_per_h` × hours since a

σ_g is the reading noise learnt from the tank's idle intervals in its first `learn_days`
(prior 3 L); √2 σ_g is the noise of a difference of two readings (a stretch telescopes, so
its noise does not grow with its length). Defaults: `min_l` 100 L (a withdrawal is
hundreds of litres; a car-sized fill that a transaction filter hid, ≈ 40 L, stays
below — that is totalizer_gap's evidence), `k` 6, `leak_allow_l_per_h` 2 L/h ≈ 2.6 × a 0.2 gph leak (0.76 L/h),
so a slow leak's idle drop (≈ 9 L over a 12 h night) stays well below the limit; leaks are
tank_variance's `leak_suspected`.

A reading is decided `grace_s` (900 s) after its time, so a fill running across it is
known by then; as_of = reading time + grace. One alert per tank and local day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from central.detectors.base import (
    AlertProposal,
    Context,
    day_labels,
    first_per_group,
    iso,
    tank_horizon,
)
from central.detectors.data import StationData
from central.detectors.wetstock import learn_end, reading_sigma, tank_series


@dataclass(frozen=True)
class IdleLossLimits:
    min_l: float = 100.0
    k: float = 6.0
    leak_allow_l_per_h: float = 2.0
    grace_s: int = 900
    learn_days: int = 14
    sigma_prior_l: float = 3.0
    sigma_floor_l: float = 1.0


class IdleLossDetector:
    name: ClassVar[str] = "idle_loss"
    kinds: ClassVar[tuple[str, ...]] = ("idle_loss",)

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, IdleLossLimits())
        out: list[AlertProposal] = []
        for tank in sorted(set(data.tanks) | set(np.unique(data.inventory.tank).tolist())):
            s = tank_series(data, int(tank), ctx)
            if s is None:
                continue
            horizon = tank_horizon(data, ctx, int(tank))
            learnt = learn_end(int(s.t[0]), ctx.zone, lim.learn_days)
            sigma_learnt = reading_sigma(s, learnt, lim.sigma_prior_l, lim.sigma_floor_l)
            idle = s.idle
            # the sales booked in the grace also show a slow gauge clock (alignment.py)
            rows = np.flatnonzero(idle)
            idle[rows] = ~s.misaligned(lim.grace_s, rows)
            new = idle & ~np.r_[False, idle[:-1]]
            start = np.maximum.accumulate(np.where(new, np.arange(len(idle)), 0))
            j = np.arange(1, len(s.t))  # reading at the end of interval j-1
            drop = (s.v20[start] - s.v20[j]) / 1000.0
            hours = (s.t[j] - s.t[start]) / 3600.0
            as_of = s.t[j] + lim.grace_s
            sigma = np.where(as_of >= learnt, sigma_learnt, lim.sigma_prior_l)
            limit = (np.maximum(lim.min_l, lim.k * np.sqrt(2.0) * sigma)
                     + lim.leak_allow_l_per_h * hours) * ctx.scale
            hit = np.flatnonzero(idle & (drop > limit) & (as_of <= horizon))
            if not len(hit):
                continue
            # first crossing per stretch, then one alert per local day
            _, first = np.unique(start[hit], return_index=True)
            hit = hit[first]
            days = day_labels(s.t[hit + 1], ctx.zone)
            for g in first_per_group(days, s.t[hit + 1]):
                i = int(hit[g[0]])
                a = int(start[i])
                out.append(AlertProposal(
                    "idle_loss", "critical", int(as_of[i]),
                    f"tank {tank}: product left the tank while idle",
                    f"{drop[i]:.0f} L left tank {tank} between {iso(int(s.t[a]), ctx.zone)} "
                    f"and {iso(int(s.t[i + 1]), ctx.zone)} with no sale and no delivery "
                    f"(limit {limit[i]:.0f} L)", {
                        "idle_from": int(s.t[a]), "to_time": int(s.t[i + 1]),
                        "drop_l": float(drop[i]), "hours": float(hours[i]),
                        "limit_l": float(limit[i]), "sigma_reading_l": float(sigma[i]),
                        "volume_20c_from_ml": int(s.v20[a]),
                        "volume_20c_to_ml": int(s.v20[i + 1]), "stretches_that_day": len(g)},
                    f"idle_loss/T{tank}/{days[g[0]]}", tank=int(tank)))
        return out
