"""Posted prices (挂牌价) from the price authority: stored from POST /api/v1/posted-prices,
looked up by the detectors (`posted_price_at`, `price_schedule`).

A posted price holds for one grade from `valid_from` until the next posting for that grade.
A row names one station, or none (`station_id` omitted, stored as ''): every station. At an
instant t the price in force at a station is the row with the latest `valid_from` ≤ t among
the station's own rows and the all-stations rows; at an equal `valid_from` the station's own
row wins. So a later all-stations adjustment (an NDRC price change) supersedes an earlier
station posting, and a station posting supersedes the all-stations price it follows.
"""

from __future__ import annotations

import bisect
import json
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from central.db import Conn
from central.inputs import GRADE, STATION, TEXT, InputError, datetime_epoch, station_known
from central.schemas import INPUT_FORMATS, StrictValidator, json_path

ALL_STATIONS = ""  # station_id stored for a row that applies to every station

POSTED_PRICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Posted price (挂牌价) of a grade from an instant on",
    "type": "object",
    "additionalProperties": False,
    "required": ["grade", "price_fen", "valid_from"],
    "properties": {
        "station_id": {**STATION, "description": "registered station; omitted = every station"},
        "grade": GRADE,
        "price_fen": {"type": "integer", "minimum": 1, "maximum": 100000,
                      "description": "posted unit price, fen per litre (e.g. 719 = ¥7.19/L)"},
        "valid_from": {"type": "string", "format": "date-time",
                       "description": "in force from this instant (no offset: platform zone)"},
        "authority": {**TEXT, "description": "who set it (e.g. 发改委 / 市场监管局)"},
        "reference": {**TEXT, "description": "document number of the price notice"},
    },
}
_VALIDATOR = StrictValidator(POSTED_PRICE_SCHEMA, format_checker=INPUT_FORMATS)


def store_posted_price(conn: Conn, body: Any, zone: ZoneInfo, created_by: str) -> dict:
    """Validate and store one posted price; 409 on a repeat of (station, grade, valid_from)."""
    errors = sorted(_VALIDATOR.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise InputError(json_path(errors[0].absolute_path), errors[0].message[:300])
    valid_from = datetime_epoch(body["valid_from"], "valid_from", zone)
    station = body.get("station_id", ALL_STATIONS)
    if station != ALL_STATIONS:
        station_known(conn, station)
    if conn.query_one("SELECT 1 FROM posted_prices WHERE station_id = ? AND grade = ? AND "
                      "valid_from = ?", (station, body["grade"], valid_from)) is not None:
        who = station or "every station"
        raise InputError("valid_from", f"a posted price of grade {body['grade']} for {who} "
                         f"from {body['valid_from']} is already stored", status=409)
    row_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO posted_prices (id, station_id, grade, price_fen, valid_from, body_json, "
        "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, station, body["grade"], body["price_fen"], valid_from,
         json.dumps(body, ensure_ascii=False, sort_keys=True), time.time(), created_by))
    return {"id": row_id, **body}


def price_schedule(conn: Conn, station_id: str, grade: str) -> list[tuple[float, int]]:
    """(valid_from, price_fen) in force at the station for the grade, in time order, with the
    precedence of the module doc applied (one entry per distinct valid_from)."""
    rows = conn.query(
        "SELECT valid_from, price_fen, station_id FROM posted_prices WHERE grade = ? AND "
        "station_id IN (?, ?) ORDER BY valid_from, station_id", (grade, ALL_STATIONS,
                                                                  station_id))
    out: list[tuple[float, int]] = []
    for valid_from, price, sid in rows:  # '' sorts first: the station's own row comes last
        entry = (float(valid_from), int(price))
        if out and out[-1][0] == entry[0]:
            if sid != ALL_STATIONS:
                out[-1] = entry
        else:
            out.append(entry)
    return out


def posted_price_at(conn: Conn, station_id: str, grade: str, t: float) -> int | None:
    """The posted price (fen/L) of `grade` in force at `station_id` at epoch `t`, or None if
    nothing was posted for it at or before `t`."""
    schedule = price_schedule(conn, station_id, grade)
    i = bisect.bisect_right([v for v, _ in schedule], t) - 1
    return schedule[i][1] if i >= 0 else None
