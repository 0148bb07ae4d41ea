"""Cheats (作弊): processes that act on the physics and on what devices show.

A cheat is configured by a CheatConfig (kind, station, dispenser, nozzle, start, end,
params) and runs as a SimPy process in its station's environment: it waits for its start,
changes something, and, if it has an end, changes it back. Every change is logged to the
ground truth as a CheatActivation (the cheat timeline), whether or not the device itself
logs anything.

Kinds:
- pulse_factor: the nozzle's display (pulse-equivalent, 脉冲当量) factor becomes `factor`:
  it shows `factor` times the litres it delivers, with amount and totalizers following.
  params: factor (number > 0, e.g. 1.03), log_event (bool, default False: the device
  logs event 11 pulse_factor_change only when True — a cheater usually hides it).
  A fill already authorised when the factor changes finishes with the old factor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import simpy

from sim.config import CheatConfig
from sim.meter import Meter

EVENT_PULSE_FACTOR_CHANGE = 11


@dataclass(frozen=True, slots=True)
class CheatActivation:
    """One change a cheat made (ground truth only; devices never see this record)."""

    station_id: str
    kind: str
    dispenser: int
    nozzle: int
    time: float  # epoch s
    action: str  # "start" | "end"
    value_old: float
    value_new: float
    params: str  # the cheat's params as canonical JSON


class CheatHost(Protocol):
    """What a cheat may touch at its station."""

    env: simpy.Environment
    station_id: str
    start: float
    end: float

    def meter_of(self, dispenser: int, nozzle: int) -> Meter: ...

    def dispenser_event(self, dispenser: int, code: int, name: str, unit: int,
                        value_old: float, value_new: float) -> None: ...

    def record_cheat(self, activation: CheatActivation) -> None: ...


class Cheat:
    """Base of every cheat kind: validated config and the start/end process."""

    kind: ClassVar[str]
    params_allowed: ClassVar[dict[str, tuple[type, ...]]] = {}
    params_required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: CheatConfig, where: str) -> None:
        self.config = config
        self.where = where
        if not math.isfinite(config.start):
            raise ValueError(f"{where}: start must be a finite epoch time, got {config.start!r}")
        if config.end is not None and not config.end > config.start:
            raise ValueError(f"{where}: end ({config.end!r}) must be after start "
                             f"({config.start!r})")
        unknown = sorted(set(config.params) - set(self.params_allowed))
        if unknown:
            raise ValueError(f"{where}: unknown params {unknown} for kind {self.kind!r}; "
                             f"allowed: {sorted(self.params_allowed)}")
        for name in self.params_required:
            if name not in config.params:
                raise ValueError(f"{where}: kind {self.kind!r} needs params.{name}")
        for name, value in config.params.items():
            types = self.params_allowed[name]
            if isinstance(value, bool) and bool not in types:
                raise ValueError(f"{where}: params.{name} must be a number, got {value!r}")
            if not isinstance(value, types):
                raise ValueError(f"{where}: params.{name} must be "
                                 f"{' or '.join(t.__name__ for t in types)}, got {value!r}")
        self.params_json = json.dumps(config.params, sort_keys=True)

    def process(self, host: CheatHost) -> Generator[simpy.Event, Any, None]:
        """The SimPy process: activate at max(start, world start), deactivate at end."""
        t_on = max(self.config.start, host.start)
        if t_on > host.end:
            return
        yield host.env.timeout(max(0.0, t_on - host.env.now))
        self.activate(host, t_on)
        t_off = self.config.end
        if t_off is None or t_off > host.end:
            return
        yield host.env.timeout(max(0.0, t_off - host.env.now))
        self.deactivate(host, t_off)

    def activate(self, host: CheatHost, t: float) -> None:
        raise NotImplementedError

    def deactivate(self, host: CheatHost, t: float) -> None:
        raise NotImplementedError

    def _log(self, host: CheatHost, t: float, action: str, old: float, new: float) -> None:
        c = self.config
        host.record_cheat(CheatActivation(host.station_id, self.kind, c.dispenser, c.nozzle, t,
                                          action, old, new, self.params_json))


class PulseFactorCheat(Cheat):
    kind = "pulse_factor"
    params_allowed = {"factor": (int, float), "log_event": (bool,)}
    params_required = ("factor",)

    def __init__(self, config: CheatConfig, where: str) -> None:
        super().__init__(config, where)
        factor = float(config.params["factor"])
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"{where}: params.factor must be a number > 0, got {factor!r}")
        self.factor = factor
        self.log_event = bool(config.params.get("log_event", False))
        self._restore = 1.0

    def activate(self, host: CheatHost, t: float) -> None:
        meter = host.meter_of(self.config.dispenser, self.config.nozzle)
        self._restore = old = meter.factor
        meter.factor = self.factor
        self._change(host, t, "start", old, self.factor)

    def deactivate(self, host: CheatHost, t: float) -> None:
        meter = host.meter_of(self.config.dispenser, self.config.nozzle)
        old = meter.factor
        meter.factor = self._restore
        self._change(host, t, "end", old, self._restore)

    def _change(self, host: CheatHost, t: float, action: str, old: float, new: float) -> None:
        self._log(host, t, action, old, new)
        if self.log_event:
            host.dispenser_event(self.config.dispenser, EVENT_PULSE_FACTOR_CHANGE,
                                 "pulse_factor_change", self.config.nozzle, old, new)


CHEAT_KINDS: dict[str, type[Cheat]] = {PulseFactorCheat.kind: PulseFactorCheat}


def make_cheat(config: CheatConfig, where: str) -> Cheat:
    """Build and validate the cheat of `config`; `where` names it in errors (e.g. "cheats[2]")."""
    try:
        cls = CHEAT_KINDS[config.kind]
    except KeyError:
        raise ValueError(f"{where}: unknown cheat kind {config.kind!r}; "
                         f"known kinds: {sorted(CHEAT_KINDS)}") from None
    return cls(config, where)


def check_overlaps(cheats: list[Cheat]) -> None:
    """Two cheats of the same kind on the same nozzle must not overlap in time (each restores
    what it found, so overlapping ones would undo each other in the wrong order)."""
    spans: dict[tuple[str, str, int, int], list[tuple[float, float, str]]] = {}
    for cheat in cheats:
        c = cheat.config
        key = (c.kind, c.station_id, c.dispenser, c.nozzle)
        spans.setdefault(key, []).append((c.start, math.inf if c.end is None else c.end,
                                          cheat.where))
    for key, items in spans.items():
        items.sort()
        for (_, end_a, where_a), (start_b, _, where_b) in zip(items, items[1:], strict=False):
            if start_b < end_a:
                raise ValueError(f"{where_b}: overlaps {where_a} ({key[0]} on station {key[1]} "
                                 f"dispenser {key[2]} nozzle {key[3]}); end one before the "
                                 f"next starts")
