"""CRD-1 (MUST): every station has a credit record and a grade by the published rule
(信用记录、分级分类监管; docs/platform-api.md §5.16), and the grades do not contradict what the
stations did.

The platform's grades are `observed/credit.parquet` (GET /api/v1/credit at the end, read
right after the alerts). The harness recomputes the rule on its own (acceptance/credit.py)
from the alerts it observed with their statuses (`observed/alerts.parquet`): tax and
metrology findings reach the grade as their alerts (a flagged, checked tax period raises
`tax_under_declaration`, §5.13; the audit's findings are the metrology alerts, §5.14), so the
alerts are the whole of the platform's findings.

- `credit.differs_from_rule` (per station): how many of the platform's grade and score
  differ from the rule's over the item's own grading period == 0; no item (or the resource
  not served) → null, which fails with the reason.
- `credit.grades_against_truth` (fleet): stations whose grade contradicts the ground truth
  == 0 — a station that in the truth cheated (a cheat instance of a cheat class, not a
  look-alike), under-declared beyond the tax tolerance or had a metrology finding, and whose
  finding the platform flagged with an alert it did not dismiss, must not be graded A; a
  station with no true finding and no finding at the platform must be graded A. Others are
  not judged here (ALM-*, TAX-1 and MET-1 judge what the platform missed or flagged without
  cause; the grade still follows the rule, which the first measurement checks).
- `credit.findings_graded` (fleet, scope): stations in scope with a finding that costs
  points ≥ 1 — with none, every station is A by the rule and a platform that grades all A
  cannot be told from a correct one: CRD-1 is incomplete, and the evidence says why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, cast

import pandas as pd

from acceptance.checkers.common import detection_coverage, first
from acceptance.checkers.metrology import findings as metrology_findings
from acceptance.checkers.tax import LATE_SALES_COLUMNS, late_sales, required
from acceptance.credit import Grade, grade, lifecycle
from acceptance.oracle import (
    CLASSES,
    MATCH_AFTER_S,
    MATCH_BEFORE_S,
    normalise_alerts,
    score,
)
from acceptance.record import Measurement
from acceptance.rundir import RunData

RID = "CRD-1"
RESPONSIBLE = "旗商务局"  # the plan's department for 信用记录、分级分类管理 (一（五）)


def _num(v: Any) -> float | None:
    try:
        out = float(v)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _parsed(text: Any) -> Any:
    try:
        return json.loads(str(text))
    except ValueError:
        return None


def items(data: RunData) -> dict[str, dict[str, Any]]:
    """station → the platform's credit item (nested fields parsed); {} when not served."""
    if not data.credit_served.get("served"):
        return {}
    out = {}
    for row in cast(list[dict[str, Any]], data.credit.to_dict("records")):
        item = dict(row)
        for key in ("period", "counts", "points", "findings"):
            item[key] = _parsed(row.get(key))
        out[str(row["station_id"])] = item
    return out


def _period(item: dict[str, Any] | None) -> tuple[float | None, float | None]:
    period = item.get("period") if item else None
    if not isinstance(period, dict):
        return None, None
    return _num(period.get("from")), _num(period.get("to"))


def rule_grades(data: RunData) -> dict[str, Grade]:
    """Per station in scope, the rule applied to its observed alerts over the grading period
    the platform's item states (all the alerts when it states none)."""
    def compute() -> dict[str, Grade]:
        listed = items(data)
        al = data.alerts
        return {sid: grade(al[al["station_id"] == sid], *_period(listed.get(sid)))
                for sid in data.station_ids}
    return data.derive("credit:rule", compute)


def credit_graded(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """CRD-1: each station graded by the rule, no grade against the ground truth."""
    listed = items(data)
    rules = rule_grades(data)
    out = [_compare(sid, listed.get(sid), rules[sid], data.credit_served)
           for sid in data.station_ids]
    out.append(_against_truth(data, listed, rules))
    graded = [sid for sid, g in rules.items() if g.findings]
    ev: dict[str, Any] = {"stations": len(rules), "with_findings": first(graded)}
    if not graded:
        ev["reason"] = ("no station in scope has a finding that costs points (no alert of a "
                        "counted kind the platform did not dismiss): every station is A by "
                        "the rule, and a platform that grades all A could not be told apart")
    out.append(Measurement(RID, "credit.findings_graded", len(graded), ">=", 1, "stations",
                           None, evidence=ev, scope=True))
    return out + detection_coverage(data, RID)


def _compare(sid: str, item: dict[str, Any] | None, rule: Grade,
             served: dict[str, Any]) -> Measurement:
    ev: dict[str, Any] = {"rule": rule.brief(), "findings": first(rule.findings)}
    if item is None:
        ev["reason"] = ("GET /api/v1/credit lists no item for the station" if served.get("served")
                        else f"GET /api/v1/credit not served: {served.get('error')}")
        return Measurement(RID, "credit.differs_from_rule", None, "==", 0, "count", sid,
                           evidence=ev)
    score_p = _num(item.get("score"))
    platform = {"grade": item.get("grade"), "score": None if score_p is None else score_p}
    differ = [k for k, mine in (("grade", rule.grade), ("score", float(rule.score)))
              if platform[k] != mine]
    ev["platform"] = {**platform, "points": item.get("points"),
                      "findings_total": item.get("findings_total")}
    ev["period"] = item.get("period")
    if differ:
        ev["differs"] = differ
        ev["platform"]["counts"] = item.get("counts")
    return Measurement(RID, "credit.differs_from_rule", len(differ), "==", 0, "count", sid,
                       evidence=ev)


# ---- the ground truth ------------------------------------------------------------------------

def _standing(data: RunData) -> pd.DataFrame:
    """The observed alerts not dismissed (closed while open), as the oracle reads them."""
    al = data.alerts
    confirmed = al["confirmed_at"] if "confirmed_at" in al.columns else [None] * len(al)
    keep = pd.Series([lifecycle(s, c) != "dismissed"
                      for s, c in zip(al["status"], confirmed, strict=True)],
                     index=al.index, dtype=bool)
    out = normalise_alerts(al[keep])
    return out.assign(device=out["device"].map(lambda d: "" if d is None or d != d else str(d)))


def true_findings(data: RunData) -> dict[str, dict[str, list[str]]]:
    """Per station in scope: its true findings ("all") and those the platform flagged with
    an alert it did not dismiss ("flagged"), in words."""
    def compute() -> dict[str, dict[str, list[str]]]:
        scope = set(data.station_ids)
        out: dict[str, dict[str, list[str]]] = {s: {"all": [], "flagged": []} for s in scope}
        al = _standing(data)
        _cheats(data, al, scope, out)
        _taxes(data, al, scope, out)
        for f in metrology_findings(data):
            words = f"metrology {f.what} {f.device}"
            out[f.station_id]["all"].append(words)
            hit = ((al["station_id"] == f.station_id) & al["kind"].isin(list(f.kinds))
                   & (al["device"] == f.device) & (al["as_of"] >= f.time - MATCH_BEFORE_S)
                   & (al["as_of"] <= f.end + MATCH_AFTER_S))
            if hit.any():
                out[f.station_id]["flagged"].append(words)
        return out
    return data.derive("credit:truth", compute)


def _cheats(data: RunData, al: pd.DataFrame, scope: set[str],
            out: dict[str, dict[str, list[str]]]) -> None:
    inst = data.truth_table("cheat_instances")
    inst = inst[inst["class"].isin(list(CLASSES)) & ~inst["lookalike"].astype(bool)
                & inst["station_id"].astype(str).isin(list(scope))]
    for s in score(inst, al, data.end).instances:
        words = f"cheat {s.kind} ({s.cls})"
        out[s.station_id]["all"].append(words)
        if s.detected:
            out[s.station_id]["flagged"].append(words)


def _taxes(data: RunData, al: pd.DataFrame, scope: set[str],
           out: dict[str, dict[str, list[str]]]) -> None:
    truth = data.truth_table("tax_declarations")
    truth = truth[truth["under_declared"].astype(bool)
                  & truth["station_id"].astype(str).isin(list(scope))]
    if not len(truth):
        return
    rows = late_sales(data.truth_table("transactions", LATE_SALES_COLUMNS),
                      truth.assign(station_id=truth["station_id"].astype(str)))
    tax = al[al["kind"] == "tax_under_declaration"]
    for r in cast(Iterable[Any], rows.itertuples(index=False)):
        if not required(r):
            continue
        words = f"tax {r.reference or 'grade ' + str(r.grade) + ' not declared'}"
        out[str(r.station_id)]["all"].append(words)
        hit = ((tax["station_id"] == str(r.station_id))
               & (tax["as_of"] >= float(r.period_start) - MATCH_BEFORE_S)
               & (tax["as_of"] <= float(r.period_end) + MATCH_AFTER_S))
        if hit.any():
            out[str(r.station_id)]["flagged"].append(words)


def _against_truth(data: RunData, listed: dict[str, dict[str, Any]],
                   rules: dict[str, Grade]) -> Measurement:
    truth = true_findings(data)
    wrong, judged, not_judged = [], [], []
    for sid in data.station_ids:
        item = listed.get(sid)
        mine = truth[sid]
        has_finding = bool(rules[sid].findings)  # at the platform, by the rule
        if item is None:
            not_judged.append(f"{sid}: no credit item")
            continue
        got = item.get("grade")
        if mine["flagged"]:
            judged.append(f"{sid}: not A ({'; '.join(mine['flagged'][:3])} flagged)")
            if got == "A":
                wrong.append(f"{sid}: graded A although the platform flagged "
                             f"{'; '.join(mine['flagged'][:3])}")
        elif not mine["all"] and not has_finding:
            judged.append(f"{sid}: A (no finding in the truth or at the platform)")
            if got != "A":
                wrong.append(f"{sid}: graded {got} with no finding in the truth or at the "
                             f"platform")
        else:
            not_judged.append(f"{sid}: " + ("true finding(s) not flagged: "
                                            + "; ".join(mine["all"][:3]) if mine["all"]
                                            else "findings at the platform with no truth "
                                                 "behind them (ALM-FP / MET-1 judge them)"))
    return Measurement(RID, "credit.grades_against_truth", len(wrong), "==", 0, "stations",
                       None, evidence={"contradicting": first(wrong), "judged": first(judged),
                                       "not_judged": first(not_judged)})


# ---- report table (record.json `tables.credit`) ----------------------------------------------

def credit_table(data: RunData) -> pd.DataFrame:
    """One row per station in scope (ledger order): town, ownership, the platform's grade,
    score and findings, the rule's grade and score, and whether they agree."""
    listed = items(data)
    rules = rule_grades(data)
    rows = []
    for station in data.fleet:
        sid = str(station["station_id"])
        item, rule = listed.get(sid), rules[sid]
        score_p = None if item is None else _num(item.get("score"))
        rows.append({
            "station_id": sid, "town": station["town"], "ownership": station["ownership"],
            "grade": None if item is None else item.get("grade"),
            "score": None if score_p is None else int(score_p),
            "findings": None if item is None or _num(item.get("findings_total")) is None
            else int(item["findings_total"]),
            "rule_grade": rule.grade, "rule_score": rule.score,
            "rule_findings": len(rule.findings),
            "agrees": item is not None and item.get("grade") == rule.grade
            and score_p == float(rule.score),
            "responsible": RESPONSIBLE})
    return pd.DataFrame(rows)
