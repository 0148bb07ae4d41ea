"""The published credit grading rule (信用记录、分级分类监管, docs/platform-api.md §5.16), as the
harness applies it on its own to what it observed of a platform — never the platform's code,
so that CRD-1 proves the contract, not an implementation.

A finding is an alert of a counted kind (`CATEGORY`); it costs `FULL_POINTS[category]
[severity]` while it stands (open or confirmed), half once rectified (closed after an
inspector confirmed it, 已整改), nothing once dismissed (closed while open). score = 100 −
Σ points (at least 0); the grade is the first band of `BANDS` the score reaches. Only
findings with `as_of` inside the grading period [from, to) count (both bounds optional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from acceptance.oracle import CHEAT_ALERT_KINDS

CATEGORIES = ("cheat", "tax", "metrology", "data")
CATEGORY: dict[str, str] = {
    **{k: "cheat" for k in CHEAT_ALERT_KINDS},
    "tax_under_declaration": "tax",
    **{k: "metrology" for k in ("verification_expired", "record_unsigned", "seal_mismatch")},
    "device_offline": "data",
}
FULL_POINTS: dict[str, dict[str, int]] = {
    "cheat": {"critical": 40, "warning": 32, "info": 32},
    "tax": {"critical": 40, "warning": 32, "info": 32},
    "metrology": {"critical": 30, "warning": 24, "info": 24},
    "data": {"critical": 30, "warning": 24, "info": 24},
}
LIFECYCLES = ("open", "confirmed", "rectified", "dismissed")
HALVES = {"open": 2, "confirmed": 2, "rectified": 1, "dismissed": 0}
BANDS = (("A", 90), ("B", 70), ("C", 40), ("D", 0))
GRADES = tuple(g for g, _ in BANDS)
FULL_SCORE = 100


@dataclass(frozen=True)
class Grade:
    """A station's grade by the rule, with what it rests on."""

    score: int
    grade: str
    counts: dict[str, dict[str, int]]  # category → lifecycle → findings
    points: dict[str, int]  # category → points its findings cost
    findings: list[str] = field(default_factory=list)  # ids of those that cost points

    def brief(self) -> dict[str, Any]:
        return {"score": self.score, "grade": self.grade, "points": self.points,
                "counts": {c: {k: v for k, v in n.items() if v}
                           for c, n in self.counts.items() if any(n.values())}}


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def lifecycle(status: Any, confirmed_at: Any) -> str:
    """open | confirmed | rectified | dismissed; a status outside the vocabulary is open."""
    if status == "closed":
        return "dismissed" if _missing(confirmed_at) else "rectified"
    return "confirmed" if status == "confirmed" else "open"


def cost(category: str, severity: Any, stage: str) -> int:
    """Points of one finding; a severity outside the vocabulary counts as a warning."""
    full = FULL_POINTS[category].get(str(severity), FULL_POINTS[category]["warning"])
    return full * HALVES[stage] // 2


def grade_of(score: int) -> str:
    return next(g for g, floor in BANDS if score >= floor)


def counted(alerts: pd.DataFrame, lo: float | None = None,
            hi: float | None = None) -> pd.DataFrame:
    """The alerts that are findings of the grading period [lo, hi), with their `category`,
    `lifecycle` and `points` (columns id, kind, severity, status, as_of; confirmed_at
    optional: without it no closed alert counts as rectified)."""
    if not len(alerts):
        return pd.DataFrame(columns=["id", "kind", "severity", "status", "as_of", "category",
                                     "lifecycle", "points"])
    al = alerts[alerts["kind"].astype(str).isin(list(CATEGORY))]
    as_of = pd.to_numeric(al["as_of"], errors="coerce")
    if lo is not None:
        al, as_of = al[as_of >= lo], as_of[as_of >= lo]
    if hi is not None:
        al = al[as_of < hi]
    confirmed = al["confirmed_at"] if "confirmed_at" in al.columns else [None] * len(al)
    stages = [lifecycle(s, c) for s, c in zip(al["status"], confirmed, strict=True)]
    cats = [CATEGORY[str(k)] for k in al["kind"]]
    pts = [cost(c, s, st) for c, s, st in zip(cats, al["severity"], stages, strict=True)]
    return al.assign(category=cats, lifecycle=stages, points=pts)


def grade(alerts: pd.DataFrame, lo: float | None = None, hi: float | None = None) -> Grade:
    """A station's grade from its alerts (see the module docstring)."""
    found = counted(alerts, lo, hi)
    counts = {c: dict.fromkeys(LIFECYCLES, 0) for c in CATEGORIES}
    points = dict.fromkeys(CATEGORIES, 0)
    for c, st, p in zip(found["category"], found["lifecycle"], found["points"], strict=True):
        counts[c][st] += 1
        points[c] += int(p)
    score = max(0, FULL_SCORE - sum(points.values()))
    costly = found[found["points"] > 0]
    costly = costly.assign(as_of=pd.to_numeric(costly["as_of"], errors="coerce"),
                           id=costly["id"].astype(str)).sort_values(["as_of", "id"])
    return Grade(score, grade_of(score), counts, points, list(costly["id"]))
