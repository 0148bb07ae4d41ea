"""The platform HTTP API over real sockets: authentication and roles, filters, cursor
pagination, parameter errors, department inputs, station state, and the OpenAPI document."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_central_support import (
    STATIONS,
    T0,
    data_message,
    delivery,
    event,
    fresh_database,
    heartbeat,
    inventory,
    key_file_doc,
    online,
    ready_database,
    state,
    txn,
)

from central.alerts import raise_alert
from central.auth import TokenStore
from central.checks import Inbound
from central.http_api import Api, ApiServer, encode
from central.keys import parse_key_file
from central.openapi import openapi_document
from central.resources import Context
from central.store import Ingestor
from central.vcf import Vcf

ADMIN, READ = "admin-token-0123456789", "read-token-0123456789"
NOW = 1_800_000_000.0
N_TX = 120  # transactions per dispenser stream loaded for the pagination walks


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


class Client:
    def __init__(self, base: str, token: str | None = READ) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None, token: str | None = "default",
             content_type: str = "application/json") -> tuple[int, Any, dict[str, str]]:
        url = self.base + path + (f"?{urlencode(params)}" if params else "")
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        tok = self.token if token == "default" else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()), dict(err.headers)

    def get(self, path: str, **params: Any) -> Any:
        status, body, _ = self.call("GET", path, params)
        assert status == 200, body
        return body

    def walk(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(10_000):
            page = self.get(path, **params, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("pagination did not end")


def _load(db_url: str, clock: Clock) -> None:
    db = ready_database(db_url)
    ring = parse_key_file(json.dumps(key_file_doc()), "keys")
    conn = db.connect()
    ing = Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: ring, 600.0, clock)
    msgs = []
    seq = 0
    for station in ("UMB01", "UMB02"):
        for dev in ("D1", "D2"):
            recs = []
            total = amount = 0
            for i in range(N_TX):
                # Pairs of fills end in the same second: the id breaks the tie.
                start = T0 + 600 * (i // 2) + (i % 2)
                rec = txn(station, dev, i, start, duration=90 - (i % 2), total_before=total,
                          amount_total_before=amount)
                total, amount = rec["volume_total_ml"], rec["amount_total_fen"]
                recs.append(rec)
            for chunk in range(0, N_TX, 100):
                seq += 1
                msgs.append(data_message(station, dev, "transaction", recs[chunk:chunk + 100],
                                         seq, NOW))
        seq += 1
        msgs.append(data_message(station, "G", "inventory",
                                 [inventory(station, i, T0 + 900 * i) for i in range(40)],
                                 seq, NOW))
        seq += 1
        msgs.append(data_message(station, "D1", "event",
                                 [event(station, "D1", i, T0 + 3600 * i, code=10 + i % 2)
                                  for i in range(5)], seq, NOW))
    msgs.append(online("UMB01", 10_000, NOW, True))
    msgs.append(heartbeat("UMB01", 10_001, NOW, backlog=3))
    # uplink 1.1 at UMB03: a bill of lading on a delivery (and a 1.0 delivery without it),
    # state reports, heartbeats with drained_through
    bol = delivery("UMB03", 5, T0, T0 + 1800, v0=9_000_000, v1=21_000_000)
    old = delivery("UMB03", 6, T0 + 7200, T0 + 9000, v0=19_000_000, v1=29_000_000)
    msgs.append(data_message("UMB03", "G", "delivery",
                             [dict(bol, bol_volume_20c_ml=11_975_400), old], 20_000, NOW))
    msgs.append(data_message("UMB03", "D1", "state",
                             [state("UMB03", "D1", 0, T0), state("UMB03", "D1", 1, T0 + 600,
                                                                seal_state=0b100)],
                             20_001, NOW))
    msgs.append(data_message("UMB03", "G", "state", [state("UMB03", "G", 0, T0)], 20_002, NOW))
    beat = [{"device": d, "online": True, "device_time": T0 + 100, "last_ok_at": NOW,
             "failures": 0, "error": None, "drained_through": t}
            for d, t in (("G", T0 + 50), ("D1", T0 + 40))]
    msgs.append(heartbeat("UMB03", 20_003, NOW, devices=beat))
    beat = [dict(beat[0], drained_through=None), dict(beat[1], drained_through=T0 + 60)]
    msgs.append(heartbeat("UMB03", 20_004, NOW, devices=beat))
    outs = ing.process([Inbound(t, p, NOW) for t, p in msgs])
    assert all(o.status == "stored" for o in outs)
    raise_alert(conn, station_id="UMB01", kind="test_kind", severity="warning", raised_at=T0,
                title="a test alert", device="D1", nozzle=1, evidence={"why": "test"},
                dedup_key="t-1")
    assert raise_alert(conn, station_id="UMB01", kind="test_kind", severity="warning",
                       raised_at=T0, title="again", dedup_key="t-1") is None
    for i, as_of in enumerate((T0 + 3600, T0 + 7200)):  # for the lifecycle and as_of tests
        raise_alert(conn, station_id="UMB03", kind="seal_broken", severity="info",
                    raised_at=NOW + i, title="seal broken", device="D1", as_of=as_of,
                    detector="identity", dedup_key=f"t-seal-{i}")
    with conn.transaction():
        conn.execute("INSERT INTO detection_progress (station_id, watermark, evaluated_through, "
                     "updated_at) VALUES (?, ?, ?, ?)", ("UMB03", T0 + 60, T0, NOW))
    conn.close()
    db.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Clock]]:
    gen = fresh_database(request.param, tmp_path_factory.mktemp("api"))
    url = next(gen)
    clock = Clock()
    _load(url, clock)
    from central.db import Database

    db = Database(url)
    tokens = TokenStore([(ADMIN, "admin", "tester"), (READ, "read", "viewer")])
    ctx = Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, clock)
    server = ApiServer(Api(db, tokens, ctx, lambda: {"mqtt_connected": None}), "127.0.0.1",
                       0).start()
    try:
        yield Client(server.url), clock
    finally:
        server.stop()
        db.close()
        gen.close()


# -- authentication and routing ------------------------------------------------------------
def test_tokens_and_roles(api: tuple[Client, Clock]) -> None:
    client, _ = api
    status, body, headers = client.call("GET", "/api/v1/transactions", token=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert client.call("GET", "/api/v1/stations", token="wrong-token-0123456789")[0] == 401
    assert client.call("GET", "/api/v1/stations", token=ADMIN)[0] == 200
    decl = {"station_id": "UMB01", "period_start": "2026-04-01", "period_end": "2026-04-30",
            "declared_sales_fen": 1}
    status, body, _ = client.call("POST", "/api/v1/tax-declarations", body=decl, token=READ)
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert client.call("POST", "/api/v1/tax-declarations", body=decl, token=None)[0] == 401
    assert client.call("GET", "/healthz", token=None)[0] == 200
    assert client.call("GET", "/openapi.json", token=None)[0] == 200


def test_unknown_paths_and_methods(api: tuple[Client, Clock]) -> None:
    client, _ = api
    status, body, _ = client.call("GET", "/api/v1/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body, headers = client.call("POST", "/api/v1/transactions", body={}, token=ADMIN)
    assert status == 405 and headers["Allow"] == "GET"


@pytest.mark.parametrize("path,params,parameter", [
    ("/api/v1/transactions", {"limit": "0"}, "limit"),
    ("/api/v1/transactions", {"limit": "1001"}, "limit"),
    ("/api/v1/transactions", {"limit": "ten"}, "limit"),
    ("/api/v1/transactions", {"from": "yesterday"}, "from"),
    ("/api/v1/transactions", {"from": "2000", "to": "1000"}, "to"),
    ("/api/v1/transactions", {"stationid": "UMB01"}, "stationid"),
    ("/api/v1/transactions", {"station_id": "UMB 01"}, "station_id"),
    ("/api/v1/transactions", {"nozzle": "0"}, "nozzle"),
    ("/api/v1/transactions", {"device": "X1"}, "device"),
    ("/api/v1/transactions", {"cursor": "not-a-cursor"}, "cursor"),
    ("/api/v1/inventory", {"tank": "1.5"}, "tank"),
    ("/api/v1/alerts", {"severity": "high"}, "severity"),
    ("/api/v1/reconciliation", {"to": "2026-13-01"}, "to"),
    ("/api/v1/totalizer-continuity", {"limit": "-1"}, "limit"),
    ("/api/v1/stations", {"ownership": "public"}, "ownership"),
    ("/api/v1/stations", {"from": "0"}, "from"),
    ("/api/v1/stats/ingest", {"limit": "5"}, "limit"),
    ("/api/v1/credit", {"grade": "E"}, "grade"),
    ("/api/v1/credit", {"from": "soon"}, "from"),
])
def test_bad_parameters_give_400_naming_the_parameter(api: tuple[Client, Clock], path: str,
                                                      params: dict, parameter: str) -> None:
    client, _ = api
    status, body, _ = client.call("GET", path, params)
    assert status == 400, body
    assert body["error"]["parameter"] == parameter and body["error"]["message"]


def test_cursor_is_bound_to_its_query(api: tuple[Client, Clock]) -> None:
    client, _ = api
    page = client.get("/api/v1/transactions", station_id="UMB01", limit=5)
    status, body, _ = client.call("GET", "/api/v1/transactions",
                                  {"station_id": "UMB02", "cursor": page["next_cursor"]})
    assert status == 400 and body["error"]["parameter"] == "cursor"


# -- data and pagination -----------------------------------------------------------------------
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 140), station=st.sampled_from([None, "UMB01", "UMB02"]),
       window=st.one_of(st.none(), st.tuples(st.integers(0, 40_000), st.integers(0, 40_000))))
def test_pagination_walks_every_row_exactly_once(api: tuple[Client, Clock], limit: int,
                                                 station: str | None,
                                                 window: tuple[int, int] | None) -> None:
    client, _ = api
    params: dict[str, Any] = {"limit": limit}
    if station:
        params["station_id"] = station
    lo, hi = T0, T0 + 10**6
    if window:
        lo, hi = T0 + min(window), T0 + max(window)
        params.update({"from": lo, "to": hi})
    items = client.walk("/api/v1/transactions", **params)
    keys = [i["key"] for i in items]
    assert len(keys) == len(set(keys))
    expected = set()
    for s in [station] if station else ["UMB01", "UMB02"]:
        for d in ("D1", "D2"):
            for i in range(N_TX):
                start = T0 + 600 * (i // 2) + (i % 2)
                if lo <= start + 90 - (i % 2) < hi:  # the time filter applies to end_time
                    expected.add(f"{s}/{d}/transactions/{i}/{start}")
    assert set(keys) == expected
    ends = [(i["end_time"], i["key"]) for i in items]
    assert ends == sorted(ends)


def test_filters_and_values(api: tuple[Client, Clock]) -> None:
    client, _ = api
    iso = client.walk("/api/v1/transactions", station_id="UMB01", device="D2",
                      **{"from": "2026-04-01T08:00:00+08:00", "to": "2026-04-01T09:00:00+08:00"})
    assert {i["device"] for i in iso} == {"D2"} and len(iso) == 12
    assert all(T0 <= i["end_time"] < T0 + 3600 for i in iso)
    one = client.get("/api/v1/transactions", station_id="UMB02", nozzle=1, limit=1)["items"][0]
    want = txn("UMB02", "D1", 0, T0, duration=90)
    assert {k: one[k] for k in want} == want  # every uplink field, exactly
    assert one["station_id"] == "UMB02" and one["received_at"] == NOW
    inv = client.walk("/api/v1/inventory", station_id="UMB02", tank=1, limit=7)
    assert len(inv) == 40 and inv[0]["volume_20c_ml"] == 20_000_000
    ev = client.walk("/api/v1/events", code=11)
    assert len(ev) == 4 and {e["code"] for e in ev} == {11}
    alerts = client.get("/api/v1/alerts", station_id="UMB01", severity="warning")["items"]
    assert len(alerts) == 1 and alerts[0]["evidence"] == {"why": "test"}
    assert alerts[0]["nozzle"] == 1 and alerts[0]["status"] == "open"
    assert alerts[0]["as_of"] is None and alerts[0]["detector"] is None
    assert client.get("/api/v1/deliveries", station_id="UMB01")["items"] == []


def test_stations_show_online_state_and_go_stale(api: tuple[Client, Clock]) -> None:
    client, clock = api
    stations = {s["station_id"]: s for s in client.walk("/api/v1/stations", limit=2)}
    assert sorted(stations) == ["UMB01", "UMB02", "UMB03"]
    s1 = stations["UMB01"]
    assert s1["collector"]["online"] and s1["collector"]["backlog"] == 3
    assert [d["device"] for d in s1["devices"]] == ["G", "D1", "D2"]
    assert all(d["online"] and d["device_time"] == T0 + 100 for d in s1["devices"])
    assert s1["dispensers"][1] == {"dispenser": 2, "nozzles": [{"nozzle": 1, "tank": 1},
                                                               {"nozzle": 2, "tank": 3}]}
    assert not stations["UMB02"]["collector"]["heard"]
    assert not any(d["online"] for d in stations["UMB02"]["devices"])
    clock.t = NOW + 91  # no heartbeat for longer than the timeout
    try:
        s1 = client.get("/api/v1/stations", station_id="UMB01")["items"][0]
    finally:
        clock.t = NOW
    assert s1["collector"]["stale"] and not s1["collector"]["online"]
    assert s1["collector"]["reported_online"] and not any(d["online"] for d in s1["devices"])
    assert client.get("/api/v1/stations", town="甘其毛都镇")["items"][0]["station_id"] == "UMB02"


def test_ingest_stats(api: tuple[Client, Clock]) -> None:
    client, _ = api
    all_ = client.get("/api/v1/stats/ingest")
    assert all_["accepted"] == 4 * N_TX + 2 * 40 + 2 * 5 + 2 and all_["duplicates"] == 0
    assert all_["states"] == {"accepted": 3, "duplicates": 0}  # counted apart
    assert all_["rejected"] == {} and all_["messages"]["heartbeat"] == 3
    one = client.get("/api/v1/stats/ingest", station_id="UMB02")
    assert one["accepted"] == 2 * N_TX + 45 and one["station_id"] == "UMB02"


def test_computed_resources_paginate(api: tuple[Client, Clock]) -> None:
    client, _ = api
    checks = client.walk("/api/v1/totalizer-continuity", limit=1)
    assert len(checks) == len({json.dumps([c["station_id"], c["device"], c["check"],
                                           c.get("nozzle"), c.get("stream")]) for c in checks})
    nozzle = [c for c in checks if c["check"] == "totalizer"]
    assert len(nozzle) == 4 and all(c["continuous"] for c in nozzle)
    seq = [c for c in checks if c["check"] == "sequence"]
    assert {(c["station_id"], c["device"], c["stream"]) for c in seq} == {
        (s, d, st_) for s in ("UMB01", "UMB02")
        for d, st_ in (("D1", "transactions"), ("D2", "transactions"), ("G", "inventory"),
                       ("D1", "events"))} | {("UMB03", "G", "deliveries")}
    rec = client.walk("/api/v1/reconciliation", limit=1)
    assert rec == client.get("/api/v1/reconciliation", limit=1000)["items"]
    assert {r["station_id"] for r in rec} == {"UMB01", "UMB02"}


# -- inputs from other departments -----------------------------------------------------------------
def test_tax_declarations(api: tuple[Client, Clock]) -> None:
    client, _ = api
    decl = {"station_id": "UMB02", "period_start": "2026-04-01", "period_end": "2026-04-30",
            "grade": "0", "declared_volume_ml": 12_345_000, "declared_sales_fen": 9_000_000,
            "reference": "TAX-2026-04-UMB02"}
    status, body, _ = client.call("POST", "/api/v1/tax-declarations", body=decl, token=ADMIN)
    assert status == 201 and body["id"]
    again = client.call("POST", "/api/v1/tax-declarations", body=decl, token=ADMIN)
    assert again[0] == 409 and again[1]["error"]["parameter"] == "reference"
    listed = client.get("/api/v1/tax-declarations", station_id="UMB02")["items"]
    assert len(listed) == 1 and listed[0]["declared_sales_fen"] == 9_000_000
    assert listed[0]["body"] == decl and listed[0]["created_by"] == "tester"
    for bad, field in ((dict(decl, declared_sales_fen=-1), "declared_sales_fen"),
                       (dict(decl, station_id="UMB77"), "station_id"),
                       (dict(decl, period_end="2026-03-01"), "period_end"),
                       (dict(decl, period_start="April"), "period_start"),
                       ({k: v for k, v in decl.items() if k != "period_end"}, "$"),
                       (dict(decl, surprise=1), "$")):
        status, body, _ = client.call("POST", "/api/v1/tax-declarations", body=bad, token=ADMIN)
        assert status == 400 and body["error"]["parameter"] == field, (bad, body)
    status, body, _ = client.call("POST", "/api/v1/tax-declarations", body=b"{not json",
                                  token=ADMIN)
    assert status == 400 and body["error"]["parameter"] == "body"
    status, _, _ = client.call("POST", "/api/v1/tax-declarations", body=decl, token=ADMIN,
                               content_type="text/plain")
    assert status == 415


def test_verification_records(api: tuple[Client, Clock]) -> None:
    client, _ = api
    rec = {"station_id": "UMB01", "device": "D1", "nozzle": 2, "kind": "verification",
           "performed_at": "2026-04-02T10:00:00+08:00", "valid_until": "2026-10-01",
           "result": "pass", "certificate_no": "JD-2026-0001", "organisation": "巴彦淖尔市计量所",
           "signatures": {"maintainer": "维修甲", "verifier": "检定乙", "station": "站长丙"}}
    status, body, _ = client.call("POST", "/api/v1/verification-records", body=rec,
                                  token=ADMIN)
    assert status == 201 and body["fully_signed"] is True
    partial = dict(rec, kind="parameter_change", signatures={"maintainer": "维修甲"})
    status, body, _ = client.call("POST", "/api/v1/verification-records", body=partial,
                                  token=ADMIN)
    assert status == 201 and body["fully_signed"] is False
    listed = client.walk("/api/v1/verification-records", station_id="UMB01", limit=1)
    assert sorted((r["kind"], r["fully_signed"]) for r in listed) == [
        ("parameter_change", 0), ("verification", 1)]
    status, body, _ = client.call("POST", "/api/v1/verification-records",
                                  body=dict(rec, device="P1"), token=ADMIN)
    assert status == 400 and body["error"]["parameter"] == "device"


# -- the OpenAPI document -----------------------------------------------------------------------
def test_openapi_documents_every_route_and_its_items(api: tuple[Client, Clock]) -> None:
    client, _ = api
    doc = client.get("/openapi.json")
    assert doc == json.loads(json.dumps(openapi_document()))
    assert doc["openapi"].startswith("3.1")
    from central.db import Database  # only for the route table; never touches the DB

    routes = Api(Database("sqlite:///unused.db"), TokenStore([]),
                 Context(ZoneInfo("UTC"), Vcf(), 90, lambda: 0.0))
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    served = ({(p, "GET") for p in routes.get_routes} | {(p, "POST") for p in routes.post_routes}
              | {(p, "POST") for p in routes.post_templates}
              | {("/healthz", "GET"), ("/openapi.json", "GET")})
    assert documented == served
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["summary"] and op["operationId"], path
            assert {"200", "201"} & set(op["responses"]), path
    assert doc["info"]["version"] == "1.5.0"
    schemas = doc["components"]["schemas"]
    samples = {
        "Transactions": client.get("/api/v1/transactions", limit=3)["items"],
        "Inventory": client.get("/api/v1/inventory", limit=3)["items"],
        "Events": client.get("/api/v1/events", limit=3)["items"],
        "Deliveries": client.get("/api/v1/deliveries")["items"],
        "States": client.get("/api/v1/states")["items"],
        "DetectionStatus": client.get("/api/v1/detection/status")["items"],
        "Alerts": client.get("/api/v1/alerts")["items"],
        "Reconciliation": client.get("/api/v1/reconciliation", limit=3)["items"],
        "TotalizerContinuity": client.get("/api/v1/totalizer-continuity", limit=20)["items"],
        "Station": client.get("/api/v1/stations")["items"],
        "IngestStats": [client.get("/api/v1/stats/ingest")],
        "Credit": client.get("/api/v1/credit")["items"],
    }
    for name, items in samples.items():
        assert items, name
        for item in items:
            jsonschema.Draft202012Validator(schemas[name]).validate(item)


# -- uplink 1.1 and the cheat-warning additions ----------------------------------------------------
def test_deliveries_states_and_drained_through(api: tuple[Client, Clock]) -> None:
    client, _ = api
    dl = client.get("/api/v1/deliveries", station_id="UMB03")["items"]
    assert [d["bol_volume_20c_ml"] for d in dl] == [11_975_400, None]  # None: uplink 1.0
    states = client.walk("/api/v1/states", station_id="UMB03", limit=1)
    assert [(s["device"], s["seq"], s["seal_state"]) for s in states] == [
        ("D1", 0, 0), ("G", 0, 0), ("D1", 1, 0b100)]  # device_time order, then key
    assert states[1]["mainboard_id"] == "" and states[0]["mainboard_id"] == "MB-1"
    assert states[2] == {**state("UMB03", "D1", 1, T0 + 600, seal_state=0b100),
                         "station_id": "UMB03", "device": "D1", "received_at": NOW,
                         "msg_seq": 20_001}
    only = client.get("/api/v1/states", device="G")["items"]
    assert [s["key"] for s in only] == [f"UMB03/G/states/0/{T0}"]
    assert client.get("/api/v1/states", **{"from": T0 + 1})["items"][0]["seq"] == 1
    s3 = client.get("/api/v1/stations", station_id="UMB03")["items"][0]
    # a null drained_through keeps the last one reported; a later one replaces it
    assert {d["device"]: d["drained_through"] for d in s3["devices"]} == {
        "G": T0 + 50, "D1": T0 + 60}
    s1 = client.get("/api/v1/stations", station_id="UMB01")["items"][0]
    assert all(d["drained_through"] is None for d in s1["devices"])  # 1.0 heartbeats


def test_detection_status(api: tuple[Client, Clock]) -> None:
    client, _ = api
    items = client.walk("/api/v1/detection/status", limit=2)
    assert [i["station_id"] for i in items] == ["UMB01", "UMB02", "UMB03"]
    assert items[0] == {"station_id": "UMB01", "watermark": None, "evaluated_through": None,
                        "updated_at": None}
    assert items[2] == {"station_id": "UMB03", "watermark": T0 + 60, "evaluated_through": T0,
                        "updated_at": NOW}
    assert client.get("/api/v1/detection/status", station_id="UMB03")["items"] == items[2:]
    status, body, _ = client.call("GET", "/api/v1/detection/status", {"from": "0"})
    assert status == 400 and body["error"]["parameter"] == "from"


def test_alerts_carry_as_of_and_detector(api: tuple[Client, Clock]) -> None:
    client, _ = api
    seal = client.walk("/api/v1/alerts", station_id="UMB03", detector="identity")
    assert [a["as_of"] for a in seal] == [T0 + 3600, T0 + 7200]
    assert {a["detector"] for a in seal} == {"identity"}
    late = client.get("/api/v1/alerts", as_of_from=T0 + 3601)["items"]
    assert [a["as_of"] for a in late] == [T0 + 7200]
    early = client.get("/api/v1/alerts", as_of_to="2026-04-01T09:00:01+08:00")["items"]
    assert [a["as_of"] for a in early] == [T0 + 3600]
    status, body, _ = client.call("GET", "/api/v1/alerts", {"as_of_from": "soon"})
    assert status == 400 and body["error"]["parameter"] == "as_of_from"
    status, body, _ = client.call("GET", "/api/v1/alerts", {"status": "acknowledged"})
    assert status == 400 and body["error"]["parameter"] == "status"  # 1.0's name is gone


def test_alert_status_lifecycle(api: tuple[Client, Clock]) -> None:
    client, _ = api
    first = client.get("/api/v1/alerts", station_id="UMB03", limit=1)["items"][0]
    path = f"/api/v1/alerts/{first['id']}/status"
    assert first["status"] == "open" and first["status_changed_at"] is None
    status, body, _ = client.call("POST", path, body={"status": "confirmed"}, token=READ)
    assert status == 403
    assert client.call("POST", path, body={"status": "confirmed"}, token=None)[0] == 401
    for bad, field in (({"status": "acknowledged"}, "status"), ({}, "$"),
                       ({"status": "closed", "note": 5}, "note"),
                       ({"status": "closed", "by": "me"}, "$")):
        status, body, _ = client.call("POST", path, body=bad, token=ADMIN)
        assert status == 400 and body["error"]["parameter"] == field, (bad, body)
    status, body, _ = client.call("POST", path, body=b"[", token=ADMIN)
    assert status == 400 and body["error"]["code"] == "bad_body"
    status, body, _ = client.call("POST", path, body={"status": "confirmed",
                                                     "note": "现场核查属实"}, token=ADMIN)
    assert status == 200, body
    assert (body["id"], body["status"], body["status_note"], body["status_changed_by"]) == (
        first["id"], "confirmed", "现场核查属实", "tester")
    assert body["status_changed_at"] > 0 and body["as_of"] == first["as_of"]
    status, body, _ = client.call("POST", path, body={"status": "confirmed"}, token=ADMIN)
    assert status == 409 and body["error"]["code"] == "conflict"
    assert client.call("POST", path, body={"status": "closed"}, token=ADMIN)[0] == 200
    for again in ("open", "confirmed", "closed"):  # nothing reopens
        assert client.call("POST", path, body={"status": again}, token=ADMIN)[0] == 409
    listed = client.get("/api/v1/alerts", station_id="UMB03", status="closed")["items"]
    assert [a["id"] for a in listed] == [first["id"]]
    status, body, _ = client.call("POST", "/api/v1/alerts/nope/status",
                                  body={"status": "closed"}, token=ADMIN)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, _, headers = client.call("GET", path)
    assert status == 405 and headers["Allow"] == "POST"


def test_posted_prices(api: tuple[Client, Clock]) -> None:
    client, _ = api
    every = {"grade": "92", "price_fen": 703, "valid_from": "2026-03-24T00:00:00+08:00",
             "authority": "巴彦淖尔市发改委"}
    own = {"station_id": "UMB02", "grade": "92", "price_fen": 699,
           "valid_from": "2026-03-28T00:00:00+08:00", "reference": "UMB02-挂牌-1"}
    later = {"grade": "92", "price_fen": 719, "valid_from": "2026-04-02T00:00:00+08:00"}
    for body in (every, own, later):
        status, out, _ = client.call("POST", "/api/v1/posted-prices", body=body, token=ADMIN)
        assert status == 201 and out["id"] and out["price_fen"] == body["price_fen"], out
    status, out, _ = client.call("POST", "/api/v1/posted-prices", body=every, token=ADMIN)
    assert status == 409 and out["error"]["parameter"] == "valid_from"
    # the same instant for one station is another row
    status, _, _ = client.call("POST", "/api/v1/posted-prices",
                               body=dict(every, station_id="UMB01"), token=ADMIN)
    assert status == 201
    assert client.call("POST", "/api/v1/posted-prices", body=later, token=READ)[0] == 403
    for bad, field in ((dict(later, price_fen=7.19), "price_fen"),
                       (dict(later, price_fen=0), "price_fen"),
                       (dict(later, grade="93"), "grade"),
                       (dict(later, valid_from="2026-04-02"), "valid_from"),
                       (dict(later, station_id="UMB77"), "station_id"),
                       ({k: v for k, v in later.items() if k != "grade"}, "$"),
                       (dict(later, extra=1), "$")):
        status, out, _ = client.call("POST", "/api/v1/posted-prices", body=bad, token=ADMIN)
        assert status == 400 and out["error"]["parameter"] == field, (bad, out)
    listed = client.walk("/api/v1/posted-prices", limit=2)
    assert [p["valid_from"] for p in listed] == sorted(p["valid_from"] for p in listed)
    assert sorted(((p["station_id"] or ""), p["price_fen"]) for p in listed) == [
        ("", 703), ("", 719), ("UMB01", 703), ("UMB02", 699)]
    first = next(p for p in listed if p["station_id"] is None)
    assert first["valid_from"] == T0 - 8 * 86400 - 8 * 3600  # 2026-03-24 00:00 +08:00
    assert first["body"] == every
    assert first["created_by"] == "tester"
    mine = client.get("/api/v1/posted-prices", station_id="UMB02")["items"]
    assert [p["price_fen"] for p in mine] == [699]
    schemas = client.get("/openapi.json")["components"]["schemas"]
    for item in listed:
        jsonschema.Draft202012Validator(schemas["PostedPrices"]).validate(item)


# -- property-based: every documented GET, with parameters drawn from /openapi.json -------------
_HOSTILE = st.sampled_from(["", "-1", "0", "1e400", "NaN", "9" * 40, "2026-13-45", "D1\n",
                            "../../etc", "' OR 1=1 --", "%00", "☃" * 50, "x" * 5000])


def _value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value the parameter's schema allows, or one it does not (the API must say 400)."""
    if "enum" in schema:
        good: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif schema.get("type") == "integer":
        good = st.integers(-10, 2_000)
    elif schema.get("type") == "number":
        good = st.floats(-1e12, 1e12, allow_nan=False)
    else:
        good = st.sampled_from(["UMB01", "UMB02", "D1", "G", "92", "2026-04-01", "1775001600"])
    return st.one_of(good, _HOSTILE, st.text(max_size=30))


@st.composite
def _get_request(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    doc = openapi_document()
    path = draw(st.sampled_from(sorted(p for p, ops in doc["paths"].items()
                                       if "get" in ops and "{" not in p)))
    params = {}
    for p in doc["paths"][path]["get"].get("parameters", []):
        if p.get("in") == "query" and draw(st.booleans()):
            params[p["name"]] = draw(_value(p.get("schema", {})))
    return path, params, draw(st.sampled_from(["read", "admin", "none", "bogus"]))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=_get_request())
def test_documented_gets_never_fail_inside_the_platform(api: tuple[Client, Clock],
                                                        request: tuple[str, dict[str, Any], str]
                                                        ) -> None:
    """Issue 10 §7: whatever the documented parameters hold, the platform answers 200 or a
    4xx with the error shape of docs/platform-api.md §3 — never a 5xx."""
    client, _ = api
    path, params, who = request
    token = {"read": READ, "admin": ADMIN, "none": None, "bogus": "not-a-token-at-all"}[who]
    status, body, _ = client.call("GET", path, params, token=token)
    assert status < 500, (path, params, body)
    if status >= 400:
        assert isinstance(body.get("error", {}).get("code"), str), (path, params, body)
        assert status in (400, 401, 403, 404, 413), (path, params, status, body)


class _Ratio(float):
    """A float subclass, which orjson refuses and json encodes."""


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=False, allow_infinity=False).map(_Ratio) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text() | st.integers(0, 9), inner, max_size=4),
    max_leaves=20)


@given(_JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_an_answer_is_the_json_that_json_would_give(body: Any) -> None:
    # orjson encodes the answers; what it refuses falls back to json: the same document
    assert json.loads(encode(body)) == json.loads(json.dumps(body))
