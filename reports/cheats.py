"""Cheat warning (作弊预警): what ran, what the platform made of it, and its false alerts.

From record.tables["cheats"] (one row per cheat instance and honest look-alike) and
record.tables["alerts"] (every alert, judged explained | false | operational), both filled
by acceptance/checkers/alarms.py, and the ALM-* measurements:

* **detections**: each cheat instance with its class's time limit (`alarm_days_<class>`) and
  an outcome that mirrors its `cheat.days_to_detect` measurement — detected in time, late,
  not detected, or run too short to judge (never alerted, and the run ended before the
  limit ran out: the measurement's evidence says so); without that measurement the same
  rule is applied to the table row. A cheat never active in the run is not scored.
* **look-alikes**: honest look-alikes (class LOOK) expect no cheat alert; each is shown with
  the false alerts at its station inside its matching window, the oracle's window of
  docs/requirements.md "Cheat warning": from one hour before its first activation to three
  days after it ended (or the run did). The window is repeated here because the reports
  read the record only (docs/reports.md).
* **false alerts** (judgement "false"), by time, bounded to FALSE_SHOWN.

Times are shown in the zone of the scenario's start (record.scenario.start).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from acceptance.record import Measurement, RunRecord
from reports.charts import _number, _require
from reports.text import clip

DAY_S = 86400.0
MATCH_BEFORE_S = 3600.0  # the oracle's matching window (acceptance/oracle.py)
MATCH_AFTER_S = 3 * DAY_S
CLASSES = ("PULSE", "PART", "DATA", "PRICE", "STOCK", "DELIV")
LOOKALIKE = "LOOK"
JUDGEMENTS = ("explained", "false", "operational")
FALSE_SHOWN = 30  # false alerts listed (the rest are counted)
# outcomes of a cheat instance, in the order the summary counts them
OUTCOMES = ("in_time", "late", "missed", "too_short", "detected", "not_active", "not_scored")
OUTCOME_BADGE = {"in_time": "pass", "detected": "pass", "late": "fail", "missed": "fail",
                 "too_short": "not_checked", "not_active": "not_checked",
                 "not_scored": "not_checked"}
CHEAT_KEYS = ("station_id", "cheat", "kind", "class", "lookalike", "first_start", "last_end",
              "detected", "days_to_detect", "attributed", "first_alert_kind",
              "first_alert_as_of")
ALERT_KEYS = ("station_id", "kind", "as_of", "judgement")


@dataclass(frozen=True)
class CheatRow:
    station_id: str
    cheat: int
    kind: str
    cls: str
    lookalike: bool
    device: str  # "D<n>", "G" (the tank gauge) or ""
    nozzle: int | None  # 0 / None: not applicable, or every nozzle of the dispenser
    tank: int | None
    attribution: str  # nozzle | device | tank | station
    first_start: float | None  # None: never active in the run
    last_end: float | None  # None: still active at the end of the run
    detected: bool | None  # None: not scored (a look-alike, or never active)
    days_to_detect: float | None
    attributed: bool | None
    first_alert_kind: str | None
    first_alert_as_of: float | None


@dataclass(frozen=True)
class AlertRow:
    id: str
    station_id: str
    kind: str
    as_of: float | None  # None: the platform gave no time (it cannot be placed)
    device: str | None  # the target the alert names (None: not applicable)
    nozzle: str | None  # as text: the platform's value, shown, not computed with
    tank: str | None
    judgement: str  # one of JUDGEMENTS


@dataclass(frozen=True)
class Detection:
    row: CheatRow
    limit: float | None  # days (criteria alarm_days_<class>)
    outcome: str  # one of OUTCOMES


@dataclass(frozen=True)
class Lookalike:
    row: CheatRow
    false_alerts: tuple[AlertRow, ...]  # false alerts at its station inside its window
    operational: tuple[AlertRow, ...]  # operational alerts there (allowed, e.g. a leak's)


@dataclass
class CheatWarning:
    has_cheats: bool  # the record carries the table (an older record may not)
    has_alerts: bool
    detections: list[Detection] = field(default_factory=list)
    lookalikes: list[Lookalike] = field(default_factory=list)
    false_alerts: list[AlertRow] = field(default_factory=list)  # first FALSE_SHOWN
    false_total: int = 0
    false_context: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id → look-alike kinds
    alerts: list[AlertRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # detections per outcome
    judged: dict[str, int] = field(default_factory=dict)  # alerts per judgement
    fp: Measurement | None = None  # ALM-FP's fleet measurement
    run_start: float | None = None
    run_end: float | None = None
    tz: dt.tzinfo = dt.UTC
    tz_named: bool = False  # the zone comes from the record (else UTC, said so)

    def local(self, ts: float | None) -> str:
        """Epoch seconds as local date and time (the scenario's zone)."""
        if ts is None:
            return "—"
        s = dt.datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M")
        return s if self.tz_named else f"{s} UTC"


def cheat_rows(rows: list[dict[str, Any]]) -> list[CheatRow]:
    out = []
    for i, r in enumerate(rows):
        where = f"record.tables['cheats'][{i}]"
        _require(r, where, CHEAT_KEYS)
        cheat = _number(r["cheat"], f"{where}.cheat")
        if cheat is None:
            raise ValueError(f"{where}.cheat: expected the cheat's index, got null")
        out.append(CheatRow(
            station_id=str(r["station_id"]), cheat=int(cheat), kind=str(r["kind"]),
            cls=str(r["class"]), lookalike=bool(r["lookalike"]),
            device=str(r.get("device") or ""), nozzle=_int(r.get("nozzle"), f"{where}.nozzle"),
            tank=_int(r.get("tank"), f"{where}.tank"),
            attribution=str(r.get("attribution") or ""),
            first_start=_number(r["first_start"], f"{where}.first_start"),
            last_end=_number(r["last_end"], f"{where}.last_end"),
            detected=None if r["detected"] is None else bool(r["detected"]),
            days_to_detect=_number(r["days_to_detect"], f"{where}.days_to_detect"),
            attributed=None if r["attributed"] is None else bool(r["attributed"]),
            first_alert_kind=None if r["first_alert_kind"] is None else str(r["first_alert_kind"]),
            first_alert_as_of=_number(r["first_alert_as_of"], f"{where}.first_alert_as_of")))
    return out


def alert_rows(rows: list[dict[str, Any]]) -> list[AlertRow]:
    out = []
    for i, r in enumerate(rows):
        where = f"record.tables['alerts'][{i}]"
        _require(r, where, ALERT_KEYS)
        if r["judgement"] not in JUDGEMENTS:
            raise ValueError(f"{where}.judgement: expected one of {list(JUDGEMENTS)}, "
                             f"got {r['judgement']!r}")
        out.append(AlertRow(
            id=str(r.get("id", i)), station_id=str(r["station_id"]), kind=str(r["kind"]),
            as_of=_number(r["as_of"], f"{where}.as_of"),
            device=_text(r.get("device")),
            nozzle=_text(r.get("nozzle")), tank=_text(r.get("tank")),
            judgement=str(r["judgement"])))
    return out


def cheat_warning(record: RunRecord, ledger: list[str]) -> CheatWarning:
    """The section's content; stations in ledger order, then by first activation."""
    tz, tz_named, run_start, run_end = run_span(record)
    cw = CheatWarning(has_cheats="cheats" in record.tables, has_alerts="alerts" in record.tables,
                      run_start=run_start, run_end=run_end, tz=tz, tz_named=tz_named)
    order = {sid: i for i, sid in enumerate(ledger)}
    rows = sorted(cheat_rows(record.tables.get("cheats") or []),
                  key=lambda r: (order.get(r.station_id, len(order)), r.station_id,
                                 r.first_start is None, r.first_start or 0.0, r.cheat))
    cw.alerts = sorted(alert_rows(record.tables.get("alerts") or []),
                       key=lambda a: (a.as_of is None, a.as_of or 0.0, a.id))
    measured = _detection_measurements(record)
    for r in rows:
        if r.lookalike or r.cls == LOOKALIKE:
            cw.lookalikes.append(_lookalike(r, cw.alerts, run_end))
        else:
            limit = _limit(record, r, measured)
            cw.detections.append(Detection(r, limit, _outcome(r, limit, measured, run_end)))
    cw.counts = {o: sum(d.outcome == o for d in cw.detections) for o in OUTCOMES}
    cw.judged = {j: sum(a.judgement == j for a in cw.alerts) for j in JUDGEMENTS}
    false = [a for a in cw.alerts if a.judgement == "false"]
    cw.false_total = len(false)
    cw.false_alerts = false[:FALSE_SHOWN]
    for la in cw.lookalikes:
        for a in la.false_alerts:
            cw.false_context[a.id] = (*cw.false_context.get(a.id, ()), la.row.kind)
    cw.fp = next((m for m in record.measurements if m.requirement == "ALM-FP"
                  and m.name == "alerts.false_per_station_month" and m.station_id is None), None)
    return cw


def run_span(record: RunRecord) -> tuple[dt.tzinfo, bool, float | None, float | None]:
    """(zone, zone known, start, end) of the run from record.scenario (start, days)."""
    start = record.scenario.get("start")
    try:
        begin = dt.datetime.fromisoformat(str(start)) if start else None
    except ValueError:
        begin = None
    if begin is None or begin.tzinfo is None:
        return dt.UTC, False, None, None
    days = record.scenario.get("days")
    end: float | None = None
    if isinstance(days, int | float) and not isinstance(days, bool) and days > 0:
        end = begin.timestamp() + float(days) * DAY_S
    return begin.tzinfo, True, begin.timestamp(), end


def _detection_measurements(record: RunRecord) -> dict[tuple[str, str | None, Any], Measurement]:
    out = {}
    for m in record.measurements:
        if m.name == "cheat.days_to_detect" and isinstance(m.evidence, dict):
            out[(m.requirement, m.station_id, m.evidence.get("cheat"))] = m
    return out


def _limit(record: RunRecord, r: CheatRow, measured: dict) -> float | None:
    m = measured.get((f"ALM-{r.cls}", r.station_id, r.cheat))
    if m is not None:
        return float(m.limit)
    v = record.criteria.get(f"alarm_days_{r.cls.lower()}")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _outcome(r: CheatRow, limit: float | None, measured: dict, run_end: float | None) -> str:
    if r.first_start is None:
        return "not_active"
    m = measured.get((f"ALM-{r.cls}", r.station_id, r.cheat))
    if m is not None:  # the measurement decides; its evidence says why it has no value
        if m.value is None:
            return "too_short" if "too short" in str(m.evidence.get("reason", "")) else "missed"
        return "in_time" if m.passed else "late"
    if r.detected is None:
        return "not_scored"
    if r.detected:
        if limit is None or r.days_to_detect is None:
            return "detected"
        return "in_time" if r.days_to_detect <= limit else "late"
    if limit is not None and run_end is not None and (run_end - r.first_start) / DAY_S < limit:
        return "too_short"
    return "missed"


def _lookalike(r: CheatRow, alerts: list[AlertRow], run_end: float | None) -> Lookalike:
    if r.first_start is None:
        return Lookalike(r, (), ())
    end = r.last_end if r.last_end is not None else run_end
    hi = float("inf") if end is None else end + MATCH_AFTER_S
    near = [a for a in alerts if a.station_id == r.station_id and a.as_of is not None
            and r.first_start - MATCH_BEFORE_S <= a.as_of <= hi]
    return Lookalike(r, tuple(a for a in near if a.judgement == "false"),
                     tuple(a for a in near if a.judgement == "operational"))


def _int(v: Any, where: str) -> int | None:
    x = _number(v, where)
    return None if x is None else int(x)


def _text(v: Any) -> str | None:
    """A target field of an alert as text: whole numbers without ".0"; None, NaN, "" → None."""
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return clip(v, 40)
