"""以销核税: the platform's sales compared with the stations' tax declarations (纳税申报).

For every declaration stored (POST /api/v1/tax-declarations, central/inputs.py) one check
row: the platform's sales of the station, the declaration's grade (all grades when it has
none) and its period — transactions with `end_time` (device clock) in [period_start,
period_end) — their volume and amount, the gap platform − declared, and a flag when the gap
exceeds the tolerance. A grade the platform saw sold in a declared period that no
declaration of that period covers gets a row of its own (`missing_declaration`, declared 0):
leaving a grade out is under-declaring it.

Tolerance (docs/platform-api.md §5.13 has the derivation). A station closes its books a
little before a period ends (日结), so an honest declaration books the fills of its last
minutes in the next period: its gap is at most the sales of the booking window
(`BOOKING_WINDOW_S`, 30 min) before the period's end, which the platform measures from its
own data (`late_*`). On top of that it allows max(absolute, relative × sales) for rounding
on the form and a fill straddling a boundary:

    tolerance = late sales + max(TOLERANCE_*, ceil(TOLERANCE_REL × platform sales))
    flagged   = gap_sales_fen > tolerance_sales_fen  or  gap_volume_ml > tolerance_volume_ml

Only a positive gap is flagged (more sold than declared); an over-declaration is no tax
loss. A row is `checked` once the station's data is complete through the period's end (its
watermark, GET /api/v1/detection/status), `pending` before; platform sales only grow as
data arrives, so a flag on a pending row already stands. A `missing_declaration` row waits
longer: until the data is complete `FILING_GRACE_S` (1 day) past the latest `declared_at` of
the period's declarations (the period's end for one that gives none). A station's filing
arrives as one declaration per grade, one request after the other; judged in between, the
grades still on their way would be taken as left out — and the alert would stay.

Rows are computed on request from what is stored, so a declaration or a late transaction is
taken into account at the next request. The detection service raises a
`tax_under_declaration` alert (station-level, `as_of` = the period's end) for each flagged,
checked row, idempotently (`raise_alerts`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from central.alerts import raise_alert
from central.db import Conn

BOOKING_WINDOW_S = 1800  # fills of the last 30 min may be booked in the next period (日结)
FILING_GRACE_S = 86_400  # a grade not declared is judged missing 1 day after the filing
TOLERANCE_REL = 0.005  # of the platform's sales of the period
TOLERANCE_VOLUME_ML = 10_000  # 10 L
TOLERANCE_SALES_FEN = 10_000  # ¥100
ALERT_KIND = "tax_under_declaration"
DETECTOR = "tax"
STATUSES = ("checked", "pending")


def _period_end_epoch(text: str, start_epoch: int, zone: ZoneInfo) -> int:
    """The exclusive end of a row stored before period_end_epoch existed (a date: the local
    midnight after it)."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1)
            return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return start_epoch
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return int(value.timestamp())


def _sales(conn: Conn, station_id: str, a: int, b: int) -> dict[str, tuple[int, int, int]]:
    """grade → (volume mL, amount fen, transactions) of the station with end_time in [a, b)."""
    rows = conn.query(
        "SELECT grade, SUM(volume_ml), SUM(amount_fen), COUNT(*) FROM transactions "
        "WHERE station_id = ? AND end_time >= ? AND end_time < ? GROUP BY grade",
        (station_id, a, b))
    return {str(g): (int(v or 0), int(m or 0), int(n)) for g, v, m, n in rows}


def _total(sales: dict[str, tuple[int, int, int]], grade: str | None) -> tuple[int, int, int]:
    if grade is not None:
        return sales.get(grade, (0, 0, 0))
    return (sum(s[0] for s in sales.values()), sum(s[1] for s in sales.values()),
            sum(s[2] for s in sales.values()))


def tolerance(late: int, sales: int, absolute: int) -> int:
    """The gap an honest declaration may show: the booking window's sales plus
    max(absolute, relative × the period's sales)."""
    return late + max(absolute, math.ceil(TOLERANCE_REL * max(sales, 0)))


def watermark(conn: Conn, station_id: str) -> int | None:
    """Device time through which the station's data is complete (the detection service's)."""
    row = conn.query_one("SELECT watermark FROM detection_progress WHERE station_id = ?",
                         (station_id,))
    return None if row is None or row[0] is None else int(row[0])


def declared_periods(conn: Conn, station_id: str,
                     zone: ZoneInfo) -> dict[tuple[int, int], list[tuple]]:
    """(period start, end) → the station's declarations of that period, in period order."""
    decls = conn.query(
        "SELECT id, period_start_epoch, period_end_epoch, period_end, grade, "
        "declared_volume_ml, declared_sales_fen, reference, declared_at_epoch "
        "FROM tax_declarations WHERE station_id = ? ORDER BY period_start_epoch, id",
        (station_id,))
    periods: dict[tuple[int, int], list[tuple]] = {}
    for d in decls:
        a = int(d[1])
        b = int(d[2]) if d[2] is not None else _period_end_epoch(str(d[3]), a, zone)
        periods.setdefault((a, b), []).append(d)
    return dict(sorted(periods.items()))


def period_checks(conn: Conn, station_id: str, a: int, b: int, decls: list[tuple],
                  through: int | None) -> list[dict[str, Any]]:
    """The check rows of one declared period: one per declaration, and one per grade sold
    that no declaration of the period covers."""
    sales = _sales(conn, station_id, a, b)
    late = _sales(conn, station_id, max(a, b - BOOKING_WINDOW_S), b)
    status = "checked" if through is not None and through >= b else "pending"
    out = [_row(station_id, a, b, d[4], d[0], d[7], d[5], int(d[6]), _total(sales, d[4]),
                _total(late, d[4]), status, through) for d in decls]
    covered = {d[4] for d in decls}
    if None not in covered:  # a declaration of all grades covers every grade
        filed = max([b, *(int(d[8]) for d in decls if d[8] is not None)])
        judged = "checked" if through is not None and through >= filed + FILING_GRACE_S \
            else "pending"
        for grade in sorted(set(sales) - covered):
            if sales[grade][0] or sales[grade][1]:
                out.append(_row(station_id, a, b, grade, None, None, None, 0, sales[grade],
                                late.get(grade, (0, 0, 0)), judged, through))
    out.sort(key=lambda r: (r["grade"] or "", r["id"]))
    return out


def station_tax_checks(conn: Conn, station_id: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The check rows of one station, by period start, period end, grade, id."""
    through = watermark(conn, station_id)
    return [row for (a, b), decls in declared_periods(conn, station_id, zone).items()
            for row in period_checks(conn, station_id, a, b, decls, through)]


def _row(station_id: str, a: int, b: int, grade: str | None, decl_id: str | None,
         reference: str | None, declared_volume: int | None, declared_sales: int,
         platform: tuple[int, int, int], late: tuple[int, int, int], status: str,
         through: int | None) -> dict[str, Any]:
    volume, amount, count = platform
    gap_sales = amount - declared_sales
    tol_sales = tolerance(late[1], amount, TOLERANCE_SALES_FEN)
    gap_volume = None if declared_volume is None else volume - int(declared_volume)
    tol_volume = None if declared_volume is None else tolerance(late[0], volume,
                                                                TOLERANCE_VOLUME_ML)
    flagged = gap_sales > tol_sales or (gap_volume is not None and tol_volume is not None
                                        and gap_volume > tol_volume)
    return {
        "id": decl_id or f"missing/{station_id}/{a}/{b}/{grade}",
        "station_id": station_id, "declaration_id": decl_id, "reference": reference,
        "grade": grade, "period_start": a, "period_end": b,
        "declared_volume_ml": None if declared_volume is None else int(declared_volume),
        "declared_sales_fen": int(declared_sales),
        "platform_volume_ml": volume, "platform_sales_fen": amount, "transactions": count,
        "gap_volume_ml": gap_volume, "gap_sales_fen": gap_sales,
        "late_volume_ml": late[0], "late_sales_fen": late[1],
        "tolerance_volume_ml": tol_volume, "tolerance_sales_fen": tol_sales,
        "flagged": flagged, "missing_declaration": decl_id is None,
        "status": status, "data_through": through,
    }


def raise_alerts(conn: Conn, station_id: str, rows: Iterable[dict[str, Any]],
                 raised_at: float) -> list[str]:
    """A `tax_under_declaration` alert for each flagged, checked row (idempotent)."""
    ids = []
    for r in rows:
        if not (r["flagged"] and r["status"] == "checked"):
            continue
        grade = str(r["grade"] or "all")
        what = (f"no declaration of grade {grade}" if r["missing_declaration"]
                else f"declaration {r['reference'] or r['id']}, grade {grade}")
        alert_id = raise_alert(
            conn, station_id=station_id, kind=ALERT_KIND, severity="warning",
            raised_at=raised_at, title="申报销售额低于平台销售额 (declared sales below the "
                                       "platform's)",
            detail=(f"{what}: platform {r['platform_sales_fen']} fen / "
                    f"{r['platform_volume_ml']} mL, declared {r['declared_sales_fen']} fen, "
                    f"gap {r['gap_sales_fen']} fen (tolerance {r['tolerance_sales_fen']})"),
            evidence=r, as_of=float(r["period_end"]), detector=DETECTOR,
            dedup_key=(f"{station_id}/{DETECTOR}/{r['period_start']}/{r['period_end']}/"
                       f"{r['grade'] or '*'}/{r['declaration_id'] or 'missing'}"))
        if alert_id is not None:
            ids.append(alert_id)
    return ids


class TaxAlerter:
    """Raises the `tax_under_declaration` alerts of the detection service, comparing each
    declared period once its data is complete — at every pass while a row of it is pending
    (a grade not declared, within the filing's grace), then again only when a declaration of
    it is added (a checked period's transactions cannot change: the watermark is past it)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._done: dict[tuple[str, int, int], int] = {}  # period → declarations compared

    def run(self, conn: Conn, station_id: str, raised_at: float) -> list[str]:
        through = watermark(conn, station_id)
        if through is None:
            return []
        ids: list[str] = []
        for (a, b), decls in declared_periods(conn, station_id, self.zone).items():
            key = (station_id, a, b)
            if b > through or self._done.get(key) == len(decls):
                continue
            rows = period_checks(conn, station_id, a, b, decls, through)
            with conn.transaction():
                ids += raise_alerts(conn, station_id, rows, raised_at)
            if all(r["status"] == "checked" for r in rows):
                self._done[key] = len(decls)
        return ids
