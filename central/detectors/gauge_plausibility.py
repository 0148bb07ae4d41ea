"""Tank gauge plausibility (液位仪合理性): readings that physics cannot explain.

- `gauge_frozen` (tank): the product level and gross volume stay identical over at least
  `frozen_min_readings` (3) consecutive readings while the tank's nozzles sold at least
  `frozen_min_l` (100 L ≈ 4–7 mm of level in a 30–50 m³ tank, 20–30× the probe noise; an
  honest probe repeats a value only while nothing moves — two equal readings in a row are
  common at 0.1 mm resolution, three with 100 L sold are not). Sales count when they ended
  after the first equal reading and `end_guard_s` (60 s) before the last: a fill hung up in
  a reading's own second may or may not be in it. as_of = the reading at which the sales crossed the limit; one alert per
  frozen stretch.
- `gauge_step` (tank): the 20 °C volume *rises* between consecutive readings by more than
  max(`step_k` × √2 σ_g, `step_min_l`) beyond what the interval's sales explain (not
  counting fills that hung up in the last `end_guard_s` before the reading: their product
  may leave the tank after it) — and the reading itself rose by more than `raw_k` × √2 σ_g (a frozen gauge
  "rises beyond sales" without moving; that is gauge_frozen) — with no delivery to
  account for it: no delivery record ending by the decision
  time and no delivery_start/end event (50/51) of the tank near it — and no gauge clock
  seen off its dispensers' (alignment.py, with the sales of the grace). σ_g is the tank's
  reading noise learnt from idle intervals of its first `learn_days` (prior 3 L before).
  A rise is decided `step_grace_s` (2 h) after the reading, once any delivery in progress
  would have been closed and reported; as_of = reading time + grace. One alert per tank
  and local day. Unexplained *drops* are left to idle_loss / tank_variance (a withdrawal
  and a lowered probe look alike).
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
from central.detectors.wetstock import (
    EVENT_DELIVERY_END,
    EVENT_DELIVERY_START,
    TankSeries,
    learn_end,
    reading_sigma,
    tank_series,
)


@dataclass(frozen=True)
class GaugeLimits:
    frozen_min_l: float = 100.0
    frozen_min_readings: int = 3
    end_guard_s: int = 60
    step_k: float = 8.0
    step_min_l: float = 40.0
    raw_k: float = 3.0
    step_grace_s: int = 7200
    delivery_event_window_s: int = 4 * 3600
    learn_days: int = 14
    sigma_prior_l: float = 3.0
    sigma_floor_l: float = 1.0


class GaugePlausibilityDetector:
    name: ClassVar[str] = "gauge_plausibility"
    kinds: ClassVar[tuple[str, ...]] = ("gauge_frozen", "gauge_step")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, GaugeLimits())
        out: list[AlertProposal] = []
        for tank in sorted(set(data.tanks) | set(np.unique(data.inventory.tank).tolist())):
            s = tank_series(data, int(tank), ctx)
            if s is None:
                continue
            horizon = tank_horizon(data, ctx, int(tank))
            out += self._frozen(data, ctx, lim, s, horizon)
            out += self._steps(data, ctx, lim, s, horizon)
        return out

    def _frozen(self, data: StationData, ctx: Context, lim: GaugeLimits, s: TankSeries,
                horizon: int) -> list[AlertProposal]:
        same = (s.level_um[1:] == s.level_um[:-1]) & (s.gross_ml[1:] == s.gross_ml[:-1])
        if not same.any():
            return []
        run = np.cumsum(np.r_[True, ~same])  # run id per reading
        first = np.r_[0, np.flatnonzero(~same) + 1]  # first reading of each run
        start = first[run - 1]
        # fills that ended (a minute) before the reading: one ending in the very second of
        # the reading may not be in it yet
        before = self._ended_before(data, s.tank, s.t - lim.end_guard_s)
        sold = before - self._ended_before(data, s.tank, s.t)[start]
        idx = np.arange(len(s.t))
        hit = np.flatnonzero((sold >= lim.frozen_min_l * 1000.0 * ctx.scale)
                             & (idx - start + 1 >= lim.frozen_min_readings) & (s.t <= horizon))
        out = []
        for r in np.unique(run[hit]):
            j = int(hit[run[hit] == r][0])
            a = int(start[j])
            out.append(AlertProposal(
                "gauge_frozen", "critical", int(s.t[j]), f"tank {s.tank}: gauge reading frozen",
                f"level {s.level_um[j] / 1000:.1f} mm unchanged from "
                f"{iso(int(s.t[a]), ctx.zone)} to {iso(int(s.t[j]), ctx.zone)} while the "
                f"tank's nozzles sold {sold[j] / 1000:.0f} L", {
                    "frozen_since": int(s.t[a]), "readings": j - a + 1,
                    "product_level_um": int(s.level_um[j]),
                    "gross_volume_ml": int(s.gross_ml[j]), "sold_ml": int(sold[j]),
                    "limit_ml": lim.frozen_min_l * 1000.0 * ctx.scale},
                f"gauge_frozen/T{s.tank}/{int(s.t[a])}", tank=s.tank))
        return out

    @staticmethod
    def _ended_before(data: StationData, tank: int, t: np.ndarray) -> np.ndarray:
        tx = data.transactions
        m = tx.tank == tank
        order = np.argsort(tx.end_time[m], kind="stable")
        cum = np.concatenate(([0.0], np.cumsum(tx.volume_ml[m][order].astype(float))))
        return cum[np.searchsorted(tx.end_time[m][order], t, "right")]

    def _steps(self, data: StationData, ctx: Context, lim: GaugeLimits, s: TankSeries,
               horizon: int) -> list[AlertProposal]:
        learnt = learn_end(int(s.t[0]), ctx.zone, lim.learn_days)
        sigma_learnt = reading_sigma(s, learnt, lim.sigma_prior_l, lim.sigma_floor_l)
        # sales of fills that hung up in the last minute before a reading may show in
        # the next interval: leave them out of what explains a rise (conservative)
        late = (self._ended_before(data, s.tank, s.t[1:])
                - self._ended_before(data, s.tank, s.t[1:] - lim.end_guard_s))
        if ctx.settings.fill_attribution == "apportioned":
            late = np.zeros(len(late))
        rise = (s.v20[1:] - s.v20[:-1] + s.sales20 - late * s.factor) / 1000.0  # L
        as_of = s.t[1:] + lim.step_grace_s
        sigma = np.where(as_of >= learnt, sigma_learnt, lim.sigma_prior_l)
        limit = np.maximum(lim.step_k * np.sqrt(2.0) * sigma, lim.step_min_l) * ctx.scale
        moved = (s.v20[1:] - s.v20[:-1]) / 1000.0 > lim.raw_k * np.sqrt(2.0) * sigma
        cand = np.flatnonzero((rise > limit) & moved & (as_of <= horizon))
        # a rise that a gauge clock off its dispensers' explains is no step (alignment.py)
        cand = cand[~s.misaligned(lim.step_grace_s, cand)]
        idx = cand[~self._delivery_near(data, s.tank, s.t[cand], s.t[cand + 1], as_of[cand],
                                        lim)]
        if not len(idx):
            return []
        days = day_labels(s.t[idx + 1], ctx.zone)
        out = []
        for g in first_per_group(days, s.t[idx + 1]):
            i = int(idx[g[0]])
            out.append(AlertProposal(
                "gauge_step", "critical", int(as_of[i]), f"tank {s.tank}: unexplained gauge jump",
                f"20 °C volume rose {rise[i]:.0f} L beyond sales between "
                f"{iso(int(s.t[i]), ctx.zone)} and {iso(int(s.t[i + 1]), ctx.zone)} with no "
                f"delivery (limit {limit[i]:.0f} L)", {
                    "from_time": int(s.t[i]), "to_time": int(s.t[i + 1]),
                    "volume_20c_before_ml": int(s.v20[i]), "volume_20c_after_ml": int(s.v20[i + 1]),
                    "sales_20c_ml": round(float(s.sales20[i])), "rise_l": float(rise[i]),
                    "limit_l": float(limit[i]), "sigma_reading_l": float(sigma[i]),
                    "steps_that_day": len(g)},
                f"gauge_step/T{s.tank}/{days[g[0]]}", tank=s.tank))
        return out

    @staticmethod
    def _delivery_near(data: StationData, tank: int, t0: np.ndarray, t1: np.ndarray,
                       as_of: np.ndarray, lim: GaugeLimits) -> np.ndarray:
        """Per candidate interval (t0, t1]: a delivery record known by its as_of overlaps
        it, or a delivery event of the tank lies in [t0 − window, as_of]."""
        dl = data.deliveries
        d = dl.tank == tank
        start, end = dl.start_time[d], dl.end_time[d]
        rec = ((end[None, :] <= as_of[:, None]) & (start[None, :] <= t1[:, None] + 60)
               & (end[None, :] >= t0[:, None] - 60)).any(axis=1) if len(start) else \
            np.zeros(len(t0), dtype=bool)
        ev = data.events
        times = np.sort(ev.device_time[(ev.device == "G") & (ev.unit == tank) & np.isin(
            ev.code, (EVENT_DELIVERY_START, EVENT_DELIVERY_END))])
        k = np.searchsorted(times, t0 - lim.delivery_event_window_s, "left")
        evt = (k < len(times)) & (times[np.minimum(k, max(len(times) - 1, 0))] <= as_of) \
            if len(times) else np.zeros(len(t0), dtype=bool)
        return rec | evt
