"""Group commit (组提交) of the spools of one process: one writer thread commits what every
station's poll round hands it, then makes all of it durable at once.

A spool in power-safe mode commits its records with SQLite's `synchronous=NORMAL` (the WAL
frames are written, not synced); the writer then syncs, in one step, the WAL files of every
commit it took since its last step, and only then do the commits' callers resume (and
acknowledge the devices' FIFOs). With 23 stations per process, one step carries many
stations' rounds. Measured (docs/performance.md): per-commit fsyncs from eight threads cost
≈ 0.5 ms of CPU per commit on this machine, of which the fsync ≈ 0.2 ms and the threads
contending for the GIL most of the rest; one thread and one `syncfs` for 23 spools ≈ 0.2 ms.

Why a NORMAL commit followed by a sync of its WAL is as durable as `synchronous=FULL`: the
commit has written all its frames with write(), and SQLite syncs the WAL header itself when
it starts the WAL again after a checkpoint; once the file is synced, recovery after a power
cut finds the commit's frames whole (their checksums chain). Frames checkpointed meanwhile
are in the database file, which SQLite syncs at the end of every checkpoint in NORMAL mode.

Several files are synced with one `syncfs(2)` (Linux; it also writes out other dirty files of
the same file system, which the kernel would write anyway), a single file with `fsync(2)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_syncfs: Callable[[int], int] | None = getattr(_libc, "syncfs", None)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs_path(path: str) -> None:
    """Sync the whole file system that holds `path`."""
    if _syncfs is None:
        raise OSError(f"syncfs(2) is not available here ({path})")
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}", path)
    finally:
        os.close(fd)


def sync_files(paths: Sequence[str]) -> None:
    """Make every file of `paths` durable: one syncfs per file system, or an fsync each."""
    if len(paths) == 1 or _syncfs is None:
        for path in paths:
            fsync_path(path)
        return
    devices: dict[int, str] = {}
    for path in paths:
        devices.setdefault(os.stat(path).st_dev, path)
    for path in devices.values():
        syncfs_path(path)


class _Job:
    __slots__ = ("commit", "wal", "loop", "future", "result", "error")

    def __init__(self, commit: Callable[[], Any], wal: str, loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future) -> None:
        self.commit, self.wal, self.loop, self.future = commit, wal, loop, future
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """One writer thread, started on first use, for every spool of the process."""

    def __init__(self, sync: Callable[[Sequence[str]], None] = sync_files) -> None:
        self._sync = sync
        self._cond = threading.Condition()
        self._jobs: list[_Job] = []
        self._thread: threading.Thread | None = None
        self.steps = 0  # figures for benchmarks: steps taken, commits they carried
        self.commits = 0

    def on_writer(self) -> bool:
        return threading.current_thread() is self._thread

    async def commit(self, commit: Callable[[], Any], wal: str) -> Any:
        """Run `commit` (a NORMAL-mode SQLite transaction writing to `wal`) on the writer
        thread; return its result once the WAL is durable. A failed sync raises
        sqlite3.OperationalError, as a failed SQLite write does."""
        loop = asyncio.get_running_loop()
        job = _Job(commit, wal, loop, loop.create_future())
        with self._cond:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="spool-writer",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return await job.future

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                jobs, self._jobs = self._jobs, []
            self._step(jobs)

    def _step(self, jobs: list[_Job]) -> None:
        for job in jobs:
            try:
                job.result = job.commit()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                job.error = exc
        committed = [job for job in jobs if job.error is None]
        if committed:
            try:
                self._sync(sorted({job.wal for job in committed}))
            except BaseException as exc:  # noqa: BLE001
                error = sqlite3.OperationalError(f"spool sync failed: {exc}")
                error.__cause__ = exc
                for job in committed:
                    job.error = error
        self.steps += 1
        self.commits += len(jobs)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, mine in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_deliver, mine)


def _deliver(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # cancelled meanwhile
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


SHARED = GroupCommit()  # the writer of the process: every power-safe spool commits through it
