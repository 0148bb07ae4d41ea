"""Tamper evidence of the stored records (central/chain.py, central/integrity.py): each
station's records are hash-chained at ingest; a later change in the database is found by
`forecourt platform --verify-chain` and GET /api/v1/integrity/chain. Both engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_central_storage import NOW, Clock, inbound, make_ingestor
from test_central_support import (
    T0,
    data_message,
    delivery,
    event,
    fresh_database,
    inventory,
    ready_database,
    state,
    txn,
)
from waiting import HANG_S, gone, wait_for

from central import cli
from central.auth import TokenStore
from central.chain import GENESIS, link, stored_digest, stored_digester
from central.chain_check import ChainCheckProcess
from central.db import Database
from central.http_api import Api, ApiServer
from central.integrity import verify_station
from central.resources import Context
from central.store import OPTIONAL_FIELDS, RECORD_FIELDS
from central.vcf import Vcf

ADMIN, READ = "admin-token-0123456789", "read-token-0123456789"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


def _ingest(db: Database) -> list[str]:
    """Records of every kind at UMB01 (a resend among them) and one at UMB02; their keys."""
    ing = make_ingestor(db, Clock())
    tx = [txn("UMB01", "D1", i, T0 + 600 * i, total_before=40_000 * i,
              amount_total_before=28_480 * i) for i in range(3)]
    bol = dict(delivery("UMB01", 5, T0, T0 + 1800, v0=9_000_000, v1=21_000_000),
               bol_volume_20c_ml=11_975_400)
    old = delivery("UMB01", 6, T0 + 7200, T0 + 9000, v0=19_000_000, v1=29_000_000)
    nul = dict(state("UMB01", "D1", 1, T0 + 60), serial_number="SN\x00\x00")  # stored as text
    outs = ing.process([
        inbound(data_message("UMB01", "D1", "transaction", tx[:2], 1, NOW)),
        inbound(data_message("UMB01", "G", "inventory", [inventory("UMB01", 0, T0)], 2, NOW)),
        inbound(data_message("UMB01", "G", "delivery", [bol, old], 3, NOW)),
        inbound(data_message("UMB01", "D1", "event", [event("UMB01", "D1", 0, T0)], 4, NOW)),
        inbound(data_message("UMB01", "D1", "state", [state("UMB01", "D1", 0, T0), nul], 5,
                             NOW)),
        inbound(data_message("UMB02", "D1", "transaction", [txn("UMB02", "D1", 0, T0)], 1,
                             NOW)),
    ])
    assert all(o.status == "stored" for o in outs)
    [again] = ing.process([inbound(data_message("UMB01", "D1", "transaction", tx[1:], 6,
                                                NOW + 1))])
    assert again.duplicates == [tx[1]["key"]] and again.accepted == [tx[2]["key"]]
    ing.conn.close()
    return [*(r["key"] for r in tx), inventory("UMB01", 0, T0)["key"], bol["key"], old["key"],
            event("UMB01", "D1", 0, T0)["key"], state("UMB01", "D1", 0, T0)["key"], nul["key"]]


def _sql(db: Database, sql: str, params: tuple = ()) -> None:
    with db.borrow() as conn, conn.transaction():
        conn.execute(sql, params)


def _findings(db: Database, station: str = "UMB01") -> list[tuple[str, Any]]:
    with db.borrow() as conn:
        report = verify_station(conn, station)
    return [(f["finding"], f.get("key", f.get("position"))) for f in report.findings]


def test_honest_ingest_is_chained_in_store_order_and_verifies_intact(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    with db.borrow() as conn:
        rows = conn.query("SELECT position, stream, key, digest, chain_hash FROM record_chain "
                          "WHERE station_id = 'UMB01' ORDER BY position")
        head = conn.query_one("SELECT position, head FROM chain_heads WHERE station_id = ?",
                              ("UMB01",))
        report = verify_station(conn, "UMB01")
        other = verify_station(conn, "UMB02")
        empty = verify_station(conn, "UMB03")
    # store order: the first batch's messages in order, then the resend's one new record
    assert [r[2] for r in rows] == [keys[0], keys[1], *keys[3:], keys[2]]
    previous = GENESIS
    for _, stream, key, digest, chain_hash in rows:
        assert chain_hash == link(previous, stream, key, digest)
        previous = chain_hash
    assert (int(head[0]), head[1]) == (len(keys), previous)
    assert report.intact and report.records == len(keys) and report.head == previous
    assert other.intact and other.records == 1
    assert empty.intact and (empty.records, empty.head) == (0, GENESIS)


def test_the_row_digester_is_the_stored_digest() -> None:
    """The chain check's fast digest of a table row equals `stored_digest` of the same
    columns: NULLs left out, collected_at never part of it, the field order sorted."""
    fields = ("key", "seq", *RECORD_FIELDS["delivery"], *OPTIONAL_FIELDS["delivery"],
              "collected_at")
    digest = stored_digester(fields)
    for bol in (None, 4_000_000, 0):
        values = ["S1/G/deliveries/7", 7, *range(100, 100 + len(RECORD_FIELDS["delivery"])),
                  bol, 1_775_000_000.25]
        assert digest(values) == stored_digest(dict(zip(fields, values, strict=True)))
    text = ("serial_number", "seq", "software_id")
    assert stored_digester(text)(["DSP-01", 3, None]) == \
        stored_digest({"serial_number": "DSP-01", "seq": 3, "software_id": None})


def test_a_changed_value_is_altered(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    _sql(db, "UPDATE transactions SET volume_ml = volume_ml + 1 WHERE key = ?", (keys[1],))
    _sql(db, "UPDATE deliveries SET bol_volume_20c_ml = NULL WHERE key = ?", (keys[4],))
    _sql(db, "UPDATE states SET serial_number = 'SN' WHERE key = ?", (keys[-1],))
    assert sorted(_findings(db)) == sorted([("altered", keys[1]), ("altered", keys[4]),
                                            ("altered", keys[-1])])


def test_a_moved_record_is_altered_missing_and_unchained(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    _sql(db, "UPDATE events SET device = 'D2' WHERE key = ?", (keys[6],))
    _sql(db, "UPDATE inventory SET station_id = 'UMB02' WHERE key = ?", (keys[3],))
    assert _findings(db) == [("altered", keys[6]), ("missing", keys[3])]
    assert _findings(db, "UMB02") == [("unchained", keys[3])]


def test_a_deleted_record_is_missing_and_an_inserted_one_unchained(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    _sql(db, "DELETE FROM transactions WHERE key = ?", (keys[0],))
    _sql(db, "INSERT INTO transactions (key, station_id, device, seq, nozzle, grade, tank, "
             "start_time, end_time, volume_ml, amount_fen, unit_price_fen, volume_total_ml, "
             "amount_total_fen, collected_at, received_at, msg_seq, digest) "
             "SELECT 'UMB01/D1/transactions/9/1', station_id, device, 9, nozzle, grade, tank, "
             "start_time, end_time, volume_ml, amount_fen, unit_price_fen, volume_total_ml, "
             "amount_total_fen, collected_at, received_at, msg_seq, digest FROM transactions "
             "WHERE key = ?", (keys[1],))
    assert _findings(db) == [("unchained", "UMB01/D1/transactions/9/1"), ("missing", keys[0])]


def test_an_edited_chain_hash_is_a_broken_link(db_url: str) -> None:
    db = ready_database(db_url)
    _ingest(db)
    _sql(db, "UPDATE record_chain SET chain_hash = ? WHERE station_id = 'UMB01' AND "
             "position = 3", ("f" * 64,))
    # 3 no longer follows from 2, and 4 no longer from the (edited) 3
    assert _findings(db) == [("broken_link", 3), ("broken_link", 4)]


def test_a_chain_digest_fitted_to_a_changed_record_is_a_broken_link(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    _sql(db, "UPDATE transactions SET volume_ml = 1 WHERE key = ?", (keys[0],))
    with db.borrow() as conn:
        row = conn.query_dicts("SELECT * FROM transactions WHERE key = ?", (keys[0],))[0]
    fitted = stored_digest({k: row[k] for k in ("key", "seq", *RECORD_FIELDS["transaction"])})
    _sql(db, "UPDATE record_chain SET digest = ? WHERE key = ?", (fitted, keys[0]))
    assert _findings(db) == [("broken_link", 1)]


def test_removed_chain_rows_are_broken_links(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    _sql(db, "DELETE FROM record_chain WHERE station_id = 'UMB01' AND position IN (5, 9)")
    # a gap at 5; the head (9) is no longer the last link (8); both records unchained
    assert _findings(db) == [("broken_link", 6), ("broken_link", 9), ("unchained", keys[2]),
                             ("unchained", keys[5])]


def _rebuild_chain(db: Database, station: str) -> None:
    """What someone who can write the database does after changing a record: recompute every
    digest and link of the station's chain and its head, so that it verifies intact."""
    with db.borrow() as conn:
        rows = conn.query("SELECT position, stream, key FROM record_chain WHERE station_id = ? "
                          "ORDER BY position", (station,))
        kind_of = {"transactions": "transaction", "inventory": "inventory",
                   "deliveries": "delivery", "events": "event", "states": "state"}
        links, previous = [], GENESIS
        for position, stream, key in rows:
            row = conn.query_dicts(f"SELECT * FROM {stream} WHERE key = ?", (key,))[0]
            fields = ("key", "seq", *RECORD_FIELDS[kind_of[stream]],
                      *OPTIONAL_FIELDS.get(kind_of[stream], ()))
            digest = stored_digest({f: row[f] for f in fields if f in row})
            previous = link(previous, stream, key, digest)
            links.append((digest, previous, station, position))
    with db.borrow() as conn, conn.transaction():
        for entry in links:
            conn.execute("UPDATE record_chain SET digest = ?, chain_hash = ? "
                         "WHERE station_id = ? AND position = ?", entry)
        conn.execute("UPDATE chain_heads SET head = ? WHERE station_id = ?", (previous, station))


def test_a_rebuilt_chain_is_caught_only_against_a_head_recorded_before(db_url: str,
                                                                       tmp_path: Path) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    with db.borrow() as conn:
        before = verify_station(conn, "UMB01")
    anchor = (before.records, before.head)
    heads = tmp_path / "chain-heads.json"
    heads.write_text(json.dumps({"format": "forecourt-chain-heads/1", "stations": {
        "UMB01": {"records": before.records, "head": before.head}}}))
    # the chain grows after the head was recorded: still anchored
    ing = make_ingestor(db, Clock())
    ing.process([inbound(data_message("UMB01", "D1", "transaction",
                                      [txn("UMB01", "D1", 7, T0 + 9000)], 9, NOW))])
    ing.conn.close()
    with db.borrow() as conn:
        assert verify_station(conn, "UMB01", anchor).intact
    db.close()
    assert cli.main(["--db", db_url, "--verify-chain", "--heads", str(heads)]) == 0
    # a record changed and the chain recomputed: intact on its own, caught by the anchor
    _sql(db, "UPDATE transactions SET volume_ml = volume_ml + 1000 WHERE key = ?", (keys[1],))
    _rebuild_chain(db, "UMB01")
    with db.borrow() as conn:
        assert verify_station(conn, "UMB01").intact
        report = verify_station(conn, "UMB01", anchor)
    assert [(f["finding"], f["position"]) for f in report.findings] == [
        ("not_anchored", anchor[0])]
    db.close()
    assert cli.main(["--db", db_url, "--verify-chain", "--heads", str(heads)]) == 1
    # a head beyond the chain's end (links removed) is not anchored either
    with db.borrow() as conn:
        short = verify_station(conn, "UMB02", (5, "0" * 64))
    assert short.findings[0]["finding"] == "not_anchored"
    assert "only 1 link(s)" in short.findings[0]["detail"]
    db.close()


@pytest.mark.parametrize("content, says", [
    ("not json", "not valid JSON"),
    ('{"stations": {}}', "forecourt-chain-heads/1"),
    ('{"format": "forecourt-chain-heads/1", "stations": {"UMB01": {"records": -1, '
     '"head": "00"}}}', "stations.UMB01"),
    ('{"format": "forecourt-chain-heads/1", "stations": {"NOPE": {"records": 0, '
     '"head": "' + "0" * 64 + '"}}}', "NOPE"),
])
def test_cli_refuses_a_bad_heads_file(db_url: str, tmp_path: Path, content: str, says: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ready_database(db_url).close()
    heads = tmp_path / "heads.json"
    heads.write_text(content)
    assert cli.main(["--db", db_url, "--verify-chain", "--heads", str(heads)]) == 2
    err = capsys.readouterr().err
    assert f"--heads {heads}" in err and says in err


# -- the command line ----------------------------------------------------------------------------
def test_cli_exit_codes(db_url: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    db.close()
    assert cli.main(["--db", db_url, "--verify-chain"]) == 0
    out = capsys.readouterr().out
    assert "UMB01: intact; 9 chained record(s)" in out
    assert "3 station(s) verified, 0 tampered" in out
    _sql(db, "UPDATE transactions SET volume_ml = volume_ml + 1 WHERE key = ?", (keys[1],))
    db.close()
    assert cli.main(["--db", db_url, "--verify-chain", "--station", "UMB02"]) == 0
    capsys.readouterr()
    assert cli.main(["--db", db_url, "--verify-chain", "--station", "UMB01"]) == 1
    out = capsys.readouterr().out
    assert "UMB01: TAMPERED (1 finding(s))" in out and f"altered {keys[1]}:" in out
    assert cli.main(["--db", db_url, "--verify-chain", "--station", "NOPE"]) == 2
    assert "--station NOPE" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'absent.db'}"
    assert cli.main(["--db", missing, "--verify-chain"]) == 2
    assert not (tmp_path / "absent.db").exists()


def test_cli_refuses_an_unmigrated_database(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    _sql(Database(url), "CREATE TABLE t (x INTEGER)")
    assert cli.main(["--db", url, "--verify-chain"]) == 2
    assert "migration 0008" in capsys.readouterr().err


# -- the API -------------------------------------------------------------------------------------
def _get(base: str, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_api_endpoint_is_admin_only(db_url: str) -> None:
    db = ready_database(db_url)
    keys = _ingest(db)
    tokens = TokenStore([(ADMIN, "admin", "tester"), (READ, "read", "viewer")])
    ctx = Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, lambda: NOW)
    server = ApiServer(Api(db, tokens, ctx), "127.0.0.1", 0).start()
    try:
        path = "/api/v1/integrity/chain?station_id=UMB01"
        status, body = _get(server.url, path, ADMIN)
        assert status == 200, body
        assert body["intact"] is True and body["records"] == 9 and body["findings"] == []
        assert body["station_id"] == "UMB01" and len(body["head"]) == 64
        assert _get(server.url, path, READ)[0] == 403
        _sql(db, "DELETE FROM events WHERE key = ?", (keys[6],))
        status, body = _get(server.url, path, ADMIN)
        assert status == 200 and body["intact"] is False and body["findings_total"] == 1
        assert body["findings"][0]["finding"] == "missing"
        assert body["findings"][0]["key"] == keys[6]
        status, body = _get(server.url, "/api/v1/integrity/chain", ADMIN)
        assert status == 400 and body["error"]["parameter"] == "station_id"
        status, body = _get(server.url, "/api/v1/integrity/chain?station_id=NOPE", ADMIN)
        assert status == 404
        status, body = _get(server.url, "/api/v1/integrity/chain?station_id=UMB01&x=1", ADMIN)
        assert status == 400 and body["error"]["parameter"] == "x"
    finally:
        server.stop()
        db.close()


def test_two_instances_storing_the_same_stream_concurrently_chain_each_record_once(
        db_url: str) -> None:
    """Both instances get every message; the head lock makes one wait for the other, which
    then sees the records as stored (duplicates, not chained twice)."""
    import threading

    db = ready_database(db_url)
    msgs = []
    for i in range(24):
        for station in ("UMB01", "UMB02"):
            recs = [inventory(station, 4 * i + j, T0 + 900 * (4 * i + j)) for j in range(4)]
            msgs.append(inbound(data_message(station, "G", "inventory", recs, i + 1, NOW)))
    errors: list[BaseException] = []

    def instance(size: int) -> None:
        ing = make_ingestor(db, Clock())
        try:
            for k in range(0, len(msgs), size):
                ing.process(msgs[k:k + size])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            ing.conn.close()

    threads = [threading.Thread(target=instance, args=(n,)) for n in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with db.borrow() as conn:
        for station in ("UMB01", "UMB02"):
            report = verify_station(conn, station)
            assert report.intact and report.records == 96, report.findings


def test_the_chain_check_in_a_process_of_its_own(db_url: str) -> None:
    """`--chain-check process`: the same answers as in the request's thread, tampering
    found; a process found dead replaced, one that dies during a request answered 503;
    the process stops when told to."""
    db = ready_database(db_url)
    keys = _ingest(db)
    tokens = TokenStore([(ADMIN, "admin", "tester")])
    ctx = Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, lambda: NOW)
    checker = ChainCheckProcess(db_url)
    checker.start()
    server = ApiServer(Api(db, tokens, ctx, chain_check=checker.verify), "127.0.0.1", 0).start()
    path = "/api/v1/integrity/chain?station_id=UMB01"
    try:
        status, body = _get(server.url, path, ADMIN)
        with db.borrow() as conn:
            assert (status, body) == (200, verify_station(conn, "UMB01").as_dict())
        assert body["intact"] is True and body["records"] == 9
        first = checker.pid
        assert first is not None and first != os.getpid()
        _sql(db, "UPDATE transactions SET volume_ml = volume_ml + 1 WHERE key = ?", (keys[0],))
        status, body = _get(server.url, path, ADMIN)
        assert status == 200 and body["intact"] is False
        assert [(f["finding"], f["key"]) for f in body["findings"]] == [("altered", keys[0])]
        # found dead before a request: replaced at once
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: checker.pid is None, HANG_S, "the killed process seen dead")
        status, body = _get(server.url, path, ADMIN)
        assert status == 200 and body["findings_total"] == 1, body
        second = checker.pid
        assert second is not None and second != first
        # dies during a request (one that leaves without answering): 503, then served again
        checker.stop()
        wait_for(lambda: gone(second), HANG_S, "the chain-check process stopped")
        checker._proc = subprocess.Popen(  # fault injection: the process is private
            [sys.executable, "-c", "import sys; sys.stdin.readline(); sys.stdin.readline()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        checker._proc.stdin.write("{}\n")  # type: ignore[union-attr]  # its "configuration"
        status, body = _get(server.url, path, ADMIN)
        assert status == 503 and body["error"]["code"] == "unavailable"
        status, body = _get(server.url, path, ADMIN)
        assert status == 200 and body["findings_total"] == 1
        third = checker.pid
        assert third is not None
    finally:
        server.stop()
        checker.stop()
        db.close()
    wait_for(lambda: gone(third), HANG_S, "the chain-check process stopped with the platform")


def test_the_chain_check_process_leaves_when_the_platform_is_killed(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'platform.db'}"
    ready_database(db_url).close()
    code = ("import sys; from central.chain_check import ChainCheckProcess; "
            f"c = ChainCheckProcess({db_url!r}); c.start(); print(c.pid, flush=True); "
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert not gone(child)
        proc.kill()
        proc.wait()
        wait_for(lambda: gone(child), HANG_S, "the orphaned chain-check process gone")
    finally:
        proc.kill()
        proc.wait()
