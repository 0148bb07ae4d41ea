"""The per-station hash chain of stored records (tamper evidence; docs/platform-api.md
§5.18).

Each record ingest stores is appended to its station's chain in the same transaction:

    chain_hash = SHA-256(previous chain_hash hex + "\\n" + stream + "\\n" + key + "\\n" + digest)

with 64 zeros before the first link; `digest` is `central.checks.record_digest` over the
record as stored. A later UPDATE, DELETE or INSERT on a data table, or an edit of a chain
row, no longer matches (central/integrity.py finds it). This module is the definition and
the ingest side; it reads no data table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from central.checks import record_digest
from central.db import Conn

GENESIS = "0" * 64


def link(previous: str, stream: str, key: str, digest: str) -> str:
    """The chain hash of a link (hex); `previous` is the prior link's, or GENESIS."""
    return hashlib.sha256(f"{previous}\n{stream}\n{key}\n{digest}".encode()).hexdigest()


def stored_digest(values: Mapping[str, Any]) -> str:
    """`record_digest` of a record as its table row holds it: the key, seq and record fields
    (without collected_at); an optional field stored as NULL was not reported, so it is left
    out exactly as the uplink record left it out."""
    return record_digest({k: v for k, v in values.items() if v is not None})


def stored_digester(fields: Sequence[str]) -> Callable[[Sequence[Any]], str]:
    """`stored_digest` of table rows whose values come in `fields` order, without a dict
    per row: the chain check recomputes it for every record stored."""
    order = [(i, f"{name}=") for i, name in sorted(enumerate(fields), key=lambda p: p[1])
             if name != "collected_at"]
    sha256 = hashlib.sha256

    def digest(values: Sequence[Any]) -> str:
        text = "\x1f".join([prefix + str(values[i]) for i, prefix in order
                            if values[i] is not None])
        return sha256(text.encode("utf-8")).hexdigest()

    return digest


class ChainAppender:
    """One ingest batch's appends: lock the heads first, link in store order, write once.

    `lock` takes each station's head row (upsert … RETURNING locks it in PostgreSQL) before
    the batch looks up which records are already stored, so a second platform instance on
    the same database waits until this transaction commits and then sees its records as
    stored; locking in sorted station order keeps two instances from deadlocking.
    """

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.heads: dict[str, tuple[int, str]] = {}  # station → (position, chain_hash)
        self.rows: list[tuple[str, int, str, str, str, str]] = []
        self.moved: set[str] = set()

    def lock(self, station_ids: Iterable[str]) -> None:
        for sid in sorted(set(station_ids) - self.heads.keys()):
            row = self.conn.query_one(
                "INSERT INTO chain_heads (station_id, position, head) VALUES (?, 0, ?) "
                "ON CONFLICT (station_id) DO UPDATE SET position = chain_heads.position "
                "RETURNING position, head", (sid, GENESIS))
            if row is None:  # RETURNING always gives the row
                raise RuntimeError(f"chain head of {sid}: the database returned no row")
            self.heads[sid] = (int(row[0]), str(row[1]))

    def append(self, station_id: str, stream: str, key: str, digest: str) -> None:
        if station_id not in self.heads:
            raise RuntimeError(f"chain of {station_id}: append before lock")
        position, head = self.heads[station_id]
        position, head = position + 1, link(head, stream, key, digest)
        self.heads[station_id] = (position, head)
        self.rows.append((station_id, position, stream, key, digest, head))
        self.moved.add(station_id)

    def flush(self) -> None:
        """Write the batch's links and move each station's head (one statement each)."""
        self.conn.insert("record_chain", ("station_id", "position", "stream", "key", "digest",
                                          "chain_hash"), self.rows)
        self.conn.executemany(
            "UPDATE chain_heads SET position = ?, head = ? WHERE station_id = ?",
            [(*self.heads[sid], sid) for sid in sorted(self.moved)])
        self.rows.clear()
        self.moved.clear()
