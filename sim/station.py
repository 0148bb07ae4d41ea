"""One station's world (加油站): forecourt, tanks, gauge and their device records.

Each station has its own simpy.Environment and its own random streams, seeded from
(config.seed, station_id), so stations are independent: simulating any subset, in any
process, gives each station the same ground truth.

Event-loop design (performance: a banner-size run has ~10⁶ fills): a fill is two
scheduled callbacks — arrival (the nozzle is lifted) and hang-up (the transaction) — and
no generator processes. The whole occupancy of a nozzle (lifted, filling, paying) is
fixed when it is lifted, so a nozzle is free again simply when the clock passes its
release time; an extra "wake-up" event is scheduled only while customers queue.
Everything a device shows between events (nozzle state, live volume) is computed from
the clock when read. Tank physics is advanced lazily at event times, and a fill's
product leaves the tank at hang-up.

Customers of a grade queue for the station's nozzles of that grade (FIFO, one queue per
grade); a customer picks a free nozzle at random, balks when the queue is already
`BALK_PER_NOZZLE` × nozzles long, and leaves if the nozzle's tank cannot supply the fill
above its dead stock (the tank is "dry").
"""

from __future__ import annotations

import copy
import math
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import simpy
from simpy.events import Timeout

from sim.capacity import CapacityTable
from sim.cheats import Cheat, CheatActivation
from sim.config import GRADES, StationConfig, TankConfig, WorldConfig
from sim.deliveries import DeliveryManager
from sim.demand import Customers, generate_customers
from sim.meter import Meter, PriceSchedule, draw_meter_error
from sim.probe import read_gauge
from sim.records import (
    DeliveryRecord,
    DeviceEvent,
    GaugeReading,
    InventoryRecord,
    TankTruth,
    Transaction,
)
from sim.tank import Tank, TankEmpty
from sim.thermal import ground_temperature_c

SEQ_MOD = 1 << 16
DEAD_STOCK_FRACTION = 0.02  # product below this share of capacity is not pumpable
BALK_PER_NOZZLE = 3

EVENT_POWER_UP = 1
EVENT_PRICE_CHANGE = 10

# Gauge alarm thresholds (fractions of capacity; water in mm).
HIGH_HIGH_FILL = 0.96
HIGH_FILL = 0.92
LOW_FILL = 0.15
LOW_LOW_FILL = 0.08
HIGH_WATER_MM = 50.0

# Child streams of a station's SeedSequence. Append new ones at the end: reordering
# would change every existing ground truth.
_RNG_DEMAND, _RNG_METERS, _RNG_GAUGE, _RNG_LIVE, _RNG_IDENTITY, _RNG_DELIVERIES = range(6)
_RNG_STREAMS = 6


def station_seed(seed: int, station_id: str) -> np.random.SeedSequence:
    """Seed of one station: stable across processes and Python versions (crc32, not hash())."""
    return np.random.SeedSequence([seed, zlib.crc32(station_id.encode("utf-8"))])


@dataclass(slots=True)  # not frozen: ~2.5 M are made in a banner run, frozen init is 3x slower
class TankSnapshot:
    """A tank's truth and gauge reading at an instant (ground truth only; read-only)."""

    station_id: str
    tank: int
    time: float
    kind: str  # "interval" | "pre_delivery" | "post_delivery"
    truth: TankTruth
    reading: GaugeReading
    inventory_seq: int  # seq of the inventory record for "interval" rows, else -1
    delivered_20c_l: float  # cumulative since the start
    drawn_20c_l: float
    leaked_20c_l: float
    evaporated_20c_l: float
    water_in_l: float


@dataclass(frozen=True, slots=True)
class NozzleInfo:
    """Static truth of a nozzle at the start (ground truth only)."""

    station_id: str
    dispenser: int
    nozzle: int
    grade: str
    tank: int
    meter_error: float
    volume_total_open_ml: int
    amount_total_open_fen: int
    serial_number: str
    software_id: str
    mainboard_id: str
    encoder_id: str


@dataclass(frozen=True, slots=True)
class TankInfo:
    """Static truth of a tank at the start (ground truth only)."""

    station_id: str
    tank: int
    grade: str
    nominal_m3: int
    diameter_mm: int
    length_mm: float
    head_depth_mm: float
    capacity_l: float
    initial_volume_20c_l: float
    initial_temperature_c: float
    leak_l_per_h: float
    water_ingress_l_per_day: float
    gauge_serial_number: str
    gauge_software_id: str


@dataclass(slots=True)
class StationStats:
    customers: int = 0
    served: int = 0
    queued: int = 0
    balked: int = 0
    dry: int = 0  # left because the nozzle's tank could not supply the fill
    wait_s: float = 0.0
    max_queue: int = 0


class Nozzle:
    """A nozzle (油枪) and its meter; satisfies records.NozzleView."""

    __slots__ = ("_station", "dispenser", "nozzle", "grade", "unit", "meter", "last_seq",
                 "_vehicle", "_fill_type", "_true_l", "_fill_start", "_fill_end", "_release",
                 "_shown_ml", "_amount", "_price")

    def __init__(self, station: Station, dispenser: Dispenser, nozzle: int, unit: GaugeTank,
                 meter: Meter) -> None:
        self._station = station
        self.dispenser = dispenser
        self.nozzle = nozzle
        self.grade = unit.grade
        self.unit = unit
        self.meter = meter
        self.last_seq = 0  # 0 until the nozzle's first transaction in this run
        self._vehicle = self._fill_type = ""
        self._true_l = 0.0
        # The whole occupancy of a fill is known when the nozzle is lifted: lifted until
        # _fill_start, filling until _fill_end (hang-up), paying until _release.
        self._fill_start = self._fill_end = self._release = -math.inf
        self._shown_ml = 0
        self._amount = 0
        self._price = 0

    @property
    def tank(self) -> int:
        return self.unit.tank

    @property
    def busy(self) -> bool:
        """Occupied by a customer (lifted, filling, or hung up and paying)."""
        return self._station.now < self._release

    @property
    def state(self) -> int:
        """0 idle, 1 lifted (authorising), 4 filling, 5 completed (hung up, not yet paid)."""
        if not self.busy:
            return 0
        now = self._station.now
        if now < self._fill_start:
            return 1
        return 4 if now < self._fill_end else 5

    @property
    def unit_price_fen(self) -> int:
        return self._price if self.busy else self._station.prices_now[self.grade]

    @property
    def live_volume_ml(self) -> int:
        """Volume of the fill in progress (linear in time), else of the last fill."""
        if not self.busy:
            return self._shown_ml
        now = self._station.now
        if now < self._fill_start:
            return 0
        if now >= self._fill_end:
            return self._shown_ml
        part = (now - self._fill_start) / (self._fill_end - self._fill_start)
        return int(self._shown_ml * part) // 10 * 10

    @property
    def live_amount_fen(self) -> int:
        if not self.busy or self._station.now >= self._fill_end:
            return self._amount
        return (self.live_volume_ml * self._price + 500) // 1000

    @property
    def volume_total_ml(self) -> int:
        return self.meter.volume_total_ml

    @property
    def amount_total_fen(self) -> int:
        return self.meter.amount_total_fen


class Dispenser:
    """A dispenser (加油机); satisfies records.DispenserView."""

    def __init__(self, station_id: str, number: int, identity: tuple[str, str, str, str],
                 txn_start: int, event_start: int) -> None:
        self.station_id = station_id
        self.dispenser = number
        self.device = f"D{number}"
        self.serial_number, self.software_id, self.mainboard_id, self.encoder_id = identity
        self.seal_state = 0
        self.device_status = 0
        self.nozzles: list[Nozzle] = []
        self.txn_no = txn_start  # unwrapped; seq = txn_no mod 65536
        self.event_seq = event_start


class GaugeTank:
    """One tank as its gauge sees it, with the physical tank behind; satisfies TankView."""

    def __init__(self, station: Station, config: TankConfig, table: CapacityTable,
                 physics: Tank, live_rng: np.random.Generator) -> None:
        self._station = station
        self.config = config
        self.tank = config.tank
        self.grade = config.grade
        self.table = table
        self.capacity_l = table.capacity_l
        self.physics = physics
        self.reserved_l = 0.0  # true litres promised to fills in progress
        self.dead_stock_l = DEAD_STOCK_FRACTION * table.capacity_l
        self.order_open = False
        self.delivering = False
        self._live_rng = live_rng
        self._live_at = math.nan
        self._live: tuple[TankTruth, GaugeReading] | None = None

    def can_supply(self, true_l: float) -> bool:
        return self.physics.gross_l - self.reserved_l - true_l >= self.dead_stock_l

    def _live_state(self) -> tuple[TankTruth, GaugeReading]:
        """Truth projected to the station clock and a reading of it, refreshed when the clock
        moves. Projects a copy, so reading never alters the physics or the ground-truth
        random stream."""
        now = self._station.now
        if self._live is None or now != self._live_at:
            ghost = copy.copy(self.physics)
            ghost.advance(max(now, ghost.time))
            truth = ghost.truth()
            reading = read_gauge(truth, self.table, self.grade, self._station.probe,
                                 self._live_rng)
            self._live, self._live_at = (truth, reading), now
        return self._live

    def live_reading(self) -> GaugeReading:
        return self._live_state()[1]

    @property
    def status(self) -> int:
        """bit0 delivery in progress."""
        return 1 if self.delivering else 0

    @property
    def alarms(self) -> int:
        """bit0 high-high, bit1 high, bit2 high water, bit3 low, bit4 low-low (from the reading)."""
        reading = self._live_state()[1]
        fill = (reading.gross_l + reading.water_l) / self.capacity_l
        bits = 0
        if fill >= HIGH_HIGH_FILL:
            bits |= 1
        if fill >= HIGH_FILL:
            bits |= 2
        if reading.water_level_mm >= HIGH_WATER_MM:
            bits |= 4
        if reading.gross_l < LOW_FILL * self.capacity_l:
            bits |= 8
        if reading.gross_l < LOW_LOW_FILL * self.capacity_l:
            bits |= 16
        return bits


class Gauge:
    """The station's tank gauge (液位仪); satisfies records.GaugeView."""

    def __init__(self, station_id: str, identity: tuple[str, str], interval_s: int,
                 seq_starts: tuple[int, int, int]) -> None:
        self.station_id = station_id
        self.serial_number, self.software_id = identity
        self.inventory_interval_s = interval_s
        self.tanks: list[GaugeTank] = []
        self.inventory_seq, self.delivery_seq, self.event_seq = seq_starts


class _Lane:
    """The queue and nozzles of one grade."""

    __slots__ = ("grade", "customers", "nozzles", "queue", "next_i", "balk_limit", "wake_at")

    def __init__(self, grade: str, customers: Customers, nozzles: list[Nozzle]) -> None:
        self.grade = grade
        self.customers = customers
        self.nozzles = nozzles
        self.queue: deque[int] = deque()
        self.next_i = 0
        self.balk_limit = BALK_PER_NOZZLE * len(nozzles)
        self.wake_at = math.inf  # time of the pending wake-up event, if any


RecordFn = Callable[[str, str, str, object], None]
TruthFn = Callable[[str, str, object], None]


STREAMS = ("transactions", "events", "inventory", "deliveries")


@dataclass
class Listeners:
    """Shared by every station of a world: device records (per stream) and
    ground-truth-only records."""

    records: dict[str, list[RecordFn]] = field(
        default_factory=lambda: {stream: [] for stream in STREAMS})
    truth: list[TruthFn] = field(default_factory=list)


def utc_offset_hours(tz: ZoneInfo, epoch_s: float) -> float:
    offset = datetime.fromtimestamp(epoch_s, tz).utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600.0


def _identity(rng: np.random.Generator, prefix: str) -> str:
    return f"{prefix}{int(rng.integers(0, 1 << 32)):08X}"


def check_station(cfg: StationConfig, world: WorldConfig) -> None:
    """Raise ValueError naming the station and what is wrong with its configuration."""
    where = f"station {cfg.station_id}"
    if not cfg.tanks:
        raise ValueError(f"{where}: has no tanks")
    numbers = [t.tank for t in cfg.tanks]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{where}: tank numbers must be unique, got {numbers}")
    for t in cfg.tanks:
        if t.grade not in GRADES:
            raise ValueError(f"{where} tank {t.tank}: grade {t.grade!r} is not one of {GRADES}")
    grades_of = {t.tank: t.grade for t in cfg.tanks}
    dnums = [d.dispenser for d in cfg.dispensers]
    if len(set(dnums)) != len(dnums):
        raise ValueError(f"{where}: dispenser numbers must be unique, got {dnums}")
    sold = set()
    for d in cfg.dispensers:
        if not 1 <= len(d.nozzle_tanks) <= 4:
            raise ValueError(f"{where} dispenser {d.dispenser}: needs 1 to 4 nozzles, "
                             f"got {len(d.nozzle_tanks)}")
        for k, tank in enumerate(d.nozzle_tanks, start=1):
            if tank not in grades_of:
                raise ValueError(f"{where} dispenser {d.dispenser} nozzle {k}: draws from tank "
                                 f"{tank}, which the station does not have (tanks {numbers})")
            sold.add(grades_of[tank])
    for grade, litres in cfg.throughput_l_per_day.items():
        if grade not in GRADES:
            raise ValueError(f"{where}: throughput grade {grade!r} is not one of {GRADES}")
        if not (math.isfinite(litres) and litres >= 0):
            raise ValueError(f"{where}: throughput of {grade} must be >= 0 L/day, got {litres!r}")
        if litres > 0 and grade not in sold:
            raise ValueError(f"{where}: throughput for grade {grade} but no nozzle sells it")
    if not 0.0 <= cfg.truck_share <= 1.0:
        raise ValueError(f"{where}: truck_share must be in [0, 1], got {cfg.truck_share!r}")
    PriceSchedule(world.prices, sorted(sold, key=GRADES.index), world.start, world.end)


class Station:
    """A station's simulation: environment, devices, physics and the processes driving them."""

    def __init__(self, cfg: StationConfig, world: WorldConfig, tz: ZoneInfo,
                 cheats: Iterable[Cheat], listeners: Listeners) -> None:
        check_station(cfg, world)
        self.config = cfg
        self.station_id = cfg.station_id
        self.start = world.start
        self.end = world.end
        self.probe = world.probe
        self.tz = tz
        self.utc_offset_h = utc_offset_hours(tz, world.start)
        self._listeners = listeners.records
        self._truth = listeners.truth
        self.env = simpy.Environment(initial_time=world.start)
        self._until = world.start
        self.stats = StationStats()
        streams = station_seed(world.seed, cfg.station_id).spawn(_RNG_STREAMS)
        rngs = [np.random.default_rng(s) for s in streams]
        ident = rngs[_RNG_IDENTITY]
        self._gauge_rng = rngs[_RNG_GAUGE]

        # Tanks and gauge.
        temp0 = ground_temperature_c(world.start, self.utc_offset_h)
        self.gauge = Gauge(cfg.station_id, (_identity(ident, "YW"), "ATG-4.2.1"),
                           world.inventory_interval_s,
                           tuple(int(x) for x in ident.integers(0, SEQ_MOD, 3)))
        self.units: dict[int, GaugeTank] = {}
        for tc in sorted(cfg.tanks, key=lambda t: t.tank):
            table = _table(tc.nominal_m3)
            physics = Tank(tc, table, world.start, temp0, utc_offset_h=self.utc_offset_h)
            unit = GaugeTank(self, tc, table, physics, rngs[_RNG_LIVE])
            self.units[tc.tank] = unit
            self.gauge.tanks.append(unit)

        # Prices.
        sold = sorted({self.units[t].grade for d in cfg.dispensers for t in d.nozzle_tanks},
                      key=GRADES.index)
        self.prices = PriceSchedule(world.prices, sold, world.start, world.end)
        self.prices_now = {g: self.prices.initial(g) for g in sold}

        # Dispensers and nozzles.
        meters_rng = rngs[_RNG_METERS]
        self.dispensers: list[Dispenser] = []
        for dc in sorted(cfg.dispensers, key=lambda d: d.dispenser):
            software = f"V3.{int(ident.integers(0, 4))}.{int(ident.integers(0, 20))}"
            identity = (f"JY{int(ident.integers(15, 25))}{int(ident.integers(0, 10**6)):06d}",
                        software, _identity(ident, "MB"), _identity(ident, "EC"))
            disp = Dispenser(cfg.station_id, dc.dispenser, identity,
                             int(ident.integers(0, SEQ_MOD)), int(ident.integers(0, SEQ_MOD)))
            for k, tank in enumerate(dc.nozzle_tanks, start=1):
                volume_l = float(meters_rng.uniform(5.0e4, 3.0e6))
                volume_ml = int(volume_l * 100) * 10
                amount = int(volume_l * float(meters_rng.uniform(6.5, 7.8)) * 100)
                meter = Meter(draw_meter_error(meters_rng), volume_ml, amount)
                disp.nozzles.append(Nozzle(self, disp, k, self.units[tank], meter))
            self.dispensers.append(disp)
        self._dispenser_by_no = {d.dispenser: d for d in self.dispensers}

        # Demand: one lane (queue) per grade sold.
        demand_streams = streams[_RNG_DEMAND].spawn(len(GRADES))
        self.lanes: dict[str, _Lane] = {}
        sales_per_tank: dict[int, float] = {}
        for grade in sold:
            nozzles = [n for d in self.dispensers for n in d.nozzles if n.grade == grade]
            litres = float(cfg.throughput_l_per_day.get(grade, 0.0))
            for n in nozzles:
                sales_per_tank[n.tank] = sales_per_tank.get(n.tank, 0.0) + litres / len(nozzles)
            if litres <= 0:
                continue
            customers = generate_customers(
                np.random.default_rng(demand_streams[GRADES.index(grade)]),
                start=world.start, end=world.end, tz=tz, litres_per_day=litres,
                truck_share=cfg.truck_share if grade == "0" else 0.0,
                prices_at=lambda t, g=grade: self.prices.prices_at(g, t))
            self.lanes[grade] = _Lane(grade, customers, nozzles)

        self.deliveries = DeliveryManager(self, world.deliveries, rngs[_RNG_DELIVERIES],
                                          {t: v / 86400.0 for t, v in sales_per_tank.items()})
        self._schedule(world, list(cheats))

    # -- clock ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The station's clock: the time it was last run to (or the event being processed)."""
        return max(self._until, self.env.now)

    def run_until(self, t: float) -> None:
        """Process every event at or before t."""
        env = self.env
        step, peek = env.step, env.peek
        while peek() <= t:
            step()
        if t > self._until:
            self._until = t

    # -- scheduling ----------------------------------------------------------------------

    def _at(self, t: float, callback: Callable[[Any], None], value: Any = None) -> None:
        ev = Timeout(self.env, max(0.0, t - self.env.now), value)
        ev.callbacks.append(callback)

    def _schedule(self, world: WorldConfig, cheats: list[Cheat]) -> None:
        self._at(world.start, self._power_up)
        interval = world.inventory_interval_s
        first = math.ceil(world.start / interval) * interval
        if first <= world.end:
            self._at(first, self._inventory, first)
        for t, grade, price in self.prices.changes:
            self._at(t, self._price_change, (grade, price))
        for lane in self.lanes.values():
            if lane.customers.arrival:
                self._at(lane.customers.arrival[0], self._arrival, lane)
        for cheat in cheats:
            self.env.process(cheat.process(self))

    # -- records -------------------------------------------------------------------------

    def emit(self, device: str, stream: str, record: object) -> None:
        sid = self.station_id
        for fn in self._listeners[stream]:
            fn(sid, device, stream, record)

    def record_truth(self, kind: str, record: object) -> None:
        sid = self.station_id
        for fn in self._truth:
            fn(sid, kind, record)

    def dispenser_event(self, dispenser: int, code: int, name: str, unit: int,
                        value_old: float, value_new: float) -> None:
        """Log an event in dispenser `dispenser`'s event stream, stamped with the station clock
        (also usable between steps, e.g. by a device server logging a FIFO overflow)."""
        disp = self._dispenser_by_no[dispenser]
        seq = disp.event_seq
        disp.event_seq = (seq + 1) % SEQ_MOD
        self.emit(disp.device, "events", DeviceEvent(self.station_id, disp.device, seq,
                                                     self.now, code, name, unit,
                                                     float(value_old), float(value_new)))

    def gauge_event(self, code: int, name: str, unit: int, value_old: float,
                    value_new: float) -> None:
        g = self.gauge
        seq = g.event_seq
        g.event_seq = (seq + 1) % SEQ_MOD
        self.emit("G", "events", DeviceEvent(self.station_id, "G", seq, self.now, code, name,
                                             unit, float(value_old), float(value_new)))

    def next_delivery_seq(self) -> int:
        seq = self.gauge.delivery_seq
        self.gauge.delivery_seq = (seq + 1) % SEQ_MOD
        return seq

    def emit_delivery(self, record: DeliveryRecord) -> None:
        self.emit("G", "deliveries", record)

    def record_cheat(self, activation: CheatActivation) -> None:
        self.record_truth("cheat", activation)

    def meter_of(self, dispenser: int, nozzle: int) -> Meter:
        disp = self._dispenser_by_no.get(dispenser)
        if disp is None or not 1 <= nozzle <= len(disp.nozzles):
            raise ValueError(f"station {self.station_id}: no dispenser {dispenser} nozzle {nozzle}")
        return disp.nozzles[nozzle - 1].meter

    def snapshot(self, unit: GaugeTank, time: float, kind: str,
                 inventory_seq: int = -1) -> TankSnapshot:
        """Truth and a gauge reading of `unit` (physics already advanced to now)."""
        tank = unit.physics
        truth = tank.truth()
        reading = read_gauge(truth, unit.table, unit.grade, self.probe, self._gauge_rng)
        snap = TankSnapshot(self.station_id, unit.tank, time, kind, truth, reading, inventory_seq,
                            tank.delivered_20c_l, tank.drawn_20c_l, tank.leaked_20c_l,
                            tank.evaporated_20c_l, tank.water_in_l)
        self.record_truth("tank_state", snap)
        return snap

    # -- processes -----------------------------------------------------------------------

    def _power_up(self, _ev: Any) -> None:
        for unit in self.gauge.tanks:
            t, p = unit.table, unit.physics
            self.record_truth("tank", TankInfo(
                self.station_id, unit.tank, unit.grade, unit.config.nominal_m3, t.diameter_mm,
                t.length_mm, t.head_depth_mm, t.capacity_l, p.initial_20c_l, p.temperature_c,
                unit.config.leak_l_per_h, unit.config.water_ingress_l_per_day,
                self.gauge.serial_number, self.gauge.software_id))
        for disp in self.dispensers:
            for n in disp.nozzles:
                self.record_truth("nozzle", NozzleInfo(
                    self.station_id, disp.dispenser, n.nozzle, n.grade, n.tank, n.meter.error,
                    n.meter.volume_total_ml, n.meter.amount_total_fen, disp.serial_number,
                    disp.software_id, disp.mainboard_id, disp.encoder_id))
            self.dispenser_event(disp.dispenser, EVENT_POWER_UP, "power_up", 0, 0.0, 0.0)
        self.gauge_event(EVENT_POWER_UP, "power_up", 0, 0.0, 0.0)
        for unit in self.gauge.tanks:
            self.deliveries.check(unit)

    def _inventory(self, ev: Any) -> None:
        t = ev._value
        now = self.env.now
        g = self.gauge
        inventory_listeners = self._listeners["inventory"]
        for unit in g.tanks:
            unit.physics.advance(now)
            seq = g.inventory_seq
            g.inventory_seq = (seq + 1) % SEQ_MOD
            snap = self.snapshot(unit, t, "interval", seq)
            if inventory_listeners:  # (nobody needs the record in `simulate`: skip making it)
                self.emit("G", "inventory", InventoryRecord(self.station_id, unit.tank, seq, t,
                                                            snap.reading, snap.truth))
        nxt = t + g.inventory_interval_s
        if nxt <= self.end:
            self._at(nxt, self._inventory, nxt)

    def _price_change(self, ev: Any) -> None:
        grade, price = ev._value
        old = self.prices_now[grade]
        if price == old:
            return
        self.prices_now[grade] = price
        for disp in self.dispensers:
            for n in disp.nozzles:
                if n.grade == grade:
                    self.dispenser_event(disp.dispenser, EVENT_PRICE_CHANGE, "price_change",
                                         n.nozzle, old / 100.0, price / 100.0)

    def _arrival(self, ev: Any) -> None:
        lane: _Lane = ev._value
        i = lane.next_i
        lane.next_i = i + 1
        arrivals = lane.customers.arrival
        env = self.env
        now = env.now
        if i + 1 < len(arrivals):  # (inlined self._at: this is the hottest path)
            delay = arrivals[i + 1] - now
            Timeout(env, delay if delay > 0.0 else 0.0, lane).callbacks.append(self._arrival)
        stats = self.stats
        stats.customers += 1
        queue = lane.queue
        if not queue:
            free = [n for n in lane.nozzles if n._release <= now]
            if free:
                if not self._lift_any(lane, i, free):
                    stats.dry += 1
                return
        if len(queue) >= lane.balk_limit:
            stats.balked += 1
            return
        queue.append(i)
        stats.queued += 1
        if len(queue) > stats.max_queue:
            stats.max_queue = len(queue)
        self._wake_when_free(lane)

    def _lift_any(self, lane: _Lane, i: int, free: list[Nozzle]) -> bool:
        """Customer i drives to a random free nozzle (another one if its tank is dry)."""
        k = int(lane.customers.pick[i] * len(free))
        return any(self._lift(lane, i, nozzle) for nozzle in free[k:] + free[:k])

    def _wake_when_free(self, lane: _Lane) -> None:
        """Make sure the queue is served when the next nozzle of the lane frees up."""
        t = min(n._release for n in lane.nozzles)
        if t < lane.wake_at:
            lane.wake_at = t
            self._at(t, self._wake, (lane, t))

    def _wake(self, ev: Any) -> None:
        """A nozzle freed up while customers wait: serve them in order."""
        lane: _Lane
        lane, t = ev._value
        if lane.wake_at != t:  # superseded by an earlier wake-up
            return
        lane.wake_at = math.inf
        now = max(t, self.env.now)  # the scheduled instant, free of float round-off
        queue = lane.queue
        arrivals = lane.customers.arrival
        while queue:
            free = [n for n in lane.nozzles if n._release <= now]
            if not free:
                self._wake_when_free(lane)
                return
            i = queue.popleft()
            self.stats.wait_s += now - arrivals[i]
            if not self._lift_any(lane, i, free):
                self.stats.dry += 1

    def _lift(self, lane: _Lane, i: int, nozzle: Nozzle) -> bool:
        """Customer i takes `nozzle` now; False (nothing changes) if its tank is dry."""
        c = lane.customers
        price = self.prices_now[lane.grade]
        meter = nozzle.meter
        full = c.full[i]
        if full:
            true_l = c.full_l[i]
            shown, amount = meter.fill_full(true_l, price)
        else:
            shown, amount, true_l = meter.fill_preset(c.preset_fen[i], price)
        unit = nozzle.unit
        if not unit.can_supply(true_l):
            return False
        unit.reserved_l += true_l
        now = self.env.now
        nozzle._vehicle = "truck" if c.truck[i] else "car"
        nozzle._fill_type = "full" if full else "amount"
        nozzle._true_l = true_l
        nozzle._price = price
        nozzle._shown_ml = shown
        nozzle._amount = amount
        nozzle._fill_start = start = now + c.pre_fill_s[i]
        nozzle._fill_end = end = start + true_l / c.flow_lps[i]
        nozzle._release = end + c.post_fill_s[i]
        Timeout(self.env, end - now, nozzle).callbacks.append(self._hang_up)
        return True

    def _hang_up(self, ev: Any) -> None:
        nozzle: Nozzle = ev._value
        unit = nozzle.unit
        tank = unit.physics
        now = self.env.now
        tank.advance(now)
        true_l = nozzle._true_l
        try:
            drawn_20c = tank.draw(true_l)
        except TankEmpty as exc:  # only if a leak outran the dead-stock margin mid-fill
            raise RuntimeError(f"station {self.station_id} dispenser {nozzle.dispenser.dispenser} "
                               f"nozzle {nozzle.nozzle} at {now}: {exc}") from exc
        unit.reserved_l -= true_l
        shown, amount = nozzle._shown_ml, nozzle._amount
        v0, v1, a0, a1 = nozzle.meter.book(shown, amount)
        disp = nozzle.dispenser
        txn_no = disp.txn_no
        disp.txn_no = txn_no + 1
        seq = txn_no % SEQ_MOD
        nozzle.last_seq = seq
        self.emit(disp.device, "transactions", Transaction(
            self.station_id, disp.dispenser, nozzle.nozzle, nozzle.grade, unit.tank, seq, txn_no,
            nozzle._fill_start, nozzle._fill_end, true_l, drawn_20c, shown, amount, nozzle._price,
            v0, v1, a0, a1, nozzle._vehicle, nozzle._fill_type))
        self.stats.served += 1
        self.deliveries.check(unit)


_TABLES: dict[int, CapacityTable] = {}


def _table(nominal_m3: int) -> CapacityTable:
    """Capacity tables are read-only and shared by every tank of the same size."""
    table = _TABLES.get(nominal_m3)
    if table is None:
        table = _TABLES[nominal_m3] = CapacityTable.for_nominal(nominal_m3)
    return table
