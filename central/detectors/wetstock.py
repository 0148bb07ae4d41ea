"""Per-tank series the wetstock detectors share (进销存 at the 15-min reading level).

`tank_inputs` cuts the station arrays into the reconciliation's `TankInputs` (so the daily
numbers are those of GET /api/v1/reconciliation). `TankSeries` adds the interval view:

- readings (one per device time; the last stored one wins a tie), 20 °C volume `v20`;
- per reading interval i = (t[i], t[i+1]]: the product each nozzle dispensed in it,
  converted to 20 °C at the temperature of reading i. With `fill_attribution` "end" (the
  default) a fill counts whole in the interval of its end_time, as the reconciliation
  books it; with "apportioned" a fill running across a reading is split in proportion to
  its duration on each side (constant flow);
- `busy[i]`: a fill of the tank overlapped the interval; `delivery[i]`: a delivery (its
  record's [start, end], or an open delivery_start event 50) overlapped it; `offline[i]`:
  a dispenser of the tank was reported off line (its sales may be missing), or the clock
  of the gauge or of a dispenser was seen wrong (clocks.py: set back — the sales cannot be
  placed); `misaligned(…)`: the gauge's level moves off its dispensers' sales
  (alignment.py; idle_loss and gauge_step leave such intervals out);
  `frozen[i]`:
  the gauge repeated its previous reading exactly at the interval's start;
- residual r_i = v20[i] − v20[i+1] − sales20[i]  (positive = product missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from central.detectors.alignment import Alignment
from central.detectors.base import Context, DayGrid, sequence_order
from central.detectors.clocks import clock_stretches
from central.detectors.data import StationData
from central.reconciliation import TankInputs, vcf_factors
from central.vcf import Vcf

EVENT_DELIVERY_START = 50
EVENT_DELIVERY_END = 51
DELIVERY_PAD_S = 60  # readings this close to a drop's start/end count as inside it
# After a drop the tank is stratified and the new product relaxes to the tank's
# temperature; ATG leak tests wait 8–12 h (NWGLDE, domain brief §3): the interval model
# leaves these hours out.
SETTLE_S = 12 * 3600


def tank_inputs(data: StationData, tank: int) -> TankInputs:
    inv, tx, dl = data.inventory, data.transactions, data.deliveries
    r = inv.tank == tank
    t = tx.tank == tank
    d = dl.tank == tank
    order = np.argsort(dl.end_time[d], kind="stable")
    return TankInputs(
        tank, data.tanks.get(tank) or _tx_grade(data, tank), inv.device_time[r],
        inv.volume_20c_ml[r], inv.temperature_mc[r], tx.end_time[t], tx.volume_ml[t],
        tx.grade[t], dl.start_time[d][order], dl.end_time[d][order],
        dl.start_volume_20c_ml[d][order], dl.end_volume_20c_ml[d][order],
        dl.start_temperature_mc[d][order], dl.end_temperature_mc[d][order])


def _tx_grade(data: StationData, tank: int) -> str | None:
    g = data.transactions.grade[data.transactions.tank == tank]
    return str(g[0]) if len(g) else None


def open_delivery_since(data: StationData, tank: int, t: int) -> int | None:
    """Start time of a delivery in progress at device time t (a delivery_start event of the
    tank at or before t with no delivery_end event or delivery record after it by t)."""
    ev = data.events
    sel = (ev.device == "G") & (ev.unit == tank) & (ev.device_time <= t)
    starts = ev.device_time[sel & (ev.code == EVENT_DELIVERY_START)]
    if not len(starts):
        return None
    last = int(starts.max())
    ends = ev.device_time[sel & (ev.code == EVENT_DELIVERY_END)]
    dl = data.deliveries
    closed = dl.end_time[(dl.tank == tank) & (dl.end_time <= t)]
    if (ends >= last).any() or (closed >= last).any():
        return None
    return last


@dataclass
class TankSeries:
    tank: int
    grade: str
    t: np.ndarray  # reading times
    v20: np.ndarray  # 20 °C volume, mL (float)
    level_um: np.ndarray
    gross_ml: np.ndarray
    nozzles: list[tuple[str, int]]
    q20: np.ndarray  # (intervals, nozzles) apportioned 20 °C volume, mL
    sales20: np.ndarray  # per interval, mL
    busy: np.ndarray  # per interval
    delivery: np.ndarray  # per interval
    ended_metered: np.ndarray  # cumulative metered mL of fills ended by each reading
    offline: np.ndarray  # per interval: a dispenser off line or a clock wrong (module doc)
    frozen: np.ndarray  # per interval: its first reading repeats the one before exactly
    factor: np.ndarray  # per interval: VCF at its opening reading's temperature
    booked_at: np.ndarray  # when the tank's fills took product out (dispenser clocks) …
    booked_ml: np.ndarray  # … and their metered volumes
    _alignment: Alignment | None = field(default=None, repr=False)

    def misaligned(self, lookahead_s: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """Per interval (or for `rows`): the gauge's clock is seen off its dispensers'
        (alignment.py), judged with the sales booked up to `lookahead_s` after the
        interval's end."""
        if self._alignment is None:
            comparable = ~(self.delivery | self.offline | self.frozen)
            self._alignment = Alignment(self.t, self.v20[:-1] - self.v20[1:], comparable,
                                        self.booked_at, self.booked_ml, self.factor)
        if rows is None:
            rows = np.arange(len(self.t) - 1)
        return self._alignment.offsets(rows, lookahead_s) != 0

    def settling(self, settle_s: float) -> np.ndarray:
        """Intervals starting within `settle_s` after a delivery interval: the product is
        still stratified and relaxing to the tank's temperature."""
        ends = self.t[1:][self.delivery]
        if not len(ends) or settle_s <= 0:
            return np.zeros(len(self.t) - 1, dtype=bool)
        k = np.searchsorted(ends, self.t[:-1], "right") - 1
        return (k >= 0) & (self.t[:-1] - ends[np.maximum(k, 0)] < settle_s) & ~self.delivery

    @property
    def idle(self) -> np.ndarray:
        """Intervals in which nothing should move the product: no fill, no delivery, every
        dispenser of the tank reachable and the gauge not repeating itself."""
        return ~(self.busy | self.delivery | self.offline | self.frozen)

    @property
    def residual(self) -> np.ndarray:
        return self.v20[:-1] - self.v20[1:] - self.sales20

    @property
    def hours(self) -> np.ndarray:
        return np.diff(self.t) / 3600.0


def tank_series(data: StationData, tank: int, ctx: Context) -> TankSeries | None:
    """The tank's interval series (computed once per snapshot, VCF and fill attribution)."""
    apportion = ctx.settings.fill_attribution == "apportioned"
    key = ("tank_series", tank, tuple(sorted(ctx.vcf.densities.items())), apportion)
    if key not in data.cache:
        data.cache[key] = _tank_series(data, tank, ctx.vcf, apportion)
    return data.cache[key]


def _tank_series(data: StationData, tank: int, vcf: Vcf,
                 apportion: bool) -> TankSeries | None:
    inv = data.inventory
    sel = np.flatnonzero(inv.tank == tank)
    grade = data.tanks.get(tank) or _tx_grade(data, tank)
    if len(sel) < 2 or grade is None:
        return None
    # In the order the gauge made them. A reading timed before one made earlier (the
    # gauge's clock was set back, or reset) has no place on the time axis: left out.
    sel = sel[sequence_order(inv.device[sel], inv.device_time[sel], inv.seq[sel])]
    times = inv.device_time[sel]
    sel = sel[times >= np.maximum.accumulate(times)]
    times = inv.device_time[sel]
    # one reading per time: the last made
    keep = np.r_[times[1:] != times[:-1], True]
    sel = sel[keep]
    t = inv.device_time[sel]
    temp = inv.temperature_mc[sel]
    tx = data.transactions
    on_tank = tx.tank == tank
    seen = set()
    for dev in np.unique(tx.device[on_tank]):
        seen |= {(str(dev), int(n)) for n in np.unique(tx.nozzle[on_tank & (tx.device == dev)])}
    nozzle_keys = sorted(seen | {k for k, v in data.nozzles.items() if v == tank})
    n_int = len(t) - 1
    factor = vcf_factors(vcf, grade, temp[:-1])
    q20 = np.zeros((n_int, len(nozzle_keys)))
    tsel = on_tank
    for j, (dev, noz) in enumerate(nozzle_keys):
        m = tsel & (tx.device == dev) & (tx.nozzle == noz)
        start = tx.start_time[m] if apportion else tx.end_time[m]
        q20[:, j] = np.diff(_dispensed(t, start, tx.end_time[m], tx.volume_ml[m])) * factor
    s, e = tx.start_time[tsel], tx.end_time[tsel]
    overlapping = (np.searchsorted(np.sort(s), t[1:], "right")
                   - np.searchsorted(np.sort(e), t[:-1], "left"))
    end_sorted = np.argsort(e, kind="stable")
    cum = np.concatenate(([0], np.cumsum(tx.volume_ml[tsel][end_sorted])))
    ended = cum[np.searchsorted(e[end_sorted], t, "right")]
    level, gross = inv.product_level_um[sel], inv.gross_volume_ml[sel]
    repeat = np.r_[False, (level[1:] == level[:-1]) & (gross[1:] == gross[:-1])]
    v20 = inv.volume_20c_ml[sel].astype(float)
    delivery, offline = _delivery_mask(data, tank, t), _offline_mask(data, tank, t)
    return TankSeries(tank, grade, t, v20, level, gross, nozzle_keys, q20, q20.sum(axis=1),
                      overlapping > 0, delivery, ended.astype(float), offline, repeat[:-1],
                      factor, *_booked(s, e, tx.volume_ml[tsel], apportion))


def _booked(start: np.ndarray, end: np.ndarray, volume: np.ndarray,
            apportion: bool) -> tuple[np.ndarray, np.ndarray]:
    """When the tank's fills took product out, sorted, and their volumes: at hang-up, or —
    apportioned, a pump delivering while it runs — at mid-fill (the instant that splits a
    constant flow's volume in half)."""
    at = (start + end) // 2 if apportion else end
    order = np.argsort(at, kind="stable")
    return at[order], volume[order]


def _dispensed(t: np.ndarray, start: np.ndarray, end: np.ndarray,
               volume: np.ndarray) -> np.ndarray:
    """Metered volume dispensed by each reading time, fills spread evenly over [start, end]."""
    vol = volume.astype(float)
    order = np.argsort(end, kind="stable")
    cum = np.concatenate(([0.0], np.cumsum(vol[order])))
    out = cum[np.searchsorted(end[order], t, "right")]
    # fills running across a reading: the part before it
    lo = np.searchsorted(t, start, "right")
    hi = np.searchsorted(t, end, "left")
    spans = np.maximum(hi - lo, 0)
    if spans.any():
        fill = np.repeat(np.arange(len(start)), spans)
        k = lo[fill] + np.arange(len(fill)) - np.repeat(np.cumsum(spans) - spans, spans)
        frac = (t[k] - start[fill]) / np.maximum(end[fill] - start[fill], 1)
        np.add.at(out, k, vol[fill] * frac)
    return out


def _delivery_mask(data: StationData, tank: int, t: np.ndarray) -> np.ndarray:
    dl = data.deliveries
    d = dl.tank == tank
    lo = np.concatenate((dl.start_time[d], _open_starts(data, tank))) - DELIVERY_PAD_S
    hi = np.concatenate((dl.end_time[d], np.full(len(lo) - int(d.sum()),
                                                 np.iinfo(np.int64).max // 2)))
    hi = hi + DELIVERY_PAD_S
    mask = np.zeros(len(t) - 1, dtype=bool)
    for a, b in zip(lo, hi, strict=True):  # per delivery (a few per week), not per record
        i0 = max(int(np.searchsorted(t, a, "right")) - 1, 0)
        i1 = int(np.searchsorted(t, b, "left"))
        mask[i0:i1] = True
    return mask


def _offline_mask(data: StationData, tank: int, t: np.ndarray) -> np.ndarray:
    """Intervals the tank's sales cannot be placed in: a dispenser off line, or the clock
    of the gauge or of a dispenser seen wrong (central/detectors/clocks.py)."""
    mask = np.zeros(len(t) - 1, dtype=bool)
    gauge, *dispensers = data.tank_devices(tank)
    stretches = [*clock_stretches(data, gauge)]
    for dev in dispensers:
        stretches += data.offline_stretches(dev) + clock_stretches(data, dev)
    for a, b in stretches:
        i0 = max(int(np.searchsorted(t, a, "right")) - 1, 0)
        mask[i0:int(np.searchsorted(t, b, "left"))] = True
    return mask


def _open_starts(data: StationData, tank: int) -> np.ndarray:
    start = open_delivery_since(data, tank, data.through)
    return np.array([start] if start is not None else [], dtype=np.int64)


def idle_stretches(series: TankSeries) -> tuple[np.ndarray, np.ndarray]:
    """(first reading, last reading) index pairs of maximal runs of idle intervals."""
    idle = series.idle
    edges = np.diff(np.r_[0, idle.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive interval index = last reading index
    return starts, ends


def learn_end(first_time: int, zone: ZoneInfo, learn_days: int) -> int:
    """End of a tank's learning period: the local midnight `learn_days` days after the
    midnight that starts its first reading's day (the first, partial day counts)."""
    grid = DayGrid(zone, float(first_time), float(first_time) + (learn_days + 1) * 86400)
    return grid.start(learn_days)


def reading_sigma(series: TankSeries, until: int, prior_l: float, floor_l: float) -> float:
    """Gauge noise of one reading (L): robust spread of the 20 °C volume differences over
    idle intervals ending by `until` (MAD × 1.4826 / √2), floored; `prior_l` if there are
    fewer than 20 such intervals."""
    idle = series.idle & (series.t[1:] <= until)
    diffs = (series.v20[1:] - series.v20[:-1])[idle] / 1000.0
    if len(diffs) < 20:
        return prior_l
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return max(1.4826 * mad / np.sqrt(2.0), floor_l)


# -- the interval model in cumulative form (levels) --------------------------------------------
@dataclass
class Fit:
    """Least-squares fit of the levels model over one window."""

    estimate: dict[int, float]  # nozzle column → apparent over-registration a_n (fraction)
    se: dict[int, float]
    volume_l: dict[int, float]
    gain_l: float  # the tank's net gain over the window: −Σ residual (sales beyond drop)
    sales_l: float  # the tank's 20 °C sales over the window
    rate_l_per_h: float  # λ: loss per hour not explained by sales (leak, evaporation)
    rate_se: float
    sigma_l: float
    rho: float
    inflate: float
    readings: int


class LevelsModel:
    """r_i = −Σ_n a_n q_{n,i} + λ Δt_i + ε_i fitted in cumulative form.

    The gauge noise e_j of each reading enters the interval residual as e_i − e_{i+1}, so
    the efficient fit is on cumulative sums (levels) with one intercept per stretch of
    usable intervals: a stretch ends at a delivery (and the `settle_s` after it, 12 h),
    a gap of more than `max_gap_s` between readings, an off-line dispenser, a repeated (frozen) reading, or an interval whose
    residual is beyond `outlier_l` (a gauge step, which a level model cannot absorb).
    Standard errors come from the residual variance, inflated by √((1+ρ)/(1−ρ)) for the
    lag-1 autocorrelation ρ of the residuals (slow thermal effects), capped at
    `inflate_max`."""

    def __init__(self, s: TankSeries, max_gap_s: float, outlier_l: float,
                 settle_s: float = SETTLE_S) -> None:
        usable = (~s.delivery & ~s.settling(settle_s) & ~s.offline & ~s.frozen
                  & (np.diff(s.t) <= max_gap_s) & (np.abs(s.residual) <= outlier_l * 1000.0))
        start = usable & ~np.r_[False, usable[:-1]]
        seg_int = np.cumsum(start) * usable
        seg = np.zeros(len(s.t), dtype=np.int64)
        seg[1:] = seg_int
        first = np.flatnonzero(start)
        seg[first] = seg_int[first]  # the reading that opens a stretch belongs to it
        u = usable.astype(float)
        self.t = s.t
        self.seg = seg
        self.y = np.r_[0.0, np.cumsum(s.residual * u)] / 1000.0
        self.q = np.vstack([np.zeros(s.q20.shape[1]), np.cumsum(s.q20 * u[:, None], axis=0)])
        self.q /= 1000.0
        self.hours = np.r_[0.0, np.cumsum(s.hours * u)]

    def fit(self, t0: float, t1: float, min_volume_l: float, min_dof: int,
            inflate_max: float) -> Fit | None:
        """Fit over readings with t0 < t ≤ t1; nozzles with less than min_volume_l in the
        window are left out (their error stays in the residual)."""
        lo, hi = np.searchsorted(self.t, [t0, t1], "right")
        rows = lo + np.flatnonzero(self.seg[lo:hi] > 0)
        if len(rows) < min_dof:
            return None
        seg = self.seg[rows]  # rows are in time order, so segments come in order
        g = np.r_[0, np.cumsum(seg[1:] != seg[:-1])]
        n_g = int(g[-1]) + 1
        counts = np.bincount(g, minlength=n_g)
        starts = starts_of(counts)  # rows are in time order: g is sorted
        last = np.r_[starts[1:] - 1, len(rows) - 1]
        q = self.q[rows]
        vol = (q[last] - q[starts]).sum(axis=0)  # cumulative volumes only grow
        gain = -float(np.sum(self.y[rows][last] - self.y[rows][starts]))
        cols = [n for n in range(q.shape[1]) if vol[n] >= min_volume_l]
        x = np.column_stack([q[:, cols], self.hours[rows]])
        y = self.y[rows]
        x = x - (np.add.reduceat(x, starts, axis=0) / counts[:, None])[g]
        y = y - (np.add.reduceat(y, starts) / counts)[g]
        dof = len(rows) - x.shape[1] - n_g
        if dof < min_dof:
            return None
        try:
            inv = np.linalg.inv(x.T @ x)
        except np.linalg.LinAlgError:
            return None
        b = inv @ (x.T @ y)
        e = y - x @ b
        s2 = float(e @ e) / dof
        denom = float(e @ e)
        same = g[1:] == g[:-1]
        rho = float((e[1:] * e[:-1])[same].sum() / denom) if denom > 0 else 0.0
        if rho <= 0:
            inflate = 1.0
        elif rho >= 1:
            inflate = inflate_max
        else:
            inflate = min(float(np.sqrt((1 + rho) / (1 - rho))), inflate_max)
        se = np.sqrt(np.maximum(np.diag(inv), 0.0) * s2) * inflate
        return Fit({n: -float(b[k]) for k, n in enumerate(cols)},
                   {n: float(se[k]) for k, n in enumerate(cols)},
                   {n: float(vol[n]) for n in cols}, gain, float(vol.sum()),
                   float(b[-1]), float(se[-1]),
                   float(np.sqrt(s2)), rho, inflate, len(rows))


def starts_of(counts: np.ndarray) -> np.ndarray:
    """First row of each group, for rows sorted by group with these counts."""
    return np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
