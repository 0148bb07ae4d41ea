"""Durable store-and-forward spool (断点续传缓存) of one station: SQLite in WAL mode.

Invariant that makes `kill -9` lose nothing: a record is committed here *before* the collector
writes its sequence number to the device FIFO's acknowledge register, and it is deleted only
when a platform acknowledgement lists its key (accepted or duplicate).

Durability: `journal_mode=WAL` with `synchronous=FULL` fsyncs the WAL at every commit, so a
committed record survives not only a killed process but also a power cut or kernel crash —
the situation of a real station collector, whose FIFO acknowledgement makes the device forget
the record. (`NORMAL` would survive `kill -9`, since committed pages sit in the OS cache, but
could lose the last commits on power loss.) Measured here: ~0.3 ms per FULL commit against
~0.04 ms for NORMAL alone, but 46 stations' fsyncs together cost the fleet a quarter of its
throughput (docs/performance.md). So only what a loss would hurt is fsynced: records before
their FIFO acknowledgement, msg_seq reservations, boots. Deleting what the platform
acknowledged is not (`synchronous=NORMAL` on its own connection): a delete lost to a power
cut sends the record again, and the platform answers `duplicate`.

One spool belongs to one station; opening it for another station is an error.

A write that fails (disk full, a file size limit, an I/O error: sqlite3.OperationalError,
e.g. "disk I/O error" for EFBIG) raises and leaves the spool as it was; the same
connections work again once writing does. Callers decide what was not stored: the poller
then acknowledges nothing at the devices, the uplink retries its deletes.

Threading: the record operations have `*_async` twins that run on the spool's own worker
thread, so an fsync waits there (SQLite releases the GIL) instead of stalling the event loop
that every station of a `collectors` process shares. msg_seq reservations use a second
connection from the caller's thread (a write every MSG_SEQ_BLOCK messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from collector.signing import canonical_text

SCHEMA_VERSION = 1
MSG_SEQ_BLOCK = 1000  # msg_seq values reserved per durable write

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- AUTOINCREMENT: ids never reused, so the forwarder's id cursor never skips a new record.
CREATE TABLE IF NOT EXISTS pending (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    device     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    first_seen REAL NOT NULL
);
-- drained_through (collector/drained.py): the oldest unacknowledged record of a device.
CREATE INDEX IF NOT EXISTS pending_device ON pending (device, id);
CREATE TABLE IF NOT EXISTS dead_letter (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT NOT NULL,
    kind    TEXT NOT NULL,
    device  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    payload TEXT NOT NULL,
    at      REAL NOT NULL
);
"""


_WORKERS: ThreadPoolExecutor | None = None


def _workers() -> ThreadPoolExecutor:
    """Worker threads shared by every spool of the process, so a commit's fsync waits there
    instead of on the event loop. Fewer threads than stations (less GIL contention), but not
    too few: with two, 46 stations' commits queued behind each other (a busy station waited
    27 ms per round to commit; 11 ms with eight, docs/performance.md)."""
    global _WORKERS
    if _WORKERS is None:
        _WORKERS = ThreadPoolExecutor(8, thread_name_prefix="spool")
    return _WORKERS


class SpoolError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    key: str
    kind: str
    device: str
    payload: dict


@dataclass(frozen=True, slots=True)
class PendingRow:
    id: int
    key: str
    kind: str
    device: str
    payload: str  # JSON text of the uplink record (canonical from Spool.canonical_from on)


class Spool:
    """The spool of one station.

    Use either the plain methods from one thread, or the `*_async` ones from the event loop
    (they run on the spool's worker thread, one at a time); don't mix both at once.
    """

    def __init__(self, directory: Path, station_id: str, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"spool synchronous mode {synchronous!r}: expected FULL, NORMAL "
                             f"or EXTRA")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "spool.sqlite3"
        self.station_id = station_id
        self._db = self._connect(synchronous)
        try:
            self._init_schema()
        except Exception:
            self._db.close()
            raise
        self._meta_db = self._connect(synchronous)
        # settle(): no fsync (see the module's docstring); the next durable commit syncs
        # the WAL with these frames in it anyway.
        self._settle_db = self._connect("NORMAL")
        self._lock: asyncio.Lock | None = None  # serialises this spool's worker calls
        self.boot_id = uuid.uuid4().hex
        self.boots = self._bump_boot()
        self.canonical_from = self._canonical_from()
        reserved = int(self._meta("msg_seq_reserved", "0"))
        self._next_msg_seq = reserved + 1
        self._reserved = reserved
        self._backlog = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        self._last_id = self._issued_id(self._db)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA busy_timeout=10000")
        return db

    # -- schema and meta -------------------------------------------------------------------

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_: object) -> None:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.Error:
                    self._rollback()
                    raise
            self._rollback()

        def _rollback(self) -> None:
            # A failed write (disk full, I/O error) may already have rolled the transaction
            # back; a ROLLBACK then fails and would hide the error that matters.
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")

    def _tx(self, db: sqlite3.Connection | None = None) -> Spool._Tx:
        return Spool._Tx(db or self._db)

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SpoolError(f"{self.path}: spool schema {version} is newer than this "
                             f"collector ({SCHEMA_VERSION})")
        with self._tx() as db:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            row = db.execute("SELECT value FROM meta WHERE name='station_id'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('station_id', ?)", (self.station_id,))
            elif row[0] != self.station_id:
                raise SpoolError(f"{self.path}: this spool belongs to station {row[0]!r}, "
                                 f"not {self.station_id!r}; give each station its own --spool")

    def _meta(self, name: str, default: str) -> str:
        row = self._meta_db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=?",
                   (name, value, value))

    def meta_int(self, name: str, default: int) -> int:
        """An integer the collector keeps in the spool (e.g. a state report counter)."""
        try:
            return int(self._meta(name, str(default)))
        except ValueError:
            return default

    def _bump_boot(self) -> int:
        with self._tx(self._meta_db) as db:
            boots = int(self._meta("boots", "0")) + 1
            self._set_meta(db, "boots", str(boots))
            self._set_meta(db, "boot_id", self.boot_id)
        return boots

    def _canonical_from(self) -> int:
        """The spool id from which payloads are kept as their canonical text (sign_records
        splices them into messages as they are); a spool of an older collector has its
        rows before it re-encoded when they are sent."""
        with self._tx(self._meta_db) as db:
            first = self._meta("canonical_from", "")
            if not first:
                first = str(self._issued_id(db) + 1)
                self._set_meta(db, "canonical_from", first)
        return int(first)

    # -- message sequence --------------------------------------------------------------------

    def next_msg_seq(self) -> int:
        """Next per-station msg_seq: strictly increasing across restarts, even after kill -9.

        Values are reserved in blocks with one durable write per block; a crash skips the rest
        of the block (gaps are allowed, reuse is not).
        """
        if self._next_msg_seq > self._reserved:
            reserved = self._next_msg_seq + MSG_SEQ_BLOCK - 1
            with self._tx(self._meta_db) as db:
                self._set_meta(db, "msg_seq_reserved", str(reserved))
            self._reserved = reserved
        seq = self._next_msg_seq
        self._next_msg_seq += 1
        return seq

    # -- records -----------------------------------------------------------------------------

    def add(self, records: Iterable[SpoolRecord], now: float | None = None,
            meta: dict[str, str] | None = None) -> int:
        """Commit records durably (one transaction); a key already spooled is ignored.
        `meta` values are committed in the same transaction (e.g. a counter the records use).

        Returns the number of new rows. Only after this returns may the FIFO be acknowledged.
        """
        now = time.time() if now is None else now
        rows = [(r.key, r.kind, r.device, canonical_text(r.payload), now) for r in records]
        if not rows and not meta:
            return 0
        with self._tx() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO pending(key, kind, device, payload, first_seen)"
                           " VALUES (?, ?, ?, ?, ?)", rows)
            added = db.total_changes - before
            for name, value in (meta or {}).items():
                self._set_meta(db, name, value)
            last_id = self._issued_id(db)
        self._backlog += added
        self._last_id = last_id
        return added

    @staticmethod
    def _issued_id(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'pending'").fetchone()
        return int(row[0]) if row else 0

    @property
    def last_id(self) -> int:
        """The newest spool id issued so far (ids only grow: AUTOINCREMENT)."""
        return self._last_id

    def oldest_pending_id(self, device: str) -> int | None:
        """Spool id of the device's oldest record not yet acknowledged by the platform (None:
        none). Reads through the second connection, so it may run on the event loop."""
        row = self._meta_db.execute("SELECT MIN(id) FROM pending WHERE device = ?",
                                    (device,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def pending_after(self, after_id: int, limit: int) -> list[PendingRow]:
        cur = self._db.execute("SELECT id, key, kind, device, payload FROM pending WHERE id > ? "
                               "ORDER BY id LIMIT ?", (after_id, limit))
        return [PendingRow(*row) for row in cur]

    def settle(self, done: Sequence[str], rejected: Sequence[tuple[str, str]] = (),
               now: float | None = None) -> tuple[int, int]:
        """Apply platform acks in one transaction: forget `done` keys (accepted/duplicates),
        move `rejected` (key, reason) to the dead-letter table. Unknown keys are ignored.
        Returns (deleted, dead-lettered)."""
        if not done and not rejected:
            return 0, 0
        now = time.time() if now is None else now
        moved = 0
        with self._tx(self._settle_db) as db:
            before = db.total_changes
            db.executemany("DELETE FROM pending WHERE key = ?", [(k,) for k in done])
            removed = db.total_changes - before
            for key, reason in rejected:
                row = db.execute("SELECT kind, device, payload FROM pending WHERE key = ?",
                                 (key,)).fetchone()
                if row is None:
                    continue
                db.execute("INSERT INTO dead_letter(key, kind, device, reason, payload, at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (key, row[0], row[1], reason, row[2], now))
                db.execute("DELETE FROM pending WHERE key = ?", (key,))
                moved += 1
        self._backlog -= removed + moved
        return removed, moved

    def delete(self, keys: Sequence[str]) -> int:
        return self.settle(keys)[0]

    def reject(self, rejected: Sequence[tuple[str, str]], now: float | None = None) -> int:
        return self.settle((), rejected, now)[1]

    def quarantine(self, key: str, kind: str, device: str, reason: str, payload: dict,
                   now: float | None = None) -> None:
        """Keep something the collector could not forward (e.g. a record failing its CRC)."""
        with self._tx() as db:
            db.execute("INSERT INTO dead_letter(key, kind, device, reason, payload, at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (key, kind, device, reason, json.dumps(payload, separators=(",", ":")),
                        time.time() if now is None else now))

    # -- figures -----------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Records spooled and not yet acknowledged by the platform."""
        return self._backlog

    def dead_letters(self) -> list[dict]:
        cur = self._db.execute("SELECT key, kind, device, reason, payload, at FROM dead_letter "
                               "ORDER BY id")
        return [{"key": k, "kind": kind, "device": d, "reason": r, "payload": json.loads(p),
                 "at": at} for k, kind, d, r, p, at in cur]

    def pending_keys(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT key FROM pending ORDER BY id")]

    # -- the same on the worker thread -------------------------------------------------------

    async def _on_worker(self, fn, *args):
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(_workers(), fn, *args)

    async def add_async(self, records: list[SpoolRecord],
                        meta: dict[str, str] | None = None) -> int:
        return await self._on_worker(self.add, records, None, meta)

    async def pending_after_async(self, after_id: int, limit: int) -> list[PendingRow]:
        return await self._on_worker(self.pending_after, after_id, limit)

    async def settle_async(self, done: Sequence[str],
                           rejected: Sequence[tuple[str, str]] = ()) -> tuple[int, int]:
        return await self._on_worker(self.settle, done, rejected)

    async def quarantine_async(self, key: str, kind: str, device: str, reason: str,
                               payload: dict) -> None:
        await self._on_worker(self.quarantine, key, kind, device, reason, payload)

    def close(self) -> None:
        self._db.close()
        self._meta_db.close()
        self._settle_db.close()
