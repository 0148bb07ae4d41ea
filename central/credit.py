"""信用记录、分级分类监管: each station's credit score and grade — A 诚信, B 基本诚信, C 失信,
D 严重失信 — from the platform's own findings about it (the rule of docs/platform-api.md
§5.16, which has the reasons for every number).

A *finding* is an alert of a counted kind (`CATEGORY`): a cheat alert (作弊预警, the 17
cheat-indicating kinds), an under-declaration (`tax_under_declaration`, 以销核税), a metrology
finding (`verification_expired`, `record_unsigned`, `seal_mismatch`; a change without a
signed record is alerted as a cheat kind and counts once, there) or a data-quality warning
(`device_offline`: a device of the station not reporting). Leaks and water are the
station's safety, not its integrity: not counted.

    points  = FULL_POINTS[category][severity] × the lifecycle's share (open, confirmed: all;
              rectified — closed after confirmation, 已整改: half; dismissed — closed while
              open, a false alarm: none)
    score   = max(0, 100 − Σ points)
    grade   = the first band of BANDS whose floor the score reaches

over the grading period: alerts with `as_of` in [from, to) (both optional: all the platform
holds). The same alerts give the same grade, whatever their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from central.db import Conn
from central.detectors.base import CHEAT_KINDS, METROLOGY_KINDS
from central.tax import ALERT_KIND as TAX_KIND

CATEGORIES = ("cheat", "tax", "metrology", "data")
CATEGORY: dict[str, str] = {**{k: "cheat" for k in CHEAT_KINDS}, TAX_KIND: "tax",
                            **{k: "metrology" for k in METROLOGY_KINDS},
                            "device_offline": "data"}
# Points a finding costs while it stands (open or confirmed), by category and severity; all
# even, so that a rectified finding's half is whole. Reasons: docs/platform-api.md §5.16.
FULL_POINTS: dict[str, dict[str, int]] = {
    "cheat": {"critical": 40, "warning": 32, "info": 32},
    "tax": {"critical": 40, "warning": 32, "info": 32},
    "metrology": {"critical": 30, "warning": 24, "info": 24},
    "data": {"critical": 30, "warning": 24, "info": 24},
}
LIFECYCLES = ("open", "confirmed", "rectified", "dismissed")
HALVES = {"open": 2, "confirmed": 2, "rectified": 1, "dismissed": 0}  # of the full points
BANDS = (("A", 90), ("B", 70), ("C", 40), ("D", 0))  # (grade, lowest score)
GRADES = tuple(g for g, _ in BANDS)
GRADE_NAMES = {"A": "诚信", "B": "基本诚信", "C": "失信", "D": "严重失信"}
FULL_SCORE = 100
MAX_FINDINGS = 100  # findings listed per item (findings_total counts them all)
_ALERT_COLUMNS = ("id", "kind", "severity", "status", "confirmed_at", "as_of")


def lifecycle(status: str | None, confirmed_at: float | None) -> str:
    """Where an alert stands: a closed one was rectified when it had been confirmed,
    dismissed otherwise; a status outside the vocabulary counts as open."""
    if status == "closed":
        return "rectified" if confirmed_at is not None else "dismissed"
    return "confirmed" if status == "confirmed" else "open"


def points(category: str, severity: str | None, stage: str) -> int:
    """What one finding costs; a severity outside the vocabulary counts as a warning."""
    full = FULL_POINTS[category].get(str(severity), FULL_POINTS[category]["warning"])
    return full * HALVES[stage] // 2


def grade_of(score: int) -> str:
    return next(g for g, floor in BANDS if score >= floor)


def _in_period(as_of: Any, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    if as_of is None:  # cannot be placed in a bounded period
        return False
    return (lo is None or float(as_of) >= lo) and (hi is None or float(as_of) < hi)


def grade_station(station_id: str, alerts: Iterable[Mapping[str, Any]],
                  lo: float | None = None, hi: float | None = None,
                  flat: bool = False) -> dict[str, Any]:
    """The GET /api/v1/credit item of one station from its alerts (`id, kind, severity,
    status, confirmed_at, as_of`). `flat` (the QA mutant --flat-credit): counted as usual,
    graded A with a full score whatever they say."""
    counts = {c: dict.fromkeys(LIFECYCLES, 0) for c in CATEGORIES}
    by_category = dict.fromkeys(CATEGORIES, 0)
    costly: list[dict[str, Any]] = []
    for a in alerts:
        category = CATEGORY.get(str(a["kind"]))
        if category is None or not _in_period(a.get("as_of"), lo, hi):
            continue
        stage = lifecycle(a.get("status"), a.get("confirmed_at"))
        counts[category][stage] += 1
        cost = 0 if flat else points(category, a.get("severity"), stage)
        if cost:
            by_category[category] += cost
            costly.append({"id": str(a["id"]), "kind": str(a["kind"]), "category": category,
                           "severity": a.get("severity"), "lifecycle": stage,
                           "as_of": None if a.get("as_of") is None else float(a["as_of"]),
                           "points": cost})
    costly.sort(key=lambda f: (f["as_of"] is None, f["as_of"] or 0.0, f["id"]))
    score = max(0, FULL_SCORE - sum(by_category.values()))
    grade = grade_of(score)
    return {"station_id": station_id, "period": {"from": lo, "to": hi}, "score": score,
            "grade": grade, "grade_name": GRADE_NAMES[grade], "counts": counts,
            "points": by_category, "findings": costly[:MAX_FINDINGS],
            "findings_total": len(costly)}


def station_credit(conn: Conn, station_id: str, lo: float | None = None,
                   hi: float | None = None, flat: bool = False) -> dict[str, Any]:
    """The credit item of one station from the alerts the platform holds."""
    rows = conn.query(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE station_id = ? "
                      f"ORDER BY id", (station_id,))
    return grade_station(station_id, (dict(zip(_ALERT_COLUMNS, r, strict=True)) for r in rows),
                         lo, hi, flat)


# ---- item schema (docs/platform-api.md §5.16) ----------------------------------------------

def _int(desc: str = "") -> dict[str, Any]:
    return {"type": "integer", **({"description": desc} if desc else {})}


def _per_category(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(CATEGORIES),
            "properties": dict.fromkeys(CATEGORIES, item)}


_TIME = {"type": ["number", "null"]}
CREDIT_ITEM: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "station_id": {"type": "string"},
        "period": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                   "description": "the grading period: alerts with as_of (device clock) in "
                                  "[from, to); null = unbounded (all the platform holds)",
                   "properties": {"from": _TIME, "to": _TIME}},
        "score": {"type": "integer", "minimum": 0, "maximum": FULL_SCORE,
                  "description": "100 − the points the findings cost, at least 0"},
        "grade": {"enum": list(GRADES), "description": "A ≥ 90 诚信, B ≥ 70 基本诚信, C ≥ 40 "
                                                       "失信, D 严重失信"},
        "grade_name": {"enum": [GRADE_NAMES[g] for g in GRADES]},
        "counts": _per_category({
            "type": "object", "additionalProperties": False, "required": list(LIFECYCLES),
            "description": "findings by lifecycle: open, confirmed, rectified (closed after "
                           "confirmation), dismissed (closed while open)",
            "properties": dict.fromkeys(LIFECYCLES, _int())}),
        "points": _per_category(_int("points the category's findings cost")),
        "findings": {"type": "array", "maxItems": MAX_FINDINGS,
                     "description": "the findings that cost points, by as_of then id",
                     "items": {"type": "object", "additionalProperties": False,
                               "required": ["id", "kind", "category", "severity",
                                            "lifecycle", "as_of", "points"],
                               "properties": {
                                   "id": {"type": "string", "description": "the alert's id"},
                                   "kind": {"type": "string"},
                                   "category": {"enum": list(CATEGORIES)},
                                   "severity": {"type": ["string", "null"]},
                                   "lifecycle": {"enum": list(LIFECYCLES)},
                                   "as_of": _TIME, "points": _int()}}},
        "findings_total": _int("findings that cost points (findings lists the first 100)"),
    },
}
CREDIT_ITEM["required"] = list(CREDIT_ITEM["properties"])
