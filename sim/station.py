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
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import simpy
from simpy.events import Timeout

from sim.capacity import CapacityTable
from sim.cheats import Cheat, DeviceState, Inspection
from sim.cheats.inspections import draw_inspections
from sim.cheats.taps import NozzleHook
from sim.config import GRADES, PowerCut, StationConfig, TankConfig, WorldConfig
from sim.deliveries import DeliveryManager
from sim.demand import Customers, generate_customers
from sim.imperfections import MODES, STRAT_SD, TankImperfections, draw_meter, draw_tank
from sim.meter import Meter, PriceSchedule, draw_meter_error
from sim.metrology import MetrologyBook
from sim.noise_budget import TankBudget, TankBudgetInput, fill_moments, tank_budget
from sim.probe import GaugeErrors
from sim.records import (
    DeliveryRecord,
    DeviceEvent,
    GaugeReading,
    InventoryRecord,
    TankTruth,
    Transaction,
)
from sim.tank import Tank, TankEmpty
from sim.tax import TaxBooks
from sim.thermal import ground_temperature_c
from sim.vcf import DENSITY_20C

SEQ_MOD = 1 << 16
DEAD_STOCK_FRACTION = 0.02  # product below this share of capacity is not pumpable
BALK_PER_NOZZLE = 3

EVENT_POWER_UP = 1
EVENT_POWER_DOWN = 2
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
# Honest imperfections (sim/imperfections.py): static draws per tank/probe/nozzle, and the
# batches delivered (one child stream per tank).
_RNG_IMPERFECTIONS, _RNG_BATCHES = 6, 7
# The cheat catalogue (sim/cheats/): market-regulation inspections, and one child stream per
# configured cheat (spawn key = the cheat's index in the scenario).
_RNG_INSPECTIONS, _RNG_CHEATS = 8, 9
# The metrology paperwork (sim/metrology.py): last verifications, seal numbers, the
# institute's visits (one child stream per dispenser).
_RNG_METROLOGY = 10
_RNG_STREAMS = 11


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
    # honest meter imperfections (sim/imperfections.py)
    verified_at: float = 0.0
    drift_per_day: float = 0.0
    repeatability: float = 0.0
    flow_ref_lpm: float = 0.0
    flow_slope: float = 0.0
    small_volume: float = 0.0


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
    # honest imperfections (sim/imperfections.py) and the noise budget (sim/noise_budget.py)
    initial_density_kg_m3: float = 0.0
    strap_e0: float = 0.0
    strap_e1: float = 0.0
    strap_e2: float = 0.0
    tilt: float = 0.0
    probe_position_mm: float = 0.0
    probe_level_bias_mm: float = 0.0
    level_offset_mm: float = 0.0
    probe_temp_bias_c: float = 0.0
    storage_loss_per_month: float = 0.0
    working_loss: float = 0.0
    expected_sales_l_per_day: float = 0.0
    variance_bias_day_l: float = 0.0
    variance_sd_day_l: float = 0.0
    variance_sd_month_l: float = 0.0


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
                 "_shown_ml", "_amount", "_price", "hook", "_held_from")

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
        self.hook: NozzleHook | None = None  # cheats' per-fill taps (sim/cheats/taps.py)
        self._held_from = math.inf  # held (locked, powered off) from then on: no new fill

    @property
    def tank(self) -> int:
        return self.unit.tank

    @property
    def busy(self) -> bool:
        """Occupied by a customer (lifted, filling, or hung up and paying)."""
        now = self._station.now
        return now < self._release and now < self._held_from

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
        if self.busy:
            return self._price
        price = self._station.prices_now[self.grade]
        return price if self.hook is None else self.hook.charge(self, price)

    @property
    def posted_price_fen(self) -> int:
        """The posted price (挂牌价) of the nozzle's grade now."""
        return self._station.prices_now[self.grade]

    def fill(self) -> tuple[float, float, float, int, int, int]:
        """(start, end, true litres, shown mL, amount fen, unit price fen) of the fill in
        progress, or of the last one."""
        return (self._fill_start, self._fill_end, self._true_l, self._shown_ml, self._amount,
                self._price)

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
        self.offline = False  # taken off line (a cheat): answers no Modbus request
        self.nozzles: list[Nozzle] = []
        self.txn_no = txn_start  # unwrapped; seq = txn_no mod 65536
        self.event_seq = event_start


class GaugeTank:
    """One tank as its gauge sees it, with the physical tank behind; satisfies TankView."""

    def __init__(self, station: Station, config: TankConfig, table: CapacityTable,
                 physics: Tank, live_rng: np.random.Generator,
                 gauge_errors: GaugeErrors) -> None:
        self._station = station
        self.config = config
        self.tank = config.tank
        self.grade = config.grade
        self.table = table
        self.capacity_l = table.capacity_l
        self.physics = physics
        self.gauge_errors = gauge_errors  # the gauge's table, probe offsets, stratification
        # A gauge cheat (sim/cheats/gauge.py): (reading, time) -> what the gauge shows instead.
        self.reading_tamper: Callable[[GaugeReading, float], GaugeReading] | None = None
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
            reading = self.gauge_errors.read(truth, now, self._live_rng)
            if self.reading_tamper is not None:
                reading = self.reading_tamper(reading, now)
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
    if world.imperfections not in MODES:
        raise ValueError(f"world: imperfections must be one of {MODES}, "
                         f"got {world.imperfections!r}")
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
        mode = world.imperfections
        imperfect_rng = rngs[_RNG_IMPERFECTIONS]
        batch_streams = streams[_RNG_BATCHES].spawn(len(cfg.tanks))
        self.imperfections: dict[int, TankImperfections] = {}

        # Tanks and gauge.
        temp0 = ground_temperature_c(world.start, self.utc_offset_h)
        self.gauge = Gauge(cfg.station_id, (_identity(ident, "YW"), "ATG-4.2.1"),
                           world.inventory_interval_s,
                           cast(tuple[int, int, int],  # three draws
                                tuple(int(x) for x in ident.integers(0, SEQ_MOD, 3))))
        self.units: dict[int, GaugeTank] = {}
        for k, tc in enumerate(sorted(cfg.tanks, key=lambda t: t.tank)):
            table = _table(tc.nominal_m3)
            imp = self.imperfections[tc.tank] = draw_tank(imperfect_rng, tc.grade, table, mode)
            physics = Tank(tc, table, world.start, temp0, utc_offset_h=self.utc_offset_h,
                           density_kg_m3=imp.initial_density_kg_m3,
                           water_ingress_l_per_day=(tc.water_ingress_l_per_day
                                                    if tc.water_ingress_l_per_day > 0
                                                    else imp.water_ingress_l_per_day),
                           storage_loss_per_month=imp.storage_loss_per_month,
                           working_loss=imp.working_loss)
            errors = GaugeErrors(table, tc.grade, world.probe, imp,
                                 np.random.default_rng(batch_streams[k]), mode)
            unit = GaugeTank(self, tc, table, physics, rngs[_RNG_LIVE], errors)
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
                mi = draw_meter(imperfect_rng, world.start, world.end, meter.error, mode)
                meter.verified_at, meter.drift_per_day = mi.verified_at, mi.drift_per_day
                meter.repeatability, meter.flow_ref_lpm = mi.repeatability, mi.flow_ref_lpm
                meter.flow_slope, meter.small_volume = mi.flow_slope, mi.small_volume
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

            def prices_at(t: np.ndarray, g: str = grade) -> np.ndarray:
                return self.prices.prices_at(g, t)

            customers = generate_customers(
                np.random.default_rng(demand_streams[GRADES.index(grade)]),
                start=world.start, end=world.end, tz=tz, litres_per_day=litres,
                truck_share=cfg.truck_share if grade == "0" else 0.0,
                prices_at=prices_at)
            self.lanes[grade] = _Lane(grade, customers, nozzles)

        self.deliveries = DeliveryManager(self, world.deliveries, rngs[_RNG_DELIVERIES],
                                          {t: v / 86400.0 for t, v in sales_per_tank.items()})
        self.budgets = self._noise_budgets(world, sales_per_tank)

        # The books and tax declarations (sim/tax.py): before the cheats, which may change them.
        self.tax = TaxBooks(cfg.station_id, sold, world.start, world.end, world.tax, tz,
                            self.record_truth)
        # The metrology paperwork (sim/metrology.py): before the cheats, which may hold a
        # dispenser's verification or file records.
        self.metrology = MetrologyBook(cfg.station_id, [d.dispenser for d in cfg.dispensers],
                                       world.start, world.end, tz, streams[_RNG_METROLOGY],
                                       self.record_truth)

        # Cheats (sim/cheats/): each on its own random stream; inspections they may avoid.
        policy = world.inspections
        self.inspections = draw_inspections(rngs[_RNG_INSPECTIONS], world.start, world.end, tz,
                                            policy.mean_interval_days, policy.duration_h)
        self.cheats = list(cheats)
        seed = streams[_RNG_CHEATS]
        for cheat in self.cheats:
            cheat.bind(self, np.random.default_rng(np.random.SeedSequence(
                seed.entropy, spawn_key=(*seed.spawn_key, cheat.index))))
        self._finished = False
        self._schedule(world, self.cheats)

    def _noise_budgets(self, world: WorldConfig,
                       sales_per_tank: dict[int, float]) -> dict[int, TankBudget]:
        """Expected honest daily variance of every tank (sim/noise_budget.py)."""
        ideal = world.imperfections != "realistic"
        budgets = {}
        for unit in self.gauge.tanks:
            nozzles = [n for d in self.dispensers for n in d.nozzles if n.tank == unit.tank]
            share = 1.0 / len(nozzles) if nozzles else 0.0
            grade = unit.grade
            price = self.prices.initial(grade) if grade in self.prices_now else 700
            truck = self.config.truck_share if grade == "0" else 0.0
            budgets[unit.tank] = tank_budget(TankBudgetInput(
                grade=grade, true_table=unit.table, gauge_table=unit.gauge_errors.table,
                level_offset_mm=unit.gauge_errors.level_offset_mm, probe=world.probe,
                sales_l_per_day=sales_per_tank.get(unit.tank, 0.0),
                initial_gross_l=unit.physics.gross_l, policy=world.deliveries,
                meters=tuple((share, n.meter) for n in nozzles),
                fills=fill_moments(truck, price),
                storage_loss_per_month=unit.physics.storage_loss_per_month,
                working_loss=unit.physics.working_loss,
                water_ingress_l_per_day=unit.physics.water_ingress_l_per_day,
                start=world.start, days=world.days, utc_offset_h=self.utc_offset_h,
                strat_sd=0.0 if ideal else STRAT_SD, density_sd=0.0 if ideal else None,
                density_mean=DENSITY_20C[grade] if ideal else None))
        return budgets

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
        if t >= self.end and not self._finished:
            self._finished = True
            for cheat in self.cheats:  # what each cheat did (table cheat_instances)
                self.record_truth("cheat_instance", cheat.instance(self.end))
            self.metrology.finish(self.end)  # dispensers sold expired (verification_lapses)

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
            self.env.process(cheat.process())
        if self.tax.periods:
            self.env.process(self.tax.process(self.env))
        for periodic in self.metrology.processes(self.env):
            self.env.process(periodic)
        for cut in world.power_cuts:
            if cut.station_id == self.station_id:
                self.env.process(self._power_cut(cut))

    def _power_cut(self, cut: PowerCut) -> Generator[simpy.Event, Any, None]:
        """An honest power loss of a dispenser (sim.config.PowerCut): like the power cut of a
        totalizer reset, but everything survives it."""
        yield self.env.timeout(max(0.0, cut.at - self.env.now))
        disp = self.dispenser_of(cut.dispenser)
        idle_at = self.hold_dispenser(cut.dispenser, True)  # fills in progress finish
        yield self.env.timeout(max(0.0, idle_at - self.env.now))
        self.dispenser_event(cut.dispenser, EVENT_POWER_DOWN, "power_down", 0, 0.0, 0.0)
        disp.offline = True
        self.record_device_state(disp.device)
        yield self.env.timeout(cut.duration_s)
        disp.offline = False
        self.dispenser_event(cut.dispenser, EVENT_POWER_UP, "power_up", 0, 0.0, 0.0)
        self.record_device_state(disp.device)
        self.hold_dispenser(cut.dispenser, False)

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

    # -- hooks for cheats (sim/cheats/base.py CheatHost) -----------------------------------

    def dispenser_of(self, dispenser: int) -> Dispenser:
        return self._dispenser_by_no[dispenser]

    def nozzle_of(self, dispenser: int, nozzle: int) -> Nozzle:
        return self._dispenser_by_no[dispenser].nozzles[nozzle - 1]

    def unit_of(self, tank: int) -> GaugeTank:
        return self.units[tank]

    def record_device_state(self, device: str) -> DeviceState:
        """Record device `device`'s header as it presents itself now (table device_states)."""
        if device == "G":
            g = self.gauge
            state = DeviceState(self.station_id, "G", self.now, g.serial_number, g.software_id,
                                "", "", 0, 0, False)
        else:
            d = self._dispenser_by_no[int(device[1:])]
            state = DeviceState(self.station_id, device, self.now, d.serial_number,
                                d.software_id, d.mainboard_id, d.encoder_id, d.seal_state,
                                d.device_status, d.offline)
        self.record_truth("device_state", state)
        return state

    def hold_dispenser(self, dispenser: int, held: bool) -> float:
        """Hold a dispenser (a self-lock, a power cut: no new fill starts, fills in progress
        finish) or release it. Returns when it is idle (held) or now (released)."""
        disp = self._dispenser_by_no[dispenser]
        now = idle = self.now
        for n in disp.nozzles:
            if held:
                if n._held_from == math.inf:
                    n._held_from, n._release = max(n._release, now), math.inf
                idle = max(idle, n._held_from)
            elif n._held_from != math.inf:
                n._release, n._held_from = n._held_from, math.inf
        if not held:
            for lane in self.lanes.values():
                if lane.queue and any(n.dispenser is disp for n in lane.nozzles):
                    self._wake_when_free(lane)
        return idle

    def draw_off_book(self, tank: int, litres: float) -> float | None:
        """Draw `litres` (at the tank's temperature) from `tank` now, with no sale; returns the
        20 °C litres drawn, or None when the tank cannot supply them above its dead stock."""
        unit = self.units[tank]
        if not unit.can_supply(litres):
            return None
        unit.physics.advance(self.env.now)
        drawn_20c = unit.physics.draw(litres)
        self.deliveries.check(unit)
        return drawn_20c

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
        reading = unit.gauge_errors.read(truth, time, self._gauge_rng)
        if unit.reading_tamper is not None:
            reading = unit.reading_tamper(reading, time)
        snap = TankSnapshot(self.station_id, unit.tank, time, kind, truth, reading, inventory_seq,
                            tank.delivered_20c_l, tank.drawn_20c_l, tank.leaked_20c_l,
                            tank.evaporated_20c_l, tank.water_in_l)
        self.record_truth("tank_state", snap)
        return snap

    # -- processes -----------------------------------------------------------------------

    def _power_up(self, _ev: Any) -> None:
        for unit in self.gauge.tanks:
            t, p = unit.table, unit.physics
            imp, budget = self.imperfections[unit.tank], self.budgets[unit.tank]
            self.record_truth("tank", TankInfo(
                self.station_id, unit.tank, unit.grade, unit.config.nominal_m3, t.diameter_mm,
                t.length_mm, t.head_depth_mm, t.capacity_l, p.initial_20c_l, p.temperature_c,
                unit.config.leak_l_per_h, p.water_ingress_l_per_day,
                self.gauge.serial_number, self.gauge.software_id,
                initial_density_kg_m3=imp.initial_density_kg_m3, strap_e0=imp.strap[0],
                strap_e1=imp.strap[1], strap_e2=imp.strap[2], tilt=imp.tilt,
                probe_position_mm=imp.probe_position_mm,
                probe_level_bias_mm=imp.probe_level_bias_mm,
                level_offset_mm=imp.level_offset_mm, probe_temp_bias_c=imp.probe_temp_bias_c,
                storage_loss_per_month=imp.storage_loss_per_month,
                working_loss=imp.working_loss,
                expected_sales_l_per_day=budget.sales_l_per_day,
                variance_bias_day_l=budget.bias_day_l, variance_sd_day_l=budget.sd_day_l,
                variance_sd_month_l=budget.sd_month_l))
        for disp in self.dispensers:
            for n in disp.nozzles:
                m = n.meter
                self.record_truth("nozzle", NozzleInfo(
                    self.station_id, disp.dispenser, n.nozzle, n.grade, n.tank, m.error,
                    m.volume_total_ml, m.amount_total_fen, disp.serial_number,
                    disp.software_id, disp.mainboard_id, disp.encoder_id,
                    verified_at=m.verified_at, drift_per_day=m.drift_per_day,
                    repeatability=m.repeatability, flow_ref_lpm=m.flow_ref_lpm,
                    flow_slope=m.flow_slope, small_volume=m.small_volume))
            self.dispenser_event(disp.dispenser, EVENT_POWER_UP, "power_up", 0, 0.0, 0.0)
        self.gauge_event(EVENT_POWER_UP, "power_up", 0, 0.0, 0.0)
        for device in [d.device for d in self.dispensers] + ["G"]:
            self.record_device_state(device)
        for start, end in self.inspections:
            self.record_truth("inspection", Inspection(self.station_id, start, end))
        self.metrology.opening()  # each dispenser's last verification before the run
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
        now = self.env.now
        hook = nozzle.hook  # None unless a cheat acts on this nozzle's fills
        if hook is not None:
            price = hook.charge(nozzle, price)
        if full:
            true_l = c.full_l[i]
            honest = meter.honest_error(true_l, c.flow_lps[i], now, c.meter_z[i])
            shown, amount = meter.fill_full(true_l, price, honest)
        else:
            preset = c.preset_fen[i]
            honest = meter.honest_error(preset / price, c.flow_lps[i], now, c.meter_z[i])
            shown, amount, true_l = meter.fill_preset(preset, price, honest)
        if hook is not None:
            shown, amount, true_l = hook.measure(nozzle, full, price, shown, amount, true_l)
        unit = nozzle.unit
        if not unit.can_supply(true_l):
            return False
        unit.reserved_l += true_l
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
        if hook is not None:
            hook.lifted(nozzle)
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
        hook = nozzle.hook
        if hook is not None and hook.settle(nozzle, drawn_20c):  # a cheat kept it off the FIFO
            self.stats.served += 1
            self.deliveries.check(unit)
            return
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
        self.tax.add(nozzle._fill_end, nozzle.grade, shown, amount)
        self.stats.served += 1
        self.deliveries.check(unit)


_TABLES: dict[int, CapacityTable] = {}


def _table(nominal_m3: int) -> CapacityTable:
    """Capacity tables are read-only and shared by every tank of the same size."""
    table = _TABLES.get(nominal_m3)
    if table is None:
        table = _TABLES[nominal_m3] = CapacityTable.for_nominal(nominal_m3)
    return table
