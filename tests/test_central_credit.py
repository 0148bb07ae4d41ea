"""GET /api/v1/credit at the reference platform (central/credit.py): one item per registered
station graded from the alerts it holds and their lifecycle (confirmed_at kept after
closing), filters, paging, the grading period, bad parameters named, --flat-credit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from test_central_support import T0, ready_database

from central import alerts
from central.auth import TokenStore
from central.db import Database
from central.http_api import Api
from central.openapi import openapi_document
from central.resources import Context
from central.vcf import Vcf

ZONE = ZoneInfo("Asia/Shanghai")
ADMIN = "admin-token-0123456789"
DAY = 86400


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = ready_database(f"sqlite:///{tmp_path / 'platform.db'}")
    with db.borrow() as conn, conn.transaction():
        def add(station: str, kind: str, severity: str, as_of: int, key: str) -> str:
            out = alerts.raise_alert(conn, station_id=station, kind=kind, severity=severity,
                                     raised_at=1.9e9, title=kind, as_of=as_of, dedup_key=key)
            assert out is not None
            return out

        # UMB01: a price cheat confirmed on site, then rectified (40 / 2), and an expired
        # verification still open (24): 100 − 44 = 56 → C
        cheat = add("UMB01", "price_mismatch", "critical", T0, "c1")
        add("UMB01", "verification_expired", "warning", T0 + DAY, "m1")
        alerts.set_status(conn, cheat, "confirmed", by="inspector", now=1.9e9 + 1)
        alerts.set_status(conn, cheat, "closed", by="inspector", now=1.9e9 + 2)
        # UMB02: an under-declaration still open (32) → C; a leak (not counted)
        add("UMB02", "tax_under_declaration", "warning", T0 + 2 * DAY, "t1")
        add("UMB02", "leak_suspected", "warning", T0, "l1")
        # UMB03: a false alarm dismissed while open → A
        false = add("UMB03", "tank_loss", "critical", T0, "f1")
        alerts.set_status(conn, false, "closed", by="inspector", now=1.9e9 + 3)
    return db


def api(db: Database, flat: bool = False) -> Api:
    return Api(db, TokenStore([(ADMIN, "admin", "tester")]),
               Context(ZONE, Vcf(), 90.0, lambda: 1.9e9, flat_credit=flat))


def get(app: Api, query: str = "") -> tuple[int, Any]:
    resp = app.handle("GET", f"/api/v1/credit{query}", {"Authorization": f"Bearer {ADMIN}"},
                      None)
    return resp.status, resp.body


def test_every_station_graded_from_its_alerts_and_their_lifecycle(db: Database) -> None:
    status, page = get(api(db))
    assert status == 200 and page["next_cursor"] is None
    by = {i["station_id"]: i for i in page["items"]}
    assert {s: (i["score"], i["grade"]) for s, i in by.items()} == {
        "UMB01": (56, "C"), "UMB02": (68, "C"), "UMB03": (100, "A")}
    one = by["UMB01"]
    assert one["counts"]["cheat"]["rectified"] == 1 and one["counts"]["metrology"]["open"] == 1
    assert one["points"] == {"cheat": 20, "tax": 0, "metrology": 24, "data": 0}
    assert [(f["kind"], f["lifecycle"], f["points"]) for f in one["findings"]] == [
        ("price_mismatch", "rectified", 20), ("verification_expired", "open", 24)]
    assert by["UMB03"]["counts"]["cheat"]["dismissed"] == 1 and by["UMB03"]["findings"] == []
    assert by["UMB02"]["counts"]["data"] == dict.fromkeys(("open", "confirmed", "rectified",
                                                           "dismissed"), 0)
    schema = openapi_document()["components"]["schemas"]["Credit"]
    for item in page["items"]:
        jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(item)))
    # the alert keeps when it was confirmed after closing: that is what makes it rectified
    listed = api(db).handle("GET", "/api/v1/alerts?station_id=UMB01&kind=price_mismatch",
                            {"Authorization": f"Bearer {ADMIN}"}, None).body["items"]
    assert listed[0]["status"] == "closed" and listed[0]["confirmed_at"] == 1.9e9 + 1


def test_filters_period_and_paging(db: Database) -> None:
    app = api(db)
    assert [i["station_id"] for i in get(app, "?grade=C")[1]["items"]] == ["UMB01", "UMB02"]
    assert [i["station_id"] for i in get(app, "?station_id=UMB03")[1]["items"]] == ["UMB03"]
    assert get(app, "?station_id=UMB03&grade=C")[1]["items"] == []
    # a station the registry does not know has no item: a misspelt id is not a clean grade A
    assert get(app, "?station_id=UMB99")[1]["items"] == []
    resp = app.handle("GET", "/api/v1/detection/status?station_id=UMB99",
                      {"Authorization": f"Bearer {ADMIN}"}, None)
    assert (resp.status, resp.body["items"]) == (200, [])
    # the grading period counts by as_of: from the second day, UMB01's rectified cheat is out
    _, page = get(app, f"?station_id=UMB01&from={T0 + DAY}")
    assert (page["items"][0]["score"], page["items"][0]["period"]) == (
        76, {"from": float(T0 + DAY), "to": None})
    _, page = get(app, f"?station_id=UMB02&to={T0 + DAY}")  # before its under-declaration
    assert page["items"][0]["grade"] == "A"
    walked, cursor = [], ""
    for _ in range(5):
        status, page = get(app, f"?limit=1{cursor}")
        assert status == 200
        walked += [i["station_id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert walked == ["UMB01", "UMB02", "UMB03"]


@pytest.mark.parametrize("query,parameter", [
    ("?grade=E", "grade"), ("?grade=a", "grade"), ("?from=yesterday", "from"),
    ("?from=2000&to=1000", "to"), ("?station=UMB01", "station"),
    ("?station_id=UMB 01", "station_id"), ("?limit=0", "limit"), ("?cursor=nope", "cursor"),
    ("?grade=A&grade=B", "grade")])
def test_bad_parameters_give_400_naming_the_parameter(db: Database, query: str,
                                                      parameter: str) -> None:
    status, body = get(api(db), query)
    assert status == 400, body
    assert body["error"]["parameter"] == parameter and body["error"]["message"]


def test_flat_credit_grades_every_station_a(db: Database) -> None:
    _, page = get(api(db, flat=True))
    assert {(i["station_id"], i["score"], i["grade"]) for i in page["items"]} == {
        ("UMB01", 100, "A"), ("UMB02", 100, "A"), ("UMB03", 100, "A")}
    assert page["items"][0]["counts"]["cheat"]["rectified"] == 1  # counted, not graded
