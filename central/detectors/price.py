"""Price checks (价格): the charged unit price against the posted price, and the amount
against volume × price.

- `price_mismatch` (device+nozzle): a transaction's `unit_price_fen` differs from the
  posted price (挂牌价) of its grade in force at its end_time. For `price_grace_s` (600 s)
  after each posted change the previous price is accepted too (dispensers take the new
  price at their next fill). No posted price for the grade at that time: nothing to
  compare (a status note says so).
- `amount_mismatch` (device+nozzle): |amount − volume × price| beyond the register
  rounding. Full fills round the amount to the fen (≤ 0.5 fen); prepaid fills derive the
  volume from the amount, rounded to 0.01 L (≤ 0.005 L × price). Limit:
  |amount_fen − volume_ml × unit_price_fen / 1000| ≤ 0.005 L × price + 0.5 fen,
  checked in exact integers (×1000).

One alert per (kind, nozzle, local day): as_of = the first offending record's end_time;
the evidence counts the offending records known when it was raised.
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
    horizons,
    iso,
)
from central.detectors.data import StationData


@dataclass(frozen=True)
class PriceLimits:
    price_grace_s: int = 600
    amount_rounding_l: float = 0.005  # prepaid fills: volume rounded to 0.01 L
    amount_rounding_fen: float = 0.5  # full fills: amount rounded to the fen


class PriceDetector:
    name: ClassVar[str] = "price"
    kinds: ClassVar[tuple[str, ...]] = ("price_mismatch", "amount_mismatch")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, PriceLimits())
        tx = data.transactions
        ok = tx.end_time <= horizons(data, ctx, tx.device)
        idx = np.flatnonzero(ok)
        posted, compared = self._posted(data, ctx, idx, lim)
        price_bad = compared & (tx.unit_price_fen[idx] != posted)
        tol = (lim.amount_rounding_l * 1000.0 * tx.unit_price_fen[idx]
               + lim.amount_rounding_fen * 1000.0)
        diff = tx.amount_fen[idx] * 1000 - tx.volume_ml[idx] * tx.unit_price_fen[idx]
        amount_bad = np.abs(diff) > tol
        out = self._episodes(data, ctx, "price_mismatch", idx[price_bad], posted[price_bad])
        out += self._episodes(data, ctx, "amount_mismatch", idx[amount_bad],
                              (diff[amount_bad] / 1000.0))
        return out

    def _posted(self, data: StationData, ctx: Context, idx: np.ndarray,
                lim: PriceLimits) -> tuple[np.ndarray, np.ndarray]:
        """Posted price in force at each transaction's end (−1 where none) and whether the
        transaction can be compared (a grace match counts as the posted price)."""
        tx, pr = data.transactions, data.prices
        posted = np.full(len(idx), -1, dtype=np.int64)
        compared = np.zeros(len(idx), dtype=bool)
        grades = tx.grade[idx]
        for grade in np.unique(grades):
            sel = np.flatnonzero(grades == grade)
            rows = np.flatnonzero(pr.grade == grade)
            end = tx.end_time[idx[sel]]
            if not len(rows):
                ctx.note(self.name, f"no posted price for grade {grade}: price not compared",
                         grade=str(grade), transactions=len(sel))
                continue
            vf, pf = pr.valid_from[rows], pr.price_fen[rows]
            k = np.searchsorted(vf, end, "right") - 1
            has = k >= 0
            if not has.all():
                ctx.note(self.name, f"grade {grade}: transactions before the first posted "
                                    "price are not compared", grade=str(grade),
                         first_valid_from=float(vf[0]))
            kk = np.maximum(k, 0)
            now, prev = pf[kk], pf[np.maximum(kk - 1, 0)]
            charged = tx.unit_price_fen[idx[sel]]
            grace = has & (kk > 0) & (end - vf[kk] < lim.price_grace_s) & (charged == prev)
            posted[sel] = np.where(grace, charged, now)
            compared[sel] = has
        return posted, compared

    def _episodes(self, data: StationData, ctx: Context, kind: str, idx: np.ndarray,
                  value: np.ndarray) -> list[AlertProposal]:
        tx = data.transactions
        if not len(idx):
            return []
        days = day_labels(tx.end_time[idx], ctx.zone)
        keys = np.char.add(np.char.add(np.char.add(tx.device[idx], "/"),
                                       tx.nozzle[idx].astype(str)), np.char.add("/", days))
        out = []
        for g in first_per_group(keys, tx.end_time[idx]):
            first, last = idx[g[0]], idx[g[-1]]
            dev, noz = str(tx.device[first]), int(tx.nozzle[first])
            ev = {"day": str(days[g[0]]), "count": len(g), "grade": str(tx.grade[first]),
                  "first_key": data.tx_key(first), "first_end_time": int(tx.end_time[first]),
                  "last_key": data.tx_key(last), "last_end_time": int(tx.end_time[last]),
                  "evidence_through": data.through}
            if kind == "price_mismatch":
                charged = tx.unit_price_fen[idx[g]]
                ev.update(charged_price_fen=sorted({int(c) for c in charged}),
                          posted_price_fen=sorted({int(p) for p in value[g]}),
                          overcharge_fen=round(float(np.sum(
                              (charged - value[g]) * tx.volume_ml[idx[g]]) / 1000.0), 1))
                title = f"{dev} nozzle {noz}: charged price ≠ posted price"
                detail = (f"{len(g)} fill(s) on {days[g[0]]} charged "
                          f"{ev['charged_price_fen']} fen/L, posted {ev['posted_price_fen']} "
                          f"fen/L (first at {iso(int(tx.end_time[first]), ctx.zone)})")
            else:
                ev.update(first_volume_ml=int(tx.volume_ml[first]),
                          first_amount_fen=int(tx.amount_fen[first]),
                          first_unit_price_fen=int(tx.unit_price_fen[first]),
                          deviation_fen=[round(float(v), 1) for v in value[g][:20]])
                title = f"{dev} nozzle {noz}: amount ≠ volume × price"
                detail = (f"{len(g)} fill(s) on {days[g[0]]} with an amount off by more than "
                          f"the register rounding (first: {value[g[0]]:+.1f} fen)")
            out.append(AlertProposal(
                kind, "critical", int(tx.end_time[first]), title, detail, ev,
                f"{kind}/{dev}/{noz}/{days[g[0]]}", device=dev, nozzle=noz,
                tank=int(tx.tank[first])))
        return out
