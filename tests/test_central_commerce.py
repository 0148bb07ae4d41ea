"""Commerce analytics (商务运行分析) of the reference platform on hand-made data, on SQLite and
PostgreSQL: sales by month, town, ownership and grade; the monthly stock balance (进销存) per
tank; and their API resources (filters, paging, parameter errors, OpenAPI)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from test_central_support import (
    STATIONS,
    data_message,
    delivery,
    fresh_database,
    inventory,
    key_file_doc,
    ready_database,
    txn,
)

from central.auth import TokenStore
from central.checks import Inbound
from central.commerce import periods, sales_cells, station_balances
from central.db import Database
from central.http_api import Api
from central.keys import parse_key_file
from central.openapi import openapi_document
from central.reconciliation import reconcile_station
from central.resources import Context
from central.store import Ingestor
from central.vcf import Vcf

ZONE = ZoneInfo("Asia/Shanghai")
APR = 1774972800  # 2026-04-01 00:00 Asia/Shanghai
MAR30 = APR - 2 * 86400
H = 3600
TOKEN = "read-token-0123456789"
ALPHA_0 = 594.5418 / 835.0 ** 2  # 0# diesel, 835 kg/m³ (788–839 band)


def vcf_0(temp_c: float) -> float:
    d = temp_c - 20.0
    return math.exp(-ALPHA_0 * d * (1 + 0.8 * ALPHA_0 * d))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


def load(db: Database, messages: list[tuple[str, bytes]]) -> None:
    ring = parse_key_file(json.dumps(key_file_doc()), "keys")
    conn = db.connect()
    try:
        ing = Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: ring, 600.0,
                       lambda: 1.9e9)
        outs = ing.process([Inbound(t, p, 1.9e9) for t, p in messages])
        assert all(o.status == "stored" and not o.rejected for o in outs), outs
    finally:
        conn.close()


# (station, device, nozzle, tank, grade, end time, volume mL, price fen/L)
FILLS = [
    ("UMB01", "D1", 1, 1, "92", APR - 5 * H, 40_000, 712),     # March, 海流图镇 private
    ("UMB01", "D1", 1, 1, "92", APR + 1 * H, 30_000, 712),     # April
    ("UMB01", "D1", 2, 2, "95", APR + 2 * H, 20_000, 760),
    ("UMB01", "D2", 2, 3, "0", APR + 3 * H, 100_000, 690),
    ("UMB02", "D1", 1, 1, "92", APR - 1, 50_000, 712),         # last second of March, state
    ("UMB02", "D1", 1, 1, "92", APR, 10_000, 712),             # first second of April
    ("UMB02", "D2", 1, 2, "0", APR + 5 * H, 200_000, 690),
    ("UMB03", "D1", 1, 1, "0", APR + 6 * H, 60_000, 690),      # 乌加河镇 private
    ("UMB03", "D1", 1, 1, "0", APR + 30 * H, 70_000, 690),
]


def _messages() -> list[tuple[str, bytes]]:
    by_device: dict[tuple[str, str], list[dict[str, Any]]] = {}
    totals: dict[tuple[str, str, int], list[int]] = {}
    for sid, dev, noz, tank, grade, end, vol, price in FILLS:
        tot = totals.setdefault((sid, dev, noz), [0, 0])
        rec = txn(sid, dev, len(by_device.get((sid, dev), [])), end - 90, nozzle=noz,
                  tank=tank, grade=grade, volume_ml=vol, price=price, total_before=tot[0],
                  amount_total_before=tot[1])
        tot[0], tot[1] = rec["volume_total_ml"], rec["amount_total_fen"]
        by_device.setdefault((sid, dev), []).append(rec)
    msgs = [data_message(sid, dev, "transaction", recs, i + 1, 1.9e9)
            for i, ((sid, dev), recs) in enumerate(sorted(by_device.items()))]
    # UMB03's only tank (0#): readings across the month boundary, one at 30 °C
    readings = [(MAR30, 30_000_000, 20_000), (APR - 12 * H, 29_950_000, 20_000),
                (APR, 29_940_000, 20_000), (APR + 12 * H, 39_000_000, 30_000),
                (APR + 24 * H, 38_950_000, 20_000), (APR + 36 * H, 38_870_000, 20_000)]
    inv = [inventory("UMB03", i, t, v20=v, temp_mc=c) for i, (t, v, c) in enumerate(readings)]
    drop = delivery("UMB03", 0, APR + 7 * H, APR + 8 * H, v0=29_900_000, v1=39_000_000)
    drop["bol_volume_20c_ml"] = 9_200_000
    unbooked = delivery("UMB03", 1, APR + 25 * H, APR + 26 * H, v0=38_950_000,
                        v1=38_950_000)
    unbooked["bol_volume_20c_ml"] = 0
    msgs += [data_message("UMB03", "G", "inventory", inv, 10, 1.9e9),
             data_message("UMB03", "G", "delivery", [drop, unbooked], 11, 1.9e9)]
    return msgs


@pytest.fixture
def db(db_url: str) -> Database:
    database = ready_database(db_url)
    load(database, _messages())
    return database


def test_periods_are_calendar_months_cut_to_the_range() -> None:
    ps = periods(MAR30, APR + 40 * 86400, ZONE)
    assert [p.month for p in ps] == ["2026-03", "2026-04", "2026-05"]
    assert ps[1].month_start == APR and ps[1].month_end == APR + 30 * 86400
    assert ps[0].start == ps[0].month_start == APR - 31 * 86400
    cut = periods(MAR30, APR + 40 * 86400, ZONE, lo=APR - 0.5, hi=APR + 86400.2)
    assert [(p.month, p.start, p.end) for p in cut] == [
        ("2026-04", APR, APR + 86401)]  # whole device seconds: t ≥ lo ⇔ t ≥ ⌈lo⌉


def test_sales_by_month_town_ownership_grade(db: Database) -> None:
    with db.borrow() as conn:
        cells = sales_cells(conn, ZONE)
    got = {(c["month"], c["town"], c["ownership"], c["grade"]):
           (c["stations"], c["transactions"], c["volume_ml"], c["amount_fen"]) for c in cells}
    assert got == {
        ("2026-03", "海流图镇", "private", "92"): (1, 1, 40_000, 28_480),
        ("2026-03", "甘其毛都镇", "state", "92"): (1, 1, 50_000, 35_600),
        ("2026-04", "乌加河镇", "private", "0"): (1, 2, 130_000, 89_700),
        ("2026-04", "海流图镇", "private", "0"): (1, 1, 100_000, 69_000),
        ("2026-04", "海流图镇", "private", "92"): (1, 1, 30_000, 21_360),
        ("2026-04", "海流图镇", "private", "95"): (1, 1, 20_000, 15_200),
        ("2026-04", "甘其毛都镇", "state", "0"): (1, 1, 200_000, 138_000),
        ("2026-04", "甘其毛都镇", "state", "92"): (1, 1, 10_000, 7_120),
    }
    assert [list(c)[:6] for c in cells] == [list(c)[:6] for c in sorted(
        cells, key=lambda c: (c["month"], c["town"], c["ownership"], c["grade"]))]
    april = next(c for c in cells if c["month"] == "2026-04")
    assert (april["period_start"], april["period_end"]) == (APR, APR + 30 * 86400)
    # the whole fleet's diesel over both months = what the fills say
    with db.borrow() as conn:
        diesel = sales_cells(conn, ZONE, grade="0", ownership="private")
        before = sales_cells(conn, ZONE, lo=APR, hi=APR + 6 * H, station_id="UMB03")
        upto = sales_cells(conn, ZONE, lo=APR, hi=APR + 6 * H + 1, station_id="UMB03")
    assert sum(c["volume_ml"] for c in diesel) == 230_000
    assert before == []  # the fill ends exactly at `to`: excluded (end_time < to)
    assert [(c["period_start"], c["period_end"], c["volume_ml"]) for c in upto] == [
        (APR, APR + 6 * H + 1, 60_000)]


def test_monthly_balance_arithmetic(db: Database) -> None:
    with db.borrow() as conn:
        rows = station_balances(conn, "UMB03", ZONE, Vcf())
        days = reconcile_station(conn, "UMB03", ZONE, Vcf())
    assert [(r["month"], r["partial"]) for r in rows] == [("2026-03", True),
                                                          ("2026-04", True)]
    march, april = rows
    assert (march["opening_time"], march["closing_time"]) == (MAR30, APR)
    assert march["opening_volume_20c_ml"] == 30_000_000
    assert march["closing_volume_20c_ml"] == 29_940_000
    assert march["transactions"] == 0 and march["deliveries"] == 0
    assert march["variance_ml"] == 60_000 and march["variance_pct_of_sales"] is None
    # April: two fills (the readings before them are at 20 °C), the drop with its bill of
    # lading, and an unbooked drop that moved nothing
    assert april["opening_time"] == APR and april["closing_time"] == APR + 36 * H
    assert april["transactions"] == 2 and april["sales_ml"] == 130_000
    assert april["sales_20c_ml"] == 130_000
    assert april["deliveries"] == 2 and april["deliveries_without_bol"] == 1
    assert april["received_20c_ml"] == 39_000_000 - 29_900_000 + 0
    assert april["bol_volume_20c_ml"] == 9_200_000
    assert april["variance_ml"] == (29_940_000 + 9_100_000 - 130_000 - 38_870_000)
    assert april["variance_pct_of_sales"] == round(100 * april["variance_ml"] / 130_000, 4)
    assert april["grade"] == "0" and april["period_end"] == APR + 30 * 86400
    # months chain: each month's variance is the sum of its days' (daily reconciliation)
    for row in rows:
        mine = [d for d in days if row["opening_time"] <= d["opening_time"]
                and d["closing_time"] <= row["closing_time"]]
        assert sum(d["variance_ml"] for d in mine) == row["variance_ml"]
        assert sum(d["sales_20c_ml"] for d in mine) == row["sales_20c_ml"]


def test_balance_converts_sales_at_the_reading_temperature(db_url: str) -> None:
    db = ready_database(db_url)
    inv = [inventory("UMB03", 0, APR, v20=20_000_000, temp_mc=30_000),
           inventory("UMB03", 1, APR + 2 * H, v20=19_900_000, temp_mc=30_000)]
    fill = txn("UMB03", "D1", 0, APR + H, grade="0", volume_ml=100_000)
    load(db, [data_message("UMB03", "G", "inventory", inv, 1, 1.9e9),
              data_message("UMB03", "D1", "transaction", [fill], 2, 1.9e9)])
    with db.borrow() as conn:
        (row,) = station_balances(conn, "UMB03", ZONE, Vcf())
    sold = round(100_000 * vcf_0(30.0))
    assert row["sales_20c_ml"] == sold and row["sales_ml"] == 100_000
    assert row["variance_ml"] == 20_000_000 - sold - 19_900_000


def test_balance_range_cuts_the_month(db: Database) -> None:
    with db.borrow() as conn:
        rows = station_balances(conn, "UMB03", ZONE, Vcf(), lo=APR + 12 * H,
                                hi=APR + 30 * H)
        none = station_balances(conn, "UMB03", ZONE, Vcf(), tank=2)
        diesel = station_balances(conn, "UMB03", ZONE, Vcf(), grade="0")
    (row,) = rows
    assert (row["period_start"], row["period_end"]) == (APR + 12 * H, APR + 30 * H)
    assert (row["opening_time"], row["closing_time"]) == (APR + 12 * H, APR + 24 * H)
    assert row["partial"] and row["transactions"] == 0 and row["deliveries"] == 0
    assert none == [] and len(diesel) == 2


# ---- the API ------------------------------------------------------------------------------

class Caller:
    def __init__(self, db: Database) -> None:
        ctx = Context(ZONE, Vcf(), 90.0, lambda: 1.9e9)
        self.api = Api(db, TokenStore([(TOKEN, "read", "viewer")]), ctx)

    def __call__(self, path: str, **params: Any) -> tuple[int, Any]:
        target = f"/api/v1/{path}" + (f"?{urlencode(params)}" if params else "")
        resp = self.api.handle("GET", target, {"Authorization": f"Bearer {TOKEN}"}, None)
        return resp.status, resp.body

    def walk(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            status, page = self(path, **params, **({"cursor": cursor} if cursor else {}))
            assert status == 200, page
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("pagination did not end")


def test_api_pages_filters_and_schema(db: Database) -> None:
    call = Caller(db)
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    status, whole = call("commerce/sales", limit=1000)
    assert status == 200 and whole["next_cursor"] is None and len(whole["items"]) == 8
    assert call.walk("commerce/sales", limit=3) == whole["items"]
    for item in whole["items"]:
        jsonschema.validate(item, schemas["CommerceSales"])
    state = call.walk("commerce/sales", ownership="state", limit=1)
    assert {c["town"] for c in state} == {"甘其毛都镇"} and len(state) == 3
    assert [c["grade"] for c in call.walk("commerce/sales", town="乌加河镇")] == ["0"]
    assert call.walk("commerce/sales", station_id="UMB02", grade="92",
                     **{"from": "2026-04-01"}) == [
        {"month": "2026-04", "period_start": APR, "period_end": APR + 30 * 86400,
         "town": "甘其毛都镇", "ownership": "state", "grade": "92", "stations": 1,
         "transactions": 1, "volume_ml": 10_000, "amount_fen": 7_120}]

    balances = call.walk("commerce/stock-balance", limit=1)
    assert [(b["station_id"], b["tank"], b["month"]) for b in balances] == [
        ("UMB03", 1, "2026-03"), ("UMB03", 1, "2026-04")]
    for item in balances:
        jsonschema.validate(item, schemas["CommerceStockBalance"])
    assert call.walk("commerce/stock-balance", station_id="UMB03", tank=1,
                     **{"from": "2026-04-01"}) == balances[1:]
    assert call.walk("commerce/stock-balance", grade="92") == []
    for path in ("/api/v1/commerce/sales", "/api/v1/commerce/stock-balance"):
        assert doc["paths"][path]["get"]["responses"]["200"]


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("commerce/sales", {"limit": "0"}, "limit"),
    ("commerce/sales", {"ownership": "collective"}, "ownership"),
    ("commerce/sales", {"month": "2026-04"}, "month"),
    ("commerce/sales", {"from": "April"}, "from"),
    ("commerce/sales", {"from": "2026-04-02", "to": "2026-04-01"}, "to"),
    ("commerce/sales", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ("commerce/sales", {"station_id": "UMB 01"}, "station_id"),
    ("commerce/stock-balance", {"tank": "first"}, "tank"),
    ("commerce/stock-balance", {"tank": "0"}, "tank"),
    ("commerce/stock-balance", {"grade": "x" * 201}, "grade"),
    ("commerce/stock-balance", {"cursor": "!!"}, "cursor"),
])
def test_api_bad_parameters_name_the_parameter(db: Database, path: str,
                                               params: dict[str, str], parameter: str) -> None:
    status, body = Caller(db)(path, **params)
    assert status == 400, body
    assert body["error"]["code"] == "bad_parameter"
    assert body["error"]["parameter"] == parameter, body


def test_api_cursor_is_bound_to_its_filters(db: Database) -> None:
    call = Caller(db)
    for path, other in (("commerce/sales", {"grade": "0"}),
                        ("commerce/stock-balance", {"tank": "1"})):
        status, page = call(path, limit=1)
        assert status == 200 and page["next_cursor"]
        status, body = call(path, limit=1, cursor=page["next_cursor"], **other)
        assert status == 400 and body["error"]["parameter"] == "cursor", body
        # a cursor of this resource with a position of the wrong shape
        status, body = call(path, cursor=_forged(page["next_cursor"]))
        assert status == 400 and body["error"]["parameter"] == "cursor", body


def _forged(cursor: str) -> str:
    """The cursor with its position replaced by numbers (same filters fingerprint)."""
    import base64

    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw["p"] = [1, 2, 3, 4]
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
