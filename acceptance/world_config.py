"""Turn a loaded scenario into the world's configuration (sim.config.WorldConfig).

The scenario is already validated (scenarios.loader), so this is a pure translation:
times to epoch seconds, prices from yuan to fen, minutes to seconds, ledger rows to
StationConfig with each tank's scenario conditions, cheats to CheatConfig. Faults,
criteria and the FIFO depth are not the world's business: they stay in `scenario.data`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast
from zoneinfo import ZoneInfo

from scenarios.crosscheck import CLOCK_FAULTS
from scenarios.loader import Scenario
from scenarios.timespec import parse_duration
from sim.config import (
    CheatConfig,
    ClockFault,
    DeliveryPolicy,
    DispenserConfig,
    InspectionPolicy,
    PowerCut,
    PriceChange,
    ProbeConfig,
    StationConfig,
    TankConfig,
    TaxPolicy,
    WorldConfig,
)

# fields of a scenario cheat that place and time it; every other field is a parameter of its kind
_CHEAT_ADDRESS = ("kind", "station", "dispenser", "nozzle", "tank", "start", "end", "schedule")


def _schedule(value: Any) -> dict[str, Any]:
    """A scenario cheat's `schedule` (absent, a kind name, or {kind, options…}) as a mapping."""
    if value is None:
        return {}
    return {"kind": value} if isinstance(value, str) else dict(value)


def _cheat(index: int, c: dict[str, Any], scenario: Scenario) -> CheatConfig:
    return CheatConfig(kind=c["kind"], station_id=c["station"], dispenser=c.get("dispenser", 0),
                       nozzle=c.get("nozzle", 0), tank=c.get("tank", 0),
                       start=scenario.instant(c["start"]),
                       end=None if c["end"] is None else scenario.instant(c["end"]),
                       params={k: v for k, v in c.items() if k not in _CHEAT_ADDRESS},
                       schedule=_schedule(c.get("schedule")), index=index)


def _tank(tank: dict[str, Any], condition: dict[str, Any] | None) -> TankConfig:
    extra = {}
    if condition is not None:
        extra = {k: condition[k] for k in ("initial_fill", "leak_l_per_h", "water_ingress_l_per_day")}
    return TankConfig(tank=tank["tank"], grade=tank["grade"], nominal_m3=tank["nominal_m3"], **extra)


def _station(row: dict[str, Any], conditions: dict[tuple[str, int], dict[str, Any]],
             transport: str) -> StationConfig:
    sid = row["station_id"]
    return StationConfig(
        station_id=sid,
        name=row["name"],
        town=row["town"],
        ownership=row["ownership"],
        dialect=row["dialect"],
        transport=transport,
        tanks=tuple(_tank(t, conditions.get((sid, t["tank"]))) for t in row["tanks"]),
        dispensers=tuple(DispenserConfig(dispenser=d["dispenser"],
                                         nozzle_tanks=tuple(d["nozzle_tanks"]))
                         for d in row["dispensers"]),
        throughput_l_per_day=dict(row["throughput_l_per_day"]),
        truck_share=row["truck_share"],
    )


DRIFT_S_PER_DAY = 600.0  # default of device_clock_drift: a failing RTC, 10 min a day
RESET_TO = "2000-01-01T00:00:00"  # default of device_clock_reset: a typical RTC's zero


def _clock_fault(f: dict[str, Any], scenario: Scenario) -> ClockFault:
    common = dict(station_id=f["station"], device=f["device"], at=scenario.instant(f["at"]),
                  duration_s=parse_duration(f["duration"]))
    if f["kind"] == "device_clock_drift":
        return ClockFault(**common, drift_s_per_day=float(f.get("drift_s_per_day",
                                                                 DRIFT_S_PER_DAY)))
    if "reset_to" in f:
        reset_to = scenario.instant(f["reset_to"])
    else:
        reset_to = dt.datetime.fromisoformat(RESET_TO).replace(
            tzinfo=ZoneInfo(scenario.timezone)).timestamp()
    return ClockFault(**common, reset_to=reset_to)


def _selected(scenario: Scenario, station_ids: Iterable[str] | None) -> list[str]:
    available = scenario.station_ids
    if station_ids is None:
        return available
    wanted = list(station_ids)
    unknown = [sid for sid in wanted if sid not in available]
    if unknown or not wanted:
        raise ValueError(f"build_world_config: station_ids: expected some of the scenario "
                         f"{scenario.name!r} stations ({', '.join(available)}), "
                         f"found {', '.join(map(repr, unknown)) or 'none'}")
    return [sid for sid in available if sid in wanted]  # ledger order, whatever order was asked


def build_world_config(scenario: Scenario, *, days: float | None = None, seed: int | None = None,
                       station_ids: Iterable[str] | None = None) -> WorldConfig:
    """The WorldConfig of `scenario`, optionally shortened/reseeded/limited to some stations."""
    if days is not None and not 0 < days <= 3660:
        raise ValueError(f"build_world_config: days: expected a number in (0, 3660], found {days!r}")
    if seed is not None and not 0 <= seed < 2**63:
        raise ValueError(f"build_world_config: seed: expected an integer in [0, 2**63), found {seed!r}")
    data = scenario.data
    ids = _selected(scenario, station_ids)
    rtu = set(scenario.rtu_station_ids)
    conditions = {(c["station"], c["tank"]): c for c in data["tank_conditions"]}
    by_id = {row["station_id"]: row for row in scenario.fleet}
    stations = tuple(_station(by_id[sid], conditions, "rtu" if sid in rtu else "tcp") for sid in ids)
    prices = sorted(
        (PriceChange(at=scenario.instant(p["from"]), grade=p["grade"],
                     price_fen=round(p["price"] * 100)) for p in data["prices"]),
        key=lambda p: (p.at, p.grade))
    cheats = tuple(_cheat(i, c, scenario) for i, c in enumerate(data["cheats"])
                   if c["station"] in ids)
    # the one fault the world serves: a dispenser's power loss changes what it sells
    power_cuts = tuple(
        PowerCut(f["station"], int(f["device"][1:]), scenario.instant(f["at"]),
                 parse_duration(f["duration"]))
        for f in data["faults"] if f["kind"] == "device_power_loss" and f["station"] in ids)
    clock_faults = tuple(_clock_fault(f, scenario) for f in data["faults"]
                         if f["kind"] in CLOCK_FAULTS and f["station"] in ids)
    inspections = data.get("inspections") or {}
    policy = dict(data["deliveries"])
    policy["lead_time_h"] = tuple(float(h) for h in policy["lead_time_h"])
    return WorldConfig(
        seed=data["seed"] if seed is None else seed,
        start=scenario.start_epoch,
        days=float(data["days"] if days is None else days),
        timezone=scenario.timezone,
        stations=stations,
        inventory_interval_s=data["inventory_interval_min"] * 60,
        probe=ProbeConfig(**data["probe"]),
        prices=tuple(prices),
        deliveries=DeliveryPolicy(**policy),
        cheats=cheats,
        power_cuts=power_cuts,
        clock_faults=clock_faults,
        imperfections=data.get("imperfections", "realistic"),
        inspections=InspectionPolicy(
            mean_interval_days=float(inspections.get("mean_interval_days", 30.0)),
            # the schema asks for exactly two hours (min, max)
            duration_h=cast(tuple[float, float],
                            tuple(float(h) for h in inspections.get("duration_h", (1.0, 2.0))))),
        tax=tax_policy(data.get("tax") or {}),
    )


def tax_policy(tax: dict[str, Any]) -> TaxPolicy:
    """The scenario's `tax` (docs/scenarios.md): period null/omitted = calendar months."""
    period = tax.get("period_days")
    return TaxPolicy(period_days=None if period is None else float(period),
                     filing_lag_h=float(tax.get("filing_lag_h", 240.0)),
                     booking_cutoff_min=float(tax.get("booking_cutoff_min", 10.0)))
