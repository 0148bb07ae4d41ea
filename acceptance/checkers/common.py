"""Helpers the checkers share: bounded evidence, record keys, per-station status counts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from acceptance.compare import STATUSES
from acceptance.record import Measurement
from acceptance.rundir import RunData

EVIDENCE_LIMIT = 20  # records / stations named in one measurement's evidence


class _RecordRow(Protocol):
    """The columns record_keys reads from a row of a comparison table (compare.RECORD_COLUMNS)."""

    stream: str
    station_id: str
    device: str
    seq: float  # NaN: a record without one
    device_time: float
    detail: str


def first(items: Iterable[Any], limit: int = EVIDENCE_LIMIT) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if len(out) == limit:
            break
        out.append(item)
    return out


def record_keys(records: pd.DataFrame, limit: int = EVIDENCE_LIMIT,
                with_detail: bool = False) -> list[str]:
    """Uplink-style keys `<station>/<device>/<stream>/<seq>/<device_time>` of the first
    `limit` rows of a comparison table (optionally with what differs)."""
    out = []
    rows = cast(Iterable[_RecordRow], records.head(limit).itertuples(index=False))
    for r in rows:
        seq = "?" if pd.isna(r.seq) else int(r.seq)
        t = "?" if pd.isna(r.device_time) else int(r.device_time)
        key = f"{r.station_id}/{r.device}/{r.stream}/{seq}/{t}"
        if with_detail and r.detail:
            key += f" ({r.detail})"
        out.append(key)
    return out


def scope(data: RunData, records: pd.DataFrame | None = None) -> list[str]:
    """Stations in scope in ledger order, then any other station the records name (sorted):
    a platform holding data of a station outside the run is measured too."""
    ids = list(data.station_ids)
    if records is not None and len(records):
        extra = sorted({str(s) for s in records["station_id"].unique()} - set(ids))
        ids += extra
    return ids


def status_counts(records: pd.DataFrame, by: str = "station_id") -> pd.DataFrame:
    """Rows per value of `by`, columns every status of compare.STATUSES (zeros filled)."""
    if not len(records):
        return pd.DataFrame(columns=list(STATUSES), dtype=np.int64)
    table = records.groupby([by, "status"]).size().unstack("status", fill_value=0)
    return table.reindex(columns=list(STATUSES), fill_value=0).astype(np.int64)


def count(table: pd.DataFrame, station: str, status: str) -> int:
    # a status_counts table: int64 cells
    return int(cast(np.int64, table.at[station, status])) if station in table.index else 0


def stream_records(data: RunData, stream: str) -> pd.DataFrame:
    recs = data.comparison.records
    return recs[recs["stream"] == stream]


def per_device(records: pd.DataFrame, statuses: tuple[str, ...]) -> dict[str, int]:
    """Device → records with one of `statuses` (only devices that have some)."""
    bad = records[records["status"].isin(statuses)]
    return {str(k): int(v) for k, v in sorted(bad.groupby("device").size().items())}


def detection_coverage(data: RunData, rid: str) -> list[Measurement]:
    """Scope of a requirement judged on the platform's alerts (ALM-*, MET-1, CRD-1): every
    station's detection evaluated through the run's end, as the platform's
    GET /api/v1/detection/status said when the harness stopped waiting. Alerts of data
    never evaluated are unknown: a requirement on them that would pass is incomplete. None
    for a run without that record, or a platform that does not offer the status."""
    doc = data.detection_status
    if not doc or not doc.get("supported") or not isinstance(doc.get("status"), dict):
        return []
    through = float(doc["through"])
    short = {sid: (st or {}).get("evaluated_through") for sid, st in doc["status"].items()
             if not isinstance((st or {}).get("evaluated_through"), int | float)
             or float(st["evaluated_through"]) < through}
    evidence: dict[str, Any] = {"through": through, "wait": doc.get("reason"),
                                "evaluated_through": dict(sorted(short.items()))}
    return [Measurement(rid, "detection.stations_not_evaluated_to_the_end", len(short), "==",
                        0, "stations", None, evidence=evidence, scope=True)]
