"""Noise budget (误差预算) of a tank's daily wetstock variance, and that variance from the truth.

The daily variance is the reference platform's reconciliation (docs/platform-api.md §5.4):

    variance_d = opening + deliveries − sales − closing            (all at 20 °C; + = missing)

opening/closing: the gauge's 20 °C volume at the local midnights (interval readings);
deliveries: gauge-measured (end − start 20 °C volume, plus the sales during the drop);
sales: displayed volumes at 20 °C with the gauge temperature of the reading before each fill
and the grade's nominal density.

- `tank_budget` gives, analytically, the mean and σ of an honest tank's daily variance and the
  σ of its 30-day cumulative variance from the tank's drawn parameters and expected
  throughput: each error source of docs/noise-budget.md evaluated along the tank's expected
  level path (deterministic: a constant sales rate and the station's reorder policy).
- `daily_variance` computes the empirical series per tank from ground-truth columns
  (tank_states, transactions, deliveries as dicts of numpy arrays), `variance_stats` its
  σ per tank, `honest_tanks` the tanks no cheat or leak touches.

numpy only (pandas only in tests), so the campaign runner can use it on any table reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from sim.capacity import CapacityTable
from sim.config import DeliveryPolicy, ProbeConfig
from sim.deliveries import (
    MAX_FILL,
    SETTLE_S,
    TANKER_AIR_COUPLING,
    TANKER_TEMP_SD_C,
    air_temperature_c,
)
from sim.demand import DEFAULT_MIX, WEEKDAY_FACTORS, FillMix
from sim.imperfections import (
    BATCH_DENSITY_MEAN,
    BATCH_DENSITY_SD,
    DAY_S,
    STRAT_SD,
    STRAT_TAU_S,
    storage_loss_integral,
    stratification_gain,
)
from sim.meter import MIN_MEASURED_L, Meter
from sim.tank import THERMAL_TAU_S
from sim.thermal import ground_temperature_c, steady_fuel_temperature_c
from sim.vcf import DENSITY_20C, alpha, alpha_for_density

MONTH_DAYS = 30
_HORIZON_DAYS = 60  # the expected level path covers at least this many days


# --- fills ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FillMoments:
    """Moments of one fill's true litres, and the mean flow, for a grade's customers."""

    mean_l: float
    sq_mean_l2: float
    inv_mean: float  # E[1/litres]
    flow_lpm: float


def fill_moments(truck_share: float, price_fen: float, mix: FillMix = DEFAULT_MIX) -> FillMoments:
    """E[s], E[s²], E[1/s] of a fill and the mean flow (sim/demand.py's customer mix)."""
    def uniform(lo: float, hi: float) -> tuple[float, float, float]:
        return (lo + hi) / 2, (lo * lo + lo * hi + hi * hi) / 3, math.log(hi / lo) / (hi - lo)

    def presets(amounts: tuple[int, ...], probs: tuple[float, ...]) -> tuple[float, float, float]:
        litres = [a / price_fen for a in amounts]
        return (sum(p * v for p, v in zip(probs, litres, strict=True)),
                sum(p * v * v for p, v in zip(probs, litres, strict=True)),
                sum(p / v for p, v in zip(probs, litres, strict=True)))

    def kind(full_share: float, full: tuple[float, float],
             amounts: tuple[int, ...], probs: tuple[float, ...]) -> np.ndarray:
        return (full_share * np.array(uniform(*full))
                + (1 - full_share) * np.array(presets(amounts, probs)))

    car = kind(mix.car_full_share, mix.car_full_l, mix.car_amounts_fen, mix.car_amount_probs)
    truck = kind(mix.truck_full_share, mix.truck_full_l, mix.truck_amounts_fen,
                 mix.truck_amount_probs)
    m = (1 - truck_share) * car + truck_share * truck
    flow = (1 - truck_share) * mix.car_flow_lpm[0] + truck_share * sum(mix.truck_flow_lpm) / 2
    return FillMoments(float(m[0]), float(m[1]), float(m[2]), float(flow))


# --- the analytic budget ------------------------------------------------------------------------

@dataclass(frozen=True)
class TankBudgetInput:
    grade: str
    true_table: CapacityTable
    gauge_table: CapacityTable  # the gauge's own (strapped) table
    level_offset_mm: float  # tilt × probe position + probe zero bias
    probe: ProbeConfig
    sales_l_per_day: float  # expected
    initial_gross_l: float
    policy: DeliveryPolicy
    meters: tuple[tuple[float, Meter], ...]  # (share of the tank's sales, meter)
    fills: FillMoments
    storage_loss_per_month: float
    working_loss: float
    water_ingress_l_per_day: float
    start: float  # epoch s
    days: float
    utc_offset_h: float = 8.0
    strat_sd: float = STRAT_SD  # 0 = no stratification (ideal)
    density_sd: float | None = None  # batch density sd (kg/m³); None = the grade's
    density_mean: float | None = None  # batch density mean; None = the grade's


@dataclass(frozen=True)
class TankBudget:
    """Expected honest daily variance of one tank (litres at 20 °C; + = missing)."""

    sales_l_per_day: float
    bias_day_l: float  # mean daily variance
    sd_day_l: float  # σ of the daily variance
    sd_month_l: float  # σ of a 30-day cumulative variance
    components: dict[str, float] = field(default_factory=dict)  # σ of each daily part (L)


@dataclass(frozen=True)
class _Path:
    """Expected gross level path: deliveries (time in days, volume before, after)."""

    start_l: float
    rate: float
    drops: tuple[tuple[float, float, float], ...]

    def at(self, t: np.ndarray) -> np.ndarray:
        """Expected gross volume at times t (days); a drop at exactly t is not yet in."""
        t = np.asarray(t, dtype=np.float64)
        if not self.drops:
            return self.start_l - self.rate * t
        times = np.array([d[0] for d in self.drops])
        after = np.array([d[2] for d in self.drops])
        i = np.searchsorted(times, t, side="left") - 1
        j = np.maximum(i, 0)
        base_t = np.where(i >= 0, times[j], 0.0)
        base_v = np.where(i >= 0, after[j], self.start_l)
        return base_v - self.rate * (t - base_t)


def _expected_path(inp: TankBudgetInput, horizon: int) -> _Path:
    p = inp.policy
    cap = inp.true_table.capacity_l
    rate = inp.sales_l_per_day if inp.sales_l_per_day > 1e-6 else 0.0  # L/day
    lead = sum(p.lead_time_h) / 2 / 24.0  # days
    compartment = p.compartment_l * (1.0 - p.transit_loss)
    drops: list[tuple[float, float, float]] = []
    t, v = 0.0, inp.initial_gross_l
    reorder = p.reorder_fraction * cap
    while rate > 0 and t < horizon and len(drops) < 10 * horizon:
        t_order = t + max(0.0, (v - reorder) / rate)
        t_drop = t_order + lead
        before = v - rate * (t_drop - t)
        expected = before  # what the station expects at arrival when it orders
        n = max(1, math.floor((p.fill_target * cap - max(0.0, expected)) / p.compartment_l))
        n = min(n, math.floor((MAX_FILL * cap - before) / compartment))
        if n <= 0 or before < 0:
            break
        after = before + n * compartment
        drops.append((t_drop, before, after))
        t, v = t_drop, after
    return _Path(inp.initial_gross_l, rate, tuple(drops))


@lru_cache(maxsize=64)
def _contrast_sq(start: float, days: int, utc_offset_h: float) -> float:
    """E[(delivered − tank temperature)²] over the run's days and hours (°C²)."""
    t = start + (np.arange(max(days, 1) * 24) + 0.5) * 3600.0
    sq = 0.0
    for ts in t.tolist():
        ground = ground_temperature_c(ts, utc_offset_h)
        tanker = ground + TANKER_AIR_COUPLING * (air_temperature_c(ts, utc_offset_h) - ground)
        diff = tanker - steady_fuel_temperature_c(ts, THERMAL_TAU_S, utc_offset_h)
        sq += diff * diff
    return sq / len(t) + TANKER_TEMP_SD_C ** 2


def _meter_bias(inp: TankBudgetInput, t: np.ndarray) -> np.ndarray:
    """Sales-weighted honest relative error of the tank's meters at times t (epoch s)."""
    total = np.zeros_like(t)
    for share, m in inp.meters:
        e = m.error + m.drift_per_day * (t - m.verified_at) / DAY_S
        if m.flow_ref_lpm > 0:
            e = e + m.flow_slope * (inp.fills.flow_lpm / m.flow_ref_lpm - 1.0)
        e = e + m.small_volume * MIN_MEASURED_L * inp.fills.inv_mean
        total = total + share * e
    return total


def tank_budget(inp: TankBudgetInput) -> TankBudget:
    """Mean and σ of an honest tank's daily variance, σ of its 30-day cumulative variance."""
    run_days = max(1, int(math.floor(inp.days + 1e-9)))
    horizon = max(run_days, _HORIZON_DAYS)
    s_day = inp.sales_l_per_day if inp.sales_l_per_day > 1e-6 else 0.0
    path = _expected_path(inp, horizon + 1)
    edges = np.arange(horizon + 1, dtype=np.float64)
    v_edge = path.at(edges)
    drops = np.array(path.drops, dtype=np.float64).reshape(-1, 3)
    drops = drops[drops[:, 0] < horizon]
    drop_day = np.floor(drops[:, 0]).astype(np.int64)

    # Gauge error at a true gross volume: the strapped table read at the offset level.
    lv = np.arange(inp.true_table.diameter_mm + 1, dtype=np.float64)
    vt, vg = inp.true_table.volumes_l, inp.gauge_table.volumes_l
    slope_g = np.diff(vg)

    def level(v: np.ndarray) -> np.ndarray:
        return np.interp(v, vt, lv)

    def gauge_error(v: np.ndarray) -> np.ndarray:
        return np.interp(level(v) + inp.level_offset_mm, lv, vg) - v

    a_nom = alpha(inp.grade)
    pr = inp.probe
    sd_level = math.sqrt(pr.level_noise_mm ** 2 + pr.level_resolution_mm ** 2 / 12)
    sd_temp = math.sqrt(pr.temp_noise_c ** 2 + pr.temp_resolution_c ** 2 / 12)

    def read_var(v: np.ndarray) -> np.ndarray:
        """Variance (L²) of one gauge reading's 20 °C volume at true gross volume v."""
        per_mm = np.interp(level(v) + inp.level_offset_mm, lv[:-1] + 0.5, slope_g)
        return (per_mm * sd_level) ** 2 + (np.maximum(v, 0.0) * a_nom * sd_temp) ** 2

    # Systematic part along the path: gauge errors (strapping, level offset).
    err_edge = gauge_error(np.maximum(v_edge, 0.0))
    syst = err_edge[:-1] - err_edge[1:]
    drop_err = gauge_error(drops[:, 2]) - gauge_error(drops[:, 1])
    np.add.at(syst, drop_day, drop_err)

    # Mean terms: meters, evaporation, water counted as product while the float rests.
    t_mid = inp.start + (edges[:-1] + 0.5) * DAY_S
    meter_e = _meter_bias(inp, t_mid)
    mean_meter = -meter_e * s_day
    v_mid = np.maximum((v_edge[:-1] + v_edge[1:]) / 2, 0.0)
    storage = np.array([storage_loss_integral(inp.storage_loss_per_month, t - DAY_S / 2,
                                              t + DAY_S / 2, inp.utc_offset_h)
                        for t in t_mid.tolist()])
    mean_evap = storage * v_mid + inp.working_loss * s_day
    water_lift_l = float(np.interp(pr.min_water_mm, lv, vt))
    water = inp.water_ingress_l_per_day
    mean_water = np.zeros(horizon)
    if water > 0:
        filled = water * (edges[1:])
        resting = filled < water_lift_l
        mean_water = np.where(resting, -water, 0.0)
        lift = int(np.argmin(resting)) if not resting.all() else -1
        if lift >= 0:
            mean_water[lift] = water_lift_l - water * lift  # the float lifts: water leaves
    deterministic = syst + mean_meter + mean_evap + mean_water

    # Random parts per day.
    rand = read_var(np.maximum(v_edge[:-1], 0.0)) + read_var(np.maximum(v_edge[1:], 0.0))
    drop_read = read_var(drops[:, 1]) + read_var(drops[:, 2])
    np.add.at(rand, drop_day, drop_read)
    # stratification: the probe's average off by δ0 at the drop's end reading, decaying after
    share = np.where(drops[:, 2] > 0, (drops[:, 2] - drops[:, 1]) / np.maximum(drops[:, 2], 1.0),
                     0.0)
    gain = np.array([stratification_gain(s) for s in share.tolist()])
    contrast_sq = _contrast_sq(inp.start, run_days, inp.utc_offset_h)
    strat_var = (inp.strat_sd * a_nom * drops[:, 2] * gain) ** 2 * contrast_sq  # (α V δ0)²
    x = (np.arange(96) + 0.5) / 96 * DAY_S  # product stop → next midnight, uniform
    settle = math.exp(-SETTLE_S / STRAT_TAU_S)
    decayed = np.exp(-x / STRAT_TAU_S)
    k_same = float(np.mean((settle - decayed) ** 2))  # on the drop's day
    k_next = float(np.mean(decayed ** 2))  # carried into the next day's opening
    strat_day = np.zeros(horizon)
    np.add.at(strat_day, drop_day, strat_var * k_same)
    nxt = drop_day + 1 < horizon
    np.add.at(strat_day, drop_day[nxt] + 1, strat_var[nxt] * k_next)
    # density × temperature: the real expansion coefficient differs from the nominal one, so
    # the fuel's relaxation after a drop (offset share × contrast, τ = 3 days) shows up
    rho_mean = BATCH_DENSITY_MEAN[inp.grade] if inp.density_mean is None else inp.density_mean
    rho_sd = BATCH_DENSITY_SD[inp.grade] if inp.density_sd is None else inp.density_sd
    d_alpha_d_rho = (alpha_for_density(rho_mean + 0.5) - alpha_for_density(rho_mean - 0.5))
    dalpha_sq = (alpha_for_density(rho_mean) - alpha_for_density(DENSITY_20C[inp.grade])) ** 2 \
        + (d_alpha_d_rho * rho_sd * math.sqrt(0.5)) ** 2
    q = math.exp(-DAY_S / THERMAL_TAU_S)
    dens_total = dalpha_sq * drops[:, 2] ** 2 * share ** 2 * contrast_sq  # (V Δα O)²
    steps = (1 - q) ** 2 * q ** (2 * np.arange(12))  # squared daily relaxation steps
    dens_day = np.zeros(horizon)
    for day, total in zip(drop_day.tolist(), dens_total.tolist(), strict=True):
        hi = min(horizon, day + len(steps))
        dens_day[day:hi] += total * steps[: hi - day]
    # meters: per-fill repeatability; sales variation times the per-litre bias
    rep_sq = sum(share * m.repeatability ** 2 for share, m in inp.meters)
    fills = inp.fills
    var_sales = s_day * fills.sq_mean_l2 / max(fills.mean_l, 1e-9) \
        + s_day ** 2 * float(np.var(WEEKDAY_FACTORS))
    meter_rand = rep_sq * s_day * fills.sq_mean_l2 / max(fills.mean_l, 1e-9)
    per_litre = deterministic / max(s_day, 1e-9)
    sales_var = var_sales * per_litre ** 2

    run = slice(0, run_days)
    random_day = rand + strat_day + dens_day + meter_rand + sales_var
    det = deterministic[run]
    var_day = float(np.mean(random_day[run]) + np.var(det))
    bias_day = float(np.mean(det))

    # 30-day windows (inside the run if it is long enough, else over the expected path).
    span = run_days if run_days >= MONTH_DAYS else horizon
    starts = np.arange(0, span - MONTH_DAYS + 1)
    csum = np.concatenate(([0.0], np.cumsum(deterministic)))
    win_det = csum[starts + MONTH_DAYS] - csum[starts]
    per_drop = drop_read + strat_var * settle ** 2 + dens_total
    drop_cum = np.concatenate(([0.0], np.cumsum(np.bincount(drop_day, per_drop,
                                                             minlength=horizon))))
    win_rand = (read_var(np.maximum(v_edge[starts], 0.0))
                + read_var(np.maximum(v_edge[starts + MONTH_DAYS], 0.0))
                + drop_cum[starts + MONTH_DAYS] - drop_cum[starts]
                + MONTH_DAYS * (meter_rand + var_sales * float(np.mean(per_litre)) ** 2))
    var_month = float(np.mean(win_rand) + np.var(win_det))

    components = {
        "probe_noise": math.sqrt(float(np.mean(rand[run]))),
        "strapping_and_level_offset": math.sqrt(float(np.var(syst[run]))),
        "stratification": math.sqrt(float(np.mean(strat_day[run]))),
        "density_temperature": math.sqrt(float(np.mean(dens_day[run]))),
        "meter_repeatability": math.sqrt(meter_rand),
        "meter_drift_and_sales": math.sqrt(float(np.var(mean_meter[run]))
                                           + float(np.mean(sales_var[run]))),
        "evaporation_and_water": math.sqrt(float(np.var((mean_evap + mean_water)[run]))),
    }
    return TankBudget(s_day, bias_day, math.sqrt(var_day), math.sqrt(var_month), components)


# --- the empirical series ------------------------------------------------------------------

@dataclass(frozen=True)
class DailyVariance:
    """One tank's reconciled days (arrays of equal length)."""

    day_start: np.ndarray  # epoch s of the local midnight starting the day
    opening_l: np.ndarray
    closing_l: np.ndarray
    sales_l: np.ndarray  # displayed litres
    sales_20c_l: np.ndarray
    deliveries_20c_l: np.ndarray
    n_deliveries: np.ndarray
    variance_l: np.ndarray
    straddle: np.ndarray  # a drop was in progress at the opening or closing reading


def _vcf_nominal(grade: str, temp_c: np.ndarray) -> np.ndarray:
    a = alpha(grade)
    dt = temp_c - 20.0
    return np.exp(-a * dt * (1.0 + 0.8 * a * dt))


def _midnights(t0: float, t1: float, tz: ZoneInfo) -> np.ndarray:
    """Local midnights from the day of t0 to the day after t1."""
    day = datetime.fromtimestamp(t0, tz).date()
    last = datetime.fromtimestamp(t1, tz).date() + timedelta(days=1)
    out = []
    while day <= last:
        out.append(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
        day += timedelta(days=1)
    return np.asarray(out, dtype=np.float64)


def _strings(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=object)


class Columns(Protocol):
    """Ground-truth columns by name: a dict of arrays, or a pandas DataFrame."""

    def __getitem__(self, name: str, /) -> Any: ...

    def __contains__(self, name: str, /) -> bool: ...

    def get(self, name: str, default: Any, /) -> Any: ...


def daily_variance(states: Columns, transactions: Columns,
                   deliveries: Columns, timezone: str = "Asia/Shanghai"
                   ) -> dict[tuple[str, int], DailyVariance]:
    """Daily variance per (station, tank) from ground-truth columns (docs/platform-api.md §5.4).

    `states`: tank_states columns station_id, tank, time, kind, gauge_volume_20c_l,
    gauge_temperature_c (only "interval" rows are used); `transactions`: station_id, tank,
    grade, end_time, displayed_volume_ml; `deliveries`: station_id, tank, start_time, end_time,
    start_volume_20c_l, end_volume_20c_l, start_temperature_c, end_temperature_c."""
    tz = ZoneInfo(timezone)
    s_sid, s_tank = _strings(states["station_id"]), np.asarray(states["tank"])
    interval = _strings(states["kind"]) == "interval"
    t_sid, t_tank = _strings(transactions["station_id"]), np.asarray(transactions["tank"])
    t_grade = _strings(transactions["grade"])
    d_sid, d_tank = _strings(deliveries["station_id"]), np.asarray(deliveries["tank"])
    out: dict[tuple[str, int], DailyVariance] = {}
    keys = sorted({(str(a), int(b)) for a, b in zip(s_sid[interval], s_tank[interval],
                                                    strict=True)})
    for sid, tank in keys:
        sel = interval & (s_sid == sid) & (s_tank == tank)
        order = np.argsort(np.asarray(states["time"])[sel], kind="stable")
        rt = np.asarray(states["time"], dtype=np.float64)[sel][order]
        rv = np.asarray(states["gauge_volume_20c_l"], dtype=np.float64)[sel][order]
        rtemp = np.asarray(states["gauge_temperature_c"], dtype=np.float64)[sel][order]
        tsel = (t_sid == sid) & (t_tank == tank)
        te = np.asarray(transactions["end_time"], dtype=np.float64)[tsel]
        vol = np.asarray(transactions["displayed_volume_ml"], dtype=np.float64)[tsel] / 1000.0
        grades = t_grade[tsel]
        grade = str(grades[0]) if len(grades) else None
        dsel = (d_sid == sid) & (d_tank == tank)
        out[(sid, tank)] = _tank_days(rt, rv, rtemp, te, vol, grade, {
            k: np.asarray(deliveries[k], dtype=np.float64)[dsel]
            for k in ("start_time", "end_time", "start_volume_20c_l", "end_volume_20c_l",
                      "start_temperature_c", "end_temperature_c")}, tz)
    return out


def _tank_days(rt: np.ndarray, rv: np.ndarray, rtemp: np.ndarray, te: np.ndarray,
               vol: np.ndarray, grade: str | None, drops: Mapping[str, np.ndarray],
               tz: ZoneInfo) -> DailyVariance:
    n_read = len(rt)
    # each fill at 20 °C with the temperature of the last reading strictly before its end
    ri = np.searchsorted(rt, te, side="left") - 1
    ok = ri >= 0
    sales20 = np.zeros(len(te))
    if grade is not None and ok.any():
        sales20[ok] = vol[ok] * _vcf_nominal(grade, rtemp[ri[ok]])
    per_reading = np.bincount(ri[ok], sales20[ok], minlength=n_read)
    per_reading_l = np.bincount(ri[ok], vol[ok], minlength=n_read)
    cum20 = np.concatenate(([0.0], np.cumsum(per_reading)))
    cuml = np.concatenate(([0.0], np.cumsum(per_reading_l)))
    # deliveries: gauge-seen volume plus the sales during the drop at the mean temperature
    starts, ends = drops["start_time"], drops["end_time"]
    seen = drops["end_volume_20c_l"] - drops["start_volume_20c_l"]
    if grade is not None and len(ends):
        sorted_te = np.sort(te)
        order_te = np.argsort(te, kind="stable")
        vol_sorted = np.concatenate(([0.0], np.cumsum(vol[order_te])))
        lo = np.searchsorted(sorted_te, starts, side="left")
        hi = np.searchsorted(sorted_te, ends, side="right")
        during = vol_sorted[hi] - vol_sorted[lo]
        mean_temp = (drops["start_temperature_c"] + drops["end_temperature_c"]) / 2
        seen = seen + during * _vcf_nominal(grade, mean_temp)
    d_order = np.argsort(ends, kind="stable")
    d_ends, d_seen = ends[d_order], np.concatenate(([0.0], np.cumsum(seen[d_order])))

    empty = np.zeros(0)
    if n_read == 0:
        return DailyVariance(empty, empty, empty, empty, empty, empty, empty.astype(np.int64),
                             empty, empty.astype(bool))
    mids = _midnights(rt[0], rt[-1], tz)
    day_start, day_end = mids[:-1], mids[1:]
    i_open = np.searchsorted(rt, day_start, side="right") - 1
    i_open = np.where((i_open < 0) & (np.arange(len(day_start)) == 0), 0, i_open)
    i_close = np.searchsorted(rt, day_end, side="right") - 1
    valid = (i_open >= 0) & (i_close >= 0)
    valid[valid] &= rt[i_close[valid]] > rt[i_open[valid]]
    io, ic = i_open[valid], i_close[valid]
    t_open, t_close = rt[io], rt[ic]
    sales20_day = cum20[ic] - cum20[io]
    sales_day = cuml[ic] - cuml[io]
    lo = np.searchsorted(d_ends, t_open, side="right")
    hi = np.searchsorted(d_ends, t_close, side="right")
    deliv = d_seen[hi] - d_seen[lo]
    variance = rv[io] + deliv - sales20_day - rv[ic]

    def inside(t: np.ndarray) -> np.ndarray:
        if not len(starts):
            return np.zeros(len(t), dtype=bool)
        return np.any((starts[None, :] < t[:, None]) & (t[:, None] < ends[None, :]), axis=1)

    return DailyVariance(day_start[valid], rv[io], rv[ic], sales_day, sales20_day, deliv,
                         (hi - lo).astype(np.int64), variance, inside(t_open) | inside(t_close))


@dataclass(frozen=True)
class VarianceStats:
    """Summary of one tank's daily variance series (straddling days left out)."""

    days: int
    mean_sales_l: float
    mean_l: float
    sd_l: float
    sd_pct_of_sales: float  # σ / mean daily sales × 100
    sd_month_l: float  # σ of back-to-back 30-day cumulative variances; nan if fewer than 2


def variance_stats(series: DailyVariance, skip_days: int = 0) -> VarianceStats:
    """σ of the daily variance over days after the first `skip_days`, leaving out days whose
    opening or closing reading fell inside a drop; σ of back-to-back 30-day cumulative
    variances over windows whose ends fall outside drops."""
    keep = ~series.straddle
    keep[:skip_days] = False
    v = series.variance_l[keep]
    sales = series.sales_l[keep]
    n = len(v)
    if n < 2:
        nan = float("nan")
        return VarianceStats(n, nan, nan, nan, nan, nan)
    sd = float(np.std(v, ddof=1))
    mean_sales = float(np.mean(sales))
    month = float("nan")
    var_all = series.variance_l[skip_days:]
    ok_edge = ~series.straddle[skip_days:]
    starts = np.arange(0, len(var_all) - MONTH_DAYS + 1, MONTH_DAYS)  # back-to-back windows
    good = ok_edge[starts] & ok_edge[starts + MONTH_DAYS - 1]
    if good.sum() >= 2:
        csum = np.concatenate(([0.0], np.cumsum(var_all)))
        month = float(np.std((csum[starts + MONTH_DAYS] - csum[starts])[good], ddof=1))
    pct = 100.0 * sd / mean_sales if mean_sales > 0 else float("nan")
    return VarianceStats(n, mean_sales, float(np.mean(v)), sd, pct, month)


def honest_tanks(tanks: Columns, nozzles: Columns,
                 cheats: Columns | None = None) -> set[tuple[str, int]]:
    """(station, tank) pairs with no leak configured and no cheat acting on them (a cheat
    names its tank, or its dispenser and nozzle, which nozzles maps to a tank)."""
    all_tanks = {(str(s), int(t)) for s, t in zip(tanks["station_id"], tanks["tank"],
                                                   strict=True)}
    leaking = {(str(s), int(t)) for s, t, leak in zip(tanks["station_id"], tanks["tank"],
                                                      tanks["leak_l_per_h"], strict=True)
               if float(leak) > 0}
    nozzle_tank = {(str(s), int(d), int(n)): int(t) for s, d, n, t in zip(
        nozzles["station_id"], nozzles["dispenser"], nozzles["nozzle"], nozzles["tank"],
        strict=True)}
    touched: set[tuple[str, int]] = set()
    if cheats is not None and len(cheats.get("station_id", ())):
        tank_col: Iterable[Any] = cheats["tank"] if "tank" in cheats else \
            [0] * len(cheats["station_id"])
        for s, d, n, t in zip(cheats["station_id"], cheats["dispenser"], cheats["nozzle"],
                              tank_col, strict=True):
            if int(t) > 0:
                touched.add((str(s), int(t)))
            elif (str(s), int(d), int(n)) in nozzle_tank:
                touched.add((str(s), nozzle_tank[(str(s), int(d), int(n))]))
            else:  # a station-wide cheat: every tank of the station
                touched |= {k for k in all_tanks if k[0] == str(s)}
    return all_tanks - leaking - touched


def median_daily_variance_sd_pct(stats: Mapping[tuple[str, int], VarianceStats],
                                 tanks: Iterable[tuple[str, int]] | None = None) -> float:
    """Median over `tanks` (default: all) of σ(daily variance) as a % of mean daily sales."""
    keys = stats.keys() if tanks is None else [k for k in tanks if k in stats]
    values = [stats[k].sd_pct_of_sales for k in keys]
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else float("nan")
