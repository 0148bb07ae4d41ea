"""Totalizer monotonicity (累计数单调): a nozzle's volume or amount totalizer must never go
backwards. `totalizer_reset` (device+nozzle) when a fill's totalizer is below the previous
fill's (断电清零: zeroed at a power cut), with the drop and the device's power events
(2 power_down / 1 power_up) logged between the two fills, if any.

Fills of a nozzle are in the order the dispenser made them (its sequence, not its clock). One alert per nozzle and local day:
as_of = the first offending fill's end_time, evidence its drop and the day's count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from central.detectors.base import (
    AlertProposal,
    Context,
    complete_in_made_order,
    day_labels,
    first_per_group,
    iso,
)
from central.detectors.data import StationData

POWER_UP, POWER_DOWN = 1, 2


@dataclass(frozen=True)
class MonotonicityLimits:
    power_event_window_s: int = 600  # power events this long around the gap are quoted


def nozzle_order(data: StationData, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Indices of complete transactions sorted by device, nozzle and the order the device
    made them (its sequence, not its clock: base.sequence_order), and a mask over
    consecutive pairs (i-1, i) of that order that belong to the same nozzle."""
    tx = data.transactions
    # complete fills (ended by the horizon), as a prefix of what each dispenser made
    ok = complete_in_made_order(data, ctx, "transactions")
    _, dev = np.unique(tx.device[ok], return_inverse=True)  # integer codes sort faster
    order = ok[np.lexsort((np.arange(len(ok)), tx.nozzle[ok], dev.reshape(-1)))]
    same = ((tx.device[order][1:] == tx.device[order][:-1])
            & (tx.nozzle[order][1:] == tx.nozzle[order][:-1]))
    return order, same


class MonotonicityDetector:
    name: ClassVar[str] = "monotonicity"
    kinds: ClassVar[tuple[str, ...]] = ("totalizer_reset",)

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, MonotonicityLimits())
        tx = data.transactions
        order, same = nozzle_order(data, ctx)
        if len(order) < 2:
            return []
        prev, cur = order[:-1], order[1:]
        back = same & ((tx.volume_total_ml[cur] < tx.volume_total_ml[prev])
                       | (tx.amount_total_fen[cur] < tx.amount_total_fen[prev]))
        a, b = prev[back], cur[back]
        if not len(b):
            return []
        days = day_labels(tx.end_time[b], ctx.zone)
        keys = np.char.add(np.char.add(np.char.add(tx.device[b], "/"),
                                       tx.nozzle[b].astype(str)), np.char.add("/", days))
        out = []
        for g in first_per_group(keys, tx.end_time[b]):  # one alert per nozzle and day
            i, j = int(a[g[0]]), int(b[g[0]])
            dev, noz = str(tx.device[j]), int(tx.nozzle[j])
            power = self._power_events(data, dev, int(tx.end_time[i]) - lim.power_event_window_s,
                                       int(tx.start_time[j]) + lim.power_event_window_s)
            expected = int(tx.volume_total_ml[i] + tx.volume_ml[j])
            evidence = {
                "day": str(days[g[0]]), "resets": len(g),
                "previous_key": data.tx_key(i), "key": data.tx_key(j),
                "previous_volume_total_ml": int(tx.volume_total_ml[i]),
                "volume_total_ml": int(tx.volume_total_ml[j]),
                "expected_volume_total_ml": expected,
                "drop_ml": expected - int(tx.volume_total_ml[j]),
                "previous_amount_total_fen": int(tx.amount_total_fen[i]),
                "amount_total_fen": int(tx.amount_total_fen[j]),
                "power_events": power,
            }
            cause = " after a power cycle" if power else ""
            out.append(AlertProposal(
                "totalizer_reset", "critical", int(tx.end_time[j]),
                f"{dev} nozzle {noz}: totalizer went backwards",
                f"volume totalizer {tx.volume_total_ml[i] / 1000:.2f} L → "
                f"{tx.volume_total_ml[j] / 1000:.2f} L{cause} "
                f"(fill ending {iso(int(tx.end_time[j]), ctx.zone)})", evidence,
                f"totalizer_reset/{dev}/{noz}/{days[g[0]]}",
                device=dev, nozzle=noz, tank=int(tx.tank[j])))
        return out

    @staticmethod
    def _power_events(data: StationData, device: str, lo: int, hi: int) -> list[dict]:
        ev = data.events
        pw = np.flatnonzero((ev.device == device) & np.isin(ev.code, (POWER_UP, POWER_DOWN))
                            & (ev.device_time >= lo) & (ev.device_time <= hi))
        return [{"code": int(ev.code[k]), "device_time": int(ev.device_time[k]),
                 "name": "power_up" if ev.code[k] == POWER_UP else "power_down"}
                for k in pw[:10]]
