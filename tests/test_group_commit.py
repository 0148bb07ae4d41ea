"""Group commit of power-safe spools: a commit returns only after its WAL is synced; one
sync step carries several spools' commits; a failed sync is a failed write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from test_collector_poller import FailingOnce, drain, fill, make_poller, run, spooled
from test_collector_support import Station

from collector import group_commit
from collector.group_commit import GroupCommit, sync_files
from collector.spool import Spool, SpoolRecord


def rec(station: str, seq: int) -> SpoolRecord:
    key = f"{station}/D1/transactions/{seq}/{1767225600 + seq}"
    return SpoolRecord(key, "transaction", "D1", {"key": key, "seq": seq})


class Recorder:
    """A sync step that records which WAL files it synced and what was committed by then,
    read through a connection of its own (committed, whether synced or not)."""

    def __init__(self, fail: int = 0) -> None:
        self.steps: list[dict[str, int]] = []
        self.fail = fail
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, paths):
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError(5, "Input/output error")
        seen = {}
        for wal in paths:
            db = sqlite3.connect(wal.removesuffix("-wal"))
            seen[wal] = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
            db.close()
        self.steps.append(seen)


def test_a_commit_returns_only_after_a_sync_of_its_wal_that_saw_it(tmp_path):
    sync = Recorder()
    group = GroupCommit(sync)
    spools = [Spool(tmp_path / s, s, group=group) for s in ("A", "B", "C")]

    async def scenario():
        # hold the first step in its sync, so the others queue and share the next step
        sync.release.clear()
        first = asyncio.create_task(spools[0].add_async([rec("A", 1)]))
        assert await until_true(sync.entered.is_set)
        rest = [asyncio.create_task(s.add_async([rec(s.station_id, 2), rec(s.station_id, 3)]))
                for s in spools[1:]]
        assert await until_true(lambda: len(group._jobs) == 2)
        assert not first.done()
        sync.release.set()
        assert await first == 1
        assert await asyncio.gather(*rest) == [2, 2]

    run(scenario())
    wal = {s.station_id: f"{s.path}-wal" for s in spools}
    assert sync.steps == [{wal["A"]: 1}, {wal["B"]: 2, wal["C"]: 2}]
    assert (group.steps, group.commits) == (2, 3)
    for s in spools:
        s.close()


async def until_true(condition, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.001)
    return True


def test_a_failed_sync_fails_the_commit_and_the_poller_acknowledges_nothing(tmp_path):
    """The records stay committed but the devices keep them; the next round syncs again."""
    station = Station()
    expected = fill(station)
    before = station.pending()
    sync = Recorder(fail=1)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01", group=GroupCommit(sync))
        try:
            poller = make_poller(endpoint, spool)
            assert await poller.poll_round() == 0 and poller.spool_failures == 1
            assert station.pending() == before  # committed, not synced: nothing acknowledged
            assert spool.backlog > 0
            await drain(poller, spool, len(expected))
            assert await until_true(lambda: not any(station.pending().values()))
            assert spooled(spool) == expected
        finally:
            spool.close()
            await station.stop()

    run(scenario())
    assert sync.steps  # the rounds after the failure were synced
    assert sync.fail == 0


def test_a_failed_write_in_a_step_does_not_fail_the_others(tmp_path):
    group = GroupCommit(Recorder())
    good = Spool(tmp_path / "A", "A", group=group)
    bad = FailingOnce(tmp_path / "B", "B", group=group)

    async def scenario():
        return await asyncio.gather(good.add_async([rec("A", 1)]), bad.add_async([rec("B", 1)]),
                                    return_exceptions=True)

    ok, failed = run(scenario())
    assert ok == 1 and isinstance(failed, sqlite3.OperationalError)
    assert [s.pending_keys() for s in (good, bad)] == [[rec("A", 1).key], []]
    good.close()
    bad.close()


def test_a_plain_add_fsyncs_its_own_wal(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(group_commit, "fsync_path", synced.append)
    spool = Spool(tmp_path, "S01", group=GroupCommit(Recorder()))
    spool.add([rec("S01", 1)])
    spool.quarantine("S01/D1/transactions/2/q", "transaction", "D1", "bad CRC", {"seq": 2})
    assert synced == [f"{spool.path}-wal"] * 2
    spool.close()
    native = Spool(tmp_path / "n", "S01", group=None)  # SQLite's own FULL: no fsync of ours
    native.add([rec("S01", 1)])
    assert len(synced) == 2
    native.close()


def test_sync_files_syncs_one_file_alone_and_a_file_system_once(tmp_path, monkeypatch):
    files = []
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)
        files.append(str(tmp_path / name))
    sync_files(files)  # the real calls work here
    calls = []
    monkeypatch.setattr(group_commit, "fsync_path", lambda p: calls.append(("fsync", p)))
    monkeypatch.setattr(group_commit, "syncfs_path", lambda p: calls.append(("syncfs", p)))
    sync_files(files[:1])
    sync_files(files)
    assert calls[0] == ("fsync", files[0])
    if group_commit._syncfs is not None:
        assert calls[1:] == [("syncfs", files[0])]
    else:
        assert calls[1:] == [("fsync", f) for f in files]
