"""ALM-<class> and ALM-FP (MUST): cheat warning (作弊预警) — every cheat of the run alerted in
time and attributed right, and no alert without a cheat behind it.

The oracle (acceptance/oracle.py) matches the platform's alerts (observed/alerts.parquet,
GET /api/v1/alerts) with the ground truth's cheat instances (truth/cheat_instances.parquet).
Per class, each cheat instance gets two measurements:

- `cheat.days_to_detect`: days from its first activation to the `as_of` of the first
  matching alert, ≤ the class's limit (`alarm_days_<class>`); never alerted → null (fails);
  never alerted and the run ended before the limit ran out → null with the reason "run too
  short to judge" (it cannot pass: nothing was proven);
- `cheat.attributed`: 1 when a matching alert names the cheat's nozzle, dispenser or tank
  (its attribution level), else 0.

and the class gets `alerts.unexplained`: alerts of the class's own kinds that match no cheat
(== 0). A class with no cheat in the run still gets that measurement: then it says the
platform raised no such alert without cause, and its evidence says that no instance of the
class ran (detection itself was not exercised).

ALM-FP measures `alerts.false_per_station_month` over the whole run: cheat-indicating alerts
that match no cheat instance (including those honest look-alikes provoke), per
station-month of observed ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import pandas as pd

from acceptance.checkers.common import EVIDENCE_LIMIT, detection_coverage, first
from acceptance.oracle import (
    CHEAT_ALERT_KINDS,
    DAY_S,
    InstanceRow,
    Scores,
    normalise_alerts,
    score,
    station_months,
)
from acceptance.record import Measurement
from acceptance.rundir import RunData


def _scores(data: RunData) -> Scores:
    def compute() -> Scores:
        return score(data.truth_table("cheat_instances"), data.alerts, data.end,
                     incidents(data))
    return data.derive("alarms:scores", compute)


def incidents(data: RunData) -> pd.DataFrame:
    """Per station, the span of records the SUT lost, duplicated or altered (the ground
    truth ↔ platform comparison), so alerts they explain are not counted as false."""
    recs = data.comparison.records
    bad = recs[recs["status"].isin(("lost", "duplicated", "altered", "unexpected"))]
    bad = bad[pd.to_numeric(bad["time"], errors="coerce").notna()]
    if not len(bad):
        return pd.DataFrame(columns=["station_id", "start", "end", "records"])
    grouped = bad.assign(time=pd.to_numeric(bad["time"])).groupby("station_id")["time"]
    return pd.DataFrame({"start": grouped.min(), "end": grouped.max(),
                         "records": grouped.size()}).reset_index()


def _observed_days(data: RunData) -> dict[str, float]:
    days = {}
    for sid in data.station_ids:
        until = data.simulated_until(sid)
        days[sid] = 0.0 if until is None else max(0.0, (until - data.start) / DAY_S)
    return days


def _class_checker(cls: str):
    rid = f"ALM-{cls}"
    key = f"alarm_days_{cls.lower()}"

    def check(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
        scores = _scores(data)
        limit = float(criteria[key])
        out: list[Measurement] = []
        mine = scores.of_class(cls)
        for s in mine:
            ev: dict[str, Any] = {"cheat": s.cheat, "kind": s.kind, "target": s.target,
                                  "first_activation": s.first_start, "matching_alerts":
                                  s.matching_alerts, "first_alert": s.first_alert}
            value = s.days_to_detect
            # no alert yet, and the run ended before the limit: not proven either way, so
            # the requirement is incomplete, not failed (scope measurements)
            unjudged = not s.detected and s.observed_days < limit
            if not s.detected:
                ev["reason"] = ("run too short to judge: it ended "
                                f"{s.observed_days:.2f} days after the activation, before "
                                f"the {limit:g}-day limit, with no alert yet"
                                if unjudged else
                                "no matching alert (kinds expected: see docs/cheats.md)")
            out.append(Measurement(rid, "cheat.days_to_detect",
                                   None if value is None else round(value, 4), "<=", limit,
                                   "days", s.station_id, evidence=ev, scope=unjudged))
            out.append(Measurement(rid, "cheat.attributed", int(s.attributed), "==", 1, "",
                                   s.station_id, evidence={
                                       "cheat": s.cheat, "kind": s.kind, "target": s.target,
                                       "attributed_by": s.attributed_alert}, scope=unjudged))
        kinds = sorted(k for k, c in CHEAT_ALERT_KINDS.items() if c == cls)
        false = scores.false_alerts[scores.false_alerts["kind"].isin(kinds)]
        ev = {"alert_kinds": kinds, "alerts": _alert_list(false)}
        if not mine:
            ev["note"] = (f"no {cls} cheat ran in this run: detection of the class was not "
                          f"exercised; this measurement only shows that no such alert was "
                          f"raised without cause")
        out.append(Measurement(rid, "alerts.unexplained", len(false), "==", 0, "alerts",
                               None, evidence=ev))
        return out + detection_coverage(data, rid)

    check.__name__ = cls.lower()
    check.__doc__ = f"{rid}: detection, time and attribution of {cls} cheats."
    return check


pulse = _class_checker("PULSE")
part = _class_checker("PART")
data_cheats = _class_checker("DATA")
price = _class_checker("PRICE")
stock = _class_checker("STOCK")
delivery = _class_checker("DELIV")


def false_alerts(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """ALM-FP: unexplained cheat-indicating alerts per station-month."""
    scores = _scores(data)
    days = _observed_days(data)
    months = station_months(days.values())
    false = scores.false_alerts
    rate = len(false) / months if months > 0 else None
    by_station = {str(k): int(v) for k, v in false.groupby("station_id").size().items()}
    evidence = {"false_alerts": len(false), "station_months": round(months, 4),
                "alerts_judged": scores.alerts_judged, "by_station": by_station,
                "explained_by_data_incidents": scores.explained_by_incidents,
                "alerts": _alert_list(false),
                "lookalikes_triggered": first(scores.lookalikes_triggered)}
    if rate is None:
        evidence["reason"] = "no station was observed for any time"
    return [Measurement("ALM-FP", "alerts.false_per_station_month",
                        None if rate is None else round(rate, 6), "<=",
                        criteria["false_alerts_per_station_month"], "alerts/station-month",
                        None, evidence=evidence), *detection_coverage(data, "ALM-FP")]


def _alert_list(alerts: pd.DataFrame) -> list[str]:
    rows = alerts.sort_values(["as_of", "id"]).head(EVIDENCE_LIMIT)
    out = []
    for a in rows.itertuples(index=False):
        target = "/".join(str(x) for x in (a.device, a.nozzle, a.tank)
                          if x is not None and not (isinstance(x, float) and x != x))
        out.append(f"{a.station_id} {a.kind} {target} as_of {a.as_of}")
    return out


# ---- report tables (record.json `tables`: the detection table and the timeline chart) ----

def cheat_table(data: RunData) -> pd.DataFrame:
    """One row per cheat instance and look-alike: what ran, and what the platform made of it."""
    scores = _scores(data)
    inst = data.truth_table("cheat_instances")
    by_key = {(s.station_id, s.cheat): s for s in scores.instances}
    rows = []
    for r in cast(Iterable[InstanceRow],
                  inst.rename(columns={"class": "cls"}).itertuples(index=False)):
        s = by_key.get((str(r.station_id), int(r.cheat)))
        rows.append({
            "station_id": str(r.station_id), "cheat": int(r.cheat), "kind": str(r.kind),
            "class": str(r.cls), "lookalike": bool(r.lookalike), "device": str(r.device or ""),
            "nozzle": int(r.nozzle), "tank": int(r.tank), "attribution": str(r.attribution),
            "first_start": float(r.first_start), "last_end": float(r.last_end),
            "detected": None if s is None else s.detected,
            "days_to_detect": None if s is None else s.days_to_detect,
            "attributed": None if s is None else s.attributed,
            "first_alert_kind": None if s is None or s.first_alert is None
            else s.first_alert["kind"],
            "first_alert_as_of": None if s is None or s.first_alert is None
            else s.first_alert["as_of"]})
    return pd.DataFrame(rows)


def alert_table(data: RunData) -> pd.DataFrame:
    """Every alert of the platform, with the oracle's judgement: explained (it matched a
    cheat), false (a cheat-indicating kind that matched none) or operational."""
    scores = _scores(data)
    false_ids = set(scores.false_alerts["id"].astype(str))
    out = normalise_alerts(data.alerts)
    out["judgement"] = [
        "false" if i in false_ids else "explained" if k in CHEAT_ALERT_KINDS else "operational"
        for i, k in zip(out["id"], out["kind"], strict=True)]
    return out.sort_values(["as_of", "id"]).reset_index(drop=True)
