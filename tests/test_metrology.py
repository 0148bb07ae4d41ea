"""MET-1's parts, each on its own: the world's metrology paperwork (sim/metrology.py and the
kinds verification_lapse, unsigned_record, seal_mismatch), the platform's record intake
(POST /api/v1/verification-records: bad documents refused with nothing stored), its audit
(central/metrology.py, the metrology detector, GET /api/v1/metrology) and the --no-metrology
switch. The MET-1 checker on hand-made run directories is tests/test_checkers_metrology.py."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import numpy as np
import pytest
import simpy
from test_central_support import ready_database
from test_cheats import DAY, START, cheat, run

from central.auth import TokenStore
from central.detectors.base import Context as DetectContext
from central.detectors.base import Settings
from central.detectors.data import StationData
from central.detectors.metrology import MetrologyDetector
from central.http_api import Api, Response
from central.metrology import dispenser_audit, findings
from central.resources import Context
from central.vcf import Vcf
from sim.metrology import VALIDITY_S, MetrologyBook

ZONE = ZoneInfo("Asia/Shanghai")
ADMIN, READ = "admin-token-0123456789", "read-token-0123456789"
HOUR = 3600.0


# ---------------------------------------------------------------- the world's paperwork

def book(start: float = START, days: float = 200.0, dispensers=(1, 2, 3, 4),
         seed: int = 5) -> tuple[MetrologyBook, list[tuple[str, Any]]]:
    got: list[tuple[str, Any]] = []
    b = MetrologyBook("S1", dispensers, start, start + days * DAY, ZONE,
                      np.random.SeedSequence(seed), lambda kind, rec: got.append((kind, rec)))
    return b, got


def run_book(b: MetrologyBook) -> None:
    env = simpy.Environment(initial_time=b.start)
    b.opening()
    for p in b.processes(env):
        env.process(p)
    env.run(until=b.end)
    b.finish(b.end)


def test_each_dispenser_was_verified_in_the_six_months_before_the_run():
    r = run(days=1.0)
    opening = r.truth["verification_record"]
    assert sorted(v.device for v in opening) == ["D1", "D2", "D3"]
    for v in opening:
        body = json.loads(v.body)
        assert START - VALIDITY_S < v.performed_at < START and v.valid_until > START
        assert v.valid_until == v.performed_at + VALIDITY_S and v.fully_signed
        assert body["kind"] == "verification" and body["result"] == "pass"
        assert set(body["signatures"]) == {"maintainer", "verifier", "station"}
        assert datetime.fromisoformat(body["valid_until"]).timestamp() == v.valid_until
        assert [s["position"] for s in body["seals"]] == ["transducer", "encoder", "mainboard"]
        assert all(s["before"] == s["after"] for s in body["seals"])


def test_the_institute_verifies_every_dispenser_before_its_validity_ends():
    b, got = book(days=400.0)
    run_book(b)
    records = [r for kind, r in got if kind == "verification_record"]
    assert not [r for kind, r in got if kind == "verification_lapse"]
    for dev in ("D1", "D2", "D3", "D4"):
        mine = [r for r in records if r.device == dev]
        assert len(mine) >= 3  # the opening one and at least two rounds in 400 days
        for prev, nxt in zip(mine, mine[1:], strict=False):
            assert prev.performed_at < nxt.performed_at < prev.valid_until  # never lapses
            assert prev.valid_until - nxt.performed_at <= 10 * DAY + DAY
            hour = datetime.fromtimestamp(nxt.performed_at, ZONE).hour
            assert 9 <= hour < 16 or nxt.performed_at < b.start + HOUR
            assert not nxt.seal_mismatch and nxt.fully_signed


def test_the_paperwork_is_deterministic_and_one_dispenser_never_moves_another():
    a, got_a = book()
    run_book(a)
    b, got_b = book()
    run_book(b)
    assert got_a == got_b
    c, got_c = book()
    c.hold(2, START + 3 * DAY, None, 0)  # dispenser 2 lapses: the others are untouched
    run_book(c)
    others = [r for k, r in got_a if k == "verification_record" and r.device != "D2"]
    assert others == [r for k, r in got_c if k == "verification_record" and r.device != "D2"]
    d, got_d = book(seed=6)
    run_book(d)
    assert got_d != got_a


def test_planned_verifications_fall_before_the_due_instant_and_not_before_the_start():
    b, _ = book()
    due = START + 5 * DAY + 7 * HOUR
    at = b.planned(due, 3, 10.5)
    assert datetime.fromtimestamp(at, ZONE).strftime("%m-%d %H:%M") == "04-08 10:30"
    soon = START + 2 * HOUR  # due right after the start: halfway, at most an hour in
    assert b.planned(soon, 5, 9.0) == START + HOUR
    assert b.planned(START + 20 * 60, 5, 9.0) == START + 10 * 60


def test_a_lapsed_verification_leaves_the_dispenser_selling_until_the_late_one():
    expiry, late = START + 6 * HOUR, START + 2 * DAY
    r = run(cheat("verification_lapse", dispenser=2, start=expiry, end=late), days=3.0)
    (lapse,) = r.truth["verification_lapse"]
    assert (lapse.device, lapse.cheat, lapse.expired_at, lapse.renewed_at) == (
        "D2", 0, expiry, late)
    d2 = sorted((v for v in r.truth["verification_record"] if v.device == "D2"),
                key=lambda v: v.performed_at)
    assert d2[0].valid_until == expiry and d2[0].cheat == -1  # the opening record
    assert (d2[-1].performed_at, d2[-1].cheat, d2[-1].kind) == (late, 0, "verification")
    assert any(expiry < t.end_time < late for t in r.fills(2))  # it sold while expired
    inst = r.instance
    assert json.loads(inst.trace) == ["verification_expired", "verification_record"]
    assert json.loads(inst.expected_alerts) == ["verification_expired"]
    # never renewed inside the run: one open lapse
    r = run(cheat("verification_lapse", dispenser=2, start=expiry), days=1.0)
    (lapse,) = r.truth["verification_lapse"]
    assert lapse.expired_at == expiry and math.isnan(lapse.renewed_at)


def test_an_unsigned_record_lacks_its_signatory_and_chains_the_seals():
    at = START + DAY + 8 * HOUR
    r = run(cheat("unsigned_record", dispenser=1, nozzle=1, start=at, adjust=0.001),
            days=2.0)
    (rec,) = [v for v in r.truth["verification_record"] if v.cheat == 0]
    body = json.loads(rec.body)
    assert (rec.kind, rec.fully_signed, rec.missing_signatures) == ("maintenance", False,
                                                                   "verifier")
    assert set(body["signatures"]) == {"maintainer", "station"}
    assert body["parameters"][0]["new_value"] == pytest.approx(1.001)
    opening = json.loads(next(v.body for v in r.truth["verification_record"]
                              if v.device == "D1" and v.cheat == -1))
    seals = {s["position"]: s for s in body["seals"]}
    assert seals["transducer"]["before"] == opening["seals"][0]["after"]
    assert seals["transducer"]["after"] != seals["transducer"]["before"]  # a new seal
    assert not rec.seal_mismatch
    assert [(e.code, e.time) for e in r.rec["events"] if e.code in (12, 20, 23)] == [
        (20, at), (12, at), (23, at + 1800)]
    inst = r.instance
    assert set(json.loads(inst.expected_alerts)) == {"record_unsigned", "parameter_change",
                                                     "seal_broken"}
    r = run(cheat("unsigned_record", dispenser=1, nozzle=1, start=at, adjust=0.001,
                  missing="station"), days=2.0)
    (rec,) = [v for v in r.truth["verification_record"] if v.cheat == 0]
    assert rec.missing_signatures == "station"


def test_a_seal_replaced_without_a_record_breaks_the_chain_at_the_next_record():
    at = START + DAY
    r = run(cheat("seal_mismatch", dispenser=3, start=at, record_after_h=5), days=2.0)
    (rec,) = [v for v in r.truth["verification_record"] if v.cheat == 0]
    assert rec.performed_at == at + 5 * HOUR and rec.fully_signed and rec.seal_mismatch
    seals = {s["position"]: s for s in json.loads(rec.body)["seals"]}
    assert seals["transducer"]["before"].startswith("ZS")
    assert seals["transducer"]["after"] == seals["transducer"]["before"]
    assert seals["encoder"]["before"] == seals["encoder"]["after"]
    assert not [e for e in r.rec["events"] if e.code in (20, 23)]  # no sensor: no trace
    assert json.loads(r.instance.trace) == ["verification_record", "seal_mismatch"]
    r = run(cheat("seal_mismatch", dispenser=3, start=at, record_after_h=5, log_events=True),
            days=2.0)
    assert [(e.code, e.time) for e in r.rec["events"] if e.code in (20, 23)] == [
        (20, at), (23, at + 600)]
    assert json.loads(r.instance.expected_alerts) == ["seal_mismatch", "seal_broken"]


@pytest.mark.parametrize(("kind", "kw", "message"), [
    ("verification_lapse", dict(dispenser=1, nozzle=1), "nozzle must be omitted"),
    ("seal_mismatch", dict(dispenser=1, record_after_h=0.1, log_events=True,
                           seal_minutes=30), "seal_minutes must end before the record"),
    ("unsigned_record", dict(dispenser=1, nozzle=1, adjust=0.001, missing="maintainer"),
     "params.missing must be one of"),
    ("unsigned_record", dict(dispenser=1, nozzle=1), "needs params.adjust"),
])
def test_a_bad_metrology_cheat_is_refused_naming_the_field(kind: str, kw: dict,
                                                          message: str):
    with pytest.raises(ValueError, match=message):
        run(cheat(kind, **kw), days=0.5)


# ---------------------------------------------------------------- intake: POST /verification-records

@pytest.fixture
def api(tmp_path: Path) -> Api:
    db = ready_database(f"sqlite:///{tmp_path / 'platform.db'}")
    return Api(db, TokenStore([(ADMIN, "admin", "harness"), (READ, "read", "r")]),
               Context(ZONE, Vcf(), 90.0, lambda: 1.9e9))


def call(api: Api, method: str, path: str, body: Any = None,
         token: str = ADMIN) -> Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return api.handle(method, path, headers,
                      None if body is None else json.dumps(body).encode("utf-8"))


def stored(api: Api) -> list[dict[str, Any]]:
    return call(api, "GET", "/api/v1/verification-records?limit=1000").body["items"]


RECORD = {"station_id": "UMB01", "device": "D1", "nozzle": 2, "kind": "verification",
          "performed_at": "2026-04-02T10:00:00+08:00",
          "valid_until": "2026-10-01T10:00:00+08:00", "result": "pass",
          "certificate_no": "JD-2026-0001", "organisation": "巴彦淖尔市计量检定测试所",
          "signatures": {"maintainer": "维修部", "verifier": "计量所", "station": "站长"},
          "seals": [{"position": "transducer", "before": "QF1", "after": "QF2"}]}


def test_a_record_missing_a_signature_is_stored_and_says_so(api: Api):
    ok = call(api, "POST", "/api/v1/verification-records", RECORD)
    assert ok.status == 201 and ok.body["fully_signed"] is True
    assert ok.body["signatures_missing"] == []
    partial = dict(RECORD, kind="maintenance", certificate_no="WX-1",
                   signatures={"maintainer": "维修部", "station": "站长"})
    del partial["valid_until"], partial["result"]
    got = call(api, "POST", "/api/v1/verification-records", partial)
    assert got.status == 201 and got.body["fully_signed"] is False
    assert got.body["signatures_missing"] == ["verifier"]
    items = {i["certificate_no"]: i for i in stored(api)}
    assert items["WX-1"]["signatures_missing"] == "verifier"
    assert items["JD-2026-0001"]["valid_until_epoch"] == datetime(
        2026, 10, 1, 10, tzinfo=ZONE).timestamp()


def _without(doc: dict, key: str) -> dict:
    out = copy.deepcopy(doc)
    del out[key]
    return out


@pytest.mark.parametrize(("body", "status", "parameter"), [
    (dict(RECORD, station_id="UMB99"), 400, "station_id"),
    (dict(RECORD, device="D7"), 400, "device"),
    (dict(RECORD, nozzle=3), 400, "nozzle"),
    (dict(RECORD, device="X1"), 400, "device"),
    (_without(RECORD, "organisation"), 400, "$"),
    (dict(RECORD, performed_at="yesterday"), 400, "performed_at"),
    (dict(RECORD, valid_until="2026-04-01"), 400, "valid_until"),  # before performed_at
    (dict(RECORD, signatures={"maintainer": "维修部", "station": "站长"}), 400,
     "signatures.verifier"),  # a verification the institute did not sign
    (dict(RECORD, kind="maintenance", signatures={"verifier": "计量所"}), 400,
     "signatures.maintainer"),
    (dict(RECORD, signatures={}), 400, "signatures"),
    (dict(RECORD, seals=[{"position": "transducer", "before": "QF1"},
                         {"position": "transducer", "after": "QF2"}]), 400,
     "seals[1].position"),
    (dict(RECORD, seals=[{"position": "pump"}]), 400, "seals[0]"),
    (dict(RECORD, extra=1), 400, "$"),
])
def test_a_bad_record_is_refused_naming_the_field_and_nothing_is_stored(
        api: Api, body: dict, status: int, parameter: str):
    got = call(api, "POST", "/api/v1/verification-records", body)
    assert got.status == status, got.body
    assert got.body["error"]["parameter"].startswith(parameter), got.body
    assert got.body["error"]["message"]
    assert stored(api) == []


def test_a_duplicate_record_is_a_conflict_and_changes_nothing(api: Api):
    assert call(api, "POST", "/api/v1/verification-records", RECORD).status == 201
    again = call(api, "POST", "/api/v1/verification-records", RECORD)
    assert again.status == 409 and again.body["error"]["parameter"] == "certificate_no"
    same_work = dict(RECORD, certificate_no="JD-2026-0002")  # same device, kind, instant
    again = call(api, "POST", "/api/v1/verification-records", same_work)
    assert again.status == 409 and again.body["error"]["parameter"] == "performed_at"
    assert len(stored(api)) == 1
    read = call(api, "POST", "/api/v1/verification-records",
                dict(RECORD, certificate_no="JD-3"), token=READ)
    assert read.status == 403 and len(stored(api)) == 1


# ---------------------------------------------------------------- the audit and its alerts

M0 = 1774972800  # 2026-04-01 00:00 Asia/Shanghai


def station(records: list[dict[str, Any]], through: float = M0 + 30 * DAY,
            states: list[dict[str, Any]] | None = None) -> StationData:
    cols: dict[str, list[Any]] = {c: [] for c in ("id", "device", "nozzle", "kind",
                                                  "performed_at", "fully_signed", "valid_until",
                                                  "result", "certificate_no", "seals",
                                                  "missing")}
    for i, r in enumerate(records):
        full = {"id": f"r{i}", "nozzle": 0, "kind": "verification", "fully_signed": 1,
                "valid_until": math.nan, "result": "pass", "certificate_no": f"C{i}",
                "seals": "[]", "missing": "", **r}
        for c in cols:
            cols[c].append(full[c])
    streams: dict[str, Any] = {"records": cols}
    if states:
        streams["states"] = {c: [s.get(c, "" if c.endswith("_id") or c == "device"
                                       or c == "serial_number" else 0) for s in states]
                             for c in ("device", "seq", "device_time", "serial_number",
                                       "software_id", "mainboard_id", "encoder_id",
                                       "seal_state", "device_status")}
    return StationData("S1", int(through), {1: "92"}, {("D1", 1): 1, ("D2", 1): 1}, streams)


def seals(before: str, after: str) -> str:
    return json.dumps([{"position": "transducer", "before": before, "after": after}])


def proposals(data: StationData, **settings: Any) -> list[tuple[str, str, int | None, int]]:
    ctx = DetectContext(settings=Settings(**settings))
    return sorted((p.kind, p.device or "", p.nozzle, p.as_of)
                  for p in MetrologyDetector().evaluate(data, ctx))


def test_an_expired_verification_is_flagged_at_its_end_and_only_then():
    v = M0 + 10 * DAY + 0.5
    opening = {"device": "D1", "performed_at": v - VALIDITY_S, "valid_until": v}
    data = station([opening, {"device": "D2", "performed_at": M0 - DAY,
                              "valid_until": M0 + 90 * DAY}])
    assert proposals(data) == [("verification_expired", "D1", None, math.ceil(v))]
    assert proposals(data.cut(int(v))) == []  # not yet: the validity has not ended
    # renewed in time: nothing; renewed late: still flagged once, at the end
    on_time = {"device": "D1", "performed_at": v - 3 * DAY, "valid_until": v + VALIDITY_S}
    assert proposals(station([opening, on_time])) == []
    late = {"device": "D1", "performed_at": v + 2 * DAY, "valid_until": v + VALIDITY_S}
    assert proposals(station([opening, late])) == [
        ("verification_expired", "D1", None, math.ceil(v))]
    # a failed verification renews nothing; a maintenance record neither
    for other in (dict(on_time, result="fail"), dict(on_time, kind="maintenance")):
        assert proposals(station([opening, other]))[0][0] == "verification_expired"


def test_unsigned_records_and_broken_seal_chains_are_flagged_and_a_clean_chain_is_not():
    t = M0 + 5 * DAY
    clean = [{"device": "D1", "performed_at": M0 - 50 * DAY, "valid_until": M0 + 100 * DAY,
              "seals": seals("QF1", "QF1")},
             {"device": "D1", "kind": "maintenance", "performed_at": t,
              "seals": seals("QF1", "QF2")}]
    assert proposals(station(clean)) == []
    unsigned = [clean[0], dict(clean[1], fully_signed=0, missing="verifier", nozzle=1)]
    assert proposals(station(unsigned)) == [("record_unsigned", "D1", 1, t)]
    broken = [clean[0], dict(clean[1], seals=seals("ZS9", "ZS9"))]
    assert proposals(station(broken)) == [("seal_mismatch", "D1", None, t)]
    (f,) = findings(station(broken).records, int(M0 + 30 * DAY))
    assert f.evidence["seals"][0]["found"] == "ZS9"
    assert f.evidence["seals"][0]["expected"] == "QF1"
    # --no-metrology: stored, never audited
    assert proposals(station(broken), metrology=False) == []
    assert proposals(station(unsigned), metrology=False) == []


def test_the_audit_lists_each_dispenser_with_its_status_and_findings():
    v = M0 + 10 * DAY
    data = station([{"device": "D1", "performed_at": v - VALIDITY_S, "valid_until": v},
                    {"device": "D2", "performed_at": M0 - DAY, "valid_until": M0 + 90 * DAY},
                    {"device": "D2", "kind": "maintenance", "performed_at": M0 + DAY,
                     "fully_signed": 0, "missing": "station"}],
                   states=[{"device": "D2", "seq": 1, "device_time": M0, "mainboard_id": "A"},
                           {"device": "D2", "seq": 2, "device_time": M0 + 3 * DAY,
                            "mainboard_id": "B"}])
    items = {i["device"]: i for i in dispenser_audit(data, int(M0 + 30 * DAY))}
    assert items["D1"]["status"] == "expired" and items["D1"]["overdue_since"] == v
    assert items["D1"]["overdue_days"] == pytest.approx(20.0)
    assert [e["time"] for e in items["D1"]["expired"]] == [v]
    assert items["D2"]["status"] == "valid" and items["D2"]["flagged"]
    assert items["D2"]["unsigned_records"][0]["missing"] == ["station"]
    assert [c["what"] for c in items["D2"]["unsigned_changes"]] == ["mainboard_id"]
    before = {i["device"]: i["status"] for i in dispenser_audit(data, int(v - 1))}
    assert before == {"D1": "valid", "D2": "valid"}


def test_get_metrology_serves_the_audit_with_filters_and_nothing_without_it(api: Api):
    body = dict(RECORD, nozzle=None, valid_until="2026-04-03")  # a date: through that day
    del body["nozzle"]
    assert call(api, "POST", "/api/v1/verification-records", body).status == 201
    unsigned = dict(RECORD, kind="maintenance", certificate_no="WX-9",
                    performed_at="2026-04-02T15:00:00+08:00",
                    signatures={"maintainer": "维修部"},
                    seals=[{"position": "transducer", "before": "ZS1", "after": "ZS1"}])
    del unsigned["valid_until"], unsigned["result"], unsigned["nozzle"]
    assert call(api, "POST", "/api/v1/verification-records", unsigned).status == 201
    with api.db.borrow() as conn:  # the detectors have evaluated UMB01 to 2026-04-05
        conn.execute("INSERT INTO detection_progress (station_id, watermark, "
                     "evaluated_through, updated_at) VALUES (?, ?, ?, ?)",
                     ("UMB01", M0 + 4 * DAY, M0 + 4 * DAY, 1.9e9))
    got = call(api, "GET", "/api/v1/metrology?station_id=UMB01").body["items"]
    schemas = json.loads(call(api, "GET", "/openapi.json").body)["components"]["schemas"]
    for item in got:  # the published item schema (docs/platform-api.md §5.14)
        jsonschema.Draft202012Validator(schemas["Metrology"]).validate(item)
    for item in stored(api):
        jsonschema.Draft202012Validator(schemas["VerificationRecords"]).validate(item)
    by = {i["device"]: i for i in got}
    assert set(by) == {"D1", "D2"}
    assert by["D1"]["status"] == "expired"
    assert by["D1"]["valid_until"] == datetime(2026, 4, 4, tzinfo=ZONE).timestamp()
    assert by["D1"]["unsigned_records"][0]["missing"] == ["verifier", "station"]
    assert by["D1"]["seal_mismatches"][0]["seals"][0]["expected"] == "QF2"
    assert by["D2"]["status"] == "no_record" and not by["D2"]["flagged"]
    only = call(api, "GET", "/api/v1/metrology?status=expired").body["items"]
    assert [(i["station_id"], i["device"]) for i in only] == [("UMB01", "D1")]
    bad = call(api, "GET", "/api/v1/metrology?status=old")
    assert bad.status == 400 and bad.body["error"]["parameter"] == "status"
    assert call(api, "GET", "/api/v1/metrology?from=2026-04-01").status == 400
    off = Api(api.db, api.tokens, Context(ZONE, Vcf(), 90.0, lambda: 1.9e9, metrology=False))
    assert call(off, "GET", "/api/v1/metrology").body == {"items": [], "next_cursor": None}
    assert len(stored(off)) == 2  # the records are still stored and served


def test_paging_the_metrology_audit_lists_every_dispenser_once_in_number_order(api, monkeypatch):
    """Eleven dispensers walked two at a time: D10 and D11 come after D9 (a cursor that
    compared device names as texts skipped them: "D10" < "D2")."""
    import central.resources

    rows = [{"station_id": "UMB01", "device": f"D{n}", "status": "valid", "flagged": False}
            for n in range(1, 12)]
    monkeypatch.setattr(central.resources, "station_audit", lambda conn, sid: list(rows))
    walked, cursor = [], ""
    for _ in range(12):
        page = call(api, "GET", f"/api/v1/metrology?station_id=UMB01&limit=2{cursor}").body
        walked += [i["device"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert walked == [f"D{n}" for n in range(1, 12)]
