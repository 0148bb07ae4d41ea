"""Data continuity (数据连续性): what a device produced but the platform never received.

- `totalizer_gap` (device+nozzle): consecutive fills of a nozzle (in sequence order) must
  chain exactly: previous volume_total_ml + volume_ml = this volume_total_ml. A positive
  gap is volume the totalizer counted but no transaction reports (filtered or lost
  fills). One alert per nozzle and local day; evidence: breaks, missing volume, first and
  last break.
- `device_offline_sales` (device): a totalizer gap across a stretch in which the dispenser
  was off line — the collector's heartbeats reported it off line in between, or, without
  that evidence, a silence of at least `offline_gap_s` (1 h) over which the dispenser's
  totalizers (its nozzles' breaks over overlapping silences together) advanced by at least
  max(`offline_min_l` (600 L), `offline_min_fills` (6) × the nozzle's median fill): sales made while the device was unreachable and never reported
  (a transaction filter hides single fills — a diesel truck takes 300–450 L — and stays
  below). One per device
  and local day.
- `sequence_gap` (device): each device stream numbers its records 0…65535 (wrapping);
  consecutive records (in the order the device made them: base.sequence_order, not by
  device time, which a wrong clock scrambles) must be one apart. A step of 2…32768 is a gap of step − 1
  records. Only records made before the first one beyond the device's completeness
  horizon are compared (late data cannot look like a gap, nor can data made before a
  clock was set back). A gap for which the device logged a FIFO overflow (event 30
  for that FIFO) is the collector's loss, not tampering, and is not raised. One alert per
  device stream and local day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from central.detectors.base import (
    SEQ_MOD,
    AlertProposal,
    Context,
    complete_in_made_order,
    day_labels,
    first_per_group,
    iso,
)
from central.detectors.data import DEVICE_STREAMS, StationData
from central.detectors.monotonicity import nozzle_order

EVENT_FIFO_OVERFLOW = 30
# FIFO base addresses (docs/register-map.md §4, §5): value_old of event 30.
FIFO_BASE = {("D", "transactions"): 1000, ("D", "events"): 2000, ("G", "inventory"): 1000,
             ("G", "deliveries"): 2000, ("G", "events"): 3000}


@dataclass(frozen=True)
class ContinuityLimits:
    offline_gap_s: int = 3600
    offline_min_l: float = 600.0
    offline_min_fills: float = 6.0
    overflow_window_s: int = 3600  # an overflow event up to this long after the gap


class ContinuityDetector:
    name: ClassVar[str] = "continuity"
    kinds: ClassVar[tuple[str, ...]] = ("totalizer_gap", "device_offline_sales",
                                        "sequence_gap")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, ContinuityLimits())
        return self._totalizer(data, ctx, lim) + self._sequences(data, ctx, lim)

    # -- totalizer ---------------------------------------------------------------------------
    def _totalizer(self, data: StationData, ctx: Context,
                   lim: ContinuityLimits) -> list[AlertProposal]:
        tx = data.transactions
        order, same = nozzle_order(data, ctx)
        if len(order) < 2:
            return []
        a, b = order[:-1], order[1:]
        gap = tx.volume_total_ml[b] - tx.volume_total_ml[a] - tx.volume_ml[b]
        brk = same & (gap > 0) & (tx.volume_total_ml[b] >= tx.volume_total_ml[a])
        a, b, gap = a[brk], b[brk], gap[brk]
        if not len(b):
            return []
        days = day_labels(tx.end_time[b], ctx.zone)
        nozzle = np.char.add(np.char.add(tx.device[b], "/"), tx.nozzle[b].astype(str))
        out = []
        for g in first_per_group(np.char.add(np.char.add(nozzle, "/"), days), tx.end_time[b]):
            i0, i1 = b[g[0]], b[g[-1]]
            dev, noz = str(tx.device[i0]), int(tx.nozzle[i0])
            missing = int(gap[g].sum())
            out.append(AlertProposal(
                "totalizer_gap", "critical", int(tx.end_time[i0]),
                f"{dev} nozzle {noz}: totalizer counted fills never reported",
                f"{len(g)} break(s) on {days[g[0]]}, {missing / 1000:.2f} L counted by the "
                f"totalizer but in no transaction", {
                    "day": str(days[g[0]]), "breaks": len(g), "missing_volume_ml": missing,
                    "first_after_key": data.tx_key(a[g[0]]), "first_key": data.tx_key(i0),
                    "first_gap_ml": int(gap[g[0]]), "last_key": data.tx_key(i1),
                    "evidence_through": data.through},
                f"totalizer_gap/{dev}/{noz}/{days[g[0]]}", device=dev, nozzle=noz,
                tank=int(tx.tank[i0])))
        out += self._offline(data, ctx, lim, a, b, gap, days)
        return out

    def _offline(self, data: StationData, ctx: Context, lim: ContinuityLimits,
                 a: np.ndarray, b: np.ndarray, gap: np.ndarray,
                 days: np.ndarray) -> list[AlertProposal]:
        tx = data.transactions
        silence = tx.start_time[b] - tx.end_time[a]
        reported = np.zeros(len(b), dtype=bool)
        for dev in np.unique(tx.device[b]):  # per device, vectorised over its breaks
            starts = np.array(sorted(t0 for t0, _ in data.offline_stretches(str(dev))),
                              dtype=np.int64)
            m = np.flatnonzero(tx.device[b] == dev)
            if len(starts) and len(m):
                k = np.searchsorted(starts, tx.end_time[a[m]] - 60, "left")
                ok = k < len(starts)
                reported[m[ok]] = starts[k[ok]] <= tx.start_time[b[m[ok]]]
        inferred = np.zeros(len(b), dtype=bool)
        long = np.flatnonzero(silence >= lim.offline_gap_s * ctx.scale)
        if len(long):
            # what the whole dispenser's totalizers counted over overlapping long silences
            lo, hi = tx.end_time[a[long]], tx.start_time[b[long]]
            dev = tx.device[b[long]]
            overlap = ((dev[:, None] == dev[None, :]) & (lo[:, None] <= hi[None, :])
                       & (lo[None, :] <= hi[:, None]))
            counted = overlap.astype(float) @ gap[long].astype(float)
            nozzle = np.char.add(np.char.add(tx.device, "/"), tx.nozzle.astype(str))
            median = {str(n): float(np.median(tx.volume_ml[nozzle == n])) for n in
                      np.unique(nozzle[b[long]])}
            need = np.array([max(lim.offline_min_l * 1000.0,
                                 lim.offline_min_fills * median[str(n)])
                             for n in nozzle[b[long]]])
            inferred[long] = counted >= need * ctx.scale
        hit = np.flatnonzero((silence > 0) & (reported | inferred))
        if not len(hit):
            return []
        keys = np.char.add(np.char.add(tx.device[b[hit]], "/"), days[hit])
        out = []
        for g in first_per_group(keys, tx.end_time[b[hit]]):
            k0 = int(hit[g[0]])
            dev = str(tx.device[b[k0]])
            reason = ("collector reported the dispenser off line" if reported[k0] else
                      "no transaction for a long stretch while the totalizer advanced by "
                      "several fills")
            missing = int(gap[hit[g]].sum())
            out.append(AlertProposal(
                "device_offline_sales", "critical", int(tx.end_time[b[k0]]),
                f"{dev}: sales while the dispenser was off line",
                f"{missing / 1000:.2f} L counted by the totalizer over "
                f"{silence[k0] / 3600:.1f} h without transactions ({reason})", {
                    "day": str(days[k0]), "reason": reason,
                    "silence_from": int(tx.end_time[a[k0]]),
                    "silence_to": int(tx.start_time[b[k0]]),
                    "missing_volume_ml": missing, "breaks": len(g),
                    "nozzles": sorted({int(tx.nozzle[b[int(k)]]) for k in hit[g]}),
                    "offline_stretches": [list(x) for x in data.offline_stretches(dev)
                                          if x[1] >= tx.end_time[a[k0]] - 60
                                          and x[0] <= tx.start_time[b[k0]]][:10],
                    "after_key": data.tx_key(a[k0]), "key": data.tx_key(b[k0])},
                f"device_offline_sales/{dev}/{days[k0]}", device=dev))
        return out

    # -- sequences ---------------------------------------------------------------------------
    def _sequences(self, data: StationData, ctx: Context,
                   lim: ContinuityLimits) -> list[AlertProposal]:
        out = []
        for stream in DEVICE_STREAMS:
            s = data.streams[stream]
            rows = complete_in_made_order(data, ctx, stream)
            if len(rows) < 2:
                continue
            dev, t, seq = s.device[rows], s.time[rows], s.seq[rows]
            same = dev[1:] == dev[:-1]
            step = (seq[1:] - seq[:-1]) % SEQ_MOD
            gap = np.flatnonzero(same & (step > 1) & (step <= SEQ_MOD // 2))
            gap = gap[~self._overflowed(data, dev[gap + 1], stream, t[gap], t[gap + 1], lim)]
            if not len(gap):
                continue
            days = day_labels(t[gap + 1], ctx.zone)
            keys = np.char.add(np.char.add(dev[gap + 1], "/"), days)
            for g in first_per_group(keys, t[gap + 1]):
                k = int(gap[g[0]])
                d = str(dev[k + 1])
                missing = int((step[gap[g]] - 1).sum())
                out.append(AlertProposal(
                    "sequence_gap", "warning", int(t[k + 1]),
                    f"{d}: records missing in the {stream} sequence",
                    f"{len(g)} gap(s), {missing} record(s) missing on {days[g[0]]} "
                    f"(first after seq {int(seq[k])} at {iso(int(t[k]), ctx.zone)})", {
                        "stream": stream, "day": str(days[g[0]]), "gaps": len(g),
                        "missing_records": missing, "first_after_seq": int(seq[k]),
                        "first_seq": int(seq[k + 1]), "first_after_time": int(t[k]),
                        "first_time": int(t[k + 1]), "evidence_through": data.through},
                    f"sequence_gap/{d}/{stream}/{days[g[0]]}", device=d))
        return out

    @staticmethod
    def _overflowed(data: StationData, devices: np.ndarray, stream: str, t0: np.ndarray,
                    t1: np.ndarray, lim: ContinuityLimits) -> np.ndarray:
        """Per gap: did its device log a FIFO overflow of this stream in [t0, t1 + window]?"""
        ev = data.events
        out = np.zeros(len(devices), dtype=bool)
        for dev in np.unique(devices):
            base = FIFO_BASE.get((str(dev)[:1], stream))
            sel = (ev.device == dev) & (ev.code == EVENT_FIFO_OVERFLOW)
            if base is not None:
                sel &= ev.value_old_e4 == base * 10_000
            times = np.sort(ev.device_time[sel])
            m = np.flatnonzero(devices == dev)
            if not len(times) or not len(m):
                continue
            k = np.searchsorted(times, t0[m], "left")
            ok = k < len(times)
            out[m[ok]] = times[k[ok]] <= t1[m[ok]] + lim.overflow_window_s
        return out
