"""The city report's tax section (以销核税), from the run record only.

`record.tables["tax"]` (acceptance/checkers/tax.py `tax_table`) holds one row per station,
declaration period and grade: what was declared, what the dispensers sold in the period, the
ground truth's gap and the platform's, whether the platform flagged it (in its final
comparison, or by a tax alert raised at any time), and the oracle's view
(`must_flag`: an under-declaration beyond the published tolerance; `below_tolerance`: one
too small to tell from the honest timing difference; `honest`). This module orders the rows
by station (ledger order) and period, in yuan, with the period as local time, and names the
declaration period (calendar months, or the shortened one) from TAX-1's evidence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from acceptance.record import RunRecord
from reports.cheats import run_span

REQUIREMENT = "TAX-1"


@dataclass(frozen=True)
class TaxRow:
    station_id: str
    period: str  # local start – end
    grade: str
    filed: bool
    declared_yuan: float
    sold_yuan: float
    true_gap_yuan: float
    platform_gap_yuan: float | None  # None: the platform lists no check for it
    flagged: bool
    truth: str  # must_flag | below_tolerance | honest
    right: bool | None  # the platform did what the truth calls for (None: not judged)


@dataclass(frozen=True)
class TaxSection:
    period: str | None  # the declaration period in words (TAX-1's evidence)
    rows: list[TaxRow]
    must_flag: int
    flagged_right: int
    false_flags: int


def tax_section(record: RunRecord, ledger: list[str]) -> TaxSection:
    tz, named, _start, _end = run_span(record)
    order = {sid: i for i, sid in enumerate(ledger)}
    raw: list[dict[str, Any]] = list(record.tables.get("tax") or [])
    raw.sort(key=lambda r: (order.get(str(r["station_id"]), len(order)), str(r["station_id"]),
                            float(r["period_start"]), str(r["grade"])))
    rows = []
    for r in raw:
        # a tax alert is the platform's flag too, even when its final comparison cleared it
        alerted = bool(r.get("alerted"))
        flagged, truth = bool(r["flagged"]) or alerted, str(r["truth"])
        right = (flagged if truth == "must_flag" else not flagged if truth == "honest"
                 else None)
        if r["state"] in ("pending", "late", "not_posted") and not (alerted and truth == "honest"):
            right = None
        gap = r.get("platform_gap_fen")
        rows.append(TaxRow(
            station_id=str(r["station_id"]),
            period=_period(float(r["period_start"]), float(r["period_end"]), tz, named),
            grade=str(r["grade"]), filed=bool(r["filed"]),
            declared_yuan=int(r["declared_amount_fen"]) / 100.0,
            sold_yuan=int(r["true_amount_fen"]) / 100.0,
            true_gap_yuan=int(r["true_gap_fen"]) / 100.0,
            platform_gap_yuan=None if gap is None else float(gap) / 100.0,
            flagged=flagged, truth=truth, right=right))
    period = next((m.evidence.get("period") for m in record.measurements
                   if m.requirement == REQUIREMENT and m.name == "tax.periods_declared"
                   and isinstance(m.evidence, dict)), None)
    return TaxSection(
        period=None if period is None else str(period), rows=rows,
        must_flag=sum(r.truth == "must_flag" for r in rows),
        flagged_right=sum(r.truth == "must_flag" and r.flagged for r in rows),
        false_flags=sum(r.truth == "honest" and r.flagged for r in rows))


def _period(a: float, b: float, tz: dt.tzinfo, named: bool) -> str:
    start, end = dt.datetime.fromtimestamp(a, tz), dt.datetime.fromtimestamp(b, tz)
    text = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}"
    return text if named else f"{text} UTC"
