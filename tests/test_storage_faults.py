"""Storage faults (docs/faults.md): collector_disk_full and platform_db_unavailable.

The mechanisms first — a file size limit set from outside really makes a process's spool
writes fail, and the harness's lock really keeps the platform from committing — then the
reference collector and platform under them: nothing acknowledged that was not stored,
nothing lost or stored twice afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_central_support import (
    KEYS,
    STATIONS,
    T0,
    data_message,
    ready_database,
    txn,
    verify_ack,
    write_key_file,
)
from test_collector_support import (
    FakePlatform,
    Station,
    ThreadedStation,
    expected_inventory,
    expected_transaction,
    inventory,
    strip,
    transaction,
    until,
    wait_until,
)

from acceptance.broker import Mosquitto
from acceptance.faults._process import descendants, fill_disk, sigxfsz_disposition, unfill_disk
from acceptance.faults.platform_db_unavailable import DatabaseLock, platform_db_url
from acceptance.processes import ChainError
from central.db import Database, DatabaseError, operational_errors
from central.ingest import IngestService, _Received
from central.keys import KeyFile
from collector.endpoints import StationEndpoint
from collector.keys import generate_key_file, load_key_file
from collector.poller import PollSettings, StationPoller
from collector.profile import load_profiles
from collector.spool import Spool
from collector.uplink_records import RecordBuilder

ROOT = Path(__file__).resolve().parents[1]
HAVE_MOSQUITTO = shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")
no_mosquitto = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")
TIMEOUT = 20.0


# -- collector_disk_full: the mechanism ------------------------------------------------------

# A process holding a spool, driven line by line over pipes (which a file size limit does not
# touch): "add", "settle", "seq" (reserve a msg_seq block), "overwrite" (rewrite the first
# byte of the spool file in place), "count".
SPOOL_CHILD = r"""
import json, sys
from pathlib import Path
from collector.spool import Spool, SpoolRecord
spool = Spool(Path(sys.argv[1]), "S01")
n = 0
def reply(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
reply(ready=True)
for line in sys.stdin:
    cmd = line.strip()
    try:
        if cmd == "add":
            recs = [SpoolRecord(f"S01/D1/transactions/{n}/{i}", "transaction", "D1",
                                {"i": i, "pad": "x" * 300}) for i in range(50)]
            n += 1
            reply(ok=spool.add(recs))
        elif cmd == "settle":
            reply(ok=spool.settle(spool.pending_keys()[:10])[0])
        elif cmd == "seq":
            reply(ok=[spool.next_msg_seq() for _ in range(1001)][-1])
        elif cmd == "overwrite":
            with open(spool.path, "r+b") as f:
                first = f.read(1)
                f.seek(0)
                f.write(first)
                f.flush()
            reply(ok=True)
        elif cmd == "count":
            reply(ok=spool.backlog, keys=len(spool.pending_keys()))
    except Exception as exc:
        reply(error=f"{type(exc).__name__}: {exc}",
              code=getattr(exc, "sqlite_errorname", None), errno=getattr(exc, "errno", None))
"""


class Child:
    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SPOOL_CHILD, str(directory)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        assert self.read() == {"ready": True}

    def read(self) -> dict:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"the spool process exited ({self.proc.poll()})"
        return json.loads(line)

    def __call__(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(10)


def test_a_file_size_limit_set_from_outside_fails_every_spool_write(tmp_path):
    child = Child(tmp_path / "spool")
    try:
        for _ in range(120):  # a WAL file larger than the checkpoint, then recycled
            assert child("add") == {"ok": 50}
        assert child("settle") == {"ok": 10}
        assert sigxfsz_disposition(child.proc.pid) == "ignored"  # CPython: EFBIG, no death
        filled = fill_disk(child.proc.pid)
        assert resource.prlimit(child.proc.pid, resource.RLIMIT_FSIZE)[0] == 0
        # SQLite names EFBIG an I/O error (a real ENOSPC would be SQLITE_FULL)
        for cmd in ("add", "settle", "seq"):
            reply = child(cmd)
            assert reply["code"] == "SQLITE_IOERR_WRITE", (cmd, reply)
            assert reply["error"] == "OperationalError: disk I/O error"
        # not only growth: a write in place fails too, so a recycled WAL cannot slip through
        assert child("overwrite")["errno"] == 27  # EFBIG
        assert child("count") == {"ok": 120 * 50 - 10, "keys": 120 * 50 - 10}
        unfill_disk(filled)
        assert resource.prlimit(child.proc.pid, resource.RLIMIT_FSIZE)[0] == \
            resource.RLIM_INFINITY
        # the same connections write again, and the failed writes left nothing behind
        assert child("add") == {"ok": 50}
        assert child("settle") == {"ok": 10}
        assert "ok" in child("seq") and child("overwrite") == {"ok": True}
        assert child("count") == {"ok": 121 * 50 - 20, "keys": 121 * 50 - 20}
    finally:
        child.close()


def test_filling_the_disk_of_a_process_sigxfsz_would_kill_is_refused(tmp_path):
    """A file size limit sends SIGXFSZ; for a process that does not ignore it that would be a
    crash, not a full disk: refused, and nothing changed."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert sigxfsz_disposition(proc.pid) == "default"
        before = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
        with pytest.raises(ValueError, match="do not ignore SIGXFSZ"):
            fill_disk(proc.pid, settle_s=0.2)
        assert resource.prlimit(proc.pid, resource.RLIMIT_FSIZE) == before
    finally:
        proc.kill()
        proc.wait(10)


def test_fill_disk_covers_the_children_and_restores_each(tmp_path):
    """A vendor's collector started through a wrapper: the limit reaches the whole tree."""
    code = ("import subprocess, signal, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
            "restore_signals=False); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert wait_until(lambda: descendants(proc.pid), 10)
        (kid,) = descendants(proc.pid)
        filled = fill_disk(proc.pid)
        assert {p: resource.prlimit(p, resource.RLIMIT_FSIZE)[0] for p in (proc.pid, kid)} == \
            {proc.pid: 0, kid: 0}
        unfill_disk(filled)
        assert {p: resource.prlimit(p, resource.RLIMIT_FSIZE)[0] for p in (proc.pid, kid)} == \
            {proc.pid: resource.RLIM_INFINITY, kid: resource.RLIM_INFINITY}
    finally:
        for p in [*descendants(proc.pid), proc.pid]:
            os.kill(p, signal.SIGKILL)
        proc.wait(10)


# -- collector_disk_full: the reference collector ------------------------------------------

PROFILES = load_profiles()
FAST = PollSettings(poll_interval=0.05, live_interval=0.2, timeout=0.3, offline_after=3,
                    backoff_base=0.02, backoff_max=0.1, crc_retries=3, spool_retry_max=0.2)


class DiskFull(Spool):
    """A spool whose writes fail while `full` is set, as they do under collector_disk_full."""

    full = False
    failed = 0

    def add(self, records, now=None, meta=None):  # type: ignore[no-untyped-def]
        if self.full:
            self.failed += 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().add(records, now, meta)


def test_the_poller_acknowledges_nothing_it_could_not_spool_and_does_not_spin(tmp_path):
    station = Station()
    expected = {}
    for i in range(30):
        t = transaction(100 + i, i)
        station.d1.accept("transactions", t)
        expected[expected_transaction(t)["key"]] = expected_transaction(t)
    for i in range(10):
        r = inventory(200 + i, i, tank=1 + i % 2)
        station.g.accept("inventory", r)
        expected[expected_inventory(r)["key"]] = expected_inventory(r)

    async def scenario() -> None:
        endpoint: StationEndpoint = await station.start_tcp()
        spool = DiskFull(tmp_path, "S01")
        spool.full = True
        poller = StationPoller(endpoint, PROFILES, RecordBuilder("S01", PROFILES), spool, FAST)
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        try:
            before = station.pending()
            assert await until(lambda: spool.failed >= 5, TIMEOUT)
            started, rounds = time.monotonic(), poller.rounds
            assert await until(lambda: spool.failed >= 8, TIMEOUT)
            # backed off: a round per pause of up to spool_retry_max, not a busy loop
            per_s = (poller.rounds - rounds) / (time.monotonic() - started)
            assert per_s < 1 / FAST.spool_retry_max * 1.5, per_s
            assert station.pending() == before  # nothing acknowledged at the devices
            beat = {d["device"]: d for d in poller.heartbeat_devices()}
            assert all("spool write failed" in (d["error"] or "") for d in beat.values()), beat
            assert all(d["online"] for d in beat.values())  # the devices answer all along
            assert not task.done()
            spool.full = False
            assert await until(lambda: not any(station.pending().values()), TIMEOUT)
            got = {k: v for k, v in ((r.key, json.loads(r.payload))
                                     for r in spool.pending_after(0, 10000))
                   if "/states/" not in k}
            assert {k: strip(v) for k, v in got.items()} == expected  # each once, all there
            assert poller.spool_failures == 0 and poller.spool_failures_total >= 8
        finally:
            stop.set()
            await task
            spool.close()
            await station.stop()

    asyncio.run(scenario())


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.e2e
@pytest.mark.mosquitto
@no_mosquitto
def test_the_reference_collector_under_a_full_disk_loses_and_duplicates_nothing(tmp_path):
    """The collector process with its file size limit lowered from outside, as the harness
    does: what it reads meanwhile stays in the device FIFOs, it reports the failure in its
    heartbeats, stays up without spinning, and afterwards the platform has every record of
    the run once."""
    station = Station(depth=5000)
    expected: dict[str, dict] = {}

    def produce(first: int, n: int) -> None:
        for i in range(first, first + n):
            t = transaction(i, i)
            station.d1.accept("transactions", t)
            expected[expected_transaction(t)["key"]] = expected_transaction(t)
            if i % 5 == 0:
                r = inventory(i // 5, i, tank=1 + i % 2)
                station.g.accept("inventory", r)
                expected[expected_inventory(r)["key"]] = expected_inventory(r)

    served = ThreadedStation(station)
    log = tmp_path / "collector.log"
    proc = None
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        platform = None
        try:
            served.call(lambda: produce(0, 200))
            served.call(station.start_tcp)
            (tmp_path / "endpoints.json").write_text(json.dumps(station.endpoints_doc()))
            key = load_key_file(generate_key_file(["S01"], tmp_path / "keys.json"))["S01"]
            platform = FakePlatform(broker.host, broker.port, "S01", key.active_key)
            with open(log, "ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "acceptance.cli", "collector", "--station", "S01",
                     "--endpoints", str(tmp_path / "endpoints.json"), "--broker", broker.url,
                     "--spool", str(tmp_path / "spool"), "--keys", str(tmp_path / "keys.json"),
                     "--heartbeat", "0.5", "--poll-interval", "0.05", "--ack-timeout", "3",
                     "--log-level", "WARNING"], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
            assert wait_until(lambda: len(platform.data) == len(expected), TIMEOUT), \
                log.read_text()[-2000:]
            filled = fill_disk(proc.pid)
            heartbeats = len(platform.of_type("heartbeat"))
            served.call(lambda: produce(200, 150))
            stored = len(platform.data)

            def spool_failure_reported() -> bool:
                return any("spool write failed" in (d["error"] or "")
                           for hb in platform.of_type("heartbeat")[heartbeats:]
                           for d in hb["devices"])

            assert wait_until(spool_failure_reported, TIMEOUT)
            cpu0, wall0, seen = proc_cpu_s(proc.pid), time.monotonic(), \
                len(platform.of_type("heartbeat"))
            assert wait_until(lambda: len(platform.of_type("heartbeat")) >= seen + 4, TIMEOUT)
            cpu_share = (proc_cpu_s(proc.pid) - cpu0) / (time.monotonic() - wall0)
            # nothing new stored, nothing acknowledged at the devices, no busy loop
            assert len(platform.data) == stored == 240
            left = served.call(station.pending)
            assert left["D1/transactions"] == 150 and left["G/inventory"] == 30, left
            assert cpu_share < 0.3, cpu_share
            assert proc.poll() is None
            unfill_disk(filled)
            assert wait_until(lambda: len(platform.data) == len(expected), TIMEOUT)
            assert wait_until(lambda: not any(served.call(station.pending).values()), TIMEOUT)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            proc = None
            assert {k: strip(v) for k, v in platform.data.items()} == expected
            assert platform.bad_signatures == 0
            text = log.read_text()
            assert "spool writable again after" in text, text[-2000:]
        finally:
            if proc is not None:
                proc.kill()
                proc.wait(10)
            if platform is not None:
                platform.close()
            served.stop()


# -- platform_db_unavailable -----------------------------------------------------------------

def _quick_to_give_up(conn) -> None:  # type: ignore[no-untyped-def]
    if conn.dialect == "postgresql":  # the platform waits without limit; the test need not
        conn.execute("SET lock_timeout = '200ms'")


def test_the_harness_lock_makes_the_platforms_commits_fail(db_url):
    platform = Database(db_url, busy_timeout_s=0.2)
    conn = platform.connect()
    _quick_to_give_up(conn)
    insert = ("INSERT INTO ingest_counters (station_id, name, value) VALUES ('UMB01', ?, 1)")
    lock = DatabaseLock(db_url)
    try:
        with pytest.raises(operational_errors()) as err, conn.transaction():
            conn.execute(insert, ("during",))
        assert "locked" in str(err.value) or "lock timeout" in str(err.value), err.value
        # readers go on: the API still answers from what was committed
        assert conn.query_one("SELECT COUNT(*) FROM ingest_counters") == (0,)
    finally:
        lock.release()
    with conn.transaction():
        conn.execute(insert, ("after",))
    assert conn.query("SELECT name FROM ingest_counters") == [("after",)]
    conn.close()


def test_the_platforms_database_is_the_one_it_was_started_on(tmp_path):
    def chain(argv: list[str], external: bool = False) -> SimpleNamespace:
        return SimpleNamespace(external_platform=external,
                               platform=SimpleNamespace(argv=argv, cwd=tmp_path))

    argv = ["python", "-m", "acceptance.cli", "platform", "--db", "sqlite:///a.db", "--http",
            "127.0.0.1:1"]
    assert platform_db_url(chain(argv)) == "sqlite:///a.db"  # type: ignore[arg-type]
    # the chain's platform_args come last and win, as argparse reads them
    assert platform_db_url(chain([*argv, "--db=postgresql://u@h/db"])) == \
        "postgresql://u@h/db"  # type: ignore[arg-type]
    with pytest.raises(ChainError, match="external"):
        platform_db_url(chain(argv, external=True))  # type: ignore[arg-type]
    with pytest.raises(ChainError, match="no database"):
        DatabaseLock("sqlite:///missing.db", tmp_path)
    assert not (tmp_path / "missing.db").exists()  # never creates one


def test_the_harness_lock_waits_out_a_deadlock_with_a_platform_transaction(db_url):
    """The harness locks the tables one after another. A platform transaction holding the
    last and then asking for the first is a deadlock that PostgreSQL breaks by aborting the
    harness's side (CI, 2026-12-07): the lock is taken again once that transaction ends."""
    if not db_url.startswith("postgres"):
        pytest.skip("SQLite locks the whole database at once: no deadlock")
    import threading

    import psycopg
    from psycopg import sql

    with psycopg.connect(db_url, autocommit=True) as admin:
        # New sessions look for a deadlock after 10 s of waiting; the platform's side below
        # never does, so the harness's side finds the cycle, as in CI, whatever the load.
        admin.execute(sql.SQL("ALTER DATABASE {} SET deadlock_timeout = '10s'").format(
            sql.Identifier(admin.execute("SELECT current_database()").fetchone()[0])))
        tables = [r[0] for r in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")]
    platform = psycopg.connect(db_url)
    taken: dict[str, object] = {}
    harness = threading.Thread(target=lambda: taken.update(lock=DatabaseLock(db_url)))
    try:
        platform.execute("SET deadlock_timeout = '1h'")
        platform.execute("SET lock_timeout = '120s'")
        platform.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(
            sql.Identifier(tables[-1])))  # what an INSERT takes
        harness.start()
        assert wait_until(lambda: _blocked_on_a_lock(db_url), TIMEOUT)
        # closes the cycle; returns once the harness's side has given way
        platform.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(
            sql.Identifier(tables[0])))
        platform.commit()
        harness.join(120)
        assert isinstance(taken.get("lock"), DatabaseLock)
    finally:
        platform.close()
        harness.join(120)
        if isinstance(taken.get("lock"), DatabaseLock):
            taken["lock"].release()  # type: ignore[attr-defined]


class Publisher:
    """A stand-in collector: publishes signed messages (QoS 1) and collects the acks."""

    def __init__(self, broker: Mosquitto) -> None:
        import paho.mqtt.client as mqtt

        self.acks: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-col-{os.getpid()}-{time.monotonic_ns()}")
        self.client.on_message = lambda _c, _u, m: self.acks.append(
            verify_ack(m.topic, bytes(m.payload), KEYS["UMB01"]["k1"]))
        subscribed = []
        self.client.on_subscribe = lambda *a: subscribed.append(True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("fsx/v1/UMB01/ack", qos=1)
        assert wait_until(lambda: subscribed, TIMEOUT)

    def publish(self, topic_payload: tuple[str, bytes]) -> None:
        self.client.publish(*topic_payload, qos=1).wait_for_publish(TIMEOUT)

    def ack_for(self, msg_seq: int) -> dict | None:
        return next((a for a in list(self.acks) if a["acked_msg_seq"] == msg_seq), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _blocked_on_a_lock(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND wait_event_type = 'Lock'").fetchone()
    return bool(row and row[0])


@pytest.mark.mosquitto
@no_mosquitto
def test_the_platform_acks_nothing_it_could_not_commit_and_stores_everything_once(
        db_url, tmp_path):
    """Messages arrive while the database is locked: no signed ack (and no PUBACK), the
    ingest worker keeps them and retries; after the lock every record is stored once, and
    the collector's resend of the same records is acknowledged as duplicates."""
    keys = write_key_file(tmp_path / "keys.json")
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        db = Database(db_url, busy_timeout_s=0.3)
        service = IngestService(db, broker.url, {s.station_id: s for s in STATIONS},
                                KeyFile(keys), client_id=f"fc-platform-{os.getpid()}")
        service.start()
        col = None
        lock = None
        try:
            assert service.wait_subscribed(TIMEOUT)
            col = Publisher(broker)
            now = time.time()
            recs = [txn("UMB01", "D1", i, T0 + 300 * i, total_before=40_000 * i)
                    for i in range(4)]
            lock = DatabaseLock(db_url)
            col.publish(data_message("UMB01", "D1", "transaction", recs[:3], 1, now))
            if db.dialect == "sqlite":  # its commit waited for the busy timeout and failed
                assert wait_until(lambda: (service.last_error or "").startswith(
                    "database unavailable"), TIMEOUT), service.last_error
            else:  # its INSERT waits for the lock
                assert wait_until(lambda: _blocked_on_a_lock(db_url), TIMEOUT)
            col.publish(data_message("UMB01", "D1", "transaction", recs[3:], 2, now))
            assert col.acks == []
            with db.borrow() as conn:  # readers are not blocked
                assert conn.query_one("SELECT COUNT(*) FROM transactions") == (0,)
            assert service._worker is not None and service._worker.is_alive()
            lock.release()
            lock = None
            assert wait_until(lambda: col.ack_for(1) and col.ack_for(2), TIMEOUT)
            assert col.ack_for(1)["accepted"] == [r["key"] for r in recs[:3]]  # type: ignore[index]
            assert col.ack_for(2)["accepted"] == [recs[3]["key"]]  # type: ignore[index]
            # what a collector whose ack timed out sends again: acknowledged, not stored twice
            col.publish(data_message("UMB01", "D1", "transaction", recs, 3, now))
            assert wait_until(lambda: col.ack_for(3), TIMEOUT)
            assert col.ack_for(3)["duplicates"] == [r["key"] for r in recs]  # type: ignore[index]
            with db.borrow() as conn:
                assert conn.query_one("SELECT COUNT(*) FROM transactions") == (4,)
            assert service.last_error is None
        finally:
            if lock is not None:
                lock.release()
            if col is not None:
                col.close()
            service.stop()
            db.close()


def test_a_failed_reconnect_keeps_the_batch_and_retries(tmp_path):
    """A database refusing connections (DatabaseError from connect, not an OperationalError)
    must not drop the batch: it would stay without PUBACK at the broker, unprocessed."""
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    ready_database(url).close()

    class Refusing(Database):
        refusals = 2

        def connect(self):  # type: ignore[no-untyped-def]
            if self.refusals:
                self.refusals -= 1
                raise DatabaseError("cannot connect: connection refused")
            return super().connect()

    from central.checks import Inbound

    db = Refusing(url)
    service = IngestService(db, "mqtt://127.0.0.1:1", {s.station_id: s for s in STATIONS},
                            KeyFile(write_key_file(tmp_path / "keys.json")))
    topic, payload = data_message("UMB01", "D1", "transaction",
                                  [txn("UMB01", "D1", 1, T0)], 1, time.time())
    conn, outcomes = service._process(None, [_Received(Inbound(topic, payload, time.time(),
                                                                False), 1, 1, 0)])
    assert db.refusals == 0 and outcomes is not None
    assert [o.status for o in outcomes] == ["stored"] and outcomes[0].ack is not None
    assert service.last_error is None
    assert conn is not None
    conn.close()
    db.close()


def test_the_api_answers_503_for_what_needs_the_locked_database_and_reads_go_on(tmp_path):
    from zoneinfo import ZoneInfo

    from central.auth import TokenStore
    from central.http_api import Api
    from central.resources import Context
    from central.vcf import Vcf

    url = f"sqlite:///{tmp_path / 'platform.db'}"
    ready_database(url).close()
    db = Database(url, busy_timeout_s=0.2)
    token = "a" * 32
    api = Api(db, TokenStore([(token, "admin", "tester")]),
              Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, time.time))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"station_id": "UMB01", "period_start": "2026-04-01",
                       "period_end": "2026-04-30", "declared_sales_fen": 1}).encode()
    lock = DatabaseLock(url)
    try:
        resp = api.handle("POST", "/api/v1/tax-declarations", headers, body)
        assert resp.status == 503 and resp.body["error"]["code"] == "unavailable", resp
        assert resp.headers["Retry-After"]
        assert api.handle("GET", "/api/v1/stations", headers, b"").status == 200
    finally:
        lock.release()
    assert api.handle("POST", "/api/v1/tax-declarations", headers, body).status == 201
    db.close()


def test_in_fleet_mode_the_disk_stays_full_until_every_stations_fault_has_ended(tmp_path):
    """One `collectors` process holds every station's spool: faults naming two stations
    overlap on it, and the limit is put back only when the last one ends."""
    from acceptance.faults import KINDS
    from acceptance.schedule import Fault

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert wait_until(lambda: sigxfsz_disposition(proc.pid) == "ignored", TIMEOUT)
    part = SimpleNamespace(name="collectors", pid=proc.pid, alive=True)

    class FleetChain:  # what the fault uses of a Chain in fleet mode (weakly referenced)
        def collector_part(self, station: str | None) -> SimpleNamespace:
            return part

    chain = FleetChain()
    kind = KINDS["collector_disk_full"]
    a = Fault("collector_disk_full", "UMB25", T0, 3600.0)
    b = Fault("collector_disk_full", "UMB44", T0 + 600, 3600.0)

    def soft() -> int:
        return resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)[0]

    try:
        kind.start(chain, a)  # type: ignore[misc,arg-type]
        kind.start(chain, b)  # type: ignore[misc,arg-type]
        assert soft() == 0
        kind.end(chain, a)  # type: ignore[misc,arg-type]
        assert soft() == 0
        kind.end(chain, b)  # type: ignore[misc,arg-type]
        assert soft() == resource.RLIM_INFINITY
    finally:
        proc.kill()
        proc.wait(10)


class FullDiskSpool(Spool):
    """Every spool write fails while `full` is set: records, ack deletes, msg_seq blocks."""

    full = False
    failed_settle = 0
    failed_seq = 0

    def _tx(self, db=None):  # type: ignore[no-untyped-def]
        if self.full:
            raise sqlite3.OperationalError("disk I/O error")
        return super()._tx(db)

    def settle(self, done, rejected=(), now=None):  # type: ignore[no-untyped-def]
        try:
            return super().settle(done, rejected, now)
        except sqlite3.Error:
            self.failed_settle += 1
            raise

    def next_msg_seq(self) -> int:
        try:
            return super().next_msg_seq()
        except sqlite3.Error:
            self.failed_seq += 1
            raise


@pytest.mark.mosquitto
@no_mosquitto
def test_the_uplink_keeps_acked_records_until_it_can_delete_them_and_sends_nothing_unnumbered(
        tmp_path, monkeypatch):
    """Acks that arrive while the spool cannot delete are applied once it can (the records
    stay spooled meanwhile); a message that needs a new msg_seq block is not sent; the
    collector neither exits nor loses anything."""
    import collector.station
    from collector.keys import StationKeys
    from collector.station import CollectorSettings, StationCollector
    from collector.uplink import UplinkSettings

    monkeypatch.setattr(collector.station, "Spool", FullDiskSpool)
    key = bytes(range(32))
    settings = CollectorSettings(
        heartbeat_interval=0.3,
        poll=PollSettings(poll_interval=0.05, live_interval=0.2, timeout=0.5),
        uplink=UplinkSettings(window=4, ack_timeout=1.0, keepalive=5, reconnect_min=0.1,
                              reconnect_max=0.5))
    station = Station()
    expected = {}
    for i in range(20):
        t = transaction(300 + i, i)
        station.d1.accept("transactions", t)
        expected[expected_transaction(t)["key"]] = expected_transaction(t)

    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        platform = FakePlatform(broker.host, broker.port, "S01", key)
        platform.ack_enabled = False  # it swallows the first sends

        async def scenario() -> None:
            endpoint = await station.start_tcp()
            col = StationCollector(endpoint, PROFILES, StationKeys("S01", "k1", {"k1": key}),
                                   (broker.host, broker.port), tmp_path / "spool", settings)
            spool = col.spool
            assert isinstance(spool, FullDiskSpool)
            stop = asyncio.Event()
            task = asyncio.create_task(col.run(stop))

            def spooled() -> set[str]:
                return {k for k in spool.pending_keys() if "/states/" not in k}

            try:
                assert await until(lambda: spooled() == set(expected)
                                   and not any(station.pending().values()), TIMEOUT)
                assert await until(lambda: len(platform.of_type("transaction")) >= 1, TIMEOUT)
                spool.full = True
                platform.ack_enabled = True  # the resends are acked; the spool cannot delete
                assert await until(lambda: set(platform.data) == set(expected)
                                   and spool.failed_settle >= 2, TIMEOUT), spool.failed_settle
                assert spooled() == set(expected)  # acknowledged, not yet forgotten
                # the msg_seq block runs out: nothing may be sent under an unreserved number
                spool._reserved = spool._next_msg_seq - 1
                assert await until(lambda: spool.failed_seq >= 2, TIMEOUT)
                assert not task.done()
                spool.full = False
                assert await until(lambda: not spooled(), TIMEOUT)
                beats = len(platform.of_type("heartbeat"))
                assert await until(lambda: len(platform.of_type("heartbeat")) > beats, TIMEOUT)
                assert not task.done()
            finally:
                stop.set()
                await asyncio.wait_for(task, 20)
                await station.stop()

        try:
            asyncio.run(asyncio.wait_for(scenario(), 90))
            assert {k: strip(v) for k, v in platform.data.items()} == expected
            assert platform.bad_signatures == 0
            seqs = [p["msg_seq"] for _, p in platform.messages]
            assert len(seqs) == len(set(seqs))  # no msg_seq used twice
        finally:
            platform.close()
