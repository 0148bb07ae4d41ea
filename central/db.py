"""One small database interface over SQLite (default) and PostgreSQL (psycopg 3).

SQL is written once with `?` placeholders and portable syntax (ON CONFLICT, row values,
window functions); `Conn` translates placeholders for PostgreSQL. Callers get plain tuples.
A `Database` hands out pooled connections: the ingest worker holds one for its whole life,
HTTP request threads borrow one per request.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class DatabaseError(Exception):
    """A database URL or connection problem, with the URL (password removed) named."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


def operational_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the database is unavailable now; retry later"."""
    errors: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        import psycopg

        errors.append(psycopg.OperationalError)
    except ImportError:  # PostgreSQL support is optional
        pass
    return tuple(errors)


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """`operational_errors()` and a failed (re)connect: what a caller retries later."""
    return (DatabaseError, *operational_errors())


class Conn:
    """A connection in explicit-transaction mode: use `transaction()` for writes."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._in_tx = False

    def _sql(self, sql: str) -> str:
        if self.dialect == POSTGRESQL:
            # psycopg uses %s placeholders and treats a bare % as one.
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.raw.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.raw.cursor().executemany(self._sql(sql), rows)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
               skip_conflict_on: str | None = None) -> None:
        """Bulk insert (inside `transaction()`). `skip_conflict_on`: a unique column; rows
        whose value is already stored are skipped (another platform instance on this
        database may have stored it since the caller looked); without it a conflict raises.

        PostgreSQL: COPY (issue 11), through a temporary table when conflicts are skipped,
        since COPY itself cannot skip them; SQLite: executemany, already in-process."""
        if not rows:
            return
        cols = ", ".join(columns)
        skip = f" ON CONFLICT ({skip_conflict_on}) DO NOTHING" if skip_conflict_on else ""
        if self.dialect != POSTGRESQL:
            self.executemany(f"INSERT INTO {table} ({cols}) VALUES "
                             f"({placeholders(len(columns))}){skip}", rows)
            return
        cur = self.raw.cursor()
        target = table
        if skip_conflict_on:
            target = f"_copy_{table}"
            # per session and emptied by every commit: no catalogue churn per batch
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {target} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if skip_conflict_on:
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {target}{skip}")
            cur.execute(f"DELETE FROM {target}")  # for a second call in this transaction

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """BEGIN … COMMIT, or ROLLBACK if the block raises. Not re-entrant."""
        if self._in_tx:
            raise RuntimeError("transaction() is not re-entrant")
        self._in_tx = True
        try:
            if self.dialect == POSTGRESQL:
                with self.raw.transaction():
                    yield self
                return
            self.raw.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-batch
            try:
                yield self
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("COMMIT")
        finally:
            self._in_tx = False

    def rollback_quietly(self) -> None:
        # The connection may already be gone; then there is nothing to undo.
        with contextlib.suppress(Exception):
            self.raw.rollback()

    def close(self) -> None:
        # Closing a broken connection must not mask the error that broke it.
        with contextlib.suppress(Exception):
            self.raw.close()


def _open_sqlite(path: str, busy_timeout_s: float = 30.0) -> Any:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                          timeout=busy_timeout_s)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return raw


def _open_postgresql(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise DatabaseError("PostgreSQL URL given but psycopg 3 is not installed "
                            "(pip install 'psycopg[binary]')") from exc
    try:
        raw = psycopg.connect(url, autocommit=False, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to {redact_url(url)}: {exc}") from exc
    # Read statements must not hold a transaction (and its snapshot) open between calls.
    raw.autocommit = True
    return raw


class Database:
    """A database URL plus a small pool of connections. `busy_timeout_s` (SQLite): how long
    a write waits for a lock another connection holds before it fails "database is locked"."""

    def __init__(self, url: str, pool_size: int = 4, busy_timeout_s: float = 30.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # sqlite:///relative/or/absolute ; sqlite:///:memory: is refused (not shareable)
            path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
            if not path or path == ":memory:":
                raise DatabaseError(f"--db {url!r}: expected sqlite:///path/to/file.db")
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            self.dialect = SQLITE
            self._target = str(Path(path).expanduser())
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = POSTGRESQL
            self._target = url
        else:
            raise DatabaseError(f"--db {redact_url(url)!r}: expected sqlite:///path or "
                                "postgresql://user@host:port/dbname")
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._pool: queue.LifoQueue[Conn] = queue.LifoQueue()
        self._pool_size = pool_size
        self._closed = False

    def connect(self) -> Conn:
        """A new connection owned by the caller (close it when done)."""
        if self.dialect == SQLITE:
            try:
                return Conn(_open_sqlite(self._target, self.busy_timeout_s), SQLITE)
            except sqlite3.Error as exc:
                raise DatabaseError(f"cannot open SQLite database {self._target}: {exc}") from exc
        return Conn(_open_postgresql(self._target), POSTGRESQL)

    @contextmanager
    def borrow(self) -> Iterator[Conn]:
        """A pooled connection for one unit of work; a broken one is discarded."""
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self.connect()
        try:
            yield conn
        except BaseException as exc:
            conn.rollback_quietly()
            if isinstance(exc, operational_errors()):
                conn.close()
            else:
                self._release(conn)
            raise
        self._release(conn)

    def _release(self, conn: Conn) -> None:
        if not self._closed and self._pool.qsize() < self._pool_size:
            self._pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def in_chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Slices of at most `size` items (SQL parameter lists stay bounded)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def placeholders(n: int) -> str:
    return ",".join("?" * n)
