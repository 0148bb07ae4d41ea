"""The general cheat model (作弊模型): target × effect × condition × schedule × trace.

A cheat kind is one class (one module in this package) with:

- `target`: what it acts on — "nozzle" (a dispenser's nozzle), "dispenser" (a dispenser;
  `nozzle` 0 = every nozzle of it), "tank" (the product in a tank, or its deliveries),
  "gauge" (the tank gauge's reading of a tank) or "station" (e.g. its paperwork: the tax
  declarations, sim/tax.py);
- `param_spec`: its parameters (the effect and its conditions, e.g. fill size);
- `schedules` / `default_schedule`: when it is switched on (sim/cheats/schedule.py);
- `switch_on` / `switch_off`: the effect, made and undone through the station's narrow
  hooks (CheatHost); `effect_l` accumulates what it actually moved;
- `trace()` / `expected_alerts()` / `attribution`: the signature it leaves in the data and
  the alert kinds that count as detecting it (docs/cheats.md, design §1.2–1.4);
- `resources`: what it changes and restores (two cheats changing the same resource of the
  same target may not overlap in time: they would undo each other).

The base class validates the configuration, runs the schedule as a SimPy process, logs
every switch to the `cheats` truth table and writes the `cheat_instances` row at the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import simpy

from sim.cheats.params import Param, check_params
from sim.cheats.records import CheatActivation, CheatInstance, DeviceState
from sim.cheats.schedule import Schedule, ScheduleContext, make_schedule
from sim.config import CheatConfig, StationConfig

TARGETS = ("nozzle", "dispenser", "tank", "gauge", "station")
CLASSES = ("PULSE", "PART", "DATA", "PRICE", "STOCK", "DELIV", "TAX", "MET", "LOOK")
ATTRIBUTIONS = ("nozzle", "device", "tank", "station")

# resource -> (scope, words for messages); scope: nozzle | dispenser | tank
RESOURCES: dict[str, tuple[str, str]] = {
    "factor": ("nozzle", "display (pulse-equivalent) factor"),
    "meter_error": ("nozzle", "meter error"),
    "price": ("nozzle", "charged unit price"),
    "amount": ("nozzle", "charged amount"),
    "mainboard": ("dispenser", "mainboard"),
    "encoder": ("dispenser", "encoder"),
    "software": ("dispenser", "software"),
    "seal_transducer": ("dispenser", "transducer seal"),
    "seal_encoder": ("dispenser", "encoder seal"),
    "seal_mainboard": ("dispenser", "mainboard seal"),
    "lock": ("dispenser", "self-protection lock"),
    "offline": ("dispenser", "line (on/off line)"),
    "gauge": ("tank", "gauge reading"),
    "leak": ("tank", "leak rate"),
    "verification": ("dispenser", "verification cycle (周期检定)"),
}


class CheatHost(Protocol):
    """What a cheat may touch at its station (sim.station.Station)."""

    env: simpy.Environment
    station_id: str
    start: float
    end: float
    tz: Any  # ZoneInfo
    probe: Any  # sim.config.ProbeConfig
    inspections: list[tuple[float, float]]
    deliveries: Any  # sim.deliveries.DeliveryManager
    tax: Any  # sim.tax.TaxBooks: the station's books and tax declarations (paperwork)
    metrology: Any  # sim.metrology.MetrologyBook: verification records and seals (paperwork)

    @property
    def now(self) -> float: ...

    def dispenser_of(self, dispenser: int) -> Any: ...

    def nozzle_of(self, dispenser: int, nozzle: int) -> Any: ...

    def unit_of(self, tank: int) -> Any: ...

    def dispenser_event(self, dispenser: int, code: int, name: str, unit: int,
                        value_old: float, value_new: float) -> None: ...

    def record_truth(self, kind: str, record: object) -> None: ...

    def record_device_state(self, device: str) -> DeviceState: ...

    def hold_dispenser(self, dispenser: int, held: bool) -> float: ...

    def draw_off_book(self, tank: int, litres: float) -> float | None: ...


class Cheat:
    """Base of every cheat kind: validated config, schedule process, truth rows."""

    kind: ClassVar[str]
    cheat_class: ClassVar[str]
    target: ClassVar[str] = "nozzle"
    param_spec: ClassVar[dict[str, Param]] = {}
    schedules: ClassVar[tuple[str, ...]] = ("constant",)
    default_schedule: ClassVar[dict[str, Any]] = {"kind": "constant"}
    resources: ClassVar[tuple[str, ...]] = ()
    # a one-off change holds its resources only for a while after its start:
    # (param, seconds per unit of it, extra seconds); None = from start to end
    span_param: ClassVar[tuple[str, float, float] | None] = None
    attribution: ClassVar[str] = "nozzle"
    summary: ClassVar[str] = ""  # one line: what it is (docs/cheats.md has the rest)
    # whether switching on changes the world at once; False for kinds that act only on
    # later occasions (a drop): their first_start is the first occasion (effect_at)
    acts_on_switch: ClassVar[bool] = True

    def __init__(self, config: CheatConfig, where: str, index: int) -> None:
        self.config = config
        self.where = where
        self.index = index
        if not math.isfinite(config.start):
            raise ValueError(f"{where}: start must be a finite epoch time, got {config.start!r}")
        if config.end is not None and not config.end > config.start:
            raise ValueError(f"{where}: end ({config.end!r}) must be after start "
                             f"({config.start!r})")
        self._check_address()
        self.p: dict[str, Any] = check_params(where, self.kind, self.param_spec,
                                              dict(config.params))
        self.schedule: Schedule = make_schedule(where, config.schedule, self.default_schedule,
                                                self.schedules)
        shown = dict(self.p)
        if config.schedule:
            shown["schedule"] = {"kind": self.schedule.kind, **self.schedule.options}
        self.params_json = json.dumps(shown, sort_keys=True)
        self.validate()
        # run state (bind() attaches the cheat to its station)
        self.host: CheatHost | None = None
        self.rng: np.random.Generator | None = None
        self.active = False
        self.first_start = math.nan
        self.last_end = math.nan
        self.active_s = 0.0
        self.effect_l = 0.0
        self._on_at = math.nan
        self._finished = False

    # -- configuration -------------------------------------------------------------------

    def _check_address(self) -> None:
        c, where = self.config, self.where
        if self.target == "nozzle":
            if c.dispenser < 1 or c.nozzle < 1:
                raise ValueError(f"{where}: kind {self.kind!r} acts on a nozzle: needs "
                                 f"dispenser >= 1 and nozzle >= 1, got dispenser "
                                 f"{c.dispenser} nozzle {c.nozzle}")
        elif self.target == "dispenser":
            if c.dispenser < 1 or c.nozzle < 0:
                raise ValueError(f"{where}: kind {self.kind!r} acts on a dispenser: needs "
                                 f"dispenser >= 1 (nozzle 0 = every nozzle), got dispenser "
                                 f"{c.dispenser} nozzle {c.nozzle}")
        elif self.target in ("tank", "gauge") and c.tank < 1:
            raise ValueError(f"{where}: kind {self.kind!r} acts on a tank: needs tank >= 1, "
                             f"got {c.tank}")
        if self.target in ("tank", "gauge", "station") and (c.dispenser or c.nozzle):
            raise ValueError(f"{where}: kind {self.kind!r} takes no dispenser or nozzle, got "
                             f"dispenser {c.dispenser} nozzle {c.nozzle}")
        if self.target in ("nozzle", "dispenser", "station") and c.tank:
            raise ValueError(f"{where}: kind {self.kind!r} takes no tank, got tank {c.tank}")

    def validate(self) -> None:
        """Checks across params (override); raise ValueError naming self.where."""

    def check_target(self, station: StationConfig) -> str | None:
        """Why the target does not exist at `station`, or None."""
        c = self.config
        if self.target in ("nozzle", "dispenser"):
            disp = next((d for d in station.dispensers if d.dispenser == c.dispenser), None)
            if disp is None or c.nozzle > len(disp.nozzle_tanks):
                what = f"dispenser {c.dispenser}" + (f" nozzle {c.nozzle}" if c.nozzle else "")
                return f"{self.where}: station {station.station_id} has no {what}"
        if self.target in ("tank", "gauge") and c.tank not in [t.tank for t in station.tanks]:
            return f"{self.where}: station {station.station_id} has no tank {c.tank}"
        return None

    def span(self) -> tuple[float, float]:
        """[from, to) during which this cheat holds its resources (for overlap checks)."""
        start = self.config.start
        if self.span_param is not None:
            name, scale_s, extra_s = self.span_param
            return start, start + float(self.p[name]) * scale_s + extra_s
        return start, math.inf if self.config.end is None else self.config.end

    def resource_keys(self, station: StationConfig) -> list[tuple[str, str]]:
        """(resource, where it is) pairs this cheat holds at `station`."""
        c = self.config
        keys = []
        for res in self.resources:
            scope = RESOURCES[res][0]
            if scope == "nozzle":
                disp = next(d for d in station.dispensers if d.dispenser == c.dispenser)
                nozzles = [c.nozzle] if c.nozzle else range(1, len(disp.nozzle_tanks) + 1)
                keys += [(res, f"dispenser {c.dispenser} nozzle {n}") for n in nozzles]
            elif scope == "dispenser":
                keys.append((res, f"dispenser {c.dispenser}"))
            else:
                keys.append((res, f"tank {c.tank}"))
        return keys

    # -- binding and the schedule process -------------------------------------------------

    def bind(self, host: CheatHost, rng: np.random.Generator) -> None:
        """Attach to the station (before its clock starts); kinds add hooks in `prepare`."""
        self.host = host
        self.rng = rng
        self.prepare()

    def prepare(self) -> None:
        """Install hooks that must exist before the first switch (override)."""

    @property
    def h(self) -> CheatHost:
        assert self.host is not None, f"{self.where}: not bound to a station"
        return self.host

    def process(self) -> Generator[simpy.Event, Any, None]:
        """The SimPy process: switch on and off per the schedule, inside the run."""
        host = self.h
        assert self.rng is not None
        ctx = ScheduleContext(host.end, host.tz, self.rng, host.inspections)
        for on, off in self.schedule.windows(self.config.start, self.config.end, ctx):
            if on > host.end:
                return
            on = max(on, host.start)
            if off is not None and off <= on:
                continue
            yield host.env.timeout(max(0.0, on - host.env.now))
            self._switch(on, True)
            if off is None or off >= host.end:
                return
            yield host.env.timeout(max(0.0, off - host.env.now))
            self._switch(off, False)

    def _switch(self, t: float, on: bool) -> None:
        if on:
            old, new = self.switch_on(t)
            self.active = True
            self._on_at = t
            if self.acts_on_switch:
                self.effect_at(t)
        else:
            old, new = self.switch_off(t)
            self.active = False
            self.active_s += t - self._on_at
            self.last_end = t
        self.log(t, "start" if on else "end", old, new)

    def effect_at(self, t: float) -> None:
        """The cheat acts on the world at t: the first time is its first_start, from which
        detection is timed (docs/ground-truth.md)."""
        if math.isnan(self.first_start):
            self.first_start = t

    def switch_on(self, t: float) -> tuple[float, float]:
        """Make the effect at t; returns the changed quantity (old, new) for the timeline."""
        raise NotImplementedError

    def switch_off(self, t: float) -> tuple[float, float]:
        """Undo the effect at t; returns (old, new)."""
        raise NotImplementedError

    def finish(self, t: float) -> None:
        """The run ends at t (still active or not): final measurements (override)."""

    # -- truth ---------------------------------------------------------------------------

    def log(self, t: float, action: str, old: float, new: float) -> None:
        c = self.config
        self.h.record_truth("cheat", CheatActivation(
            c.station_id, self.index, self.kind, c.dispenser, c.nozzle, self.instance_tank(), t,
            action, float(old), float(new), self.params_json))

    def trace(self) -> list[str]:
        """What the cheat leaves in the data (docs/cheats.md, "trace" words)."""
        return []

    def header_change_at_start(self) -> bool:
        """Whether switching it on changes what the device's header shows (ids, a seal) with
        no event in a FIFO: a collector sees it only at its next header read (acceptance.run
        slows the world after it)."""
        return False

    def expected_alerts(self) -> list[str]:
        """Alert kinds that count as detecting it (for a look-alike: the operational kinds it
        may raise)."""
        return []

    def attribution_level(self) -> str:
        return self.attribution

    def device(self) -> str:
        if self.target in ("nozzle", "dispenser"):
            return f"D{self.config.dispenser}"
        return "G" if self.target == "gauge" else ""

    def instance_tank(self) -> int:
        """The tank the cheat's product comes from (0 when several or none)."""
        c = self.config
        if c.tank:
            return c.tank
        if self.target not in ("nozzle", "dispenser"):
            return 0
        tanks = {n.tank for n in self.nozzles()}
        return tanks.pop() if len(tanks) == 1 else 0

    def nozzles(self) -> Sequence[Any]:
        """The nozzles a nozzle/dispenser cheat acts on (nozzle 0 = every nozzle)."""
        c = self.config
        disp = self.h.dispenser_of(c.dispenser)
        return [disp.nozzles[c.nozzle - 1]] if c.nozzle else list(disp.nozzles)

    def instance(self, t_end: float) -> CheatInstance:
        """The `cheat_instances` row at the run's end t_end."""
        if not self._finished:
            self.finish(t_end)
            self._finished = True
        c = self.config
        active_s = self.active_s + (t_end - self._on_at if self.active else 0.0)
        last_end = math.nan if self.active else self.last_end
        days = active_s / 86400.0
        return CheatInstance(
            station_id=c.station_id, cheat=self.index, kind=self.kind,
            cheat_class=self.cheat_class, lookalike=self.cheat_class == "LOOK",
            device=self.device(), dispenser=c.dispenser, nozzle=c.nozzle,
            tank=self.instance_tank(), first_start=self.first_start, last_end=last_end,
            active_s=active_s, effect_l=float(self.effect_l),
            effect_l_per_day=float(self.effect_l) / days if days > 0 else 0.0,
            trace=json.dumps(self.trace()), expected_alerts=json.dumps(self.expected_alerts()),
            attribution=self.attribution_level(), params=self.params_json)


def event_trace(codes: Sequence[int]) -> list[str]:
    return [f"event:{code}" for code in codes]
