"""The simulated world: every station of a WorldConfig, advanced together in simulated time.

Stations are independent simulations (each has its own SimPy environment and random
streams), so `World(config, station_ids=[...])` simulates any subset with exactly the
same per-station ground truth, and `run_until` may be called in steps of any size: the
records depend only on the config and seed, never on how the clock was driven or on
what was read from the views.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sim.cheats import Cheat, check_overlaps, make_cheat
from sim.config import WorldConfig
from sim.records import DispenserView, GaugeView, RecordListener
from sim.station import STREAMS, Listeners, RecordFn, Station, TruthFn, check_station


def _validate(config: WorldConfig) -> ZoneInfo:
    if not (isinstance(config.seed, int) and config.seed >= 0):
        raise ValueError(f"world: seed must be a whole number >= 0, got {config.seed!r}")
    if not math.isfinite(config.start):
        raise ValueError(f"world: start must be a finite epoch time, got {config.start!r}")
    if not (math.isfinite(config.days) and config.days > 0):
        raise ValueError(f"world: days must be > 0, got {config.days!r}")
    if not (isinstance(config.inventory_interval_s, int) and config.inventory_interval_s > 0):
        raise ValueError(f"world: inventory_interval_s must be a whole number of seconds > 0, "
                         f"got {config.inventory_interval_s!r}")
    try:
        tz = ZoneInfo(config.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"world: unknown timezone {config.timezone!r} "
                         f"(use an IANA name such as 'Asia/Shanghai')") from None
    ids = [s.station_id for s in config.stations]
    dupes = sorted({s for s in ids if ids.count(s) > 1})
    if dupes:
        raise ValueError(f"world: duplicate station ids {dupes}")
    return tz


def validate_world(config: WorldConfig, station_ids: Iterable[str] | None = None
                   ) -> tuple[ZoneInfo, list[str], dict[str, list[Cheat]]]:
    """Check a config without simulating anything; raises ValueError naming what is wrong.

    Returns the time zone, the selected station ids in world (config) order and the
    validated cheats per station."""
    tz = _validate(config)
    known = [s.station_id for s in config.stations]
    if station_ids is None:
        selected = set(known)
    else:
        selected = set(station_ids)
        unknown = sorted(selected - set(known))
        if unknown:
            raise ValueError(f"world: unknown station ids {unknown}; the config has {known}")
    cheats_by_station: dict[str, list[Cheat]] = {}
    built: list[Cheat] = []
    indices = [i if cc.index is None else cc.index for i, cc in enumerate(config.cheats)]
    if len(set(indices)) != len(indices):
        raise ValueError(f"world: cheat indices must be unique, got {indices}")
    for index, cc in zip(indices, config.cheats, strict=True):
        where = f"cheats[{index}]"
        cheat = make_cheat(cc, where, index)
        if cc.station_id not in known:
            raise ValueError(f"{where}: unknown station {cc.station_id!r}")
        built.append(cheat)
        cheats_by_station.setdefault(cc.station_id, []).append(cheat)
    by_id = {sc.station_id: sc for sc in config.stations}
    order = []
    for sc in config.stations:  # config order is the station order everywhere
        if sc.station_id not in selected:
            continue
        check_station(sc, config)
        for cheat in cheats_by_station.get(sc.station_id, []):
            problem = cheat.check_target(sc)
            if problem:
                raise ValueError(problem)
        order.append(sc.station_id)
    check_overlaps([c for c in built if c.config.station_id in selected], by_id)
    _check_inspections(config)
    return tz, order, cheats_by_station


def _check_inspections(config: WorldConfig) -> None:
    p = config.inspections
    lo, hi = p.duration_h
    if not (math.isfinite(p.mean_interval_days) and p.mean_interval_days > 0):
        raise ValueError(f"world: inspections.mean_interval_days must be > 0, "
                         f"got {p.mean_interval_days!r}")
    if not 0 < lo <= hi <= 24:
        raise ValueError(f"world: inspections.duration_h must be (low, high) with "
                         f"0 < low <= high <= 24, got {p.duration_h!r}")


class World:
    """Every selected station of `config`, on one simulated clock."""

    def __init__(self, config: WorldConfig, station_ids: Iterable[str] | None = None) -> None:
        tz, order, cheats_by_station = validate_world(config, station_ids)
        self.config = config
        self._listeners = Listeners()
        self._stations: dict[str, Station] = {}
        by_id = {sc.station_id: sc for sc in config.stations}
        for sid in order:
            self._stations[sid] = Station(by_id[sid], config, tz, cheats_by_station.get(sid, []),
                                          self._listeners)
        self._now = config.start

    @property
    def now(self) -> float:
        """Simulated time (epoch s) every station has been run to."""
        return self._now

    @property
    def start(self) -> float:
        return self.config.start

    @property
    def end(self) -> float:
        return self.config.end

    @property
    def finished(self) -> bool:
        return self._now >= self.config.end

    @property
    def stations(self) -> tuple[str, ...]:
        return tuple(self._stations)

    def run_until(self, t: float) -> None:
        """Advance every station to min(t, end), processing every event at or before it."""
        if t != t:
            raise ValueError("world: run_until(t) with t = NaN")
        t = min(t, self.config.end)
        if t < self._now:
            return
        for station in self._stations.values():
            station.run_until(t)
        self._now = t

    def add_listener(self, fn: RecordListener | RecordFn,
                     streams: Iterable[str] | None = None) -> None:
        """fn(station_id, device, stream, record) for every device record (of the given
        streams, default all: "transactions", "events", "inventory", "deliveries"), in event
        order."""
        wanted = STREAMS if streams is None else tuple(streams)
        unknown = sorted(set(wanted) - set(STREAMS))
        if unknown:
            raise ValueError(f"world: unknown record streams {unknown}; streams: {list(STREAMS)}")
        for stream in wanted:
            self._listeners.records[stream].append(fn)

    def add_truth_listener(self, fn: TruthFn) -> None:
        """fn(station_id, kind, record) for ground-truth-only records: kind "tank_state"
        (TankSnapshot), "cheat" (CheatActivation), "nozzle" (NozzleInfo), "tank" (TankInfo),
        "cheat_instance", "device_state", "inspection", "verification_record",
        "verification_lapse", "off_book_draw" (sim/cheats/records.py), "tax_declaration"
        (sim/tax.py)."""
        self._listeners.truth.append(fn)

    def station(self, station_id: str) -> Station:
        try:
            return self._stations[station_id]
        except KeyError:
            raise KeyError(f"world: no station {station_id!r}; stations: "
                           f"{list(self._stations)}") from None

    def dispensers(self, station_id: str) -> list[DispenserView]:
        return list(self.station(station_id).dispensers)

    def gauge(self, station_id: str) -> GaugeView:
        return self.station(station_id).gauge
