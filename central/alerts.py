"""Alert store (预警): detectors raise alerts here; the API lists them and moves them through
their lifecycle open → confirmed → closed (an inspector confirms or closes one)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from central.db import Conn

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "confirmed", "closed")
# Allowed status changes: an open alert is confirmed (the inspector found the cheat) or
# closed (dismissed); a confirmed one is closed once rectified. Nothing reopens.
TRANSITIONS = {"open": ("confirmed", "closed"), "confirmed": ("closed",), "closed": ()}


def raise_alert(conn: Conn, *, station_id: str, kind: str, severity: str, raised_at: float,
                title: str, detail: str = "", device: str | None = None,
                nozzle: int | None = None, tank: int | None = None,
                evidence: dict[str, Any] | None = None, dedup_key: str | None = None,
                as_of: float | None = None, detector: str | None = None) -> str | None:
    """Store an alert; returns its id, or None if `dedup_key` was raised before.

    `as_of` is the detection instant in device time (docs/platform-api.md §5.3): the time up
    to which the data that proves the alert was examined. Runs in the caller's transaction
    if there is one (detectors batch their writes).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity {severity!r}: expected one of {SEVERITIES}")
    if not kind or not station_id:
        raise ValueError("alert needs a station_id and a kind")
    alert_id = uuid.uuid4().hex
    cur = conn.execute(
        "INSERT INTO alerts (id, station_id, kind, severity, raised_at, device, nozzle, tank, "
        "title, detail, evidence_json, status, dedup_key, created_at, as_of, detector) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?) "
        "ON CONFLICT (dedup_key) DO NOTHING",
        (alert_id, station_id, kind, severity, raised_at, device, nozzle, tank, title, detail,
         json.dumps(evidence or {}, ensure_ascii=False, sort_keys=True), dedup_key,
         time.time(), as_of, detector))
    return alert_id if cur.rowcount == 1 else None


class AlertStatusError(ValueError):
    """A status change the lifecycle does not allow (names the alert, from and to)."""


def set_status(conn: Conn, alert_id: str, status: str, *, by: str, note: str = "",
               now: float | None = None) -> dict[str, Any]:
    """Move an alert along its lifecycle; KeyError if there is no such alert."""
    if status not in STATUSES:
        raise AlertStatusError(f"status {status!r}: expected one of {STATUSES}")
    row = conn.query_one("SELECT status FROM alerts WHERE id = ?", (alert_id,))
    if row is None:
        raise KeyError(alert_id)
    current = str(row[0])
    if status not in TRANSITIONS.get(current, ()):
        raise AlertStatusError(f"alert {alert_id}: cannot go from {current!r} to {status!r} "
                               f"(allowed: {list(TRANSITIONS.get(current, ())) or 'none'})")
    at = time.time() if now is None else now
    conn.execute("UPDATE alerts SET status = ?, status_note = ?, status_changed_at = ?, "
                 "status_changed_by = ? WHERE id = ?", (status, note, at, by, alert_id))
    if status == "confirmed":  # kept after closing: a closed, confirmed alert was rectified
        conn.execute("UPDATE alerts SET confirmed_at = ? WHERE id = ?", (at, alert_id))
    return {"id": alert_id, "status": status, "previous": current, "note": note,
            "changed_at": at, "changed_by": by}
