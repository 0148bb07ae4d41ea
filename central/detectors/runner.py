"""Evaluate one station: load its data once, run every registered detector, raise the
proposed alerts in one transaction and record how far detection got.

    evaluate_station(conn, station_id, through, settings) -> ids of newly raised alerts

`through` must not exceed the station's watermark (central/detectors/watermark.py); the
detection service guarantees it. Alerts are raised through `central.alerts.raise_alert`
with dedup key "<station>/<detector>/<detector's key>", so evaluating again — at the same
or a later checkpoint — raises nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

from central.alerts import raise_alert
from central.db import Conn
from central.detectors.base import AlertProposal, Context, Detector, Settings, jsonable
from central.detectors.data import StationData, load_station_data
from central.detectors.registry import DETECTORS
from central.detectors.watermark import Watermark, station_watermark

log = logging.getLogger(__name__)


def detect(data: StationData, ctx: Context,
           detectors: Sequence[Detector] | None = None) -> list[tuple[str, AlertProposal]]:
    """(detector name, proposal) for every detector; a detector that fails is logged and
    noted, the others still run."""
    out: list[tuple[str, AlertProposal]] = []
    for det in DETECTORS if detectors is None else detectors:
        try:
            out.extend((det.name, p) for p in det.evaluate(data, ctx))
        except Exception as exc:  # one broken detector must not blind the others
            log.exception("detector %s failed on station %s", det.name, data.station_id)
            ctx.note(det.name, f"detector failed: {type(exc).__name__}: {exc}"[:300])
    return out


def dedup_key(station_id: str, detector: str, proposal: AlertProposal) -> str:
    return f"{station_id}/{detector}/{proposal.dedup_key}"


def evaluate_station(conn: Conn, station_id: str, through: int, settings: Settings, *,
                     watermark: Watermark | None = None,
                     now: Callable[[], float] = time.time) -> list[str]:
    """Run the detectors on the station's data up to `through`; returns new alert ids."""
    through = int(through)
    wm = watermark if watermark is not None else station_watermark(conn, station_id, settings)
    ctx = settings.context()
    proposals: list[tuple[str, AlertProposal]] = []
    if settings.detect:
        data = load_station_data(conn, station_id, through, wm.device_through)
        proposals = detect(data, ctx)
    raised_at = now()
    ids: list[str] = []
    with conn.transaction():
        for name, p in proposals:
            alert_id = raise_alert(
                conn, station_id=station_id, kind=p.kind, severity=p.severity,
                raised_at=raised_at, title=p.title, detail=p.detail, device=p.device,
                nozzle=p.nozzle, tank=p.tank, evidence=jsonable(p.evidence),
                dedup_key=dedup_key(station_id, name, p), as_of=float(p.as_of),
                detector=name)
            if alert_id is not None:
                ids.append(alert_id)
        record_progress(conn, station_id, wm.watermark, through, raised_at, ctx.notes,
                        wm.excluded)
    if ids:
        log.info("station %s: %d alert(s) raised evaluating through %d", station_id,
                 len(ids), through)
    return ids


def record_progress(conn: Conn, station_id: str, watermark: int | None, through: int,
                    at: float, notes: list | None = None,
                    excluded: dict[str, str] | None = None) -> None:
    """Upsert detection_progress; watermark and evaluated_through never move backwards;
    `notes` None keeps the notes of the last evaluation."""
    conn.execute(
        "INSERT INTO detection_progress (station_id, watermark, evaluated_through, updated_at, "
        "notes_json, excluded_json) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (station_id) DO UPDATE SET "
        "watermark = CASE WHEN excluded.watermark IS NULL THEN detection_progress.watermark "
        "WHEN detection_progress.watermark IS NULL "
        "OR excluded.watermark > detection_progress.watermark "
        "THEN excluded.watermark ELSE detection_progress.watermark END, "
        "evaluated_through = CASE WHEN detection_progress.evaluated_through IS NULL "
        "OR excluded.evaluated_through > detection_progress.evaluated_through "
        "THEN excluded.evaluated_through ELSE detection_progress.evaluated_through END, "
        "updated_at = excluded.updated_at, "
        "notes_json = COALESCE(excluded.notes_json, detection_progress.notes_json), "
        "excluded_json = excluded.excluded_json",
        (station_id, watermark, through, at,
         None if notes is None else json.dumps(jsonable(notes), ensure_ascii=False,
                                               sort_keys=True),
         json.dumps(excluded or {}, ensure_ascii=False, sort_keys=True)))


def progress(conn: Conn, station_id: str) -> tuple[int | None, int | None]:
    """(watermark, evaluated_through) stored for the station."""
    row = conn.query_one("SELECT watermark, evaluated_through FROM detection_progress "
                         "WHERE station_id = ?", (station_id,))
    if row is None:
        return None, None
    return (None if row[0] is None else int(row[0]), None if row[1] is None else int(row[1]))
