"""The city report's metrology section (计量器具检定台账), from the run record only.

`record.tables["metrology"]` (acceptance/checkers/metrology.py `verification_table`) holds
one row per dispenser in scope: its verification at the end of the run in the ground truth
(last verification, valid until, valid / expired) and the status the platform's audit gave it
(GET /api/v1/metrology). `record.tables["metrology_findings"]` is MET-1's rectification ledger:
every expired verification, record missing a signature, broken seal chain and change without
a signed record of the run, whether and when the platform flagged it, and the department
responsible (旗市场监管局). This module orders both by station (ledger order), with times as
local dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from acceptance.record import RunRecord
from reports.cheats import run_span

REQUIREMENT = "MET-1"
FINDINGS = ("expired", "unsigned_record", "seal_mismatch", "unsigned_change")
OUTCOMES = ("in_time", "late", "missed", "too_short")


@dataclass(frozen=True)
class DispenserRow:
    station_id: str
    device: str
    last_verification: str  # local date, "—" when none
    valid_until: str
    status: str  # valid | expired | no_record (the truth at the end of the run)
    overdue_days: float | None
    platform_status: str | None  # None: the platform gave none
    agrees: bool | None  # the platform's status equals the truth's (None: not given)


@dataclass(frozen=True)
class FindingRow:
    station_id: str
    device: str
    finding: str  # one of FINDINGS
    since: str  # local date and time
    certificate_no: str | None
    days_to_flag: float | None
    limit_days: float
    outcome: str  # one of OUTCOMES
    responsible: str


@dataclass(frozen=True)
class MetrologySection:
    dispensers: list[DispenserRow]
    findings: list[FindingRow]
    expired: int  # dispensers expired at the end
    flagged_in_time: int
    open_items: int  # findings not flagged in time (the rectification items)


def _local(ts: Any, tz: dt.tzinfo, with_time: bool = False) -> str:
    if ts is None:
        return "—"
    fmt = "%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d"
    return dt.datetime.fromtimestamp(float(ts), tz).strftime(fmt)


def metrology_section(record: RunRecord, ledger: list[str]) -> MetrologySection:
    tz, _named, _start, _end = run_span(record)
    order = {sid: i for i, sid in enumerate(ledger)}

    def key(r: dict[str, Any]) -> tuple:
        return (order.get(str(r["station_id"]), len(order)), str(r["station_id"]),
                int(str(r["device"])[1:]) if str(r["device"])[1:].isdigit() else 0)

    dispensers = []
    for r in sorted(record.tables.get("metrology") or [], key=key):
        plat = r.get("platform_status")
        status = str(r["status"])
        dispensers.append(DispenserRow(
            station_id=str(r["station_id"]), device=str(r["device"]),
            last_verification=_local(r.get("last_verification"), tz),
            valid_until=_local(r.get("valid_until"), tz, with_time=True), status=status,
            overdue_days=None if r.get("overdue_days") is None else float(r["overdue_days"]),
            platform_status=None if plat is None else str(plat),
            agrees=None if plat is None else str(plat) == status))
    findings = []
    for r in sorted(record.tables.get("metrology_findings") or [],
                    key=lambda r: (*key(r), float(r["since"]))):
        findings.append(FindingRow(
            station_id=str(r["station_id"]), device=str(r["device"]),
            finding=str(r["finding"]), since=_local(r["since"], tz, with_time=True),
            certificate_no=None if r.get("certificate_no") is None else str(r["certificate_no"]),
            days_to_flag=None if r.get("days_to_flag") is None else float(r["days_to_flag"]),
            limit_days=float(r["limit_days"]), outcome=str(r["outcome"]),
            responsible=str(r["responsible"])))
    return MetrologySection(
        dispensers=dispensers, findings=findings,
        expired=sum(d.status == "expired" for d in dispensers),
        flagged_in_time=sum(f.outcome == "in_time" for f in findings),
        open_items=sum(f.outcome in ("late", "missed") for f in findings))
