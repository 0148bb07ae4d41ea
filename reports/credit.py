"""The city report's credit section (信用记录、分级分类监管), from the run record only.

`record.tables["credit"]` (acceptance/checkers/credit.py `credit_table`) holds one row per
station in scope: its town and ownership, the grade, score and findings the platform gave it
(GET /api/v1/credit), the grade and score the published rule gives its observed alerts, and
whether the two agree. This module orders the rows by the ledger and counts the stations per
grade (the supervision each grade calls for is in the labels, `credit.grade.<g>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acceptance.record import RunRecord

REQUIREMENT = "CRD-1"
GRADES = ("A", "B", "C", "D")


@dataclass(frozen=True)
class CreditRow:
    station_id: str
    town: str
    ownership: str
    grade: str | None  # None: the platform gave none
    score: int | None
    findings: int | None  # findings that cost points, as the platform counts them
    rule_grade: str
    rule_score: int
    agrees: bool


@dataclass(frozen=True)
class CreditSection:
    rows: list[CreditRow]
    by_grade: dict[str, int]  # stations per grade the platform gave (A … D)
    disagreeing: int  # stations whose grade or score is not the rule's


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def credit_section(record: RunRecord, ledger: list[str]) -> CreditSection:
    order = {sid: i for i, sid in enumerate(ledger)}
    raw: list[dict[str, Any]] = list(record.tables.get("credit") or [])
    raw.sort(key=lambda r: (order.get(str(r["station_id"]), len(order)), str(r["station_id"])))
    rows = [CreditRow(
        station_id=str(r["station_id"]), town=str(r.get("town") or "—"),
        ownership=str(r.get("ownership") or ""),
        grade=None if r.get("grade") is None else str(r["grade"]), score=_int(r.get("score")),
        findings=_int(r.get("findings")), rule_grade=str(r["rule_grade"]),
        rule_score=int(r["rule_score"]), agrees=bool(r["agrees"])) for r in raw]
    return CreditSection(rows=rows,
                         by_grade={g: sum(r.grade == g for r in rows) for g in GRADES},
                         disagreeing=sum(not r.agrees for r in rows))
