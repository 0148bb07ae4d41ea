"""Synthetic station data for the detector tests (no tests here): an honest station with
realistic noise — gauge noise ≈ 3 L per reading, meter errors within ±0.3 % and 0.05 %
repeatability, a diurnal demand profile, deliveries with transit loss and their gauge
events, a daily temperature swing — and switches for the cheats and look-alikes the
detectors must tell apart. Everything is vectorised (a 180-day station is generated in
about a second) and seeded.

`generate(Spec(...))` returns a `Synth` with `.data` (a `StationData` through the end)
and the ground truth the tests need.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from central.detectors.data import TIME_COLUMN, StationData
from central.vcf import Vcf

M0 = 1774972800  # 2026-04-01 00:00 Asia/Shanghai
DAY = 86400
HOURLY = np.array([0.15, 0.1, 0.1, 0.1, 0.15, 0.3, 0.6, 1.5, 1.5, 1.4, 1.0, 1.0, 1.1, 1.0,
                   1.0, 1.0, 1.1, 1.5, 1.5, 1.3, 0.8, 0.6, 0.4, 0.25])
VCF = Vcf()


@dataclass(frozen=True)
class NozzleSpec:
    device: str
    nozzle: int
    tank: int
    daily_l: float = 750.0
    error: float = 0.0  # honest meter error (fraction), within ±0.003
    mean_fill_l: float = 40.0
    truck_share: float = 0.0  # share of fills that are 200 L trucks
    flow_l_per_min: float = 40.0


@dataclass(frozen=True)
class TankSpec:
    grade: str = "92"
    capacity_l: float = 30000.0
    initial_l: float = 20000.0
    l_per_mm: float = 15.0


@dataclass
class Spec:
    days: int = 40
    seed: int = 1
    start: int = M0
    tanks: dict[int, TankSpec] = field(default_factory=lambda: {1: TankSpec()})
    nozzles: tuple[NozzleSpec, ...] = (NozzleSpec("D1", 1, 1), NozzleSpec("D2", 1, 1))
    prices: dict[str, int] = field(default_factory=lambda: {"92": 712, "95": 760, "0": 690})
    gauge_noise_l: float = 3.0
    # False: a fill's product leaves the tank at hang-up (as the reference simulation draws
    # it); True: evenly while the nozzle runs (a real pump)
    continuous_flow: bool = False
    interval_s: int = 900
    repeatability: float = 0.0005
    temp_mean_c: float = 15.0
    temp_swing_c: float = 1.0
    transit_loss: float = 0.002
    bol: str = "keyed"  # keyed | zero | none
    # cheats and look-alikes
    # (device, nozzle) → (factor, from) or (factor, from, until)
    skim: dict[tuple[str, int], tuple[float, ...]] = field(default_factory=dict)
    leak_l_per_h: dict[int, float] = field(default_factory=dict)
    leak_from: int | None = None
    withdrawals: list[tuple[int, int, float]] = field(default_factory=list)  # tank, t, L
    frozen: dict[int, tuple[int, int]] = field(default_factory=dict)  # tank → (t0, t1)
    offset: dict[int, tuple[int, float]] = field(default_factory=dict)  # tank → (t, L)
    filter_every: dict[tuple[str, int], int] = field(default_factory=dict)
    offline: dict[str, tuple[int, int]] = field(default_factory=dict)  # device → (t0, t1)
    reset_at: dict[tuple[str, int], int] = field(default_factory=dict)
    price_tamper: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    amount_tamper: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    short_drop: dict[int, float] = field(default_factory=dict)  # tank → fraction short
    hot_delivery_c: float = 0.0  # delivered product this much warmer than the tank
    hot_bumps: dict[int, tuple[int, ...]] = field(default_factory=dict)  # tank → times
    drop_seq_every: dict[str, int] = field(default_factory=dict)  # device → drop every Nth
    posted: list[tuple[str, int, float]] | None = None  # (grade, price, valid_from)


@dataclass
class Synth:
    spec: Spec
    data: StationData
    end: int
    deliveries: list[dict[str, Any]]

    def at(self, t: int) -> StationData:
        return self.data.cut(t)


def _temperature(spec: Spec, t: np.ndarray, bumps: tuple[int, ...] = ()) -> np.ndarray:
    """Tank temperature (°C): a daily swing, plus for a hot delivery a bump that relaxes
    with a 1-day time constant (the same product temperature for gauge and meters)."""
    t = np.asarray(t)
    temp = spec.temp_mean_c + spec.temp_swing_c * np.sin(2 * np.pi * ((t - spec.start) / DAY
                                                                      - 0.3))
    for a in bumps:
        temp = temp + spec.hot_delivery_c * np.exp(-np.maximum(t - a, 0) / DAY) * (t >= a)
    return temp


def _fills(spec: Spec, rng: np.random.Generator, nz: NozzleSpec) -> dict[str, np.ndarray]:
    per_day = rng.poisson(nz.daily_l / (nz.mean_fill_l * (1 - nz.truck_share)
                                        + 200.0 * nz.truck_share), spec.days)
    n = int(per_day.sum())
    day = np.repeat(np.arange(spec.days), per_day)
    cdf = np.cumsum(HOURLY) / HOURLY.sum()
    hour = np.searchsorted(cdf, rng.random(n))
    start = spec.start + day * DAY + hour * 3600 + rng.integers(0, 3600, n)
    start.sort()
    vol = np.clip(rng.lognormal(np.log(nz.mean_fill_l), 0.35, n), 3.0, 120.0)
    truck = rng.random(n) < nz.truck_share
    vol[truck] = rng.uniform(150.0, 250.0, int(truck.sum()))
    dur = np.ceil(vol / nz.flow_l_per_min * 60.0).astype(np.int64) + 15
    # one fill at a time per nozzle
    start = start.astype(np.int64)
    for i in range(1, n):
        if start[i] < start[i - 1] + dur[i - 1] + 20:
            start[i] = start[i - 1] + dur[i - 1] + 20
    keep = start < spec.start + spec.days * DAY - 3600
    return {"start": start[keep], "end": (start + dur)[keep], "true_l": vol[keep]}


def generate(spec: Spec) -> Synth:
    if spec.hot_delivery_c and not spec.hot_bumps:  # find the drops first, then heat them
        dry = generate(dataclasses.replace(spec, hot_delivery_c=0.0))
        bumps: dict[int, tuple[int, ...]] = {}
        for d in dry.deliveries:
            bumps[d["tank"]] = bumps.get(d["tank"], ()) + (d["start"],)
        return generate(dataclasses.replace(spec, hot_bumps=bumps))
    rng = np.random.default_rng(spec.seed)
    end_time = spec.start + spec.days * DAY
    tx_rows: dict[str, list] = {k: [] for k in (
        "device", "nozzle", "tank", "grade", "seq", "start_time", "end_time", "volume_ml",
        "amount_fen", "unit_price_fen", "volume_total_ml", "amount_total_fen")}
    draws: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {t: [] for t in
                                                                          spec.tanks}
    seq_tx: dict[str, int] = {}
    all_tx = []
    for nz in spec.nozzles:
        f = _fills(spec, rng, nz)
        grade = spec.tanks[nz.tank].grade
        err = nz.error + spec.repeatability * rng.standard_normal(len(f["start"]))
        if (nz.device, nz.nozzle) in spec.skim:
            k, t0, *until = spec.skim[(nz.device, nz.nozzle)]
            on = (f["start"] >= t0) & (f["start"] < (until[0] if until else np.inf))
            err = np.where(on, err + k, err)
        shown_ml = np.round(f["true_l"] * (1 + err) * 100.0).astype(np.int64) * 10
        temp = _temperature(spec, f["end"], spec.hot_bumps.get(nz.tank, ()))
        v20_true = f["true_l"] * 1000.0 * np.array([VCF.factor(grade, float(c))
                                                    for c in np.round(temp, 1)])
        draws[nz.tank].append((f["start"] if spec.continuous_flow else f["end"], f["end"],
                               v20_true))
        price = np.full(len(shown_ml), spec.prices[grade], dtype=np.int64)
        if (nz.device, nz.nozzle) in spec.price_tamper:
            t0, p = spec.price_tamper[(nz.device, nz.nozzle)]
            price[f["end"] >= t0] = p
        amount = np.round(shown_ml * price / 1000.0).astype(np.int64)
        if (nz.device, nz.nozzle) in spec.amount_tamper:
            t0, every = spec.amount_tamper[(nz.device, nz.nozzle)]
            bad = (f["end"] >= t0) & (np.arange(len(amount)) % every == 0)
            amount[bad] += np.maximum(amount[bad] // 50, 100)
        vtot = 5_000_000 + np.cumsum(shown_ml)
        atot = 3_000_000 + np.cumsum(amount)
        if (nz.device, nz.nozzle) in spec.reset_at:
            t0 = spec.reset_at[(nz.device, nz.nozzle)]
            after = f["start"] >= t0
            if after.any():
                first = int(np.argmax(after))
                vtot[after] -= vtot[first] - shown_ml[first]
                atot[after] -= atot[first] - amount[first]
        keep = np.ones(len(shown_ml), dtype=bool)
        if (nz.device, nz.nozzle) in spec.filter_every:
            keep[np.arange(len(keep)) % spec.filter_every[(nz.device, nz.nozzle)] == 5] = False
        if nz.device in spec.offline:
            t0, t1 = spec.offline[nz.device]
            keep &= ~((f["end"] >= t0) & (f["start"] <= t1))
        for i in np.flatnonzero(keep):
            all_tx.append((int(f["end"][i]), nz.device, nz.nozzle, nz.tank, grade,
                           int(f["start"][i]), int(shown_ml[i]), int(amount[i]),
                           int(price[i]), int(vtot[i]), int(atot[i])))
    all_tx.sort(key=lambda r: (r[0], r[1], r[2]))
    for end, dev, noz, tank, grade, start, vol, amt, price, vt, at in all_tx:
        seq = seq_tx.get(dev, 0)
        every = spec.drop_seq_every.get(dev)
        if every and seq % every == every - 1:
            seq += 1  # a record the device numbered but the platform never got
        seq_tx[dev] = seq + 1
        for k, v in zip(tx_rows, (dev, noz, tank, grade, seq % 65536, start, end, vol, amt,
                                  price, vt, at), strict=True):
            tx_rows[k].append(v)

    inv: dict[str, list] = {k: [] for k in (
        "device", "tank", "seq", "device_time", "product_level_um", "temperature_mc",
        "gross_volume_ml", "volume_20c_ml", "water_level_um", "water_volume_ml")}
    dl: dict[str, list] = {k: [] for k in (
        "device", "tank", "seq", "start_time", "end_time", "start_volume_20c_ml",
        "end_volume_20c_ml", "start_gross_volume_ml", "end_gross_volume_ml",
        "start_temperature_mc", "end_temperature_mc", "bol_volume_20c_ml")}
    ev: dict[str, list] = {k: [] for k in ("device", "seq", "code", "unit", "device_time",
                                           "value_old_e4", "value_new_e4")}
    readings_t = np.arange(spec.start, end_time + 1, spec.interval_s, dtype=np.int64)
    deliveries: list[dict[str, Any]] = []
    per_tank_readings = {}
    for tank, ts in spec.tanks.items():
        starts = np.concatenate([d[0] for d in draws[tank]]) if draws[tank] else np.zeros(0)
        ends = np.concatenate([d[1] for d in draws[tank]]) if draws[tank] else np.zeros(0)
        v20 = np.concatenate([d[2] for d in draws[tank]]) if draws[tank] else np.zeros(0)

        def drawn(t: np.ndarray, s=starts, e=ends, v=v20) -> np.ndarray:
            """20 °C volume drawn by time t, each fill at a constant rate."""
            t = np.asarray(t)
            order = np.argsort(e)
            done = np.concatenate(([0.0], np.cumsum(v[order])))[
                np.searchsorted(e[order], t, "right")]
            # fills in progress at t (a fill lasts minutes: look at the few that started
            # within the longest duration before t)
            longest = int((e - s).max()) if len(s) else 0
            by_start = np.argsort(s)
            ss, ee, vv = s[by_start], e[by_start], v[by_start]
            lo = np.searchsorted(ss, t - longest, "left")
            hi = np.searchsorted(ss, t, "left")
            part = np.zeros(len(t))
            for k in range(int((hi - lo).max()) if len(t) else 0):
                idx = np.minimum(lo + k, len(ss) - 1)
                ok = (lo + k < hi) & (ee[idx] > t)
                part += np.where(ok, vv[idx] * (t - ss[idx]) / np.maximum(ee[idx] - ss[idx], 1),
                                 0.0)
            return done + part

        # deliveries: day by day, refill when the tank would drop below 35 %
        level0 = ts.initial_l * 1000.0
        delivered_by: list[tuple[int, int, float]] = []  # (start, drop_end, v20 mL)
        day_ends = spec.start + DAY * np.arange(1, spec.days + 1)
        drawn_at_day_end = _drawn_cumulative(starts, ends, v20, day_ends)
        extra = 0.0
        for d in range(spec.days - 1):
            est = level0 + extra - drawn_at_day_end[d + 1]
            if est < 0.35 * ts.capacity_l * 1000.0:
                t0 = int(spec.start + d * DAY + 10 * 3600 + rng.integers(0, 6 * 3600))
                room = 0.85 * ts.capacity_l * 1000.0 - (level0 + extra - drawn_at_day_end[d])
                bol = max(1, int(room // 5_000_000)) * 5_000_000
                loss = max(0.0, rng.normal(spec.transit_loss, spec.transit_loss / 3))
                drop = bol * (1 - loss) * (1 - spec.short_drop.get(tank, 0.0))
                dur = int(drop / 1000.0 / 800.0 * 60)
                delivered_by.append((t0, t0 + dur, drop))
                extra += drop
                deliveries.append({"tank": tank, "start": t0, "drop_end": t0 + dur,
                                   "end": t0 + dur + 600, "bol_ml": bol, "drop_ml": drop})

        def truth(t: np.ndarray, tank: int = tank, level0: float = level0,
                  delivered_by: list = delivered_by, drawn=drawn) -> np.ndarray:
            v = level0 - drawn(t)
            for a, b, vol in delivered_by:
                v += vol * np.clip((t - a) / max(b - a, 1), 0, 1)
            rate = spec.leak_l_per_h.get(tank, 0.0)
            v -= rate * 1000.0 * np.maximum(t - (spec.leak_from or spec.start), 0) / 3600.0
            for wt, when, litres in spec.withdrawals:
                if wt == tank:
                    v -= litres * 1000.0 * np.clip((t - when) / 600.0, 0, 1)
            return v

        t = readings_t
        v = truth(t) + rng.normal(0, spec.gauge_noise_l * 1000.0, len(t))
        if tank in spec.offset:
            when, litres = spec.offset[tank]
            v = v + np.where(t >= when, litres * 1000.0, 0.0)
        temp = _temperature(spec, t, spec.hot_bumps.get(tank, ()))
        temp_mc = (np.round(temp, 1) * 1000).astype(np.int64)
        fac = np.array([VCF.factor(ts.grade, c / 1000.0) for c in temp_mc])
        gross = v / fac
        level = v / 1000.0 / ts.l_per_mm * 1000.0
        v20_ml = np.round(v).astype(np.int64)
        gross_ml = np.round(gross).astype(np.int64)
        level_um = (np.round(level / 100.0) * 100).astype(np.int64)
        if tank in spec.frozen:
            f0, f1 = spec.frozen[tank]
            idx = np.flatnonzero((t >= f0) & (t <= f1))
            if len(idx):
                base = idx[0]
                for arr in (v20_ml, gross_ml, level_um, temp_mc):
                    arr[idx] = arr[base]
        per_tank_readings[tank] = (t, v20_ml, gross_ml, level_um, temp_mc)
        for d in deliveries:
            if d["tank"] != tank:
                continue
            a, e = d["start"], d["end"]
            va, ve = truth(np.array([a, e])) + rng.normal(0, spec.gauge_noise_l * 1000.0, 2)
            ta, te = (np.round(_temperature(spec, np.array([a, e]), spec.hot_bumps.get(tank, ())),
                               1) * 1000).astype(int)
            d["record"] = (tank, a, e, int(va), int(ve), int(ta), int(te))
    # gauge records in time order with one sequence
    rows = []
    for tank, (t, v20_ml, gross_ml, level_um, temp_mc) in per_tank_readings.items():
        for i in range(len(t)):
            rows.append((int(t[i]), tank, int(level_um[i]), int(temp_mc[i]), int(gross_ml[i]),
                         int(v20_ml[i])))
    rows.sort()
    for i, (t, tank, lvl, temp, gross, v20) in enumerate(rows):
        for k, val in zip(inv, ("G", tank, i % 65536, t, lvl, temp, gross, v20, 0, 0),
                          strict=True):
            inv[k].append(val)
    ev_seq = 0
    for n, d in enumerate(sorted(deliveries, key=lambda d: d["end"])):
        tank, a, e, va, ve, ta, te = d["record"]
        bol = {"keyed": float(d["bol_ml"]), "zero": 0.0, "none": float("nan")}[spec.bol]
        for k, val in zip(dl, ("G", tank, n, a, e, va, ve, va, ve, ta, te, bol), strict=True):
            dl[k].append(val)
        for code, when in ((50, a), (51, e)):
            for k, val in zip(ev, ("G", ev_seq, code, tank, when, 0, 0), strict=True):
                ev[k].append(val)
            ev_seq += 1
    avail: dict[str, list] = {"device": [], "online": [], "device_time": []}
    for dev, (t0, t1) in spec.offline.items():
        for when, online in ((t0 - 60, 1), (t0, 0), ((t0 + t1) // 2, 0), (t1 + 60, 1)):
            avail["device"].append(dev)
            avail["online"].append(online)
            avail["device_time"].append(when)
    prices = spec.posted if spec.posted is not None else [
        (g, p, float(spec.start - DAY)) for g, p in spec.prices.items()]
    data = StationData(
        "SYN01", end_time, {t: ts.grade for t, ts in spec.tanks.items()},
        {(n.device, n.nozzle): n.tank for n in spec.nozzles},
        {"transactions": tx_rows, "inventory": inv, "deliveries": dl, "events": ev,
         "prices": {"grade": [p[0] for p in prices], "price_fen": [p[1] for p in prices],
                    "valid_from": [p[2] for p in prices]},
         "availability": avail})
    _sort_events(data)
    return Synth(spec, data, end_time, deliveries)


def _sort_events(data: StationData) -> None:
    """Events in time order, numbered in that order per device."""
    ev = data.events
    order = np.lexsort((ev.seq, ev.device_time))
    ev = ev.select(order)
    seq = ev.seq.copy()
    for dev in np.unique(ev.device):
        m = ev.device == dev
        seq[m] = np.arange(int(m.sum()))
    ev.columns["seq"] = seq
    data.streams["events"] = ev


def _drawn_cumulative(starts: np.ndarray, ends: np.ndarray, v20: np.ndarray,
                      at: np.ndarray) -> np.ndarray:
    order = np.argsort(ends)
    cum = np.concatenate(([0.0], np.cumsum(v20[order])))
    return cum[np.searchsorted(ends[order], at, "right")]


def with_clock(synth: Synth, device: str,
               shown: Callable[[np.ndarray], np.ndarray]) -> StationData:
    """The station with `device`'s times as its wrong clock showed them: every time column
    of its records mapped through `shown`, rows back in storage (time) order."""
    data = synth.data.cut(synth.end)
    for name, s in data.streams.items():
        if name not in ("transactions", "inventory", "deliveries", "events", "states"):
            continue
        mine = s.device == device
        for col in {TIME_COLUMN[name], "start_time"} & set(s.columns):
            s.columns[col] = np.where(mine, shown(s.columns[col]), s.columns[col])
        data.streams[name] = s.select(np.argsort(s.time, kind="stable"))
    return data


def drifting_clock(a: int, b: int, rate: float) -> Callable[[np.ndarray], np.ndarray]:
    """A clock gaining `rate` s/day over [a, b) and set right at b."""
    return lambda t: np.where((t >= a) & (t < b), t + ((t - a) * rate / DAY).astype(np.int64), t)


def add_rows(data: StationData, stream: str, rows: list[dict[str, Any]]) -> None:
    """Append records to a stream (e.g. states, events, records), kept in time order."""
    from central.detectors.data import Stream

    s = data.streams[stream]
    cols = {c: list(v) for c, v in s.columns.items()}
    for r in rows:
        for c in cols:
            cols[c].append(r.get(c, "" if s.columns[c].dtype.kind == "U" else
                                 (math.nan if s.columns[c].dtype.kind == "f" else 0)))
    new = Stream(stream, cols)
    data.streams[stream] = new.select(np.argsort(new.time, kind="stable")) if \
        stream != "prices" else new
