"""The API's append-only audit log of writes (docs/platform-api.md §5.17): who, when, what,
and how it ended — accepted, refused (401/403), rejected (other 4xx) or failed (5xx)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from central.db import Conn

OUTCOMES = ("accepted", "refused", "rejected", "failed")
MAX_SUMMARY = 500
# Fields of a stored item that identify it; the summary lists those present, in this order.
_SUMMARY_KEYS = ("id", "station_id", "device", "nozzle", "kind", "grade", "period_start",
                 "period_end", "reference", "certificate_no", "price_fen", "valid_from",
                 "status")


def outcome_of(status: int) -> str:
    if status < 400:
        return "accepted"
    if status in (401, 403):
        return "refused"
    return "rejected" if status < 500 else "failed"


def summarize(item: Any) -> str:
    """`key=value` of the identifying fields of a stored item, at most MAX_SUMMARY chars."""
    if not isinstance(item, dict):
        return ""
    parts = [f"{k}={json.dumps(item[k], ensure_ascii=False)}" for k in _SUMMARY_KEYS
             if item.get(k) is not None]
    return truncate(" ".join(parts))


def truncate(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - 1] + "…"


@dataclass(frozen=True)
class AuditEntry:
    at: float
    principal: str
    role: str
    client: str
    method: str
    path: str
    status: int
    station_id: str
    summary: str
    body: bytes | None  # None: not read (larger than the limit)
    body_bytes: int  # its length, or the Content-Length declared for one not read

    def row(self) -> tuple[Any, ...]:
        digest = "" if self.body is None else hashlib.sha256(self.body).hexdigest()
        return (uuid.uuid4().hex, self.at, self.principal[:200], self.role, self.client[:100],
                self.method, self.path[:500], self.status, outcome_of(self.status),
                self.station_id[:32], truncate(self.summary), digest, self.body_bytes)


def record(conn: Conn, entry: AuditEntry) -> None:
    """Append one row; the caller owns the transaction (an accepted write's own, so that no
    write is stored without its audit row)."""
    conn.execute("INSERT INTO api_audit (id, at, principal, role, client, method, path, "
                 "status, outcome, station_id, summary, body_sha256, body_bytes) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entry.row())
