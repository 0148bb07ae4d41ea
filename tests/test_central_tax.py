"""以销核税 at the reference platform (central/tax.py): the comparison of stored sales with the
tax declarations, its tolerance, GET /api/v1/tax-checks, the tax alert, --no-tax, and bad
declarations refused with nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_central_support import (
    STATIONS,
    T0,
    data_message,
    key_file_doc,
    ready_database,
    txn,
)

from central import tax
from central.auth import TokenStore
from central.checks import Inbound
from central.db import Database
from central.detectors.base import Settings
from central.detectors.service import DetectionService
from central.http_api import Api
from central.inputs import InputError, store_tax_declaration
from central.keys import parse_key_file
from central.resources import Context
from central.store import Ingestor
from central.vcf import Vcf

ZONE = ZoneInfo("Asia/Shanghai")
ADMIN = "admin-token-0123456789"
NOW = 1_800_000_000.0
A, B = T0, T0 + 6 * 3600  # a 6-hour period: 08:00–14:00 local
FILL_ML, PRICE = 40_000, 712  # each fill 40 L at ¥7.12 = 28 480 fen


def _iso(t: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, ZONE).isoformat()


def _fills(conn: Any, station: str, ends: list[int], grade: str = "92",
           device: str = "D1", seq0: int = 0, msg_seq: int = 1) -> None:
    ring = parse_key_file(json.dumps(key_file_doc()), "keys")
    ing = Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: ring, 600.0, lambda: NOW)
    recs, total, amount = [], 0, 0
    for i, end in enumerate(ends):
        r = txn(station, device, seq0 + i, end - 90, grade=grade, volume_ml=FILL_ML,
                price=PRICE, total_before=total, amount_total_before=amount)
        total, amount = r["volume_total_ml"], r["amount_total_fen"]
        recs.append(r)
    out = ing.process([Inbound(*data_message(station, device, "transaction", recs, msg_seq,
                                             NOW), NOW)])
    assert all(o.status == "stored" for o in out)


def _watermark(conn: Any, station: str, through: int) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO detection_progress (station_id, watermark, evaluated_through, "
                     "updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET "
                     "watermark = excluded.watermark", (station, through, through, NOW))


def _declare(conn: Any, station: str, sales_fen: int, volume_ml: int | None = None,
             grade: str | None = "92", ref: str | None = None,
             declared_at: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"station_id": station, "period_start": _iso(A),
                            "period_end": _iso(B), "declared_sales_fen": sales_fen,
                            "reference": ref or f"TAX-{station}-{grade}"}
    if declared_at is not None:
        body["declared_at"] = _iso(declared_at)
    if grade is not None:
        body["grade"] = grade
    if volume_ml is not None:
        body["declared_volume_ml"] = volume_ml
    with conn.transaction():
        return store_tax_declaration(conn, body, ZONE, "test")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = ready_database(f"sqlite:///{tmp_path / 'platform.db'}")
    try:
        yield database
    finally:
        database.close()


def test_honest_declaration_with_a_late_fill_booked_next_is_not_flagged(db: Database) -> None:
    with db.borrow() as conn:
        # ten fills in the period, the last 5 minutes before its end: the station's daily
        # close came first, so it declared nine (the booking window covers the tenth)
        _fills(conn, "UMB01", [A + 1800 * i for i in range(1, 10)] + [B - 300])
        _declare(conn, "UMB01", 9 * 28_480, 9 * FILL_ML)
        _watermark(conn, "UMB01", B)
        [row] = tax.station_tax_checks(conn, "UMB01", ZONE)
    assert row["platform_sales_fen"] == 10 * 28_480 and row["transactions"] == 10
    assert row["gap_sales_fen"] == 28_480 and row["gap_volume_ml"] == FILL_ML
    assert row["late_sales_fen"] == 28_480  # the fill of the last 30 minutes
    assert row["tolerance_sales_fen"] == 28_480 + 10_000
    assert not row["flagged"] and row["status"] == "checked"


def test_under_declaration_is_flagged_with_its_gap(db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 1800 * i for i in range(1, 11)])  # 10 fills, none late
        _declare(conn, "UMB01", round(0.8 * 10 * 28_480), 8 * FILL_ML)
        _watermark(conn, "UMB01", B - 1)  # data not complete through the end yet
        [row] = tax.station_tax_checks(conn, "UMB01", ZONE)
        assert row["flagged"] and row["status"] == "pending"  # a flag already stands
        assert row["gap_sales_fen"] == 10 * 28_480 - round(0.8 * 10 * 28_480)
        assert row["gap_volume_ml"] == 2 * FILL_ML
        _watermark(conn, "UMB01", B)
        [row] = tax.station_tax_checks(conn, "UMB01", ZONE)
    assert row["status"] == "checked" and row["flagged"]


def test_gap_inside_the_absolute_tolerance_is_not_flagged(db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 3600])
        _declare(conn, "UMB01", 28_480 - 9_000)  # ¥90 short: below ¥100
        [row] = tax.station_tax_checks(conn, "UMB01", ZONE)
    assert row["gap_sales_fen"] == 9_000 and not row["flagged"]
    assert row["declared_volume_ml"] is None and row["gap_volume_ml"] is None


def test_a_grade_left_out_gets_a_flagged_row_of_its_own(db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 3600 * i for i in range(1, 5)], grade="92")
        _fills(conn, "UMB01", [A + 3600 * i for i in range(1, 5)], grade="0", device="D2",
               msg_seq=2)
        filed = B + 3600
        _declare(conn, "UMB01", 4 * 28_480, 4 * FILL_ML, grade="92", declared_at=filed)
        _watermark(conn, "UMB01", B)
        rows = tax.station_tax_checks(conn, "UMB01", ZONE)
        assert [(r["grade"], r["missing_declaration"], r["flagged"], r["status"])
                for r in rows] == [("0", True, True, "pending"), ("92", False, False, "checked")]
        missing = rows[0]
        assert missing["declaration_id"] is None and missing["declared_sales_fen"] == 0
        assert missing["gap_sales_fen"] == 4 * 28_480
        # judged left out once the data is complete a grace past the filing
        _watermark(conn, "UMB01", filed + tax.FILING_GRACE_S - 1)
        assert tax.station_tax_checks(conn, "UMB01", ZONE)[0]["status"] == "pending"
        _watermark(conn, "UMB01", filed + tax.FILING_GRACE_S)
        assert tax.station_tax_checks(conn, "UMB01", ZONE)[0]["status"] == "checked"


def test_a_declaration_of_all_grades_compares_every_grade(db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 3600], grade="92")
        _fills(conn, "UMB01", [A + 7200], grade="0", device="D2", msg_seq=2)
        _declare(conn, "UMB01", 2 * 28_480, grade=None)
        [row] = tax.station_tax_checks(conn, "UMB01", ZONE)
    assert row["grade"] is None and row["platform_sales_fen"] == 2 * 28_480
    assert not row["flagged"] and not row["missing_declaration"]


def test_a_monthly_declaration_in_dates_covers_whole_local_days(db: Database) -> None:
    with db.borrow() as conn:
        body = {"station_id": "UMB02", "period_start": "2026-04-01",
                "period_end": "2026-04-30", "declared_sales_fen": 0, "grade": "92",
                "reference": "TAX-2026-04"}
        with conn.transaction():
            store_tax_declaration(conn, body, ZONE, "test")
        [row] = tax.station_tax_checks(conn, "UMB02", ZONE)
    assert row["period_start"] == T0 - 8 * 3600  # local midnight, 2026-04-01
    assert row["period_end"] == T0 - 8 * 3600 + 30 * 86400  # midnight after 30 April


def test_the_detection_service_raises_one_alert_per_flagged_checked_period(
        db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 1800 * i for i in range(1, 11)])
        _declare(conn, "UMB01", 5 * 28_480)
        _fills(conn, "UMB02", [A + 1800 * i for i in range(1, 11)], msg_seq=3)
        _declare(conn, "UMB02", 10 * 28_480)  # honest
        for station in ("UMB01", "UMB02"):
            _watermark(conn, station, B - 10)
        service = DetectionService(db, Settings(), clock=lambda: NOW)
        assert service.run_tax(conn, "UMB01") == []  # the period's data is not complete yet
        _watermark(conn, "UMB01", B)
        _watermark(conn, "UMB02", B)
        ids = service.run_tax(conn, "UMB01")
        assert len(ids) == 1 and service.run_tax(conn, "UMB02") == []
        assert service.run_tax(conn, "UMB01") == []  # idempotent
        fresh = DetectionService(db, Settings(), clock=lambda: NOW)
        assert fresh.run_tax(conn, "UMB01") == []  # dedup key: a restart raises nothing twice
        alert = conn.query_one("SELECT kind, station_id, as_of, device, detector FROM alerts "
                               "WHERE id = ?", (ids[0],))
        assert alert == (tax.ALERT_KIND, "UMB01", float(B), None, "tax")
        for off in (Settings(tax=False), Settings(detect=False)):
            assert DetectionService(db, off).run_tax(conn, "UMB02") == []


def test_a_filing_posted_one_grade_at_a_time_raises_no_alert_half_way(
        db: Database) -> None:
    """Banner runs 19–21: a detection pass between the posts of one filing took the grades
    still on their way as left out, and the alert stayed. A grade is judged missing only once
    the data is complete FILING_GRACE_S past the filing; one really left out is alerted then."""
    filed = B + 3600
    with db.borrow() as conn:
        for station, msg in (("UMB01", 1), ("UMB02", 3)):
            _fills(conn, station, [A + 3600 * i for i in range(1, 5)], grade="92",
                   msg_seq=msg)
            _fills(conn, station, [A + 3600 * i for i in range(1, 5)], grade="0",
                   device="D2", msg_seq=msg + 1)
            _watermark(conn, station, filed + 600)
        service = DetectionService(db, Settings(), clock=lambda: NOW)
        for station in ("UMB01", "UMB02"):
            _declare(conn, station, 4 * 28_480, 4 * FILL_ML, grade="92", declared_at=filed)
            assert service.run_tax(conn, station) == []  # between two posts
        _declare(conn, "UMB01", 4 * 28_480, 4 * FILL_ML, grade="0", declared_at=filed)
        # UMB02 never declares grade 0
        for station in ("UMB01", "UMB02"):
            assert service.run_tax(conn, station) == []
            _watermark(conn, station, filed + tax.FILING_GRACE_S)
        assert service.run_tax(conn, "UMB01") == []
        [alert] = service.run_tax(conn, "UMB02")
        assert service.run_tax(conn, "UMB02") == []  # the period is settled, raised once
        detail = conn.query_one("SELECT detail FROM alerts WHERE id = ?", (alert,))
        assert detail is not None and "no declaration of grade 0" in detail[0]
        assert conn.query_one("SELECT COUNT(*) FROM alerts WHERE station_id = 'UMB01'") == (0,)


def _api(db: Database, *, with_tax: bool = True) -> Api:
    ctx = Context(ZONE, Vcf(), 90.0, lambda: NOW, tax=with_tax)
    return Api(db, TokenStore([(ADMIN, "admin", "tester")]), ctx)


def _call(api: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    resp = api.handle(method, path, headers, raw)
    out = resp.body if not isinstance(resp.body, bytes) else json.loads(resp.body)
    return resp.status, out


def test_tax_checks_resource_filters_pages_and_no_tax(db: Database) -> None:
    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 1800 * i for i in range(1, 11)])
        _declare(conn, "UMB01", 5 * 28_480)
        _fills(conn, "UMB02", [A + 1800 * i for i in range(1, 11)], msg_seq=3)
        _declare(conn, "UMB02", 10 * 28_480)
    api = _api(db)
    status, page = _call(api, "GET", "/api/v1/tax-checks?limit=1")
    assert status == 200 and len(page["items"]) == 1 and page["next_cursor"]
    status, nxt = _call(api, "GET", f"/api/v1/tax-checks?limit=1&cursor={page['next_cursor']}")
    assert [r["station_id"] for r in page["items"] + nxt["items"]] == ["UMB01", "UMB02"]
    status, flagged = _call(api, "GET", "/api/v1/tax-checks?flagged=true")
    assert [r["station_id"] for r in flagged["items"]] == ["UMB01"]
    status, err = _call(api, "GET", "/api/v1/tax-checks?flagged=maybe")
    assert status == 400 and err["error"]["parameter"] == "flagged"
    status, none = _call(api, "GET", f"/api/v1/tax-checks?from={B}")
    assert none["items"] == []
    # --no-tax: the declarations are stored and listed, never compared
    status, page = _call(_api(db, with_tax=False), "GET", "/api/v1/tax-checks")
    assert status == 200 and page["items"] == []
    status, stored = _call(_api(db, with_tax=False), "GET", "/api/v1/tax-declarations")
    assert len(stored["items"]) == 2


GOOD = {"station_id": "UMB01", "period_start": "2026-04-01T08:00:00+08:00",
        "period_end": "2026-04-01T14:00:00+08:00", "grade": "92",
        "declared_volume_ml": 400_000, "declared_sales_fen": 284_800,
        "declared_tax_fen": 32_765, "reference": "TAX-UMB01-20260401T0800-92"}


@pytest.mark.parametrize(("bad", "status", "field"), [
    (dict(GOOD, station_id="UMB77"), 400, "station_id"),  # unknown station
    (dict(GOOD, declared_sales_fen="many"), 400, "declared_sales_fen"),  # malformed
    (dict(GOOD, declared_volume_ml=-5), 400, "declared_volume_ml"),
    (dict(GOOD, period_start="soon"), 400, "period_start"),
    ({k: v for k, v in GOOD.items() if k != "declared_sales_fen"}, 400, "$"),
    (dict(GOOD, period_end=GOOD["period_start"]), 400, "period_end"),  # end == start
    (dict(GOOD, period_end="2026-04-01T07:00:00+08:00"), 400, "period_end"),  # end < start
    (dict(GOOD, period_end="2026-04-02"), 400, "period_end"),  # a date after a date-time
    (dict(GOOD, period_start="2026-04-02", period_end="2026-04-01"), 400, "period_end"),
    (dict(GOOD, declared_at="after lunch"), 400, "declared_at"),
    (GOOD, 409, "reference"),  # the same reference again
    (b"{\"station_id\": ", 400, "body"),  # not JSON
    # what the database cannot store as given, and JSON that is not strict: never a 500
    (dict(GOOD, reference="\ud800"), 400, "reference"),  # a lone surrogate
    (dict(GOOD, authority="税务局\x00"), 400, "authority"),  # NUL: PostgreSQL refuses it
    (dict(GOOD, period_start="2026-04-01", period_end="9999-12-31"), 400, "period_end"),
    (b"{\"station_id\": \"UMB01\", \"station_id\": \"UMB02\"}", 400, "body"),  # twice
    (json.dumps(GOOD)[:-1].encode() + b", \"declared_tax_fen\": NaN}", 400, "body"),
    (b"[" * 100_000, 400, "body"),  # nested deeper than any parser recurses
])
def test_a_bad_declaration_is_refused_with_a_reason_and_nothing_changes(
        db: Database, bad: Any, status: int, field: str) -> None:
    api = _api(db)
    assert _call(api, "POST", "/api/v1/tax-declarations", GOOD)[0] == 201
    before = _call(api, "GET", "/api/v1/tax-declarations")[1]["items"]
    got, answer = _call(api, "POST", "/api/v1/tax-declarations", bad)
    assert got == status, answer
    assert answer["error"]["parameter"] == field and answer["error"]["message"]
    assert _call(api, "GET", "/api/v1/tax-declarations")[1]["items"] == before


def test_a_nul_in_a_query_parameter_is_refused_naming_it(db: Database) -> None:
    got, answer = _call(_api(db), "GET", "/api/v1/alerts?kind=%00")
    assert got == 400 and answer["error"]["parameter"] == "kind", answer


@pytest.mark.parametrize("position", [[10**30, "k"], ["\ud800"], [[[1]]], [True], ["a\x00"]])
def test_a_cursor_made_by_hand_is_refused_not_a_500(db: Database, position: list) -> None:
    """The filters' fingerprint is no secret, so a client can make a cursor: one holding what
    the API never writes is a 400 on `cursor` (it was a 500: overflow, encoding)."""
    from central.params import encode_cursor, fingerprint

    cursor = encode_cursor(position, fingerprint({"resource": "transactions"}))
    got, answer = _call(_api(db), "GET", f"/api/v1/transactions?cursor={cursor}")
    assert got == 400 and answer["error"]["parameter"] == "cursor", answer


def test_a_date_time_without_offset_is_in_the_platform_zone(db: Database) -> None:
    """docs/platform-api.md §5.8: no offset = the platform zone, whatever validators happen to
    be installed (jsonschema's own date-time check, with rfc3339-validator, wants an offset)."""
    api = _api(db)
    local = dict(GOOD, period_start="2026-04-01T08:00:00", period_end="2026-04-01T14:00",
                 declared_at="2026-04-02T09:30:00.5")
    assert _call(api, "POST", "/api/v1/tax-declarations", local)[0] == 201
    offset = dict(GOOD, reference="TAX-2", declared_at="2026-04-02T01:30:00.5Z")
    assert _call(api, "POST", "/api/v1/tax-declarations", offset)[0] == 201
    assert len(_call(api, "GET", "/api/v1/tax-declarations")[1]["items"]) == 2
    # both periods start at the same instant (the resource's time field)
    at_a = _call(api, "GET", f"/api/v1/tax-declarations?from={A}&to={A + 1}")[1]["items"]
    assert sorted(i["reference"] for i in at_a) == ["TAX-2", GOOD["reference"]]
    for bad in ("2026-04-01T24:00:00", "2026-02-30T08:00:00", "2026-04-01 08:00:00",
                "2026-04-01T08:00:00+8", "٢٠٢٦-04-01T08:00:00"):
        got, answer = _call(api, "POST", "/api/v1/tax-declarations",
                            dict(GOOD, reference="TAX-3", period_start=bad))
        assert got == 400 and answer["error"]["parameter"] == "period_start", (bad, answer)


def test_store_tax_declaration_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        from central.inputs import period_epochs

        period_epochs("2026-04-01T08:00:00+08:00", "2026-04-01T08:00:00+08:00", ZONE)
    assert err.value.field == "period_end" and "not after" in err.value.message


def test_items_match_the_openapi_document(db: Database) -> None:
    import jsonschema

    from central.openapi import openapi_document

    with db.borrow() as conn:
        _fills(conn, "UMB01", [A + 1800 * i for i in range(1, 5)], grade="92")
        _fills(conn, "UMB01", [A + 3600], grade="0", device="D2", msg_seq=2)
        _declare(conn, "UMB01", 28_480, grade="92")
        _watermark(conn, "UMB01", B)
    doc = openapi_document()
    schema = doc["components"]["schemas"]["TaxChecks"]
    items = _call(_api(db), "GET", "/api/v1/tax-checks")[1]["items"]
    assert len(items) == 2
    for item in items:
        jsonschema.Draft202012Validator(schema).validate(item)
    assert "get" in doc["paths"]["/api/v1/tax-checks"]
    params = {p["name"] for p in doc["paths"]["/api/v1/tax-checks"]["get"]["parameters"]}
    assert {"station_id", "from", "to", "limit", "cursor", "grade", "flagged", "status"} <= params
