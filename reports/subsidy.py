"""Installation subsidy payable (安装补贴) for the stations that passed, beside the plan's figures.

From the banner's plan (乌中政办发〔2026〕2号, 旗财政局): 民营27个，每个补贴3万元，共计81万元；
国营19个，每个补贴1.5万元，共计28.5万元. A station is payable when it passed under the rule of
reports.stations and the run was accepted (验收合格后，按规定支付相关款项): a run that is not
accepted or incomplete pays nothing, whatever its stations' own results.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.stations import OWNERSHIPS, StationResult

SUBSIDY_YUAN = {"private": 30_000, "state": 15_000}  # per station
PLAN_STATIONS = {"private": 27, "state": 19}  # the banner's count in the plan


@dataclass(frozen=True)
class SubsidyRow:
    ownership: str  # private | state | total
    rate: int | None  # yuan per station; None on the total row
    plan_stations: int
    plan_amount: int
    in_scope: int  # ledger stations of this run
    passed: int
    payable: int  # yuan


def subsidy(results: list[StationResult], accepted: bool) -> tuple[list[SubsidyRow], SubsidyRow]:
    """One row per ownership and the total row; nothing payable unless the run was accepted."""
    rows = []
    for own in OWNERSHIPS:
        mine = [r for r in results if r.ownership == own]
        passed = sum(r.outcome == "pass" for r in mine)
        rate = SUBSIDY_YUAN[own]
        rows.append(SubsidyRow(own, rate, PLAN_STATIONS[own], PLAN_STATIONS[own] * rate,
                               len(mine), passed, passed * rate if accepted else 0))
    total = SubsidyRow("total", None, sum(r.plan_stations for r in rows),
                       sum(r.plan_amount for r in rows), sum(r.in_scope for r in rows),
                       sum(r.passed for r in rows), sum(r.payable for r in rows))
    return rows, total
