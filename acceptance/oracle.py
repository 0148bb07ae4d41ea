"""The detection oracle (作弊预警判定): which cheats a platform caught, how fast, whether it
named the right nozzle, dispenser or tank, and which of its alerts had no cheat behind them.

Pure functions over two tables, so the acceptance checkers (one run) and the detection
campaigns (thousands of runs) score alike:

- cheat instances, one per configured cheat (ground-truth table `cheat_instances`,
  docs/ground-truth.md): station, kind, class, look-alike or not, target, first activation,
  last deactivation, the alert kinds that count as detecting it, and the level at which
  attribution is judged;
- alerts as the platform serves them (GET /api/v1/alerts, docs/platform-api.md §5.3), with
  `as_of`, the detection instant on the devices' clock.

Rules (docs/requirements.md, "Cheat warning"):

- An alert *matches* an instance when it is at the same station, its kind is one the
  instance expects, and its `as_of` lies in [first activation − 1 h, end of the instance
  (its last deactivation, else the end of the run) + 3 days].
- An instance is *detected* by its earliest matching alert; time to detect = that alert's
  `as_of` − the first activation. Attribution is right when a matching alert names the
  instance's target at its attribution level (nozzle: device and nozzle; device: device;
  tank: tank; station: any).
- An alert of a cheat-indicating kind that matches no cheat instance is a *false alert*
  (look-alikes expect no cheat-indicating kind, so an alert they provoke is false) —
  unless records of its station were lost, duplicated or altered on their way to the
  platform around it: then the platform rightly flags what the system under test broke,
  and the data requirements (DAT-*) judge that.
  Operational kinds (a suspected leak, high water, a device off line) are not judged here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

DAY_S = 86400.0
MONTH_DAYS = 30.4375  # mean Gregorian month
MATCH_BEFORE_S = 3600.0  # an alert may precede the activation it reports by this much
MATCH_AFTER_S = 3 * DAY_S  # … and follow the end of the cheat by this much

# Cheat-indicating alert kinds (docs/platform-api.md §5.3) and the class each belongs to
# first: an unexplained alert of a kind counts against that class's requirement.
CHEAT_ALERT_KINDS: dict[str, str] = {
    "tank_gain": "PULSE", "meter_skim": "PULSE", "parameter_change": "PULSE",
    "component_change": "PART", "seal_broken": "PART",
    "sequence_gap": "DATA", "totalizer_gap": "DATA", "totalizer_reset": "DATA",
    "device_offline_sales": "DATA",
    "price_mismatch": "PRICE", "amount_mismatch": "PRICE",
    "tank_loss": "STOCK", "idle_loss": "STOCK", "gauge_frozen": "STOCK", "gauge_step": "STOCK",
    "delivery_short": "DELIV", "delivery_unbooked": "DELIV",
}
OPERATIONAL_ALERT_KINDS = ("leak_suspected", "water_high", "device_offline")
CLASSES = ("PULSE", "PART", "DATA", "PRICE", "STOCK", "DELIV")
LOOKALIKE = "LOOK"
ATTRIBUTIONS = ("nozzle", "device", "tank", "station")

INSTANCE_COLUMNS = ("station_id", "cheat", "kind", "class", "lookalike", "device", "dispenser",
                    "nozzle", "tank", "first_start", "last_end", "expected_alerts",
                    "attribution")
ALERT_COLUMNS = ("id", "station_id", "kind", "as_of", "device", "nozzle", "tank")


class OracleError(ValueError):
    """A table the oracle needs lacks a column or holds a value it cannot use."""


class InstanceRow(Protocol):
    """A row of cheat_instances (INSTANCE_COLUMNS, "class" renamed "cls") from itertuples."""

    station_id: str
    cheat: int
    kind: str
    cls: str
    lookalike: bool
    device: str | None
    nozzle: float  # NaN: no nozzle
    tank: float  # NaN: no tank
    first_start: float  # NaN: never active inside the run
    last_end: float  # NaN: still active at the end
    expected_alerts: Any  # a JSON list as text, or a list
    attribution: str


class _AlertRow(Protocol):
    """The column score reads itself from a row of normalise_alerts' table."""

    as_of: float


class _IncidentRow(Protocol):
    """A row of the `incidents` table of score."""

    station_id: str
    start: float
    end: float


@dataclass
class InstanceScore:
    """How the platform fared on one cheat instance."""

    station_id: str
    cheat: int
    kind: str
    cls: str
    target: dict[str, Any]
    first_start: float
    end: float  # last deactivation, else the end of the run
    observed_days: float  # from the first activation to the end of the run
    detected: bool = False
    days_to_detect: float | None = None
    attributed: bool = False
    first_alert: dict[str, Any] | None = None
    matching_alerts: int = 0
    attributed_alert: dict[str, Any] | None = None


@dataclass
class Scores:
    instances: list[InstanceScore]
    false_alerts: pd.DataFrame  # alerts of cheat kinds that match no cheat instance
    lookalikes_triggered: list[dict[str, Any]] = field(default_factory=list)
    alerts_judged: int = 0  # alerts of cheat-indicating kinds
    explained_by_incidents: int = 0  # … that data the SUT lost or altered explains

    def of_class(self, cls: str) -> list[InstanceScore]:
        return [s for s in self.instances if s.cls == cls]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise OracleError(f"expected_alerts {value[:60]!r}: not a JSON list") from None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _int_or_none(value: Any) -> int | None:
    v = _num(value)
    return None if math.isnan(v) else int(v)


def normalise_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alert columns the oracle reads, typed; an alert without a usable `as_of` is
    kept with NaN (it cannot be timed, so it matches nothing — and counts as false)."""
    missing = [c for c in ("station_id", "kind", "as_of") if c not in alerts.columns]
    if missing:
        raise OracleError(f"alerts: missing column(s) {missing} (GET /api/v1/alerts must "
                          f"serve station_id, kind and as_of; docs/platform-api.md §5.3)")
    out = pd.DataFrame({
        "id": alerts["id"].astype(str) if "id" in alerts.columns
        else pd.Series([str(i) for i in range(len(alerts))], dtype=object),
        "station_id": alerts["station_id"].astype(str),
        "kind": alerts["kind"].astype(str),
        "as_of": pd.to_numeric(alerts["as_of"], errors="coerce").astype(np.float64)})
    for col in ("device", "nozzle", "tank"):
        out[col] = alerts[col] if col in alerts.columns else None
    return out.reset_index(drop=True)


def check_instances(instances: pd.DataFrame) -> None:
    missing = [c for c in INSTANCE_COLUMNS if c not in instances.columns]
    if missing:
        raise OracleError(f"cheat_instances: missing column(s) {missing} "
                          f"(docs/ground-truth.md)")
    bad = sorted(set(instances["attribution"]) - set(ATTRIBUTIONS))
    if bad:
        raise OracleError(f"cheat_instances: attribution {bad}: expected one of {ATTRIBUTIONS}")


def _target(row: Any) -> dict[str, Any]:
    return {"device": str(row.device or ""), "nozzle": _int_or_none(row.nozzle),
            "tank": _int_or_none(row.tank), "attribution": str(row.attribution)}


def _attributed(target: dict[str, Any], alert: Any) -> bool:
    level = target["attribution"]
    if level == "station":
        return True
    if level == "tank":
        return _int_or_none(alert.tank) == target["tank"]
    same_device = str(alert.device or "") == target["device"]
    if level == "device":
        return same_device
    return same_device and _int_or_none(alert.nozzle) == target["nozzle"]


def _alert_summary(alert: Any) -> dict[str, Any]:
    return {"id": str(alert.id), "kind": str(alert.kind), "as_of": float(alert.as_of),
            "device": None if alert.device is None or (isinstance(alert.device, float)
                                                       and math.isnan(alert.device))
            else str(alert.device),
            "nozzle": _int_or_none(alert.nozzle), "tank": _int_or_none(alert.tank)}


def score(instances: pd.DataFrame, alerts: pd.DataFrame, run_end: float,
          incidents: pd.DataFrame | None = None) -> Scores:
    """Score every cheat instance and every alert (see the module doc for the rules).

    `incidents` (columns station_id, start, end): spans in which the system under test lost,
    duplicated or altered a station's records on their way to the platform. A
    cheat-indicating alert at that station inside [start − 1 h, end + 3 days] is explained
    by the incident (a platform that flags a totalizer gap the collector made is right),
    not false; the data requirements (DAT-*) judge the incident itself."""
    check_instances(instances)
    al = normalise_alerts(alerts)
    judged = al[al["kind"].isin(list(CHEAT_ALERT_KINDS))]
    explained = np.zeros(len(al), dtype=bool)
    spans = cast(Iterable[_IncidentRow],
                 (incidents if incidents is not None else pd.DataFrame()).itertuples(index=False))
    for inc in spans:
        explained |= ((al["station_id"] == str(inc.station_id))
                      & (al["as_of"] >= float(inc.start) - MATCH_BEFORE_S)
                      & (al["as_of"] <= float(inc.end) + MATCH_AFTER_S)).to_numpy()
    by_incident = int(explained[judged.index].sum())
    results: list[InstanceScore] = []
    lookalike_hits: list[dict[str, Any]] = []
    # ("class" is a keyword: itertuples would rename the column)
    rows = cast(Iterable[InstanceRow],
                instances.rename(columns={"class": "cls"}).itertuples(index=False))
    for row in rows:
        start = _num(row.first_start)
        if math.isnan(start):  # never active inside the run: nothing to detect
            continue
        last = _num(row.last_end)
        end = run_end if math.isnan(last) else min(last, run_end)
        at_station = (al["station_id"] == str(row.station_id)).to_numpy()
        in_window = ((al["as_of"] >= start - MATCH_BEFORE_S)
                     & (al["as_of"] <= end + MATCH_AFTER_S)).to_numpy()
        expected = set(_as_list(row.expected_alerts))
        if bool(row.lookalike):
            hits = judged[at_station[judged.index] & in_window[judged.index]]
            for a in hits.itertuples(index=False):
                lookalike_hits.append({"cheat": int(row.cheat), "kind": str(row.kind),
                                       "station_id": str(row.station_id),
                                       "alert": _alert_summary(a)})
            continue
        matches = at_station & in_window & al["kind"].isin(list(expected)).to_numpy()
        explained |= matches
        target = _target(row)
        s = InstanceScore(str(row.station_id), int(row.cheat), str(row.kind), str(row.cls),
                          target, start, end, (run_end - start) / DAY_S)
        results.append(s)
        if not matches.any():
            continue
        found = al[matches].sort_values(["as_of", "id"])
        first = next(cast(Iterator[_AlertRow], found.itertuples(index=False)))
        s.detected = True
        s.days_to_detect = max(0.0, (float(first.as_of) - start) / DAY_S)
        s.first_alert = _alert_summary(first)
        s.matching_alerts = len(found)
        for a in found.itertuples(index=False):
            if _attributed(target, a):
                s.attributed = True
                s.attributed_alert = _alert_summary(a)
                break
    false = judged[~explained[judged.index]]
    return Scores(results, false.reset_index(drop=True), lookalike_hits, len(judged),
                  by_incident)


def station_months(days_by_station: Iterable[float]) -> float:
    return float(sum(days_by_station)) / MONTH_DAYS


# ---- intervals ------------------------------------------------------------------------

def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_upper(count: int, confidence: float = 0.975) -> float:
    """Exact (Garwood) upper bound of a Poisson mean given `count` events: the λ with
    P(X ≤ count; λ) = 1 − confidence. A one-sided 97.5 % bound is the upper end of the
    two-sided 95 % interval."""
    target = 1.0 - confidence

    def cdf(lam: float) -> float:
        term = total = math.exp(-lam)
        for k in range(1, count + 1):
            term *= lam / k
            total += term
        return total

    lo, hi = 0.0, max(10.0, 4.0 * (count + 1))
    while cdf(hi) > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cdf(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi
