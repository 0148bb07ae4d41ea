"""TAX-1 (MUST): the platform cross-checks its sales with the tax declarations (以销核税) and
flags under-declaration.

The ground truth's `tax_declarations` (docs/ground-truth.md) has one row per station, period
and grade sold: what the station declared (or that it left the grade out), what it sold by
the dispensers' records in the period, and whether a cheat made it under-declare. The
harness posted every filed declaration (run.json `inputs_posted`); the platform's
comparison is `observed/tax_checks.parquet` (GET /api/v1/tax-checks, docs/platform-api.md
§5.13), matched to the truth by station, period start and end, and grade.

An under-declared row is *required* to be flagged when its true gap exceeds the published
tolerance (the sales of the 30-minute booking window before the period's end plus
max(¥100 / 10 L, 0.5 % of the period's sales), evaluated on the ground truth): a smaller
under-declaration cannot be told from an honest timing difference, and is listed as not
judged. Per station:

- `tax.under_declarations_missed`: required rows the platform did not flag == 0 (a row it
  lists as pending and unflagged is not judged: see below);
- `tax.false_flags`: honest rows the platform flagged in its final comparison, or raised a
  `tax_under_declaration` alert for at any time == 0. An alert is the platform's verdict
  (§5.3: `as_of` = the period's end, evidence = the check row, whose `grade` names the
  grade; an alert naming no grade stands for its whole period). It stays raised when the
  final comparison no longer flags the row — e.g. a grade judged missing between two
  declarations of the same filing — so reading only the final comparison would miss it;
- `tax.declarations_not_compared`: declarations the platform accepted and lists no check
  for == 0 (a platform that stores declarations and compares nothing fails here);
- `tax.declarations_refused`: valid declarations the platform refused (4xx other than 409)
  == 0;
- `tax.gap_error`: for the flagged required rows, the largest |platform gap − true gap| /
  true sales (amount and volume) ≤ `tax_gap_tolerance`;
- `tax.declarations_unchecked` (scope): declarations the platform lists as pending (its data
  not complete through the period's end), or that reached it only after the observation or
  not at all (no answer) == 0 — the run did not let them be judged: incomplete, not failed.

Flags and tax alerts on periods or grades the truth has no row for are
`tax.flags_without_declaration` == 0 (fleet-wide).

A run in which no declaration period ended gets the fleet scope measurement
`tax.periods_declared` ≥ 1 = 0: TAX-1 is incomplete, and the evidence says why. A shortened
declaration period (scenario `tax.period_days`) is stated in the evidence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import pandas as pd

from acceptance.checkers.common import first
from acceptance.record import Measurement
from acceptance.rundir import RunData

RID = "TAX-1"
# what late_sales reads of the ground truth's transactions (millions of rows in a long run)
LATE_SALES_COLUMNS = ("station_id", "grade", "end_time", "displayed_volume_ml", "amount_fen")
# The published tolerance of docs/platform-api.md §5.13 (the contract a platform flags by).
BOOKING_WINDOW_S = 1800.0
TOLERANCE_REL = 0.005
TOLERANCE_VOLUME_ML = 10_000
TOLERANCE_SALES_FEN = 10_000
_KEY = ("station_id", "period_start", "period_end", "grade")


def _tolerance(late: int, sales: int, absolute: int) -> int:
    return late + max(absolute, math.ceil(TOLERANCE_REL * max(sales, 0)))


def late_sales(transactions: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Per truth row, the true sales (volume, amount) of its grade in the booking window
    [max(start, end − 30 min), end)."""
    vol, amt = [], []
    by = {k: g for k, g in transactions.groupby(["station_id", "grade"])}
    for r in cast(Iterable[Any], rows.itertuples(index=False)):
        t = by.get((r.station_id, r.grade))
        if t is None:
            vol.append(0)
            amt.append(0)
            continue
        lo = max(float(r.period_start), float(r.period_end) - BOOKING_WINDOW_S)
        m = (t["end_time"] >= lo) & (t["end_time"] < float(r.period_end))
        vol.append(int(t.loc[m, "displayed_volume_ml"].sum()))
        amt.append(int(t.loc[m, "amount_fen"].sum()))
    return rows.assign(late_volume_ml=vol, late_amount_fen=amt)


def required(row: Any) -> bool:
    """The published rule applied to the truth: would a platform holding every transaction
    flag this row?"""
    if int(row.gap_amount_fen) > _tolerance(int(row.late_amount_fen), int(row.true_amount_fen),
                                            TOLERANCE_SALES_FEN):
        return True
    return bool(row.filed) and int(row.gap_volume_ml) > _tolerance(
        int(row.late_volume_ml), int(row.true_volume_ml), TOLERANCE_VOLUME_ML)


def _posts(data: RunData) -> dict[tuple[str, str], dict[str, Any]]:
    """(station, reference) → the last post of that declaration (run.json inputs_posted)."""
    items = (data.run_info.get("inputs_posted") or {}).get("items") or []
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if isinstance(item, dict) and item.get("kind") == "tax_declaration":
            station, _, reference = str(item.get("what", "")).partition(" ")
            out[(station, reference)] = item
    return out


def _period_words(data: RunData) -> str:
    tax = data.scenario_doc.get("tax") or {}
    days = tax.get("period_days") if isinstance(tax, dict) else None
    if days is None:
        return "calendar months"
    return f"{days:g} day(s), shortened from the plan's calendar months (scenario tax.period_days)"


def _name(row: Any) -> str:
    return f"{row.station_id} {row.reference} (grade {row.grade})"


def _matches(truth: pd.DataFrame, checks: pd.DataFrame) -> pd.DataFrame:
    """The truth rows with the platform's check row of the same key (suffix _p), if any."""
    plat = checks.assign(
        period_start=checks["period_start"].astype(float),
        period_end=checks["period_end"].astype(float),
        grade=checks["grade"].astype(object).where(checks["grade"].notna(), None))
    plat = plat.drop_duplicates(subset=list(_KEY), keep="last")
    plat = plat.rename(columns={c: f"{c}_p" for c in plat.columns if c not in _KEY})
    return truth.merge(plat, on=list(_KEY), how="left", indicator="matched")


def sales_cross_checked(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """TAX-1: every material under-declaration flagged, no honest one, gaps right."""
    truth = data.truth_table("tax_declarations")
    period = _period_words(data)
    if not len(truth):
        return [Measurement(RID, "tax.periods_declared", 0, ">=", 1, "declarations",
                            evidence={"period": period, "reason": (
                                "no declaration period ended inside the run, so no "
                                "declaration was filed and the cross-check was not "
                                "exercised")}, scope=True)]
    checks = data.tax_checks if data.tax_checks_offered else pd.DataFrame(
        columns=list(data.tax_checks.columns))
    tx = data.truth_table("transactions", LATE_SALES_COLUMNS)
    rows = late_sales(tx, truth.assign(station_id=truth["station_id"].astype(str)))
    merged = _matches(rows, checks)
    posts = _posts(data)
    alerts = tax_alerts(data)
    out: list[Measurement] = [Measurement(
        RID, "tax.periods_declared", len(truth), ">=", 1, "declarations", scope=True,
        evidence={"period": period, "stations": int(truth["station_id"].nunique()),
                  "periods": int(truth[["station_id", "period_start"]].drop_duplicates()
                                 .shape[0]),
                  "under_declared": int(truth["under_declared"].sum()),
                  "tax_checks_offered": bool(data.tax_checks_offered)})]
    for sid in data.station_ids:
        mine = merged[merged["station_id"] == sid]
        if len(mine):
            out += _station(sid, mine, posts, criteria, alerts[alerts["station_id"] == sid])
    out.append(_false_flags_elsewhere(checks, rows, alerts))
    return out


def _state(row: Any, posts: dict[tuple[str, str], dict[str, Any]]) -> str:
    """What became of a truth row at the platform: refused | not_posted | late | pending |
    missing (no check row) | flagged | clear."""
    if bool(row.filed):
        post = posts.get((str(row.station_id), str(row.reference)))
        status = None if post is None else post.get("status")
        if post is None or status is None:
            return "not_posted"
        if status not in (200, 201, 409):
            return "refused"
        if post.get("source") == "truth":  # handed on after the platform was observed
            return "late"
    if row.matched != "both":
        return "missing"
    if bool(row.flagged_p):
        return "flagged"
    return "pending" if str(row.status_p) == "pending" else "clear"


def tax_alerts(data: RunData) -> pd.DataFrame:
    """The platform's `tax_under_declaration` alerts: id, station_id, period_end (the alert's
    `as_of`, whole seconds) and grade (its evidence's `grade`; None when it names none)."""
    al = data.alerts
    al = al[al["kind"] == "tax_under_declaration"]
    return pd.DataFrame({
        "id": al["id"].astype(str), "station_id": al["station_id"].astype(str),
        "period_end": [None if pd.isna(t) else round(float(t)) for t in al["as_of"]],
        "grade": [_evidence_grade(e) for e in al["evidence"]]},
        columns=["id", "station_id", "period_end", "grade"])


def _evidence_grade(evidence: Any) -> str | None:
    try:
        doc = json.loads(evidence) if isinstance(evidence, str) else evidence
    except ValueError:
        return None
    grade = doc.get("grade") if isinstance(doc, dict) else None
    return None if grade is None else str(grade)


def _alerted(mine: pd.DataFrame, alerts: pd.DataFrame) -> dict[tuple[int, str], list[str]]:
    """(period end, grade) of the station's truth rows → the ids of the tax alerts raised for
    it; an alert naming no grade counts for every row of a period with no under-declaration
    (otherwise it may be the right one, and is not judged)."""
    out: dict[tuple[int, str], list[str]] = {}
    for end, rows in mine.groupby(mine["period_end"].round().astype(int)):
        here = alerts[alerts["period_end"] == int(cast(int, end))]
        if not len(here):
            continue
        cheated = bool(rows["under_declared"].astype(bool).any())
        for grade in rows["grade"].astype(str):
            ids = [str(a.id) for a in cast(Iterable[Any], here.itertuples(index=False))
                   if a.grade == grade or (a.grade is None and not cheated)]
            if ids:
                out[(int(cast(int, end)), grade)] = ids
    return out


def _station(sid: str, mine: pd.DataFrame, posts: dict[tuple[str, str], dict[str, Any]],
             criteria: dict[str, Any], alerts: pd.DataFrame) -> list[Measurement]:
    missed, false, not_compared, refused, unchecked = [], [], [], [], []
    below, caught, errors = [], [], []
    alerted = _alerted(mine, alerts)
    for r in cast(Iterable[Any], mine.itertuples(index=False)):
        state = _state(r, posts)
        ids = alerted.get((round(float(r.period_end)), str(r.grade)), [])
        if ids and not bool(r.under_declared):
            false.append(f"{_name(r)}: honest (true gap {int(r.gap_amount_fen)} fen), "
                         f"alert {ids[0]} raised" + (f" (+{len(ids) - 1})" if len(ids) > 1
                                                     else ""))
        if state == "refused":
            refused.append(f"{_name(r)}: HTTP {posts[(sid, str(r.reference))].get('status')}")
            continue
        if state in ("not_posted", "late", "pending"):
            unchecked.append(f"{_name(r)}: " + {
                "not_posted": "never reached the platform (no answer to the post)",
                "late": "posted only after the platform was observed",
                "pending": "the platform lists it as pending (its data not complete through "
                           "the period's end)"}[state])
            continue
        if state == "missing":
            if bool(r.filed):
                not_compared.append(_name(r))
            if bool(r.under_declared) and required(r):
                missed.append(f"{_name(r)}: " + ("the platform lists no check" if bool(r.filed)
                                                 else "grade left out, the platform lists no "
                                                      "check"))
            continue
        if bool(r.under_declared):
            if not required(r):
                below.append(_name(r))
                continue
            if state != "flagged":
                missed.append(f"{_name(r)}: true gap {int(r.gap_amount_fen)} fen, platform "
                              f"gap {r.gap_sales_fen_p} fen, not flagged")
                continue
            caught.append(_name(r))
            errors.append(_gap_error(r))
        elif state == "flagged" and not ids:
            false.append(f"{_name(r)}: honest (true gap {int(r.gap_amount_fen)} fen), "
                         f"flagged with gap {r.gap_sales_fen_p} fen")
    limit = float(criteria["tax_gap_tolerance"])
    ev_common = {"declarations": len(mine), "under_declared": int(mine["under_declared"].sum())}
    out = [
        Measurement(RID, "tax.under_declarations_missed", len(missed), "==", 0, "declarations",
                    sid, evidence={**ev_common, "missed": first(missed),
                                   "flagged": first(caught),
                                   "below_tolerance_not_judged": first(below)}),
        Measurement(RID, "tax.false_flags", len(false), "==", 0, "declarations", sid,
                    evidence={**ev_common, "flagged_honest": first(false)}),
        Measurement(RID, "tax.declarations_not_compared", len(not_compared), "==", 0,
                    "declarations", sid,
                    evidence={"not_compared": first(not_compared),
                              "note": "accepted by the platform, no row in GET "
                                      "/api/v1/tax-checks" if not_compared else ""}),
        Measurement(RID, "tax.declarations_refused", len(refused), "==", 0, "declarations",
                    sid, evidence={"refused": first(refused)}),
        Measurement(RID, "tax.declarations_unchecked", len(unchecked), "==", 0,
                    "declarations", sid, scope=True,
                    evidence={"unchecked": first(unchecked)}),
    ]
    if errors:
        worst = max(errors, key=lambda e: e[0])
        out.append(Measurement(RID, "tax.gap_error", round(worst[0], 6), "<=", limit, "ratio",
                               sid, evidence={"worst": worst[1],
                                              "judged": len(errors)}))
    return out


def _gap_error(r: Any) -> tuple[float, dict[str, Any]]:
    """|platform gap − true gap| / true sales, the worse of amount and volume."""
    ratios = [abs(_num(r.gap_sales_fen_p) - int(r.gap_amount_fen))
              / max(int(r.true_amount_fen), 1)]
    if bool(r.filed) and _num(r.gap_volume_ml_p) == _num(r.gap_volume_ml_p):  # not NaN
        ratios.append(abs(_num(r.gap_volume_ml_p) - int(r.gap_volume_ml))
                      / max(int(r.true_volume_ml), 1))
    value = max(ratios)
    return (value if math.isfinite(value) else math.inf), {
        "declaration": _name(r), "true_gap_fen": int(r.gap_amount_fen),
        "platform_gap_fen": _plain(r.gap_sales_fen_p), "true_gap_ml": int(r.gap_volume_ml),
        "platform_gap_ml": _plain(r.gap_volume_ml_p), "true_sales_fen": int(r.true_amount_fen)}


def _false_flags_elsewhere(checks: pd.DataFrame, truth: pd.DataFrame,
                           alerts: pd.DataFrame) -> Measurement:
    """Flags and tax alerts on periods or grades the truth has no declaration for
    (fleet-wide)."""
    keys = {(str(s), float(a), float(b), str(g)) for s, a, b, g in
            cast(Iterable[Any], truth[list(_KEY)].itertuples(index=False))}
    flagged = checks[checks["flagged"].fillna(False).astype(bool)] if len(checks) else checks
    stray = [f"{r.station_id} {r.period_start}–{r.period_end} grade {r.grade}"
             for r in cast(Iterable[Any], flagged.itertuples(index=False))
             if (str(r.station_id), float(r.period_start), float(r.period_end),
                 str(r.grade)) not in keys]
    ends = {(str(s), round(float(b)), str(g)) for s, _a, b, g in keys}
    periods = {(s, b) for s, b, _g in ends}
    stray += [f"alert {a.id}: {a.station_id} period ending {a.period_end} grade {a.grade}"
              for a in cast(Iterable[Any], alerts.itertuples(index=False))
              if (a.station_id, a.period_end, a.grade) not in ends
              and not (a.grade is None and (a.station_id, a.period_end) in periods)]
    return Measurement(RID, "tax.flags_without_declaration", len(stray), "==", 0,
                       "checks", None, evidence={"flags": first(stray),
                                                 "checks_listed": len(checks),
                                                 "tax_alerts": len(alerts)})


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


# ---- report table (record.json `tables.tax`) -------------------------------------------------

def tax_table(data: RunData) -> pd.DataFrame:
    """One row per station, period and grade: declared, sold, the true gap, the platform's
    gap, flag and whether it raised a tax alert, and the oracle's judgement."""
    truth = data.truth_table("tax_declarations")
    if not len(truth):
        return pd.DataFrame()
    checks = data.tax_checks if data.tax_checks_offered else pd.DataFrame(
        columns=list(data.tax_checks.columns))
    rows = late_sales(data.truth_table("transactions", LATE_SALES_COLUMNS),
                      truth.assign(station_id=truth["station_id"].astype(str)))
    merged = _matches(rows, checks)
    posts = _posts(data)
    alerts = tax_alerts(data)
    alerted = {(str(sid), *key) for sid, mine in merged.groupby("station_id")
               for key in _alerted(mine, alerts[alerts["station_id"] == str(sid)])}
    out = []
    for r in cast(Iterable[Any], merged.itertuples(index=False)):
        state = _state(r, posts)
        judged = ("must_flag" if bool(r.under_declared) and required(r)
                  else "below_tolerance" if bool(r.under_declared) else "honest")
        out.append({
            "station_id": r.station_id, "period_start": float(r.period_start),
            "period_end": float(r.period_end), "grade": r.grade, "filed": bool(r.filed),
            "declared_amount_fen": int(r.declared_amount_fen),
            "true_amount_fen": int(r.true_amount_fen), "true_gap_fen": int(r.gap_amount_fen),
            "platform_gap_fen": _plain(r.gap_sales_fen_p) if r.matched == "both" else None,
            "flagged": state == "flagged", "state": state, "truth": judged,
            "alerted": (str(r.station_id), round(float(r.period_end)), str(r.grade)) in alerted,
            "under_declared": bool(r.under_declared)})
    return pd.DataFrame(out)

