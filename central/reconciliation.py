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
asked for. Transactions are summed per reading interval inside the database; Python only
walks the (few) interval sums and the readings.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from central.db import Conn
from central.vcf import Vcf

_SALES_BY_INTERVAL = """
SELECT tank, grade, rt, SUM(volume_ml), COUNT(*) FROM (
    SELECT t.tank AS tank, t.grade AS grade, t.volume_ml AS volume_ml,
           (SELECT MAX(i.device_time) FROM inventory i
             WHERE i.station_id = t.station_id AND i.tank = t.tank
               AND i.device_time < t.end_time) AS rt
      FROM transactions t WHERE t.station_id = ?
) x WHERE rt IS NOT NULL GROUP BY tank, grade, rt ORDER BY tank, rt
"""

_DELIVERIES = """
SELECT d.tank, d.end_time, d.start_volume_20c_ml, d.end_volume_20c_ml,
       d.start_temperature_mc, d.end_temperature_mc,
       COALESCE((SELECT SUM(t.volume_ml) FROM transactions t
                  WHERE t.station_id = d.station_id AND t.tank = d.tank
                    AND t.end_time >= d.start_time AND t.end_time <= d.end_time), 0)
  FROM deliveries d WHERE d.station_id = ? ORDER BY d.tank, d.end_time
"""


@dataclass(frozen=True)
class _Reading:
    time: int
    volume_20c_ml: int
    temperature_mc: int


class _Prefix:
    """Prefix sums over items sorted by time, for range sums by bisection."""

    def __init__(self, items: list[tuple[int, float, float, int]]) -> None:
        self.times = [t for t, *_ in items]
        self.sums = [(0.0, 0.0, 0)]
        for _, a, b, n in items:
            pa, pb, pn = self.sums[-1]
            self.sums.append((pa + a, pb + b, pn + n))

    def between(self, lo: int, hi: int, lo_inclusive: bool) -> tuple[float, float, int]:
        """Sums over items with lo ≤/< time < hi (hi exclusive for intervals)."""
        i = (bisect.bisect_left if lo_inclusive else bisect.bisect_right)(self.times, lo)
        j = bisect.bisect_left(self.times, hi)
        j = max(i, j)
        (a0, b0, n0), (a1, b1, n1) = self.sums[i], self.sums[j]
        return a1 - a0, b1 - b0, n1 - n0

    def between_closed_right(self, lo: int, hi: int) -> tuple[float, float, int]:
        """Sums over items with lo < time ≤ hi."""
        i = bisect.bisect_right(self.times, lo)
        j = max(i, bisect.bisect_right(self.times, hi))
        (a0, b0, n0), (a1, b1, n1) = self.sums[i], self.sums[j]
        return a1 - a0, b1 - b0, n1 - n0


def local_day_start(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 4) if whole > 0 else None


def reconcile_station(conn: Conn, station_id: str, zone: ZoneInfo, vcf: Vcf) -> list[dict]:
    """Every reconciled tank-day of a station, sorted by (tank, day)."""
    grades = dict(conn.query("SELECT tank, grade FROM station_tanks WHERE station_id = ?",
                             (station_id,)))
    readings: dict[int, list[_Reading]] = defaultdict(list)
    for tank, t, v20, temp in conn.query(
            "SELECT tank, device_time, volume_20c_ml, temperature_mc FROM inventory "
            "WHERE station_id = ? ORDER BY tank, device_time, key", (station_id,)):
        readings[int(tank)].append(_Reading(int(t), int(v20), int(temp)))

    # Sales per (tank, reading interval): (interval start, metered mL, 20 °C mL, count).
    # The interval start rt is a reading time of the same tank, so its temperature is known.
    temperature = {(tank, r.time): r.temperature_mc for tank, rs in readings.items() for r in rs}
    sales: dict[int, list[tuple[int, float, float, int]]] = defaultdict(list)
    for tank, grade, rt, vol, n in conn.query(_SALES_BY_INTERVAL, (station_id,)):
        tank, rt = int(tank), int(rt)
        grades.setdefault(tank, grade)
        temp = float(temperature[(tank, rt)])
        sales[tank].append((rt, float(vol), vcf.to_20c_ml(grade, float(vol), temp), int(n)))
    for tank in sales:
        sales[tank].sort(key=lambda item: item[0])

    # Deliveries: (end time, gauge-observed 20 °C volume incl. sales during the drop, 0, 1).
    drops: dict[int, list[tuple[int, float, float, int]]] = defaultdict(list)
    for tank, end, v0, v1, temp0, temp1, sold in conn.query(_DELIVERIES, (station_id,)):
        tank = int(tank)
        grade = grades.get(tank)
        sold_20c = 0.0
        if sold and grade is not None:
            sold_20c = vcf.to_20c_ml(grade, float(sold), (int(temp0) + int(temp1)) / 2.0)
        drops[tank].append((int(end), float(int(v1) - int(v0)) + sold_20c, 0.0, 1))

    rows: list[dict] = []
    for tank in sorted(readings):
        rows.extend(_tank_days(station_id, tank, grades.get(tank), readings[tank],
                               _Prefix(sales.get(tank, [])), _Prefix(drops.get(tank, [])),
                               zone))
    return rows


def _tank_days(station_id: str, tank: int, grade: str | None, readings: list[_Reading],
               sales: _Prefix, drops: _Prefix, zone: ZoneInfo) -> list[dict[str, Any]]:
    if not readings:
        return []
    times = [r.time for r in readings]
    first = dt.datetime.fromtimestamp(readings[0].time, zone).date()
    last = dt.datetime.fromtimestamp(readings[-1].time, zone).date()
    out: list[dict[str, Any]] = []
    cum_sales = cum_var = 0
    day = first
    while day <= last:
        start = local_day_start(day, zone)
        end = local_day_start(day + dt.timedelta(days=1), zone)
        i_open = bisect.bisect_right(times, start) - 1
        opening = readings[i_open] if i_open >= 0 else (readings[0] if day == first else None)
        i_close = bisect.bisect_right(times, end) - 1
        closing = readings[i_close] if i_close >= 0 else None
        if opening is not None and closing is not None and closing.time > opening.time:
            metered, sold_20c, n_tx = sales.between(opening.time, closing.time, True)
            delivered, _, n_drops = drops.between_closed_right(opening.time, closing.time)
            sold = round(sold_20c)
            delivered_ml = round(delivered)
            variance = opening.volume_20c_ml + delivered_ml - sold - closing.volume_20c_ml
            cum_sales += sold
            cum_var += variance
            out.append({
                "station_id": station_id, "tank": tank, "grade": grade,
                "day": day.isoformat(), "day_start": start, "day_end": end,
                "opening_time": opening.time, "opening_volume_20c_ml": opening.volume_20c_ml,
                "closing_time": closing.time, "closing_volume_20c_ml": closing.volume_20c_ml,
                "readings": bisect.bisect_right(times, closing.time)
                - bisect.bisect_right(times, opening.time),
                "transactions": n_tx, "sales_ml": round(metered), "sales_20c_ml": sold,
                "deliveries": n_drops, "deliveries_20c_ml": delivered_ml,
                "variance_ml": variance, "variance_pct_of_sales": _pct(variance, sold),
                "cumulative_sales_20c_ml": cum_sales, "cumulative_variance_ml": cum_var,
                "cumulative_variance_pct_of_sales": _pct(cum_var, cum_sales),
            })
        day += dt.timedelta(days=1)
    return out
