"""Checks a JSON Schema cannot express: references into the fleet, times, prices.

Runs on schema-valid data with defaults applied. `fleet` is None when the ledger itself
was rejected; then only the checks that do not need it run (its own errors are reported).
"""

from __future__ import annotations

import math
import zoneinfo
from typing import Any

from scenarios.errors import Problem, format_path, show
from scenarios.schemacheck import load_schema
from scenarios.timespec import TimeSpecError, parse_datetime, parse_duration, parse_instant
from scenarios.yamlsource import Positions, locate


class _Report:
    """Collects problems, each placed at the line of its field."""

    def __init__(self, file: str, positions: Positions, data: dict[str, Any]) -> None:
        self.file, self.positions, self.data = file, positions, data
        self.problems: list[Problem] = []

    def value(self, path: tuple) -> Any:
        value: Any = self.data
        for part in path:
            value = value[part]
        return value

    def add(self, path: tuple, expected: str, found: str) -> None:
        self.problems.append(Problem(self.file, format_path(path), expected, found,
                                     *locate(self.positions, path)))


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 8 else ", ".join(ids[:8]) + f", ... ({len(ids)} in all)"


def _check_time(data: dict[str, Any], rep: _Report) -> tuple[float | None, float | None]:
    try:
        zoneinfo.ZoneInfo(data["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory name
        rep.add(("timezone",), "an IANA time zone such as 'Asia/Shanghai'", show(data["timezone"]))
    try:
        start = parse_datetime(data["start"]).timestamp()
    except TimeSpecError as exc:
        rep.add(("start",), exc.expected, exc.found)
        return None, None
    return start, start + data["days"] * 86400.0


def _instant(value: str, path: tuple, start: float, rep: _Report) -> float | None:
    try:
        return parse_instant(value, start)
    except TimeSpecError as exc:
        rep.add(path, exc.expected, exc.found)
        return None


def _in_run(t: float | None, path: tuple, start: float, end: float, rep: _Report) -> None:
    if t is not None and not start <= t < end:
        rep.add(path, "a time within the run (from start, before start + days)",
                f"{show(rep.value(path))} outside the run")


def _check_prices(data: dict[str, Any], start: float, selected: list[dict[str, Any]] | None,
                  rep: _Report) -> None:
    seen: dict[tuple[float, str], int] = {}
    first_price: dict[str, float] = {}
    for i, item in enumerate(data["prices"]):
        fen = item["price"] * 100.0
        if abs(fen - round(fen)) > 1e-6:
            rep.add(("prices", i, "price"), "yuan per litre with at most 2 decimals (whole fen)",
                    show(item["price"]))
        at = _instant(item["from"], ("prices", i, "from"), start, rep)
        if at is None:
            continue
        key = (at, item["grade"])
        if key in seen:
            rep.add(("prices", i), "one price per grade and time",
                    f"grade {item['grade']} at {item['from']} again (first at prices[{seen[key]}])")
        seen.setdefault(key, i)
        first_price[item["grade"]] = min(at, first_price.get(item["grade"], at))
    grades = sorted({t["grade"] for s in selected or [] for t in s["tanks"]})
    for grade in grades:
        if first_price.get(grade, float("inf")) > start:
            found = ("its first price later, from " + _first_from(data, grade)
                     if grade in first_price else "no price for it")
            rep.add(("prices",), f"a price for grade {grade} from start ({data['start']}) or earlier",
                    found)


def _first_from(data: dict[str, Any], grade: str) -> str:
    return min((p["from"] for p in data["prices"] if p["grade"] == grade), default="?")


def _station(ref: str, path: tuple, by_id: dict[str, dict[str, Any]], selected_ids: list[str],
             rep: _Report) -> dict[str, Any] | None:
    if ref not in by_id:
        rep.add(path, "a station id of the fleet ledger", show(ref))
        return None
    if ref not in selected_ids:
        rep.add(path, f"one of the scenario's stations ({_ids(selected_ids)})", show(ref))
        return None
    return by_id[ref]


def _dispenser(station: dict[str, Any], number: int, path: tuple, rep: _Report,
               written: str | None = None) -> dict[str, Any] | None:
    for d in station["dispensers"]:
        if d["dispenser"] == number:
            return d
    have = ", ".join(str(d["dispenser"]) for d in station["dispensers"])
    rep.add(path, f"a dispenser of station {station['station_id']} ({have})",
            str(number) if written is None else show(written))
    return None


def _check_cheats(data, start, end, by_id, selected_ids, rep: _Report) -> None:
    held: list[tuple[int, float, float, list[tuple[str, str]]]] = []  # for overlaps
    for i, cheat in enumerate(data["cheats"]):
        base = ("cheats", i)
        t0 = _instant(cheat["start"], (*base, "start"), start, rep)
        _in_run(t0, (*base, "start"), start, end, rep)
        t1 = None
        if cheat["end"] is not None:
            t1 = _instant(cheat["end"], (*base, "end"), start, rep)
            if t0 is not None and t1 is not None and t1 <= t0:
                rep.add((*base, "end"), f"a time after start ({cheat['start']})", show(cheat["end"]))
        if by_id is None:
            continue
        station = _station(cheat["station"], (*base, "station"), by_id, selected_ids, rep)
        if station is None:
            continue
        disp = None
        if "dispenser" in cheat:
            disp = _dispenser(station, cheat["dispenser"], (*base, "dispenser"), rep)
            if disp is None:
                continue
        if disp is not None and cheat.get("nozzle", 0) > len(disp["nozzle_tanks"]):
            rep.add((*base, "nozzle"),
                    f"a nozzle 1..{len(disp['nozzle_tanks'])} of {station['station_id']} "
                    f"dispenser {disp['dispenser']}", str(cheat["nozzle"]))
            continue
        if "tank" in cheat and cheat["tank"] not in [t["tank"] for t in station["tanks"]]:
            have = ", ".join(str(t["tank"]) for t in station["tanks"])
            rep.add((*base, "tank"), f"a tank of station {station['station_id']} ({have})",
                    str(cheat["tank"]))
            continue
        if t0 is not None and (cheat["end"] is None or t1 is not None):
            span = _span(cheat, t0, t1)
            held.append((i, *span, _resources(cheat, disp)))
    _check_overlaps(data, held, rep)


def _span(cheat: dict[str, Any], t0: float, t1: float | None) -> tuple[float, float]:
    """[from, to) in which a cheat holds its resources (x-cheat-kinds in the schema)."""
    rule = load_schema()["x-cheat-kinds"][cheat["kind"]]["span"]
    if rule is not None:
        value = cheat.get(rule["param"], rule["default"])
        return t0, t0 + value * rule["scale_s"] + rule["extra_s"]
    return t0, math.inf if t1 is None else t1


def _resources(cheat: dict[str, Any], disp: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(resource, place) pairs a cheat changes and restores (x-cheat-resources)."""
    schema = load_schema()
    out = []
    for res in schema["x-cheat-kinds"][cheat["kind"]]["resources"]:
        scope = schema["x-cheat-resources"][res]["scope"]
        sid = cheat["station"]
        if scope == "nozzle" and disp is not None:
            nozzles = [cheat["nozzle"]] if cheat.get("nozzle") else \
                range(1, len(disp["nozzle_tanks"]) + 1)
            out += [(res, f"{sid} dispenser {disp['dispenser']} nozzle {n}") for n in nozzles]
        elif scope == "dispenser" and disp is not None:
            out.append((res, f"{sid} dispenser {disp['dispenser']}"))
        elif scope == "tank" and "tank" in cheat:
            out.append((res, f"{sid} tank {cheat['tank']}"))
    return out


def _check_overlaps(data: dict[str, Any], held: list, rep: _Report) -> None:
    """Cheats that change and restore the same resource must not overlap in time (each
    restores what it found, so overlapping ones would undo each other)."""
    what = load_schema()["x-cheat-resources"]
    by_key: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for i, t0, t1, keys in held:
        for key in keys:
            by_key.setdefault(key, []).append((t0, t1, i))
    reported: set[int] = set()
    for (res, place), items in by_key.items():
        items.sort()
        for (_, end_a, i), (start_b, _, j) in zip(items, items[1:], strict=False):
            if start_b < end_a and j not in reported:
                reported.add(j)
                first = data["cheats"][i]
                until = "its end" if first["end"] is None else f"its end ({first['end']})"
                rep.add(("cheats", j, "start"),
                        f"a start at or after cheats[{i}] ends ({until}; both change the "
                        f"{what[res]['what']} of {place})", show(data["cheats"][j]["start"]))


def _check_tank_conditions(data, by_id, selected_ids, rep: _Report) -> None:
    seen: dict[tuple[str, int], int] = {}
    for i, cond in enumerate(data["tank_conditions"]):
        base = ("tank_conditions", i)
        key = (cond["station"], cond["tank"])
        if key in seen:
            rep.add(base, "one entry per station and tank",
                    f"{cond['station']} tank {cond['tank']} again (first at tank_conditions[{seen[key]}])")
        seen.setdefault(key, i)
        if by_id is None:
            continue
        station = _station(cond["station"], (*base, "station"), by_id, selected_ids, rep)
        if station is not None and cond["tank"] not in [t["tank"] for t in station["tanks"]]:
            have = ", ".join(str(t["tank"]) for t in station["tanks"])
            rep.add((*base, "tank"), f"a tank of station {station['station_id']} ({have})",
                    str(cond["tank"]))


# fault kinds that act on the whole fleet (no station), and those that may name a device
# (acceptance/faults/ describes every kind; a test checks the two agree)
FLEET_FAULTS = ("broker_restart", "platform_crash", "platform_restart", "platform_stall",
                "platform_db_unavailable")
DEVICE_FAULTS = ("device_silent", "device_power_loss", "modbus_busy", "modbus_slow",
                 "rtu_line_noise", "modbus_garbled", "device_clock_drift", "device_clock_reset")
# faults of one device's clock (sim.config.ClockFault): they name a device and never overlap
CLOCK_FAULTS = ("device_clock_drift", "device_clock_reset")
# faults that corrupt reply frames on the wire, and the Modbus transport each one fits
WIRE_FAULTS = {"rtu_line_noise": "rtu", "modbus_garbled": "tcp"}
# the part each fault the harness serves acts on: two of them on one part may not overlap
# (a second crash of a collector that is down, a broker started twice; a platform restarted
# while its database is locked cannot start)
FAULT_PARTS = {"collector_crash": "collector", "collector_stall": "collector",
               "collector_disk_full": "collector",
               "network_cut": "network", "broker_restart": "broker",
               "platform_crash": "platform", "platform_restart": "platform",
               "platform_stall": "platform", "platform_db_unavailable": "platform"}


def _transport(data: dict[str, Any], station: dict[str, Any]) -> str:
    """How the run serves a station: `rtu_stations` if given, else the ledger's transport
    (Scenario.rtu_station_ids)."""
    if data["rtu_stations"] is not None:
        return "rtu" if station["station_id"] in data["rtu_stations"] else "tcp"
    return station["transport"]


def _check_wire_fault(data, fault: dict[str, Any], base: tuple, station: dict[str, Any] | None,
                      at: float | None, duration: float, wire: list, rep: _Report) -> None:
    """rtu_line_noise only on an RTU station, modbus_garbled only on a TCP one; and one such
    window at a time per device (each draws its own corruption pattern)."""
    kind = fault["kind"]
    need = WIRE_FAULTS[kind]
    if station is not None and _transport(data, station) != need:
        rtu = data["rtu_stations"]
        how = ("rtu_stations: " + (", ".join(rtu) or "none") if rtu is not None
               else "the ledger's transport")
        rep.add((*base, "station"), f"a station served over Modbus {need.upper()} for kind "
                f"{kind} ({how})", f"{show(fault['station'])}, served over Modbus "
                f"{_transport(data, station).upper()}")
    if at is None:
        return
    sid, device = fault["station"], fault["device"]
    for a, b, j, other_sid, other in wire:
        same = other_sid == sid and (None in (device, other) or device == other)
        if same and at < b and a < at + duration:
            rep.add((*base, "at"), f"no overlap with faults[{j}] (both corrupt the replies of "
                    f"{sid}/{device or other or '*'})", show(fault["at"]))
    wire.append((at, at + duration, base[1], sid, device))


def _check_clock_fault(fault: dict[str, Any], base: tuple, at: float | None, duration: float,
                       clocks: dict[tuple[str, str], list[tuple[float, float, int]]],
                       rep: _Report) -> None:
    """A clock fault names its device, and one device's clock has one fault at a time."""
    device = fault["device"]
    if device is None:
        rep.add((*base, "device"), f"a device 'G' or 'D<n>' (kind {fault['kind']} acts on "
                "one device's clock)", "nothing")
        return
    if at is None:
        return
    key = (fault["station"], device)
    for a, b, j in clocks.get(key, []):
        if at < b and a < at + duration:
            rep.add((*base, "at"), f"no overlap with faults[{j}] (both act on the clock of "
                    f"{key[0]}/{device})", show(fault["at"]))
    clocks.setdefault(key, []).append((at, at + duration, base[1]))


def _check_faults(data, start, end, by_id, selected_ids, rep: _Report) -> None:
    busy: dict[tuple, list[tuple[float, float, int]]] = {}  # part → windows (start, end, index)
    wire: list[tuple[float, float, int, str, str | None]] = []  # WIRE_FAULTS windows so far
    clocks: dict[tuple[str, str], list[tuple[float, float, int]]] = {}  # CLOCK_FAULTS windows
    for i, fault in enumerate(data["faults"]):
        base = ("faults", i)
        kind = fault["kind"]
        at = _instant(fault["at"], (*base, "at"), start, rep)
        _in_run(at, (*base, "at"), start, end, rep)
        duration = parse_duration(fault["duration"])
        if duration <= 0:
            rep.add((*base, "duration"), "a duration above zero", show(fault["duration"]))
        if at is not None and kind in FAULT_PARTS:
            part = (FAULT_PARTS[kind], None if kind in FLEET_FAULTS else fault["station"])
            for a, b, j in busy.get(part, []):
                if at < b and a < at + duration:
                    rep.add((*base, "at"), f"no overlap with faults[{j}] (both act on the "
                            f"{part[0]}{' of ' + part[1] if part[1] else ''})",
                            show(fault["at"]))
            busy.setdefault(part, []).append((at, at + duration, i))
        device = fault["device"]
        if device is not None and kind not in DEVICE_FAULTS:
            rep.add((*base, "device"), f"no device for kind {kind} (it acts on the "
                    f"{'fleet' if kind in FLEET_FAULTS else 'whole station'})", show(device))
        if kind == "device_power_loss" and (device is None or device == "G"):
            rep.add((*base, "device"), "a dispenser 'D<n>' (a power loss of the tank gauge or "
                    "of a whole station is not modelled)", show(device))
        if "delay_ms" in fault and kind != "modbus_slow":
            rep.add((*base, "delay_ms"), "no delay_ms for kind " + kind + " (modbus_slow only)",
                    show(fault["delay_ms"]))
        for field, only in (("drift_s_per_day", "device_clock_drift"),
                            ("reset_to", "device_clock_reset")):
            if field in fault and kind != only:
                rep.add((*base, field), f"no {field} for kind {kind} ({only} only)",
                        show(fault[field]))
        if kind in CLOCK_FAULTS:
            _check_clock_fault(fault, base, at, duration, clocks, rep)
        if "rate" in fault and kind not in WIRE_FAULTS:
            rep.add((*base, "rate"), f"no rate for kind {kind} (rtu_line_noise and "
                    "modbus_garbled only)", show(fault["rate"]))
        if kind in FLEET_FAULTS:
            if fault["station"] is not None:
                rep.add((*base, "station"), f"no station for kind {kind} (it acts on the "
                        "whole fleet)", show(fault["station"]))
            continue
        if fault["station"] is None:
            rep.add((*base, "station"), f"a station id (kind {kind} acts on one station)",
                    "nothing")
            continue
        if by_id is None:
            continue
        station = _station(fault["station"], (*base, "station"), by_id, selected_ids, rep)
        if station is not None and device is not None and device != "G":
            _dispenser(station, int(device[1:]), (*base, "device"), rep, written=device)
        if kind in WIRE_FAULTS:
            _check_wire_fault(data, fault, base, station, at, duration, wire, rep)


def _check_lists(data, by_id, selected_ids, rep: _Report) -> None:
    for i, sid in enumerate(data["stations"] or []):
        if sid not in by_id:
            rep.add(("stations", i), "a station id of the fleet ledger", show(sid))
    for i, sid in enumerate(data["rtu_stations"] or []):
        _station(sid, ("rtu_stations", i), by_id, selected_ids, rep)


def cross_check(data: dict[str, Any], file: str, positions: Positions,
                fleet: list[dict[str, Any]] | None) -> list[Problem]:
    """Problems a schema cannot see; `fleet` None skips the checks that need the ledger."""
    rep = _Report(file, positions, data)
    deliveries = data["deliveries"]
    if deliveries["fill_target"] <= deliveries["reorder_fraction"]:
        rep.add(("deliveries", "fill_target"),
                f"a value above reorder_fraction ({deliveries['reorder_fraction']})",
                show(deliveries["fill_target"]))
    low, high = deliveries["lead_time_h"]
    if low > high:
        rep.add(("deliveries", "lead_time_h"), "[shortest, longest] with shortest <= longest",
                f"[{low}, {high}]")
    if 1440 % data["inventory_interval_min"]:
        rep.add(("inventory_interval_min",), "a divisor of 1440 (so intervals align with midnight)",
                show(data["inventory_interval_min"]))
    start, end = _check_time(data, rep)
    by_id = {s["station_id"]: s for s in fleet} if fleet is not None else None
    selected_ids: list[str] = []
    if by_id is not None:
        wanted = set(data["stations"] or by_id)
        selected_ids = [sid for sid in by_id if sid in wanted]
        _check_lists(data, by_id, selected_ids, rep)
    if start is None or end is None:
        return rep.problems
    selected = [by_id[sid] for sid in selected_ids] if by_id is not None else None
    _check_prices(data, start, selected, rep)
    _check_cheats(data, start, end, by_id, selected_ids, rep)
    _check_tank_conditions(data, by_id, selected_ids, rep)
    _check_faults(data, start, end, by_id, selected_ids, rep)
    low, high = data["inspections"]["duration_h"]
    if low > high:
        rep.add(("inspections", "duration_h"), "[shortest, longest] with shortest <= longest",
                f"[{low}, {high}]")
    return rep.problems
