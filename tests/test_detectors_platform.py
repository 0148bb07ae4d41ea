"""Detection inside the platform: the watermark, the runner on a real database filled
through the ingest (`central.store.Ingestor`), the detection service thread, alerts served
by GET /api/v1/alerts with as_of and detector, and the blind mutant."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_central_support import (
    STATIONS,
    data_message,
    fresh_database,
    heartbeat,
    inventory,
    key_file_doc,
    ready_database,
    txn,
)
from waiting import wait_for

from central.alerts import raise_alert
from central.auth import TokenStore
from central.checks import Inbound
from central.db import Database
from central.detectors.base import Settings
from central.detectors.runner import evaluate_station, progress
from central.detectors.service import DetectionService, checkpoint
from central.detectors.watermark import DeviceReport, compute_watermark
from central.http_api import Api, ApiServer
from central.keys import parse_key_file
from central.resources import Context
from central.store import Ingestor
from central.vcf import Vcf
from mutants.platform import platform_args
from mutants.platform import settings as mutant_settings

ZONE = ZoneInfo("Asia/Shanghai")
M0 = 1774972800  # 2026-04-01 00:00 Asia/Shanghai
H = 3600
READ = "read-token-0123456789"
NOW = 1.9e9





# -- the watermark ------------------------------------------------------------------------------
DEVICES = ("G", "D1", "D2")


def reports(**kw: tuple[bool, int | None]) -> dict[str, DeviceReport]:
    return {d: DeviceReport(on, None if t is None else float(t), t) for d, (on, t) in kw.items()}


def test_watermark_is_the_slowest_device_that_keeps_up() -> None:
    s = Settings()
    wm = compute_watermark(DEVICES, reports(G=(True, 1000), D1=(True, 900), D2=(True, 950)),
                           0, s)
    assert wm.watermark == 900 and wm.source == "drained_through" and not wm.excluded
    # a dispenser taken off line does not blind the station; its data counts as incomplete
    wm = compute_watermark(DEVICES, reports(G=(True, 1000), D1=(False, 100), D2=(True, 950)),
                           0, s)
    assert wm.watermark == 950 and wm.excluded == {"D1": "off line"}
    assert wm.device_through["D1"] == 100
    # so does one lagging more than a day
    day = 86400
    wm = compute_watermark(DEVICES, reports(G=(True, 3 * day), D1=(True, day),
                                            D2=(True, 3 * day - 5)), 0, s)
    assert wm.watermark == 3 * day - 5 and "lags" in wm.excluded["D1"]
    # a device that reports nothing is left out
    wm = compute_watermark(DEVICES, reports(G=(True, 1000), D2=(True, 990)), 0, s)
    assert wm.watermark == 990 and wm.device_through["D1"] == 0


def test_watermark_fallback_without_drained_through() -> None:
    s = Settings(fallback_margin_s=3600)
    rep = {d: DeviceReport(True, t, None) for d, t in (("G", 10_000.0), ("D1", 9_000.0),
                                                       ("D2", 9_500.0))}
    wm = compute_watermark(DEVICES, rep, 0, s)
    assert wm.watermark == 9_000 - 3600 and wm.source == "fallback"
    assert compute_watermark(DEVICES, rep, 5, s).watermark is None  # a backlog: wait


def test_checkpoints_are_local_hours_and_midnights() -> None:
    assert checkpoint(M0 + 5 * H + 59, Settings(), 3600) == M0 + 5 * H
    assert checkpoint(M0 + 86400 + 10, Settings(), 86400) == M0 + 86400


# -- the platform ---------------------------------------------------------------------------------
S = "UMB01"  # tanks 1:92 2:95 3:0; D1 nozzles → tanks 1, 2; D2 nozzles → tanks 1, 3


def load_station(db: Database, drained: int) -> dict:
    """A day of UMB01: fills on D1/1 (one charged 7.50 instead of the posted 7.12), gauge
    readings, a heartbeat reporting every device drained through `drained`."""
    ring = parse_key_file(json.dumps(key_file_doc()), "keys")
    conn = db.connect()
    try:
        conn.execute("INSERT INTO posted_prices (id, station_id, grade, price_fen, valid_from, "
                     "body_json, created_at, created_by) VALUES ('p1', '', '92', 712, ?, '{}', "
                     "0, 'test')", (M0 - 86400,))
        fills = []
        total = amount = 0
        for i in range(8):
            price = 750 if i == 5 else 712
            rec = txn(S, "D1", i, M0 + 8 * H + i * 1800, price=price, total_before=total,
                      amount_total_before=amount)
            total, amount = rec["volume_total_ml"], rec["amount_total_fen"]
            fills.append(rec)
        readings = [inventory(S, k, M0 + 900 * k, v20=20_000_000 - 40_000 * max(0, k - 32) // 2)
                    for k in range(96)]
        devices = [{"device": d, "online": True, "device_time": drained, "last_ok_at": NOW,
                    "failures": 0, "error": None, "drained_through": drained}
                   for d in ("G", "D1", "D2")]
        ing = Ingestor(conn, {s.station_id: s for s in STATIONS}, lambda: ring, 600.0,
                       lambda: NOW)
        outs = ing.process([Inbound(t, p, NOW) for t, p in (
            data_message(S, "D1", "transaction", fills, 1, NOW),
            data_message(S, "G", "inventory", readings, 2, NOW),
            heartbeat(S, 3, NOW, devices=devices))])
        assert all(o.status == "stored" and not o.rejected for o in outs), outs
    finally:
        conn.close()
    return fills[5]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database with the test registry, on each engine (PostgreSQL only with
    FORECOURT_PG_URL)."""
    for url in fresh_database(request.param, tmp_path):
        database = ready_database(url)
        yield database
        database.close()


@pytest.fixture
def api(db: Database) -> Iterator[str]:
    tokens = TokenStore([(READ, "read", "viewer")])
    server = ApiServer(Api(db, tokens, Context(ZONE, Vcf(), 90.0, lambda: NOW)),
                       "127.0.0.1", 0)
    server.start()
    yield server.url
    server.stop()


def get(base: str, path: str) -> dict:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {READ}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_service_raises_an_alert_served_with_as_of_and_detector(db: Database,
                                                                 api: str) -> None:
    drained = M0 + 86400 + 1800
    bad = load_station(db, drained)
    service = DetectionService(db, Settings(), interval_s=0.05, still_s=0.2)
    service.start()
    try:
        def done() -> bool:
            with db.borrow() as conn:
                return progress(conn, S)[1] == drained
        wait_for(done, what="evaluation through the watermark")
    finally:
        service.stop()
    alerts = get(api, f"/api/v1/alerts?station_id={S}")["items"]
    price = [a for a in alerts if a["kind"] == "price_mismatch"]
    assert len(price) == 1, alerts
    a = price[0]
    assert (a["device"], a["nozzle"], a["detector"]) == ("D1", 1, "price")
    assert a["as_of"] == bad["end_time"] and a["status"] == "open"
    assert a["evidence"]["charged_price_fen"] == [750]
    status = get(api, f"/api/v1/detection/status?station_id={S}")["items"][0]
    assert status["watermark"] == drained and status["evaluated_through"] == drained
    with db.borrow() as conn:
        (notes,) = conn.query_one("SELECT notes_json FROM detection_progress "
                                  "WHERE station_id = ?", (S,))
    assert "failed" not in notes  # every detector ran
    # evaluating again (a restart, an overlapping checkpoint) raises nothing twice
    with db.borrow() as conn:
        assert evaluate_station(conn, S, drained, Settings()) == []


def test_blind_mutant_raises_nothing_but_advances(db: Database) -> None:
    drained = M0 + 86400
    load_station(db, drained)
    service = DetectionService(db, mutant_settings("blind"), interval_s=0.05, still_s=0)
    with db.borrow() as conn:
        service.run_once(conn)  # moving watermark: the grid checkpoint
        service.run_once(conn)  # still: the watermark itself
        assert progress(conn, S) == (drained, drained)
        assert conn.query_one("SELECT COUNT(*) FROM alerts")[0] == 0


def test_detection_never_passes_the_watermark(db: Database) -> None:
    load_station(db, M0 + 9 * H)  # the bad fill ends at 10:30: not yet complete
    service = DetectionService(db, Settings(), interval_s=0.05, still_s=0)
    with db.borrow() as conn:
        service.run_once(conn)
        service.run_once(conn)
        assert progress(conn, S) == (M0 + 9 * H, M0 + 9 * H)
        assert conn.query_one("SELECT COUNT(*) FROM alerts")[0] == 0


def test_the_budget_defers_a_moving_station_never_a_still_one(db: Database,
                                                              monkeypatch) -> None:
    """Budget 0.25 and evaluations that take 3 s of a fake timer: while the watermark moves,
    an evaluation waits for credit; once it stood still for `still_s`, it is evaluated
    through it in debt or not."""
    import central.detectors.service as service_module

    bad = load_station(db, M0 + 8 * H)  # a fill charged 7.50, ending at 10:30
    now = [0.0]
    evaluate = service_module.evaluate_station

    def slow_evaluation(*args, **kwargs):
        now[0] += 3.0
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(service_module, "evaluate_station", slow_evaluation)
    service = DetectionService(db, Settings(), budget=0.25, still_s=5.0,
                               timer=lambda: now[0])
    with db.borrow() as conn:
        def drain_to(t: int) -> None:
            with conn.transaction():
                conn.execute("UPDATE device_status SET drained_through = ? "
                             "WHERE station_id = ?", (t, S))

        # credit accrues 0.25 s per second of the timer, evaluations included
        service.run_once(conn)  # t 0 → 3, credit 2 → −1
        assert progress(conn, S) == (M0 + 8 * H, M0 + 8 * H)
        drain_to(M0 + 12 * H)
        service.run_once(conn)  # t 3, credit −0.25: moving, deferred; watermark recorded
        assert progress(conn, S) == (M0 + 12 * H, M0 + 8 * H) and service.deferred == 1
        drain_to(M0 + 13 * H)
        service.run_once(conn)  # t 3, −0.25: deferred again
        assert progress(conn, S) == (M0 + 13 * H, M0 + 8 * H) and service.deferred == 2
        assert conn.query_one("SELECT COUNT(*) FROM alerts")[0] == 0
        now[0] += 4.0
        drain_to(M0 + 14 * H + 1800)
        service.run_once(conn)  # t 7, credit 0.75: through the grid's 14:00; t 10, −2.25
        assert progress(conn, S) == (M0 + 14 * H + 1800, M0 + 14 * H)
        (as_of,) = conn.query_one("SELECT as_of FROM alerts WHERE kind = 'price_mismatch'")
        assert as_of == bad["end_time"]  # from the data, not from when it was evaluated
        drain_to(M0 + 16 * H + 1800)
        service.run_once(conn)  # t 10, −1.5: moving, deferred
        assert progress(conn, S)[1] == M0 + 14 * H and service.deferred == 3
        service.run_once(conn)  # t 10: unmoved for 0 s, not still yet
        assert progress(conn, S)[1] == M0 + 14 * H and service.deferred == 4
        now[0] += 5.0
        service.run_once(conn)  # t 15, credit −0.25: still for 5 s, evaluated through it
        assert progress(conn, S) == (M0 + 16 * H + 1800, M0 + 16 * H + 1800)
        assert service.evaluations == 3


def test_a_station_standing_still_while_others_move_pays_from_the_budget(monkeypatch) -> None:
    """A compressed run's world waits for one station's FIFO: the other stations' data stand
    still while that one's moves. They are evaluated only as credit allows; once no
    station's data has moved for `still_s`, each is evaluated through its watermark in debt
    or not (the end of a run). Stations, watermarks and a 3-s evaluation are faked."""
    from types import SimpleNamespace

    import central.detectors.service as service_module

    water = {"A": M0 + 10 * H, "B": M0 + 10 * H}
    evaluated = {"A": M0 + 9 * H, "B": M0 + 9 * H}
    now, calls = [0.0], []

    def evaluate(conn, sid, through, settings, **kwargs):
        now[0] += 3.0
        calls.append(sid)
        evaluated[sid] = through
        return []

    monkeypatch.setattr(service_module, "station_watermark",
                        lambda conn, sid, settings: SimpleNamespace(watermark=water[sid],
                                                                    excluded={}))
    monkeypatch.setattr(service_module, "progress", lambda conn, sid: (water[sid], evaluated[sid]))
    monkeypatch.setattr(service_module, "record_progress", lambda *args: None)
    monkeypatch.setattr(service_module, "evaluate_station", evaluate)
    service = DetectionService(None, Settings(), budget=0.25, still_s=5.0,  # type: ignore[arg-type]
                               timer=lambda: now[0])
    service.run_station(None, "A")  # t 0, credit 2: evaluated; t 3, credit −1
    service.run_station(None, "B")  # moving (first seen), in debt: deferred
    assert calls == ["A"] and service.deferred == 1
    now[0] += 6.0
    water["A"] += 2 * H  # A drains on; B has not moved for 6 s
    service.run_station(None, "A")  # moving, in debt: deferred
    service.run_station(None, "B")  # still, but A moved just now: deferred too
    assert calls == ["A"] and service.deferred == 3
    now[0] += 5.0  # nothing moves any more: the data has stopped
    service.run_station(None, "A")
    service.run_station(None, "B")
    assert calls == ["A", "A", "B"]
    assert evaluated == {"A": M0 + 12 * H, "B": M0 + 10 * H}  # through each watermark


def test_alert_store_keeps_detector_fields(db: Database) -> None:
    with db.borrow() as conn, conn.transaction():
        raise_alert(conn, station_id=S, kind="gauge_step", severity="critical", raised_at=NOW,
                    title="t", tank=1, dedup_key="x", as_of=M0 + 5.0, detector="gauge")
    with db.borrow() as conn:
        assert conn.query_one("SELECT as_of, detector FROM alerts") == (M0 + 5.0, "gauge")


def test_platform_options() -> None:
    from central.cli import _parser

    base = ["--db", "sqlite:///x.db"]
    args = _parser().parse_args(base + [*platform_args("jumpy"), "--detect-interval", "0.25"])
    assert args.limit_scale == 0.05 and args.detect_interval == 0.25 and not args.no_detect
    assert _parser().parse_args(base + list(platform_args("blind"))).no_detect
    default = _parser().parse_args(base)
    assert default.limit_scale == 1.0 and not default.no_detect
    for bad in (["--limit-scale", "0"], ["--detect-interval", "0"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(base + bad)
