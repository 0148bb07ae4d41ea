"""Campaign specifications (检测能力评估方案): which worlds to run, honest and cheating.

    spec = load_spec("scenarios/campaigns/skim-1pct.yaml")    # raises SpecError

A campaign measures detection power: many seeds of a base scenario's world, each honest
(for false alarms) or with one cheat of a given kind and size (for detection probability,
time to detect and attribution). docs/campaigns.md describes the format:

```yaml
name: skim-1pct
scenario: ../urad-middle-banner.yaml   # the world: ledger, prices, deliveries, start, zone
seed: 7000                             # base seed; every world gets its own, derived from it
honest: {stations: all, days: 200, seeds: 1}
cheats:
  - kind: pulse_factor
    size: "1 %"
    params: {factor: 1.01}             # the cheat's parameters, as in a scenario
    target: {dispenser: random, nozzle: random}
    stations: [UMB08]                  # default: the median station by throughput
    days: 44                           # length of each world
    start_day: 14                      # the cheat starts after this many honest days
    instances: 100
```

Every error names the file, the field path, what was expected and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scenarios.loader import Scenario, ScenarioError, load_scenario

DAYS_BY = (1, 3, 7, 14, 30)
RANDOM = "random"


class SpecError(ValueError):
    """A campaign spec is malformed (file, field path, expected, found)."""


@dataclass(frozen=True)
class HonestPlan:
    stations: tuple[str, ...]
    days: float
    seeds: int


@dataclass(frozen=True)
class CheatPlan:
    """One class of a campaign: a cheat kind at one size, on many worlds."""

    index: int
    kind: str
    size: str
    params: dict[str, Any]
    target: dict[str, Any]  # dispenser / nozzle / tank: a number or "random"
    stations: tuple[str, ...]
    days: float
    start_day: float
    instances: int
    schedule: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignSpec:
    path: Path
    name: str
    description: str
    scenario: Scenario
    seed: int
    days_by: tuple[int, ...]
    honest: HonestPlan | None
    cheats: tuple[CheatPlan, ...]


def _fail(path: Path, where: str, expected: str, found: Any) -> SpecError:
    return SpecError(f"{path}: {where}: expected {expected}, found {found!r}")


def _number(doc: dict, key: str, path: Path, where: str, *, default: Any = None,
            minimum: float = 0.0, integer: bool = False) -> Any:
    value = doc.get(key, default)
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and value > minimum and (not integer or float(value).is_integer()))
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise _fail(path, f"{where}.{key}", f"{kind} > {minimum:g}", value)
    return int(value) if integer else float(value)


def _keys(doc: Any, allowed: set[str], path: Path, where: str) -> dict:
    if not isinstance(doc, dict):
        raise _fail(path, where, "a mapping", doc)
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise _fail(path, where, f"only the keys {sorted(allowed)}", unknown)
    return doc


def _stations(value: Any, scenario: Scenario, path: Path, where: str,
              default: list[str]) -> tuple[str, ...]:
    known = [s["station_id"] for s in scenario.fleet]
    if value is None:
        return tuple(default)
    if value == "all":
        return tuple(scenario.station_ids)
    if value == "median":
        return (median_station(scenario),)
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise _fail(path, where, "'all', 'median' or a list of station ids", value)
    unknown = [v for v in value if v not in known]
    if unknown:
        raise _fail(path, where, f"stations of the ledger ({', '.join(known[:5])}, …)", unknown)
    return tuple(value)


def median_station(scenario: Scenario) -> str:
    """The station of median total throughput (the lower median when the count is even)."""
    rows = sorted(scenario.stations,
                  key=lambda r: (sum(r["throughput_l_per_day"].values()), r["station_id"]))
    return rows[(len(rows) - 1) // 2]["station_id"]


def load_spec(path: str | Path) -> CampaignSpec:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: cannot read the campaign spec ({exc})") from None
    doc = _keys(doc, {"name", "description", "scenario", "seed", "days_by", "honest",
                      "cheats"}, p, "$")
    name = doc.get("name")
    if not (isinstance(name, str) and name.strip()):
        raise _fail(p, "$.name", "a name", name)
    ref = doc.get("scenario")
    if not isinstance(ref, str):
        raise _fail(p, "$.scenario", "the path of a scenario file, relative to the spec", ref)
    try:
        scenario = load_scenario(p.parent / ref)
    except ScenarioError as exc:
        raise SpecError(f"{p}: $.scenario: the scenario is not valid:\n  - "
                        + "\n  - ".join(exc.messages)) from None
    seed = doc.get("seed", 1)
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise _fail(p, "$.seed", "a whole number >= 0", seed)
    days_by = doc.get("days_by", list(DAYS_BY))
    if not (isinstance(days_by, list) and days_by
            and all(isinstance(d, int) and d > 0 for d in days_by)):
        raise _fail(p, "$.days_by", "a list of whole days > 0", days_by)

    honest = None
    if doc.get("honest") is not None:
        h = _keys(doc["honest"], {"stations", "days", "seeds"}, p, "$.honest")
        honest = HonestPlan(_stations(h.get("stations", "all"), scenario, p, "$.honest.stations",
                                      scenario.station_ids),
                            _number(h, "days", p, "$.honest"),
                            _number(h, "seeds", p, "$.honest", default=1, integer=True))
    raw = doc.get("cheats", [])
    if not isinstance(raw, list):
        raise _fail(p, "$.cheats", "a list of cheat classes", raw)
    plans = []
    for i, c in enumerate(raw):
        where = f"$.cheats[{i}]"
        c = _keys(c, {"kind", "size", "params", "target", "stations", "days", "start_day",
                      "instances", "schedule"}, p, where)
        kind = c.get("kind")
        if not isinstance(kind, str):
            raise _fail(p, f"{where}.kind", "a cheat kind (docs/cheats.md)", kind)
        params = c.get("params", {})
        target = c.get("target", {})
        schedule = c.get("schedule", {})
        for key, value in (("params", params), ("target", target), ("schedule", schedule)):
            if not isinstance(value, dict):
                raise _fail(p, f"{where}.{key}", "a mapping", value)
        for key, value in target.items():
            if key not in ("dispenser", "nozzle", "tank") or not (
                    value == RANDOM or (isinstance(value, int) and value >= 1)):
                raise _fail(p, f"{where}.target.{key}",
                            "dispenser / nozzle / tank: a number >= 1 or 'random'", value)
        days = _number(c, "days", p, where)
        start_day = _number(c, "start_day", p, where, default=0.0, minimum=-1e-9)
        if start_day >= days:
            raise _fail(p, f"{where}.start_day", f"less than days ({days:g})", start_day)
        plans.append(CheatPlan(
            i, kind, str(c.get("size", "")), dict(params), dict(target),
            _stations(c.get("stations"), scenario, p, f"{where}.stations",
                      [median_station(scenario)]),
            days, start_day, _number(c, "instances", p, where, integer=True), dict(schedule)))
    if honest is None and not plans:
        raise _fail(p, "$", "an `honest` plan, `cheats`, or both", "neither")
    return CampaignSpec(p, name.strip(), str(doc.get("description", "")).strip(), scenario,
                        seed, tuple(days_by), honest, tuple(plans))
