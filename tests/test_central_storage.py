"""Platform storage and batch ingest (central.store) on SQLite and PostgreSQL.

The same tests run on both engines; PostgreSQL ones are skipped unless FORECOURT_PG_URL
is set. Messages are signed by the tests' own helper, not by central.signing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_central_support import (
    KEYS,
    STATIONS,
    T0,
    data_message,
    delivery,
    fresh_database,
    heartbeat,
    inventory,
    key_file_doc,
    online,
    ready_database,
    state,
    txn,
    verify_ack,
)

from central.checks import Inbound
from central.db import Database
from central.keys import parse_key_file
from central.migrate import MigrationError, discover, migrate, split_statements
from central.registry import import_registry
from central.store import Ingestor

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database on each engine (PostgreSQL only with FORECOURT_PG_URL)."""
    yield from fresh_database(request.param, tmp_path)


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_ingestor(db: Database, clock: Clock, window: float = 600.0) -> Ingestor:
    ring = parse_key_file(json.dumps(key_file_doc()), "test-keys")
    return Ingestor(db.connect(), {s.station_id: s for s in STATIONS}, lambda: ring, window,
                    clock)


def inbound(topic_payload: tuple[str, bytes], at: float = NOW, retained: bool = False) -> Inbound:
    return Inbound(topic_payload[0], topic_payload[1], at, retained)


def count(db: Database, table: str) -> int:
    with db.borrow() as conn:
        return int(conn.query_one(f"SELECT COUNT(*) FROM {table}")[0])


def counters(db: Database, station: str = "UMB01") -> dict[str, int]:
    with db.borrow() as conn:
        return {n: int(v) for n, v in conn.query(
            "SELECT name, value FROM ingest_counters WHERE station_id = ?", (station,))}


# -- migrations ------------------------------------------------------------------------------
def test_migrations_apply_once_and_refuse_edited_files(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    shipped = [m.path.name.split(".")[0] for m in discover(db.dialect)]
    assert shipped[:2] == ["0001_initial", "0002_cheat_warning"]
    assert migrate(db) == shipped
    assert migrate(db) == []
    edited = tmp_path / "migrations"
    edited.mkdir()
    for mig in discover(db.dialect):
        (edited / mig.path.name).write_text(mig.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(db, edited)


def test_migration_discovery_prefers_dialect_files(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (x INTEGER);")
    (tmp_path / "0002_b.postgresql.sql").write_text("CREATE TABLE b (x BIGINT);")
    assert [m.path.name for m in discover("postgresql", tmp_path)] == [
        "0001_a.sql", "0002_b.postgresql.sql"]
    assert [m.path.name for m in discover("sqlite", tmp_path)] == ["0001_a.sql", "0002_b.sql"]
    (tmp_path / "0004_gap.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        discover("sqlite", tmp_path)


def test_statement_splitter_drops_comments() -> None:
    sql = "-- head\nCREATE TABLE a (\n  x INTEGER -- why\n);\n\nCREATE INDEX i ON a (x);\n"
    assert split_statements(sql) == ["CREATE TABLE a (\n  x INTEGER\n)",
                                     "CREATE INDEX i ON a (x)"]


def test_registry_import_deactivates_dropped_stations(db_url: str) -> None:
    db = ready_database(db_url)
    with db.borrow() as conn:
        import_registry(conn, STATIONS[:2])
        rows = conn.query("SELECT station_id, active FROM stations ORDER BY station_id")
        tanks = conn.query("SELECT COUNT(*) FROM station_tanks")[0][0]
        nozzles = conn.query("SELECT station_id, dispenser, nozzle, tank FROM station_nozzles "
                             "WHERE station_id = 'UMB02' ORDER BY dispenser, nozzle")
    assert [(s, int(a)) for s, a in rows] == [("UMB01", 1), ("UMB02", 1), ("UMB03", 0)]
    assert int(tanks) == 5
    assert [tuple(int(x) if i else x for i, x in enumerate(r)) for r in nozzles] == [
        ("UMB02", 1, 1, 1), ("UMB02", 1, 2, 2), ("UMB02", 2, 1, 2), ("UMB02", 2, 2, 2)]


# -- exactly once ------------------------------------------------------------------------------
def test_records_are_stored_once_and_resends_are_acked_as_duplicates(db_url: str) -> None:
    db = ready_database(db_url)
    clock = Clock()
    ing = make_ingestor(db, clock)
    recs = [txn("UMB01", "D1", 65534 + i, T0 + 600 * i, total_before=40_000 * i,
                amount_total_before=28_480 * i) for i in range(3)]
    recs[2]["seq"] = 0  # wrapped; the key carries the device time, so it stays unique
    recs[2]["key"] = f"UMB01/D1/transactions/0/{recs[2]['start_time']}"
    recs[1]["seq"] = 65535
    recs[1]["key"] = f"UMB01/D1/transactions/65535/{recs[1]['start_time']}"
    [out] = ing.process([inbound(data_message("UMB01", "D1", "transaction", recs, 1, NOW))])
    assert out.status == "stored"
    assert out.accepted == [r["key"] for r in recs] and not out.duplicates
    ack_topic, ack_raw = out.ack
    ack = verify_ack(ack_topic, ack_raw, KEYS["UMB01"]["k1"])
    assert ack_topic == "fsx/v1/UMB01/ack"
    assert ack["acked_msg_seq"] == 1 and ack["msg_seq"] == 1 and ack["accepted"] == out.accepted

    # The collector resends two of them (new message) plus one new record.
    new = txn("UMB01", "D1", 1, T0 + 5000, total_before=120_000, amount_total_before=85_440)
    [out2] = ing.process([inbound(data_message("UMB01", "D1", "transaction",
                                               [recs[0], recs[2], new], 2, NOW + 1))])
    assert out2.accepted == [new["key"]]
    assert out2.duplicates == [recs[0]["key"], recs[2]["key"]]
    ack2 = verify_ack(*out2.ack, KEYS["UMB01"]["k1"])
    assert ack2["msg_seq"] == 2 and ack2["duplicates"] == out2.duplicates
    assert count(db, "transactions") == 4
    c = counters(db)
    assert c["records:accepted"] == 4 and c["records:duplicates"] == 2
    assert c["messages:transaction"] == 2

    with db.borrow() as conn:
        stored = conn.query_dicts("SELECT * FROM transactions WHERE key = ?", (new["key"],))[0]
    for field in ("seq", "nozzle", "grade", "tank", "start_time", "end_time", "volume_ml",
                  "amount_fen", "unit_price_fen", "volume_total_ml", "amount_total_fen"):
        assert stored[field] == new[field], field
    assert stored["received_at"] == NOW


def test_same_key_with_other_values_is_a_conflict_not_a_duplicate(db_url: str) -> None:
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    rec = txn("UMB01", "D1", 7, T0)
    ing.process([inbound(data_message("UMB01", "D1", "transaction", [rec], 1, NOW))])
    tampered = dict(rec, volume_ml=rec["volume_ml"] + 10)
    [out] = ing.process([inbound(data_message("UMB01", "D1", "transaction", [tampered], 2,
                                              NOW))])
    assert out.rejected == [(rec["key"], "conflict")] and not out.accepted
    resent = dict(rec, collected_at=rec["collected_at"] + 60)  # re-read later: a duplicate
    [out] = ing.process([inbound(data_message("UMB01", "D1", "transaction", [resent], 3,
                                              NOW))])
    assert out.duplicates == [rec["key"]] and not out.rejected
    assert count(db, "transactions") == 1
    assert counters(db)["records:rejected:conflict"] == 1
    with db.borrow() as conn:
        (vol,) = conn.query_one("SELECT volume_ml FROM transactions")
    assert int(vol) == rec["volume_ml"]


def test_a_resend_inside_one_batch_is_a_duplicate_and_a_changed_one_a_conflict(
        db_url: str) -> None:
    """New rows of a batch are inserted together at its end (COPY on PostgreSQL): a later
    message of the same batch must still see them."""
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    rec = txn("UMB01", "D1", 7, T0)
    other = txn("UMB01", "D1", 8, T0 + 600, total_before=40_000, amount_total_before=28_480)
    tampered = dict(rec, volume_ml=rec["volume_ml"] + 10)
    outs = ing.process([inbound(data_message("UMB01", "D1", "transaction", [rec], 1, NOW)),
                        inbound(data_message("UMB01", "D1", "transaction", [rec, other], 2,
                                             NOW)),
                        inbound(data_message("UMB01", "D1", "transaction", [tampered], 3,
                                             NOW))])
    assert [o.accepted for o in outs] == [[rec["key"]], [other["key"]], []]
    assert [o.duplicates for o in outs] == [[], [rec["key"]], []]
    assert outs[2].rejected == [(rec["key"], "conflict")]
    assert count(db, "transactions") == 2 and count(db, "record_chain") == 2
    with db.borrow() as conn:
        (vol,) = conn.query_one("SELECT volume_ml FROM transactions WHERE key = ?",
                                (rec["key"],))
    assert int(vol) == rec["volume_ml"]


def test_a_record_stored_by_another_instance_since_the_lookup_is_skipped(db_url: str) -> None:
    """The chain lock makes a second instance on the database wait for the first's commit,
    so its key lookup sees the rows. Should a row still appear in between (a writer without
    that lock), the bulk insert skips it instead of failing the batch on the primary key."""
    db = ready_database(db_url)
    first, second = make_ingestor(db, Clock()), make_ingestor(db, Clock())
    rec = txn("UMB01", "D1", 7, T0)
    assert first.process([inbound(data_message("UMB01", "D1", "transaction", [rec], 1,
                                               NOW))])[0].accepted
    looked_up = second.conn.query

    def before_the_commit(sql: str, params=()):  # the key lookup ran before the commit
        return [] if sql.startswith("SELECT key, digest") else looked_up(sql, params)

    second.conn.query = before_the_commit  # type: ignore[method-assign]
    [out] = second.process([inbound(data_message("UMB01", "D1", "transaction", [rec], 2,
                                                 NOW))])
    assert out.status == "stored"
    assert count(db, "transactions") == 1


def test_record_with_wrong_key_is_rejected_in_the_ack(db_url: str) -> None:
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    good = txn("UMB01", "D1", 1, T0)
    bad = txn("UMB01", "D1", 2, T0 + 300)
    bad["key"] = f"UMB01/D2/transactions/2/{T0 + 300}"  # names another device
    [out] = ing.process([inbound(data_message("UMB01", "D1", "transaction", [good, bad], 1,
                                              NOW))])
    assert out.accepted == [good["key"]]
    assert out.rejected == [(bad["key"], "key_mismatch")]
    ack = verify_ack(*out.ack, KEYS["UMB01"]["k1"])
    assert ack["rejected"] == [{"key": bad["key"], "reason": "key_mismatch"}]
    assert counters(db)["records:rejected:key_mismatch"] == 1
    with db.borrow() as conn:
        rows = conn.query("SELECT scope, record_key, reason FROM ingest_rejections")
    assert rows == [("record", bad["key"], "key_mismatch")]


def test_uplink_1_1_records_are_stored_once(db_url: str) -> None:
    """State reports (a new stream) and deliveries with and without the bill of lading."""
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    reports = [state("UMB01", "D1", 0, T0), state("UMB01", "D1", 1, T0 + 60, seal_state=4,
                                                mainboard_id="MB-\x00X")]
    [out] = ing.process([inbound(data_message("UMB01", "D1", "state", reports, 1, NOW))])
    assert out.accepted == [r["key"] for r in reports]
    [out] = ing.process([inbound(data_message("UMB01", "D1", "state", reports[1:], 2, NOW))])
    assert out.duplicates == [reports[1]["key"]] and not out.accepted
    wrong = dict(reports[0], key=f"UMB01/D1/states/9/{T0}")
    [out] = ing.process([inbound(data_message("UMB01", "D1", "state", [wrong], 3, NOW))])
    assert out.rejected == [(wrong["key"], "key_mismatch")]
    drops = [dict(delivery("UMB01", 1, T0, T0 + 900, v0=1, v1=2), bol_volume_20c_ml=12_000_000),
             delivery("UMB01", 2, T0 + 3600, T0 + 4500, v0=2, v1=3)]
    [out] = ing.process([inbound(data_message("UMB01", "G", "delivery", drops, 4, NOW))])
    assert len(out.accepted) == 2
    with db.borrow() as conn:
        rows = conn.query_dicts("SELECT * FROM states ORDER BY seq")
        bol = conn.query("SELECT seq, bol_volume_20c_ml FROM deliveries ORDER BY seq")
    assert [(r["seq"], r["seal_state"], r["mainboard_id"]) for r in rows] == [
        (0, 0, "MB-1"), (1, 4, "MB-\ufffdX")]  # a NUL never reaches the database
    assert rows[0]["device_time"] == T0 and rows[0]["serial_number"] == "SN-D1"
    assert [(int(s), None if b is None else int(b)) for s, b in bol] == [(1, 12_000_000),
                                                                        (2, None)]
    c = counters(db)
    assert c["messages:state"] == 3 and c["records:accepted"] == 2  # the two deliveries
    assert (c["states:accepted"], c["states:duplicates"]) == (2, 1)


def test_posted_price_at_prefers_the_latest_posting_and_the_station_on_a_tie(
        db_url: str) -> None:
    from zoneinfo import ZoneInfo

    from central.prices import posted_price_at, price_schedule, store_posted_price

    db = ready_database(db_url)
    zone = ZoneInfo("Asia/Shanghai")
    day = 86400
    with db.borrow() as conn, conn.transaction():
        for body in (
                {"grade": "92", "price_fen": 703, "valid_from": "2026-04-01T00:00:00+08:00"},
                {"station_id": "UMB02", "grade": "92", "price_fen": 699,
                 "valid_from": "2026-04-01T00:00:00+08:00"},  # same instant: the station wins
                {"station_id": "UMB01", "grade": "92", "price_fen": 710,
                 "valid_from": "2026-04-02T12:00:00+08:00"},  # UMB01's own posting
                {"grade": "92", "price_fen": 719, "valid_from": "2026-04-03T00:00:00+08:00"},
                {"grade": "0", "price_fen": 671, "valid_from": "2026-04-01T00:00:00+08:00"}):
            store_posted_price(conn, body, zone, "test")
    midnight = T0 - 8 * 3600  # 2026-04-01 00:00 +08:00
    with db.borrow() as conn:
        at = {s: [posted_price_at(conn, s, "92", midnight + d * day + 13 * 3600) for d in range(3)]
              for s in ("UMB01", "UMB02", "UMB03")}
        assert at == {"UMB01": [703, 710, 719], "UMB02": [699, 699, 719],
                      "UMB03": [703, 703, 719]}
        assert posted_price_at(conn, "UMB01", "92", midnight - 1) is None  # before any
        assert posted_price_at(conn, "UMB01", "92", midnight) == 703  # valid_from inclusive
        assert posted_price_at(conn, "UMB03", "95", midnight + day) is None  # never posted
        assert posted_price_at(conn, "UMB03", "0", midnight + day) == 671
        assert price_schedule(conn, "UMB02", "92") == [(float(midnight), 699),
                                                       (float(midnight + 2 * day), 719)]


# -- replay -------------------------------------------------------------------------------------
def test_redelivery_within_window_is_reacked_and_replay_after_it_rejected(db_url: str) -> None:
    db = ready_database(db_url)
    clock = Clock()
    ing = make_ingestor(db, clock, window=600)
    msg = data_message("UMB01", "G", "inventory", [inventory("UMB01", 5, T0)], 3, NOW)
    assert ing.process([inbound(msg)])[0].accepted
    clock.t = NOW + 599
    [again] = ing.process([inbound(msg, clock.t)])
    assert again.status == "redelivery" and again.duplicates == [f"UMB01/G/inventory/5/{T0}"]
    assert again.ack is not None
    clock.t = NOW + 601
    [late] = ing.process([inbound(msg, clock.t)])
    assert late.status == "rejected" and late.reason == "replay" and late.ack is None
    # Same msg_seq, other content (a different record) → replay, whatever the time.
    clock.t = NOW + 1
    other = data_message("UMB01", "G", "inventory", [inventory("UMB01", 6, T0 + 900)], 3, NOW)
    [reused] = ing.process([inbound(other, clock.t)])
    assert reused.reason == "replay"
    assert count(db, "inventory") == 1
    c = counters(db)
    assert c["rejected:replay"] == 2 and c["messages:redelivered"] == 1


def test_two_platform_instances_on_one_database_do_not_race_on_a_message(db_url: str) -> None:
    """Two instances both subscribe and both get every message: the second may look a
    message up before the first commits it. Its insert then finds the row: a redelivery,
    never a primary-key error (issue 10 §6)."""
    db = ready_database(db_url)
    first, second = make_ingestor(db, Clock()), make_ingestor(db, Clock())
    msg = data_message("UMB01", "G", "inventory", [inventory("UMB01", 5, T0)], 3, NOW)
    assert first.process([inbound(msg)])[0].accepted
    looked_up = second.conn.query

    def before_the_commit(sql: str, params=()):  # the lookup ran before the first committed
        return [] if sql.startswith("SELECT") and "FROM ingest_messages" in sql \
            else looked_up(sql, params)

    second.conn.query = before_the_commit  # type: ignore[method-assign]
    [out] = second.process([inbound(msg)])
    assert out.status == "redelivery" and out.duplicates == [f"UMB01/G/inventory/5/{T0}"]
    assert count(db, "inventory") == 1 and counters(db)["messages:redelivered"] == 1


def test_a_batch_costs_the_same_statements_whatever_its_number_of_messages(
        db_url: str) -> None:
    """Messages are looked up, stored and acknowledged in bulk: on PostgreSQL each statement
    is a round trip, and four per message made small messages cost twice as much (issue 11).
    The look-ups follow the chain lock: a second platform instance waits there for the first
    one's commit and then sees its messages and records as stored, not as new."""
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    sql: list[str] = []  # the statements of the batch in hand

    def counted(method):
        def call(*args, **kwargs):
            sql.append(str(args[0]) if args else "")
            return method(*args, **kwargs)
        return call

    for name in ("execute", "query", "query_one", "executemany", "insert"):
        setattr(ing.conn, name, counted(getattr(ing.conn, name)))

    def batch(first_seq: int, n: int) -> int:
        sql.clear()
        msgs = [data_message("UMB01", "G", "inventory", [inventory("UMB01", seq, T0 + 600 * seq)],
                             seq, NOW) for seq in range(first_seq, first_seq + n)]
        outs = ing.process([inbound(m) for m in msgs])
        assert [o.status for o in outs] == ["stored"] * n and all(o.ack for o in outs)
        acks = [verify_ack(*o.ack, KEYS["UMB01"]["k1"]) for o in outs]
        assert [a["acked_msg_seq"] for a in acks] == list(range(first_seq, first_seq + n))
        return len(sql)

    assert batch(1, 2) == batch(3, 20)
    first = {table: next(i for i, q in enumerate(sql) if table in q)
             for table in ("chain_heads", "ingest_messages", "FROM inventory")}
    assert first["chain_heads"] < min(first["ingest_messages"], first["FROM inventory"])
    assert count(db, "inventory") == count(db, "ingest_messages") == 22
    with db.borrow() as conn:
        assert int(conn.query_one("SELECT msg_seq FROM ack_counters")[0]) == 22


def test_forged_message_does_not_burn_the_msg_seq(db_url: str) -> None:
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    rec = inventory("UMB01", 1, T0)
    # Signed with UMB02's key on UMB01's topic → bad signature (same kid name).
    forged = data_message("UMB01", "G", "inventory", [rec], 9, NOW, key_station="UMB02")
    [out] = ing.process([inbound(forged)])
    assert out.reason == "bad_signature"
    [ok] = ing.process([inbound(data_message("UMB01", "G", "inventory", [rec], 9, NOW))])
    assert ok.status == "stored" and ok.accepted == [rec["key"]]


def test_whole_message_rejections_are_counted_and_logged(db_url: str) -> None:
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    rec = txn("UMB01", "D1", 1, T0)
    cases = {
        "station_mismatch": data_message("UMB01", "D1", "transaction", [rec], 1, NOW,
                                         payload_station="UMB02", key_station="UMB01"),
        "device_mismatch": data_message("UMB01", "D1", "transaction", [rec], 2, NOW,
                                        topic_device="D2"),
        "unknown_kid": data_message("UMB01", "D1", "transaction", [rec], 3, NOW, kid="k9"),
        "unknown_station": ("fsx/v1/UMB99/D1/evt/transaction", b"{}"),
        "bad_topic": ("fsx/v1/UMB01/D1/evt/refuel", b"{}"),
        "malformed_json": ("fsx/v1/UMB01/D1/evt/transaction", b"{\"v\": 1,"),
        "schema": data_message("UMB01", "D1", "transaction", [dict(rec, volume_ml=1.5)], 4,
                               NOW),
    }
    outs = ing.process([inbound(m) for m in cases.values()])
    assert [o.reason for o in outs] == list(cases)
    assert all(o.ack is None for o in outs)
    assert "records[0].volume_ml" in outs[-1].detail
    assert count(db, "transactions") == 0
    with db.borrow() as conn:
        reasons = sorted(r for (r,) in conn.query("SELECT reason FROM ingest_rejections"))
        total = dict(conn.query("SELECT name, SUM(value) FROM ingest_counters GROUP BY name"))
    assert reasons == sorted(cases)
    assert {k: int(v) for k, v in total.items()} == {f"rejected:{r}": 1 for r in cases}


# -- status ---------------------------------------------------------------------------------------
def test_heartbeat_and_last_will_update_the_station_state(db_url: str) -> None:
    db = ready_database(db_url)
    clock = Clock()
    ing = make_ingestor(db, clock)
    devices = [{"device": "G", "online": True, "device_time": T0 + 30, "last_ok_at": NOW,
                "failures": 0, "error": None},
               {"device": "D1", "online": False, "device_time": T0 - 600, "last_ok_at": NOW - 90,
                "failures": 7, "error": "timeout"}]
    outs = ing.process([inbound(online("UMB01", 10, NOW, True)),
                        inbound(heartbeat("UMB01", 11, NOW, backlog=42, devices=devices))])
    assert [o.status for o in outs] == ["stored", "stored"]
    with db.borrow() as conn:
        cs = conn.query_dicts("SELECT * FROM collector_status")[0]
        ds = {r["device"]: r for r in conn.query_dicts("SELECT * FROM device_status")}
    assert int(cs["online"]) == 1 and int(cs["backlog"]) == 42 and cs["boot_id"] == "boot-1"
    assert int(ds["D1"]["online"]) == 0 and int(ds["D1"]["failures"]) == 7
    assert ds["G"]["device_time"] == T0 + 30 and ds["D1"]["error"] == "timeout"
    # The last will was signed at connect time (msg_seq 9 < 11) yet must apply.
    clock.t = NOW + 100
    ing.process([inbound(online("UMB01", 9, NOW - 5, False), clock.t)])
    # A late heartbeat older than the state changes nothing.
    ing.process([inbound(heartbeat("UMB01", 8, NOW - 10), clock.t)])
    # A will of an earlier boot is ignored after a new boot came on line.
    ing.process([inbound(online("UMB01", 20, NOW + 200, True, boot_id="boot-2"), clock.t),
                 inbound(online("UMB01", 12, NOW - 1, False, boot_id="boot-1"), clock.t)])
    with db.borrow() as conn:
        cs = conn.query_dicts("SELECT * FROM collector_status")[0]
        log = conn.query("SELECT device, kind, online FROM availability_log "
                         "WHERE device = '' ORDER BY received_at, msg_seq")
    assert int(cs["online"]) == 1 and cs["boot_id"] == "boot-2"
    assert int(cs["status_msg_seq"]) == 20
    # Every observation is logged, applied or not (msg_seq order within one batch time).
    assert [(k, int(o)) for _, k, o in log] == [
        ("online", 1), ("heartbeat", 1), ("heartbeat", 1), ("online", 0), ("online", 0),
        ("online", 1)]


def test_a_restarted_collector_shows_its_devices_on_line_only_once_it_read_them(
        db_url: str) -> None:
    from zoneinfo import ZoneInfo

    from central.resources import Context
    from central.stations import list_stations
    from central.vcf import Vcf

    db = ready_database(db_url)
    clock = Clock()
    ing = make_ingestor(db, clock)
    ing.process([inbound(online("UMB01", 1, NOW, True)), inbound(heartbeat("UMB01", 2, NOW))])
    # it crashes and comes back seconds later, well within the heartbeat timeout, with a new
    # boot that has not read a device yet
    clock.t = NOW + 8
    ing.process([inbound(online("UMB01", 3, clock.t, True, boot_id="boot-2"), clock.t)])
    ctx = Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, lambda: clock.t)

    def devices() -> dict[str, bool]:
        with db.borrow() as conn:
            (st,) = list_stations(conn, {"station_id": ["UMB01"]}, ctx)["items"]
        assert st["collector"]["online"]
        return {d["device"]: d["online"] for d in st["devices"]}

    assert not any(devices().values())  # boot-1's word no longer counts
    clock.t = NOW + 9
    ing.process([inbound(heartbeat("UMB01", 4, clock.t, boot_id="boot-2"), clock.t)])
    assert all(devices().values())


def test_will_of_current_boot_puts_station_off_line(db_url: str) -> None:
    db = ready_database(db_url)
    ing = make_ingestor(db, Clock())
    ing.process([inbound(online("UMB02", 3, NOW, True)), inbound(heartbeat("UMB02", 4, NOW))])
    ing.process([inbound(online("UMB02", 2, NOW - 1, False))])  # the will, older msg_seq
    with db.borrow() as conn:
        (state, seq) = conn.query_one("SELECT online, status_msg_seq FROM collector_status")
    assert int(state) == 0 and int(seq) == 4


def test_retained_online_redelivered_on_resubscribe_is_ignored(db_url: str) -> None:
    db = ready_database(db_url)
    clock = Clock()
    ing = make_ingestor(db, clock)
    msg = online("UMB03", 1, NOW, True)
    ing.process([inbound(msg)])
    clock.t = NOW + 86_400  # the platform restarts a day later and resubscribes
    [out] = ing.process([inbound(msg, clock.t, retained=True)])
    assert out.status == "ignored"
    assert "rejected:replay" not in counters(db, "UMB03")


def test_a_flood_of_rejections_does_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from central.store import RejectionLog

    now = [0.0]
    rl = RejectionLog(per_minute=3, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="central.store"):
        for _ in range(1000):
            rl.log("UMB01", "fsx/v1/UMB01/D1/evt/transaction", "malformed_json", "x")
        rl.log("UMB02", "fsx/v1/UMB02/D1/evt/transaction", "schema", "y")
        now[0] = 61.0
        rl.log("UMB01", "fsx/v1/UMB01/D1/evt/transaction", "malformed_json", "x")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 + 1 + 2
    assert "997 more rejected message(s) of station 'UMB01' not logged" in lines[4]
