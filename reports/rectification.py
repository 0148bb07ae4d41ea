"""The rectification ledger (整改台账): each failure → station, problem, department, deadline.

One item per (requirement, station) with failing measurements — fleet-wide ones (station
None) first, then stations in ledger order — plus one fleet-wide item for a requirement that
failed without a failing measurement or whose checker erred. SHOULD failures are listed too
(they need rectifying, though they do not block acceptance). The deadline is the record's
`created_at` date plus `criteria.rectification_days` (default 15) days (限期完成整改).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from acceptance.record import Measurement, RunRecord

DEFAULT_RECTIFICATION_DAYS = 15


@dataclass(frozen=True)
class RectificationItem:
    requirement: str
    level: str
    station_id: str | None  # None: fleet-wide (全旗)
    kind: str  # "fail" | "error"
    measurements: tuple[Measurement, ...]  # the failing ones (kind "fail")
    detail: str  # summary or checker error
    deadline: dt.date


def rectification_days(record: RunRecord) -> int:
    days = record.criteria.get("rectification_days", DEFAULT_RECTIFICATION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError("record.criteria.rectification_days: expected a whole number of days "
                         f">= 0, got {days!r}")
    return days


def created_date(record: RunRecord) -> dt.date:
    try:
        return dt.datetime.fromisoformat(record.created_at).date()
    except (TypeError, ValueError):
        raise ValueError(f"record.created_at: expected an ISO 8601 date-time, "
                         f"got {record.created_at!r}") from None


def rectification_ledger(record: RunRecord) -> list[RectificationItem]:
    deadline = created_date(record) + dt.timedelta(days=rectification_days(record))
    order = {row["station_id"]: i for i, row in enumerate(record.stations)}
    items: list[RectificationItem] = []
    for req in record.requirements:
        if req.outcome == "error":
            items.append(RectificationItem(req.id, req.level, None, "error", (),
                                           req.error or req.summary, deadline))
            continue
        if req.outcome != "fail":
            continue
        # a run too short is the harness's scope, not a station's to rectify
        bad = [m for m in record.measurements
               if m.requirement == req.id and not m.passed and not m.scope]
        if not bad:
            items.append(RectificationItem(req.id, req.level, None, "fail", (), req.summary,
                                           deadline))
            continue
        by_station: dict[str | None, list[Measurement]] = {}
        for m in bad:
            by_station.setdefault(m.station_id, []).append(m)
        # fleet-wide first, then ledger order, then stations outside the ledger by id
        keys = sorted(by_station, key=lambda s: (s is not None, order.get(s, len(order)), s or ""))
        for sid in keys:
            items.append(RectificationItem(req.id, req.level, sid, "fail", tuple(by_station[sid]),
                                           req.summary, deadline))
    return items
