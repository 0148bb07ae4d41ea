"""Alert store (预警). Detectors (a later issue) call `raise_alert`; the API lists alerts."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from central.db import Conn

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "acknowledged", "closed")


def raise_alert(conn: Conn, *, station_id: str, kind: str, severity: str, raised_at: float,
                title: str, detail: str = "", device: str | None = None,
                nozzle: int | None = None, tank: int | None = None,
                evidence: dict[str, Any] | None = None,
                dedup_key: str | None = None) -> str | None:
    """Store an alert; returns its id, or None if `dedup_key` was raised before.

    Runs in the caller's transaction if there is one (detectors batch their writes).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity {severity!r}: expected one of {SEVERITIES}")
    if not kind or not station_id:
        raise ValueError("alert needs a station_id and a kind")
    alert_id = uuid.uuid4().hex
    cur = conn.execute(
        "INSERT INTO alerts (id, station_id, kind, severity, raised_at, device, nozzle, tank, "
        "title, detail, evidence_json, status, dedup_key, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) "
        "ON CONFLICT (dedup_key) DO NOTHING",
        (alert_id, station_id, kind, severity, raised_at, device, nozzle, tank, title, detail,
         json.dumps(evidence or {}, ensure_ascii=False, sort_keys=True), dedup_key,
         time.time()))
    return alert_id if cur.rowcount == 1 else None
