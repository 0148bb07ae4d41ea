"""platform_db_unavailable: the platform's database accepts no writes for the fault's duration.

The harness opens its own connection to the reference platform's database (the `--db` the
chain started it with) and takes every write lock there is, in a transaction it holds until
the fault ends:

- SQLite (the default): `BEGIN EXCLUSIVE`. Each of the platform's write transactions waits
  (its busy timeout, 30 s for the reference) and then fails with "database is locked";
  readers go on (WAL), so the API still answers from what was committed.
- PostgreSQL: `LOCK TABLE <every table of the schema> IN EXCLUSIVE MODE`. Every INSERT,
  UPDATE and DELETE waits for the lock (plain SELECTs do not); nothing is left behind if
  the harness dies (the lock goes with its connection). Terminating the platform's backends
  was not chosen: the platform reconnects at once, and refusing its connections needs the
  database's owner or a superuser and would outlive a harness that dies.

Either way nothing the platform writes can commit while it lasts — a database held by a
migration or a backup, or failed over to read-only — so a correct platform acknowledges
nothing meanwhile. A platform the harness did not start (a vendor's) is refused.
"""

from __future__ import annotations

import sqlite3
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from acceptance.faults.base import FaultKind
from acceptance.processes import ChainError

if TYPE_CHECKING:
    from acceptance.chain import Chain
    from acceptance.schedule import Fault

LOCK_WAIT_S = 30.0  # for the platform's transaction in progress to end
DEADLOCK_ATTEMPTS = 5


def platform_db_url(chain: Chain) -> str:
    """The database URL the chain's platform runs on (its last `--db`, as argparse reads)."""
    if chain.external_platform:
        raise ChainError("the platform is external: the harness cannot reach its database")
    argv = chain.platform.argv
    url = None
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            url = argv[i + 1]
        elif arg.startswith("--db="):
            url = arg[len("--db="):]
    if url is None:
        raise ChainError(f"no --db in the platform's arguments: {argv}")
    return url


class DatabaseLock:
    """A harness transaction holding the platform database's write locks."""

    def __init__(self, url: str, cwd: Path | None = None) -> None:
        self.url = url
        self._conn: Any = None
        scheme = urlparse(url).scheme
        if scheme == "sqlite":
            path = Path(unquote(url[len("sqlite:///"):]))
            self._lock_sqlite(path if path.is_absolute() or cwd is None else cwd / path)
        elif scheme in ("postgresql", "postgres"):
            self._lock_postgresql(url)
        else:
            raise ChainError(f"platform_db_unavailable: unsupported database URL scheme "
                             f"{scheme!r}")

    def _lock_sqlite(self, path: Path) -> None:
        if not path.exists():
            raise ChainError(f"platform_db_unavailable: no database at {path}")
        # mode=rw: never create a database; the platform's WAL mode is kept as it is
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=LOCK_WAIT_S,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.Error as exc:
            conn.close()
            raise ChainError(f"platform_db_unavailable: cannot lock {path}: {exc}") from exc
        self._conn = conn

    def _lock_postgresql(self, url: str) -> None:
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(url, autocommit=False, connect_timeout=10)
        except psycopg.Error as exc:
            raise ChainError(f"platform_db_unavailable: cannot connect: {exc}") from exc
        try:
            for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
                try:
                    self._lock_tables(conn, sql)
                    break
                except psycopg.errors.DeadlockDetected as exc:
                    # The tables are locked one after another; a platform transaction that
                    # holds one and then wants one already taken here is a deadlock, and
                    # PostgreSQL may abort this side. Rolled back, that transaction ends, and
                    # the next attempt waits behind it.
                    conn.rollback()
                    if attempt == DEADLOCK_ATTEMPTS:
                        raise ChainError(f"platform_db_unavailable: {attempt} attempts to lock "
                                         f"the platform's tables ended in a deadlock: {exc}"
                                         ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    def _lock_tables(conn: Any, sql: Any) -> None:
        conn.execute(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")]
        if not tables:
            raise ChainError("platform_db_unavailable: the platform's schema has no table")
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in tables)))

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if isinstance(conn, sqlite3.Connection):
                conn.execute("ROLLBACK")
            else:
                conn.rollback()
        finally:
            conn.close()


_LOCKS: weakref.WeakKeyDictionary[Chain, DatabaseLock] = weakref.WeakKeyDictionary()


def start(chain: Chain, fault: Fault) -> None:
    if chain in _LOCKS:
        raise ChainError("platform_db_unavailable: the database is already locked")
    _LOCKS[chain] = DatabaseLock(platform_db_url(chain), chain.platform.cwd)


def end(chain: Chain, fault: Fault) -> None:
    lock = _LOCKS.pop(chain, None)
    if lock is not None:
        lock.release()


KIND = FaultKind(
    name="platform_db_unavailable", layer="platform", served_by="harness", scope="fleet",
    summary="the reference platform's database accepts no writes: the harness holds every "
            "write lock from its own connection (SQLite: BEGIN EXCLUSIVE — the platform's "
            "commits wait, then fail \"database is locked\"; PostgreSQL: LOCK TABLE … IN "
            "EXCLUSIVE MODE on every table — its writes wait); reads go on; released when the "
            "fault ends (a vendor's platform is refused)",
    expected="the platform acknowledges nothing it has not committed (no signed ack, no "
             "PUBACK), keeps the messages and retries without exiting (its API may answer "
             "503); the collectors keep the records in their spools and resend them; "
             "afterwards every record exactly once",
    shows="stations off line at the platform once their heartbeats cannot be stored, on line "
          "again after; its accepted count frozen meanwhile; evidence: the window in "
          "timeline.json, DAT-1..4 and STB-1",
    start=start, end=end)
