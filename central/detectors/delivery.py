"""Deliveries against the bill of lading (卸油 vs 提单).

The gauge-measured drop of a delivery is end − start 20 °C volume plus the tank's sales
during the drop, as the reconciliation books it (central/reconciliation.py
`delivered_20c`: fills ending within [start, end], whole); as_of = the delivery's end_time.
With `fill_attribution: apportioned` (Settings) fills running across the drop's start or
end count with the part of their duration inside it instead (a 200 L truck fill ending
just after the drop would otherwise look like a 200 L shortfall on a real pump), and the
delivery is decided `fill_guard_s` (900 s) after its end, when such fills are known.
Against the bill of lading keyed in at the gauge (`bol_volume_20c_ml`):

- 0 (none keyed in) and a drop of at least `unbooked_min_l` → `delivery_unbooked`;
- drop < BOL × (1 − `short_tol`) − `short_abs_l` → `delivery_short`, evidence the
  shortfall. `short_tol` 1 %: the normal transit loss (mean 0.2 %, up to 0.6 % at 3σ in
  the noise budget) plus the gauge's table error over the level range the drop spans
  (|ε| ≤ 0.3 %) — honest deliveries of a 60-day honest fleet run came out up to 0.7 %
  short; `short_abs_l` 30 L: the start/end readings (√2 × 3 L) and the stratification
  right after the drop (±5–13 L, docs/noise-budget.md §3). A 2 % short drop on 10,000 L
  (200 L) clears the limit (130 L) by 70 L;
- NULL (collector on uplink 1.0: not reported) → nothing to compare (status note);
- a gauge rise below `gauge_blind_share` (20 %) of the bill of lading: the gauge did not
  see the drop it recorded (frozen or faulty: gauge_plausibility's business) → not
  compared (status note).

One alert per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from central.detectors.base import AlertProposal, Context, iso, tank_horizon
from central.detectors.data import StationData
from central.detectors.wetstock import tank_inputs
from central.reconciliation import delivered_20c


@dataclass(frozen=True)
class DeliveryLimits:
    short_tol: float = 0.01
    short_abs_l: float = 30.0
    unbooked_min_l: float = 100.0
    fill_guard_s: int = 900
    gauge_blind_share: float = 0.2


class DeliveryDetector:
    name: ClassVar[str] = "delivery"
    kinds: ClassVar[tuple[str, ...]] = ("delivery_short", "delivery_unbooked")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, DeliveryLimits())
        out = []
        dl = data.deliveries
        for tank in np.unique(dl.tank):
            horizon = tank_horizon(data, ctx, int(tank))
            inp = tank_inputs(data, int(tank))
            booked = delivered_20c(inp, ctx.vcf)  # rows of inp are sorted by end time
            rows = np.flatnonzero(dl.tank == tank)
            rows = rows[np.argsort(dl.end_time[rows], kind="stable")]
            apportion = ctx.settings.fill_attribution == "apportioned"
            guard = lim.fill_guard_s if apportion else 0
            for k, i in enumerate(rows):  # deliveries: a few a week
                if dl.end_time[i] + guard > horizon:
                    continue
                measured = (self._measured(data, ctx, int(tank), int(i)) if apportion
                            else float(booked[k]))
                out += self._check(data, ctx, lim, int(tank), int(i), measured,
                                   float(booked[k]), guard)
        return out

    @staticmethod
    def _measured(data: StationData, ctx: Context, tank: int, i: int) -> float:
        """Gauge rise + the part of each fill of the tank that ran inside [start, end]."""
        dl, tx = data.deliveries, data.transactions
        a, e = int(dl.start_time[i]), int(dl.end_time[i])
        key = ("delivery_fills", tank)
        if key not in data.cache:  # the tank's fills by start time, and the longest one
            on = np.flatnonzero(tx.tank == tank)
            on = on[np.argsort(tx.start_time[on], kind="stable")]
            longest = int((tx.end_time[on] - tx.start_time[on]).max()) if len(on) else 0
            data.cache[key] = (on, tx.start_time[on], longest)
        on, starts, longest = data.cache[key]
        near = on[np.searchsorted(starts, a - longest, "left"):
                  np.searchsorted(starts, e, "right")]
        m = near[(tx.start_time[near] <= e) & (tx.end_time[near] >= a)]
        s, f = tx.start_time[m], tx.end_time[m]
        inside = (np.minimum(f, e) - np.maximum(s, a)) / np.maximum(f - s, 1)
        inside = np.where(f > s, np.clip(inside, 0.0, 1.0), 1.0)
        sold = float(np.sum(tx.volume_ml[m] * inside))
        grade = data.tanks.get(tank) or (str(tx.grade[m][0]) if len(m) else None)
        temp = (int(dl.start_temperature_mc[i]) + int(dl.end_temperature_mc[i])) / 2.0
        sold_20c = ctx.vcf.to_20c_ml(grade, sold, temp) if sold and grade else 0.0
        return float(dl.end_volume_20c_ml[i] - dl.start_volume_20c_ml[i]) + sold_20c

    def _check(self, data: StationData, ctx: Context, lim: DeliveryLimits, tank: int, i: int,
               measured: float, booked: float, guard: int) -> list[AlertProposal]:
        dl = data.deliveries
        bol = dl.bol_volume_20c_ml[i]
        start, end = int(dl.start_time[i]), int(dl.end_time[i])
        ev: dict[str, Any] = {
            "delivery_seq": int(dl.seq[i]), "start_time": start, "end_time": end,
            "measured_20c_ml": round(measured), "booked_20c_ml": round(booked),
            "gauge_rise_20c_ml": int(dl.end_volume_20c_ml[i] - dl.start_volume_20c_ml[i]),
            "bol_volume_20c_ml": None if np.isnan(bol) else int(bol)}
        as_of = end + guard
        if np.isnan(bol):
            ctx.note(self.name, "bill of lading not reported (uplink 1.0): deliveries not "
                                "compared", tank=tank)
            return []
        when = iso(start, ctx.zone)
        rise = float(dl.end_volume_20c_ml[i] - dl.start_volume_20c_ml[i])
        reference = bol if bol > 0 else measured
        if reference > 0 and rise < lim.gauge_blind_share * reference:
            ctx.note(self.name, "the gauge did not see a drop it recorded (frozen or faulty "
                                "gauge): not compared", tank=tank, delivery_start=start)
            return []
        if bol == 0:
            if measured < lim.unbooked_min_l * 1000.0 * ctx.scale:
                return []
            return [AlertProposal(
                "delivery_unbooked", "critical", as_of, f"tank {tank}: delivery without a bill "
                f"of lading", f"the gauge measured {measured / 1000:.0f} L at 20 °C dropped "
                f"at {when}; no bill of lading was keyed in", ev,
                f"delivery_unbooked/T{tank}/{start}", tank=tank)]
        limit = bol * (1.0 - lim.short_tol * ctx.scale) - lim.short_abs_l * 1000.0 * ctx.scale
        if measured >= limit:
            return []
        ev.update(shortfall_ml=round(bol - measured), shortfall_pct=100.0 * (bol - measured) / bol,
                  limit_ml=round(limit), short_tol=lim.short_tol * ctx.scale,
                  short_abs_ml=lim.short_abs_l * 1000.0 * ctx.scale)
        return [AlertProposal(
            "delivery_short", "critical", as_of, f"tank {tank}: delivery short of the bill of "
            f"lading", f"bill of lading {bol / 1000:.0f} L, gauge measured "
            f"{measured / 1000:.0f} L at 20 °C ({100 * (bol - measured) / bol:.2f} % short; "
            f"limit {100 * lim.short_tol * ctx.scale:.2f} % + "
            f"{lim.short_abs_l * ctx.scale:.0f} L), drop at {when}", ev,
            f"delivery_short/T{tank}/{start}", tank=tank)]
