"""Explicit, numbered schema migrations (central/migrations/NNNN_name.sql).

A migration is one file of portable SQL, or — where the engines differ — a pair
`NNNN_name.sqlite.sql` / `NNNN_name.postgresql.sql`. Each is applied once, inside a
transaction, and recorded with its SHA-256 in `schema_migrations`; an applied file that
was edited afterwards is refused (write a new migration instead).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from central.db import POSTGRESQL, SQLITE, Conn, Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql$")

_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    applied_at  DOUBLE PRECISION NOT NULL
)"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations for `dialect` in version order; a dialect-specific file wins."""
    if dialect not in (SQLITE, POSTGRESQL):
        raise MigrationError(f"unknown SQL dialect {dialect!r}")
    chosen: dict[int, tuple[Migration, bool]] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql or "
                                 "NNNN_name.<sqlite|postgresql>.sql")
        version, name, only = int(m.group(1)), m.group(2), m.group(3)
        if only and only != dialect:
            continue
        specific = only is not None
        if version in chosen:
            other, other_specific = chosen[version]
            if other_specific == specific:
                raise MigrationError(f"two migrations numbered {version:04d}: "
                                     f"{other.path.name} and {path.name}")
            if other_specific:
                continue
        chosen[version] = (Migration(version, name, path), specific)
    versions = sorted(chosen)
    if versions and versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"{directory}: migration numbers must run 0001, 0002, … "
                             f"without gaps; found {versions}")
    return [chosen[v][0] for v in versions]


def split_statements(sql: str) -> list[str]:
    """Statements of a migration: `;` at the end of a line ends one; `--` comments dropped.

    Migrations hold plain DDL/DML only (no procedural bodies), which keeps this splitter
    exact and identical for both engines.
    """
    statements, current = [], []
    for line in sql.splitlines():
        code = line.split("--", 1)[0].rstrip()
        if not code.strip():
            continue
        current.append(code)
        if code.endswith(";"):
            statements.append("\n".join(current).rstrip(";").strip())
            current = []
    if any(c.strip() for c in current):
        statements.append("\n".join(current).strip())
    return [s for s in statements if s]


def applied(conn: Conn) -> dict[int, tuple[str, str]]:
    """version → (name, sha256) of migrations already applied."""
    rows = conn.query("SELECT version, name, sha256 FROM schema_migrations ORDER BY version")
    return {int(v): (n, h) for v, n, h in rows}


def migrate(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Bring the schema up to date; returns the names of the migrations applied now."""
    conn = db.connect()
    try:
        with conn.transaction():
            conn.execute(_BOOKKEEPING)
        done = applied(conn)
        todo = []
        for mig in discover(db.dialect, directory):
            if mig.version in done:
                name, digest = done[mig.version]
                if digest != mig.sha256:
                    raise MigrationError(
                        f"migration {mig.version:04d} ({mig.path.name}) was changed after it "
                        f"was applied to this database (recorded {name}, sha256 {digest[:12]}…);"
                        " add a new migration instead of editing an applied one")
                continue
            todo.append(mig)
        for mig in todo:
            with conn.transaction():
                for stmt in split_statements(mig.sql):
                    try:
                        conn.execute(stmt)
                    except Exception as exc:
                        raise MigrationError(f"{mig.path.name}: {exc}\nin statement:\n"
                                             f"{stmt[:400]}") from exc
                conn.execute("INSERT INTO schema_migrations (version, name, sha256, applied_at) "
                             "VALUES (?, ?, ?, ?)",
                             (mig.version, mig.name, mig.sha256, time.time()))
        return [f"{m.version:04d}_{m.name}" for m in todo]
    finally:
        conn.close()
