"""Daily wetstock reconciliation per tank at 20 °C (进销存日对账), computed on demand.

For each tank and local day D (platform time zone, device clock):

    opening   = volume_20c of the last inventory reading at or before D 00:00
                (on the tank's first day: its first reading)
    closing   = volume_20c of the last reading at or before D+1 00:00
    sales     = Σ volume of transactions on the tank with opening_time < end_time ≤
                closing_time, each converted to 20 °C with the tank temperature of the
                reading just before it (the platform's own VCF, `central.vcf`)
    deliveries= Σ over deliveries ending in (opening_time, closing_time] of
                (end − start 20 °C volume as the gauge saw it) + sales during the drop
    variance  = opening + deliveries − sales − closing        (positive = product missing)

Cumulative sales and variance run from the tank's first reconciled day, whatever range is
asked for.

The arithmetic is one array function, `tank_days(TankInputs…)`, used both by the API
(`reconcile_station`, which loads the arrays from the database) and by the detectors
(central/detectors/tank_variance.py, which pass arrays cut at a checkpoint), so both give
identical numbers. Metered volumes are summed per reading interval (exact integers), then
converted with the interval's opening temperature; days are walked with prefix sums.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from central.db import Conn
from central.vcf import Vcf


def local_day_start(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 4) if whole > 0 else None


def vcf_factors(vcf: Vcf, grade: str, temperature_mc: np.ndarray) -> np.ndarray:
    """VCF per temperature (m°C), computed once per distinct value with `Vcf.factor`, so
    that array and scalar paths give bit-identical factors."""
    temps = np.asarray(temperature_mc)
    if temps.size == 0:
        return np.zeros(0)
    uniq, inverse = np.unique(temps, return_inverse=True)
    table = np.array([vcf.factor(grade, float(t) / 1000.0) for t in uniq])
    return table[inverse.reshape(-1)]


@dataclass(frozen=True)
class TankInputs:
    """One tank's arrays: readings sorted by time (ties in storage-key order), its
    transactions (any order) and deliveries (sorted by end time)."""

    tank: int
    grade: str | None
    r_time: np.ndarray
    r_v20: np.ndarray
    r_temp: np.ndarray
    tx_end: np.ndarray
    tx_vol: np.ndarray
    tx_grade: np.ndarray
    d_start: np.ndarray
    d_end: np.ndarray
    d_v0: np.ndarray
    d_v1: np.ndarray
    d_temp0: np.ndarray
    d_temp1: np.ndarray


class _Prefix:
    """Prefix sums over items sorted by time, for range sums by bisection."""

    def __init__(self, times: np.ndarray, *values: np.ndarray) -> None:
        self.times = np.asarray(times)
        self.sums = [np.concatenate(([0.0], np.cumsum(np.asarray(v, dtype=float))))
                     for v in values]

    def between(self, lo: int, hi: int) -> list[float]:
        """Sums over items with lo ≤ time < hi."""
        i = int(np.searchsorted(self.times, lo, "left"))
        j = max(i, int(np.searchsorted(self.times, hi, "left")))
        return [float(s[j] - s[i]) for s in self.sums]

    def between_closed_right(self, lo: int, hi: int) -> list[float]:
        """Sums over items with lo < time ≤ hi."""
        i = int(np.searchsorted(self.times, lo, "right"))
        j = max(i, int(np.searchsorted(self.times, hi, "right")))
        return [float(s[j] - s[i]) for s in self.sums]


def sales_by_interval(inp: TankInputs, vcf: Vcf) -> tuple[np.ndarray, ...]:
    """(interval start time, metered mL, 20 °C mL, count) per reading interval and grade,
    sorted by time. A transaction belongs to the interval of the last reading strictly
    before its end; transactions before the first reading belong to none."""
    idx = np.searchsorted(inp.r_time, inp.tx_end, "left") - 1
    ok = idx >= 0
    idx, vol, grades = idx[ok], inp.tx_vol[ok], inp.tx_grade[ok]
    times: list[np.ndarray] = []
    parts: list[tuple[np.ndarray, ...]] = []
    for grade in np.unique(grades):
        sel = grades == grade
        at, inv = np.unique(idx[sel], return_inverse=True)
        metered = np.bincount(inv, weights=vol[sel].astype(float), minlength=len(at))
        count = np.bincount(inv, minlength=len(at))
        v20 = metered * vcf_factors(vcf, str(grade), inp.r_temp[at])
        times.append(inp.r_time[at])
        parts.append((metered, v20, count))
    if not times:
        z = np.zeros(0)
        return z.astype(np.int64), z, z, z.astype(np.int64)
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return (t[order], *(np.concatenate([p[k] for p in parts])[order] for k in range(3)))


def delivered_20c(inp: TankInputs, vcf: Vcf) -> np.ndarray:
    """Per delivery: the gauge's 20 °C rise plus the sales during the drop (transactions of
    the tank ending within [start, end], at the mean of the drop's temperatures)."""
    order = np.argsort(inp.tx_end, kind="stable")
    end_sorted = inp.tx_end[order]
    cum = np.concatenate(([0], np.cumsum(inp.tx_vol[order])))
    lo = np.searchsorted(end_sorted, inp.d_start, "left")
    hi = np.searchsorted(end_sorted, inp.d_end, "right")
    sold = cum[np.maximum(hi, lo)] - cum[lo]
    out = (inp.d_v1 - inp.d_v0).astype(float)
    if inp.grade is not None:
        for k in np.flatnonzero(sold):
            temp = (int(inp.d_temp0[k]) + int(inp.d_temp1[k])) / 2.0
            out[k] += vcf.to_20c_ml(inp.grade, float(sold[k]), temp)
    return out


def tank_days(station_id: str, inp: TankInputs, zone: ZoneInfo,
              vcf: Vcf) -> list[dict[str, Any]]:
    """Every reconciled day of one tank (see the module docstring)."""
    times = inp.r_time
    if len(times) == 0:
        return []
    s_time, s_metered, s_v20, s_count = sales_by_interval(inp, vcf)
    sales = _Prefix(s_time, s_metered, s_v20, s_count)
    drops = _Prefix(inp.d_end, delivered_20c(inp, vcf), np.ones(len(inp.d_end)))
    first = dt.datetime.fromtimestamp(int(times[0]), zone).date()
    last = dt.datetime.fromtimestamp(int(times[-1]), zone).date()
    out: list[dict[str, Any]] = []
    cum_sales = cum_var = 0
    day = first
    while day <= last:
        start = local_day_start(day, zone)
        end = local_day_start(day + dt.timedelta(days=1), zone)
        i_open = int(np.searchsorted(times, start, "right")) - 1
        if i_open < 0 and day == first:
            i_open = 0
        i_close = int(np.searchsorted(times, end, "right")) - 1
        if i_open >= 0 and i_close >= 0 and times[i_close] > times[i_open]:
            t_open, t_close = int(times[i_open]), int(times[i_close])
            v_open, v_close = int(inp.r_v20[i_open]), int(inp.r_v20[i_close])
            metered, sold_20c, n_tx = sales.between(t_open, t_close)
            delivered, n_drops = drops.between_closed_right(t_open, t_close)
            sold = round(sold_20c)
            delivered_ml = round(delivered)
            variance = v_open + delivered_ml - sold - v_close
            cum_sales += sold
            cum_var += variance
            out.append({
                "station_id": station_id, "tank": inp.tank, "grade": inp.grade,
                "day": day.isoformat(), "day_start": start, "day_end": end,
                "opening_time": t_open, "opening_volume_20c_ml": v_open,
                "closing_time": t_close, "closing_volume_20c_ml": v_close,
                "readings": int(np.searchsorted(times, t_close, "right")
                                - np.searchsorted(times, t_open, "right")),
                "transactions": round(n_tx), "sales_ml": round(metered),
                "sales_20c_ml": sold, "deliveries": round(n_drops),
                "deliveries_20c_ml": delivered_ml,
                "variance_ml": variance, "variance_pct_of_sales": _pct(variance, sold),
                "cumulative_sales_20c_ml": cum_sales, "cumulative_variance_ml": cum_var,
                "cumulative_variance_pct_of_sales": _pct(cum_var, cum_sales),
            })
        day += dt.timedelta(days=1)
    return out


def reconcile_station(conn: Conn, station_id: str, zone: ZoneInfo, vcf: Vcf) -> list[dict]:
    """Every reconciled tank-day of a station, sorted by (tank, day)."""
    rows: list[dict] = []
    for inp in station_inputs(conn, station_id):
        rows.extend(tank_days(station_id, inp, zone, vcf))
    return rows


def station_inputs(conn: Conn, station_id: str) -> list[TankInputs]:
    """The arrays of every tank of a station that has inventory readings, sorted by tank
    (also read by the monthly balance of central/commerce.py). The rows become arrays in
    numpy, not value by value in Python: that loop, with `int()` on every value, took 43 %
    of this function's profile in the banner's 180 days (2.6 M readings,
    docs/performance.md)."""
    grades: dict[int, str] = dict(conn.query(
        "SELECT tank, grade FROM station_tanks WHERE station_id = ?", (station_id,)))
    r = _columns(conn.query(
        "SELECT tank, device_time, volume_20c_ml, temperature_mc FROM inventory "
        "WHERE station_id = ? ORDER BY tank, device_time, key", (station_id,)), 4)
    readings = _by_tank(r[0], *r[1:])
    # read from the index transactions_station_tank_time alone (migration 0011)
    tx_rows = conn.query("SELECT tank, end_time, volume_ml, grade FROM transactions "
                         "WHERE station_id = ?", (station_id,))
    tx = _columns([row[:3] for row in tx_rows], 3)
    txs = _by_tank(tx[0], tx[1], tx[2], np.array([str(row[3]) for row in tx_rows], dtype=str))
    d = _columns(conn.query(
        "SELECT tank, start_time, end_time, start_volume_20c_ml, end_volume_20c_ml, "
        "start_temperature_mc, end_temperature_mc FROM deliveries WHERE station_id = ? "
        "ORDER BY tank, end_time", (station_id,)), 7)
    drops = _by_tank(d[0], *d[1:])

    out: list[TankInputs] = []
    no_tx = [np.zeros(0, dtype=np.int64)] * 2 + [np.zeros(0, dtype=str)]
    no_drops = [np.zeros(0, dtype=np.int64)] * 6
    for tank in sorted(readings):
        r_time, r_v20, r_temp = readings[tank]
        tx_end, tx_vol, tx_grade = txs.get(tank, no_tx)
        d_start, d_end, d_v0, d_v1, d_temp0, d_temp1 = drops.get(tank, no_drops)
        grade = grades.get(tank)
        if grade is None and len(tx_end):  # grade of the earliest reconciled interval
            idx = np.searchsorted(r_time, tx_end, "left") - 1
            if (idx >= 0).any():
                grade = str(tx_grade[idx >= 0][np.argmin(idx[idx >= 0])])
        out.append(TankInputs(tank, grade, r_time, r_v20, r_temp, tx_end, tx_vol, tx_grade,
                              d_start, d_end, d_v0, d_v1, d_temp0, d_temp1))
    return out


def _columns(rows: list[tuple], width: int) -> np.ndarray:
    """Integer rows as a (width, n) array: one row of it per column."""
    return np.array(rows, dtype=np.int64).reshape(-1, width).T


def _by_tank(tanks: np.ndarray, *columns: np.ndarray) -> dict[int, list[np.ndarray]]:
    """The columns' values split by tank, each tank's in their order of arrival."""
    if not len(tanks):
        return {}
    order = np.argsort(tanks, kind="stable")
    tanks = tanks[order]
    bounds = np.flatnonzero(np.diff(tanks)) + 1
    parts = [np.split(c[order], bounds) for c in columns]
    return {int(tanks[start]): [p[i] for p in parts]
            for i, start in enumerate(np.concatenate(([0], bounds)))}
