"""Campaign statistics: detection probability by day with Wilson intervals, false alerts per
honest station-month with an exact Poisson bound, and the honest noise level.

Inputs are the per-world results of `acceptance.campaign.runner` (plain dicts, so they can
cross process boundaries and be stored); the output is campaign.json's body
(docs/campaigns.md).
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from acceptance.campaign.spec import CampaignSpec
from acceptance.oracle import MONTH_DAYS, poisson_upper, wilson


def _round(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, digits)


def pd_by_day(instances: list[dict[str, Any]], days_by: tuple[int, ...]) -> dict[str, Any]:
    """Share of instances alerted within d days of their activation, for each d, among the
    instances whose world went on for at least d days after it (so a short world never
    counts as a miss it had no time for); with the 95 % Wilson interval and n."""
    out: dict[str, Any] = {}
    for d in days_by:
        eligible = [i for i in instances if i["observed_days"] >= d - 1e-9]
        hits = sum(1 for i in eligible
                   if i["detected"] and i["days_to_detect"] <= d + 1e-9)
        lo, hi = wilson(hits, len(eligible))
        out[str(d)] = {"pd": _round(hits / len(eligible)) if eligible else None,
                       "ci95": [_round(lo), _round(hi)], "n": len(eligible), "hits": hits}
    return out


def median_days(instances: list[dict[str, Any]]) -> float | None:
    """Median time to detect, a miss counting as infinitely late (None if most were missed)."""
    if not instances:
        return None
    values = sorted(i["days_to_detect"] if i["detected"] else math.inf for i in instances)
    m = median(values)
    return None if math.isinf(m) else _round(m)


def class_summary(plan_index: int, spec: CampaignSpec,
                  instances: list[dict[str, Any]]) -> dict[str, Any]:
    plan = spec.cheats[plan_index]
    detected = [i for i in instances if i["detected"]]
    attributed = sum(1 for i in detected if i["attributed"])
    pd = pd_by_day(instances, spec.days_by)
    return {
        "kind": plan.kind, "size": plan.size, "params": plan.params, "target": plan.target,
        "stations": list(plan.stations), "start_day": plan.start_day, "days": plan.days,
        "instances": len(instances),
        "pd_by_day": {d: v["pd"] for d, v in pd.items()},
        "pd_ci95_by_day": {d: v["ci95"] for d, v in pd.items()},
        "n_by_day": {d: v["n"] for d, v in pd.items()},
        "detected": len(detected),
        "median_days_to_detect": median_days(instances),
        "attribution_rate": _round(attributed / len(detected)) if detected else None,
        "attributed_share_of_instances": _round(attributed / len(instances))
        if instances else None,
    }


def pfa(false_alerts: int, station_months: float) -> dict[str, Any]:
    return {"estimate": _round(false_alerts / station_months, 6) if station_months else None,
            "ci95_high": _round(poisson_upper(false_alerts) / station_months, 6)
            if station_months else None,
            "false_alerts": false_alerts, "station_months": _round(station_months, 3)}


def noise_summary(tank_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Over honest tanks: the σ of the daily variance as a % of the tank's mean daily sales."""
    pct = sorted(r["variance_sd_pct"] for r in tank_rows
                 if r.get("variance_sd_pct") is not None and math.isfinite(r["variance_sd_pct"]))
    if not pct:
        return {"median_daily_variance_sd_pct": None, "tanks": 0}

    def q(p: float) -> float:
        return pct[min(len(pct) - 1, max(0, round(p * (len(pct) - 1))))]

    return {"median_daily_variance_sd_pct": _round(median(pct)), "tanks": len(pct),
            "p10": _round(q(0.1)), "p90": _round(q(0.9)),
            "median_sd_l": _round(median(r["variance_sd_l"] for r in tank_rows
                                         if r.get("variance_sd_l") is not None))}


def summarise(spec: CampaignSpec, results: list[dict[str, Any]]) -> dict[str, Any]:
    honest = [r for r in results if r["plan"] is None]
    honest_days = sum(r["station_days"] for r in honest)
    honest_false = sum(len(r["false_alerts"]) for r in honest)
    cheat_worlds = [r for r in results if r["plan"] is not None]
    classes = []
    for plan in spec.cheats:
        inst = [i for r in cheat_worlds if r["plan"] == plan.index for i in r["instances"]]
        classes.append(class_summary(plan.index, spec, inst))
    false_kinds: dict[str, int] = {}
    for r in honest:
        for a in r["false_alerts"]:
            false_kinds[a["kind"]] = false_kinds.get(a["kind"], 0) + 1
    return {
        "honest_station_months": _round(honest_days / MONTH_DAYS, 3),
        "pfa_per_station_month": pfa(honest_false, honest_days / MONTH_DAYS),
        "false_alerts_by_kind": dict(sorted(false_kinds.items())),
        "cheat_worlds_unexplained_alerts": sum(len(r["false_alerts"]) for r in cheat_worlds),
        "classes": classes,
        "noise": noise_summary([t for r in honest for t in r.get("tanks", [])]),
    }
