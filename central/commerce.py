"""Operations analysis for the commerce bureau (商务运行分析): sales by town, ownership, grade
and month, and the monthly purchase–sales–inventory balance (进销存月度平衡) of every tank.

Months are local calendar months (platform time zone) of the device clock: a transaction
belongs to the month of its `end_time`. `from`/`to` (lo ≤ t < hi) cut a month down to the
part inside them, so any range can be asked for; each item says which period it covers.

**Sales** (`sales_cells`): per (month, town, ownership, grade) — town and ownership from the
station registry (站点台账) — the stations that sold, the transactions, Σ volume_ml and
Σ amount_fen, exact integers as the dispensers reported them.

**Stock balance** (`station_balances`), per tank and month, all volumes at 20 °C:

    opening   = the gauge's volume_20c of the last reading at or before the period start
                (the tank's first reading when it has none before: a partial period)
    received  = Σ over deliveries ending in (opening_time, closing_time] of what the gauge
                saw (end − start) plus the sales during the drop — as the daily
                reconciliation books them (central/reconciliation.py)
    sold      = Σ transactions with opening_time < end_time ≤ closing_time, converted to 20 °C
                with the temperature of the reading before each fill
    closing   = the gauge's volume_20c of the last reading at or before the period end
    variance  = opening + received − sold − closing          (positive = product missing)

A period's closing reading is the next period's opening one, so consecutive months chain
with nothing counted twice or lost, and a month's variance is the sum of its days' in
GET /reconciliation. The bill of lading (提单) keyed in at the gauge is summed beside the
gauge-measured figure (`bol_volume_20c_ml`); drops without one are counted.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from central.db import Conn
from central.reconciliation import (
    TankInputs,
    _Prefix,
    delivered_20c,
    sales_by_interval,
    station_inputs,
)
from central.vcf import Vcf


@dataclass(frozen=True)
class Period:
    """A calendar month (YYYY-MM) cut to [start, end) by the query's range."""

    month: str
    month_start: int
    month_end: int
    start: int
    end: int


def _month_start(year: int, month: int, zone: ZoneInfo) -> int:
    return int(dt.datetime(year, month, 1, tzinfo=zone).timestamp())


def periods(first: int, last: int, zone: ZoneInfo, lo: float | None = None,
            hi: float | None = None) -> list[Period]:
    """The months from the one holding `first` to the one holding `last` (epoch s), each cut
    to [lo, hi); months left empty by the cut are dropped. Bounds are whole seconds
    (device times are integers: t ≥ lo ⇔ t ≥ ⌈lo⌉)."""
    lo_i = None if lo is None else math.ceil(lo)
    hi_i = None if hi is None else math.ceil(hi)
    here = dt.datetime.fromtimestamp(first, zone)
    stop = dt.datetime.fromtimestamp(last, zone)
    year, month = here.year, here.month
    out: list[Period] = []
    while (year, month) <= (stop.year, stop.month):
        nxt = (year + month // 12, month % 12 + 1)
        m_start, m_end = _month_start(year, month, zone), _month_start(*nxt, zone)
        start = m_start if lo_i is None else max(m_start, lo_i)
        end = m_end if hi_i is None else min(m_end, hi_i)
        if start < end:
            out.append(Period(f"{year:04d}-{month:02d}", m_start, m_end, start, end))
        year, month = nxt
    return out


# ---- sales by town, ownership, grade and month ------------------------------------------

def sales_cells(conn: Conn, zone: ZoneInfo, *, station_id: str | None = None,
                lo: float | None = None, hi: float | None = None, town: str | None = None,
                ownership: str | None = None, grade: str | None = None
                ) -> list[dict[str, Any]]:
    """Sales per (month, town, ownership, grade), sorted so; see the module docstring."""
    where, args = ["1 = 1"], []
    if station_id is not None:
        where.append("station_id = ?")
        args.append(station_id)
    if grade is not None:
        where.append("grade = ?")
        args.append(grade)
    cond = " AND ".join(where)
    bounds = conn.query_one(f"SELECT MIN(end_time), MAX(end_time) FROM transactions "
                            f"WHERE {cond}", args)
    if bounds is None or bounds[0] is None:
        return []
    registry = {str(sid): (str(t), str(o)) for sid, t, o in conn.query(
        "SELECT station_id, town, ownership FROM stations")}
    items: list[dict[str, Any]] = []
    for p in periods(int(bounds[0]), int(bounds[1]), zone, lo, hi):
        cells: dict[tuple[str, str, str], list[Any]] = {}
        for sid, g, n, vol, amount in conn.query(
                f"SELECT station_id, grade, COUNT(*), SUM(volume_ml), SUM(amount_fen) "
                f"FROM transactions WHERE {cond} AND end_time >= ? AND end_time < ? "
                f"GROUP BY station_id, grade", [*args, p.start, p.end]):
            # a station the registry never listed cannot be stored (ingest refuses it)
            s_town, s_owner = registry.get(str(sid), ("", ""))
            if (town is not None and s_town != town) or (
                    ownership is not None and s_owner != ownership):
                continue
            cell = cells.setdefault((s_town, s_owner, str(g)), [set(), 0, 0, 0])
            cell[0].add(str(sid))
            cell[1] += int(n)
            cell[2] += int(vol)
            cell[3] += int(amount)
        for (c_town, c_owner, c_grade), (stations, n, vol, amount) in sorted(cells.items()):
            items.append({"month": p.month, "period_start": p.start, "period_end": p.end,
                          "town": c_town, "ownership": c_owner, "grade": c_grade,
                          "stations": len(stations), "transactions": n, "volume_ml": vol,
                          "amount_fen": amount})
    return items


# ---- monthly purchase–sales–inventory balance per tank ---------------------------------

def _bills(conn: Conn, station_id: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per tank: delivery end times (sorted) and the bill of lading keyed in for each
    (mL at 20 °C; 0 when none was keyed in or the collector did not report it)."""
    rows: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for tank, end, bol in conn.query(
            "SELECT tank, end_time, bol_volume_20c_ml FROM deliveries WHERE station_id = ? "
            "ORDER BY tank, end_time", (station_id,)):
        rows[int(tank)].append((int(end), int(bol or 0)))
    return {tank: (np.array([e for e, _ in r], dtype=np.int64),
                   np.array([b for _, b in r], dtype=np.int64)) for tank, r in rows.items()}


def tank_balances(station_id: str, inp: TankInputs, zone: ZoneInfo, vcf: Vcf,
                  bills: tuple[np.ndarray, np.ndarray], lo: float | None = None,
                  hi: float | None = None) -> list[dict[str, Any]]:
    """The monthly balances of one tank (see the module docstring)."""
    times = inp.r_time
    if len(times) == 0:
        return []
    s_time, s_metered, s_v20, s_count = sales_by_interval(inp, vcf)
    sales = _Prefix(s_time, s_metered, s_v20, s_count)
    drops = _Prefix(inp.d_end, delivered_20c(inp, vcf), np.ones(len(inp.d_end)))
    bol_end, bol = bills
    bols = _Prefix(bol_end, bol, (bol <= 0).astype(float))
    out: list[dict[str, Any]] = []
    for p in periods(int(times[0]), int(times[-1]), zone, lo, hi):
        i_open = max(0, int(np.searchsorted(times, p.start, "right")) - 1)
        i_close = int(np.searchsorted(times, p.end, "right")) - 1
        if i_close < 0 or times[i_close] <= times[i_open]:
            continue  # no reading after the opening one inside the period
        t_open, t_close = int(times[i_open]), int(times[i_close])
        v_open, v_close = int(inp.r_v20[i_open]), int(inp.r_v20[i_close])
        metered, sold_20c, n_tx = sales.between(t_open, t_close)
        received, n_drops = drops.between_closed_right(t_open, t_close)
        billed, unbilled = bols.between_closed_right(t_open, t_close)
        sold, received_ml = round(sold_20c), round(received)
        variance = v_open + received_ml - sold - v_close
        out.append({
            "station_id": station_id, "tank": inp.tank, "grade": inp.grade,
            "month": p.month, "period_start": p.start, "period_end": p.end,
            "partial": t_open > p.month_start or t_close < p.month_end,
            "opening_time": t_open, "opening_volume_20c_ml": v_open,
            "deliveries": round(n_drops), "received_20c_ml": received_ml,
            "bol_volume_20c_ml": round(billed), "deliveries_without_bol": round(unbilled),
            "transactions": round(n_tx), "sales_ml": round(metered), "sales_20c_ml": sold,
            "closing_time": t_close, "closing_volume_20c_ml": v_close,
            "variance_ml": variance,
            "variance_pct_of_sales": round(100.0 * variance / sold, 4) if sold > 0 else None,
        })
    return out


def station_balances(conn: Conn, station_id: str, zone: ZoneInfo, vcf: Vcf, *,
                     lo: float | None = None, hi: float | None = None,
                     tank: int | None = None, grade: str | None = None
                     ) -> list[dict[str, Any]]:
    """Every monthly balance of a station's tanks, sorted by (tank, month)."""
    bills = _bills(conn, station_id)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    rows: list[dict[str, Any]] = []
    for inp in station_inputs(conn, station_id):
        if (tank is not None and inp.tank != tank) or (grade is not None
                                                       and inp.grade != grade):
            continue
        rows.extend(tank_balances(station_id, inp, zone, vcf, bills.get(inp.tank, empty),
                                  lo, hi))
    return rows


# ---- item schemas (docs/platform-api.md §5.15) ------------------------------------------

def _int(desc: str = "", nullable: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"type": ["integer", "null"] if nullable else "integer"}
    if desc:
        d["description"] = desc
    return d


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "required": list(properties), "properties": properties}


_MONTH = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$",
          "description": "local calendar month YYYY-MM"}
_PERIOD = {"period_start": _int("epoch s: the month's local start, or `from` when later"),
           "period_end": _int("epoch s: the next month's start, or `to` when earlier")}

SALES_ITEM = _obj({
    "month": _MONTH, **_PERIOD,
    "town": {"type": "string", "description": "town or sumu of the station registry"},
    "ownership": {"type": "string", "description": "private (民营) | state (国营)"},
    "grade": {"type": "string"},
    "stations": _int("stations with sales in the cell"),
    "transactions": _int(), "volume_ml": _int("Σ volume_ml (metered)"),
    "amount_fen": _int("Σ amount_fen"),
})

STOCK_BALANCE_ITEM = _obj({
    "station_id": {"type": "string"}, "tank": _int(), "grade": {"type": ["string", "null"]},
    "month": _MONTH, **_PERIOD,
    "partial": {"type": "boolean",
                "description": "the readings do not span the whole calendar month"},
    "opening_time": _int("device time of the opening reading"),
    "opening_volume_20c_ml": _int(),
    "deliveries": _int(),
    "received_20c_ml": _int("gauge-measured deliveries at 20 °C (rise + sales during drops)"),
    "bol_volume_20c_ml": _int("Σ bills of lading keyed in at the gauge, mL at 20 °C"),
    "deliveries_without_bol": _int("drops with no bill of lading keyed in (or not reported)"),
    "transactions": _int(), "sales_ml": _int("metered volume"),
    "sales_20c_ml": _int("sales converted to 20 °C"),
    "closing_time": _int("device time of the closing reading"),
    "closing_volume_20c_ml": _int(),
    "variance_ml": _int("opening + received − sales − closing; positive = missing"),
    "variance_pct_of_sales": {"type": ["number", "null"],
                              "description": "percent; null when sales are 0"},
})
