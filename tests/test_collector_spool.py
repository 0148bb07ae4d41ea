"""The store-and-forward spool: idempotent adds, deletes on ack, dead letters, msg_seq."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from collector.spool import MSG_SEQ_BLOCK, Spool, SpoolError, SpoolRecord


def rec(seq: int, device: str = "D1", kind: str = "transaction") -> SpoolRecord:
    key = f"S01/{device}/transactions/{seq}/{1767225600 + seq}"
    return SpoolRecord(key, kind, device, {"key": key, "seq": seq, "volume_ml": 1000 + seq})


def test_add_is_idempotent_by_key_and_keeps_arrival_order(tmp_path):
    spool = Spool(tmp_path, "S01")
    assert spool.add([rec(65534), rec(65535), rec(0)]) == 3
    assert spool.add([rec(65535), rec(1)]) == 1  # a re-read after a crash adds only the new one
    rows = spool.pending_after(0, 10)
    assert [r.key.split("/")[3] for r in rows] == ["65534", "65535", "0", "1"]
    assert spool.backlog == 4
    assert spool.pending_after(rows[1].id, 10)[0].key == rows[2].key
    spool.close()


def test_payloads_are_kept_canonical_from_the_first_id_of_this_format(tmp_path):
    """A spool of an older collector (payloads in key order, no `canonical_from`) has its
    rows before the mark re-encoded by the uplink; every row after it is canonical."""
    fresh = Spool(tmp_path, "S01")
    fresh.close()
    old = sqlite3.connect(fresh.path)
    old.execute("INSERT INTO pending(key, kind, device, payload, first_seen) VALUES "
                "('k1', 'transaction', 'D1', '{\"seq\":1,\"key\":\"k1\"}', 0)")
    old.execute("DELETE FROM meta WHERE name = 'canonical_from'")
    old.commit()
    old.close()
    spool = Spool(tmp_path, "S01")
    spool.add([SpoolRecord("k2", "transaction", "D1", {"seq": 2, "油": "92", "key": "k2"})])
    first, second = spool.pending_after(0, 10)
    assert first.id < spool.canonical_from <= second.id
    assert second.payload == '{"key":"k2","seq":2,"油":"92"}'
    spool.close()
    assert Spool(tmp_path, "S01").canonical_from == second.id  # the mark stays where it is


def test_delete_and_reject(tmp_path):
    spool = Spool(tmp_path, "S01")
    spool.add([rec(i) for i in range(5)])
    keys = spool.pending_keys()
    assert spool.delete([keys[0], keys[1], "S01/D1/transactions/9/9"]) == 2
    assert spool.reject([(keys[2], "schema: /records/0/volume_ml")]) == 1
    assert spool.backlog == 2
    assert spool.pending_keys() == keys[3:]
    (dead,) = spool.dead_letters()
    assert dead["key"] == keys[2] and dead["reason"].startswith("schema")
    assert dead["payload"]["seq"] == 2
    spool.close()


def test_ids_are_never_reused(tmp_path):
    """The forwarder's cursor relies on it: a new record never gets an old (smaller) id."""
    spool = Spool(tmp_path, "S01")
    spool.add([rec(1), rec(2)])
    top = spool.pending_after(0, 10)[-1]
    spool.delete([top.key])
    spool.add([rec(3)])
    assert spool.pending_after(0, 10)[-1].id > top.id
    spool.close()


def test_msg_seq_strictly_increases_across_restarts(tmp_path):
    spool = Spool(tmp_path, "S01")
    first = [spool.next_msg_seq() for _ in range(MSG_SEQ_BLOCK + 5)]
    assert first == sorted(set(first))
    boot1 = spool.boot_id
    # No close(): as after kill -9, the next process starts from the durable reservation.
    again = Spool(tmp_path, "S01")
    assert again.next_msg_seq() > first[-1]
    assert again.boot_id != boot1 and again.boots == 2
    again.close()
    spool.close()


def test_a_spool_belongs_to_one_station(tmp_path):
    Spool(tmp_path, "S01").close()
    with pytest.raises(SpoolError, match="belongs to station 'S01'"):
        Spool(tmp_path, "S02")


def test_journal_is_wal_and_synchronous_full(tmp_path):
    spool = Spool(tmp_path, "S01")
    spool.close()
    db = sqlite3.connect(tmp_path / "spool.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with pytest.raises(ValueError, match="synchronous"):
        Spool(tmp_path, "S01", synchronous="OFF")


def test_committed_records_survive_kill_9(tmp_path):
    """A child adds records and reports each commit, then is killed: every reported add is there."""
    code = textwrap.dedent(f"""
        import sys
        from collector.spool import Spool, SpoolRecord
        spool = Spool({str(tmp_path)!r}, "S01")
        for i in range(100000):
            key = f"S01/D1/transactions/{{i % 65536}}/{{i}}"
            spool.add([SpoolRecord(key, "transaction", "D1", {{"key": key}})])
            print(i, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        reported = -1
        for line in child.stdout:
            reported = int(line)
            if reported >= 200:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    spool = Spool(tmp_path, "S01")
    keys = set(spool.pending_keys())
    assert all(f"S01/D1/transactions/{i}/{i}" in keys for i in range(reported + 1))
    spool.close()
