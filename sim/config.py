"""The world's input: plain, validated configuration (built from a scenario by the harness).

sim/ never reads scenario files itself (it imports only numpy and simpy); the scenario
loader validates the files and `acceptance.world_config` turns them into these objects.
All times are POSIX epoch seconds (UTC); `timezone` is used for civil time (diurnal
demand, device clocks' broken-down fields, price changes at local midnight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GRADES = ("92", "95", "0")  # 92#, 95# petrol, 0# diesel


@dataclass(frozen=True)
class TankConfig:
    """One underground horizontal tank (卧式储罐) and its gauge probe."""

    tank: int  # 1-based number at the station's tank gauge
    grade: str  # one of GRADES
    nominal_m3: int  # 20, 30 or 50
    initial_fill: float = 0.6  # fraction of capacity at the start
    leak_l_per_h: float = 0.0  # physical leak of product (true loss)
    water_ingress_l_per_day: float = 0.0  # > 0 replaces the drawn one (sim/imperfections.py)


@dataclass(frozen=True)
class DispenserConfig:
    """A dispenser (加油机); nozzle k (1-based) draws from tank nozzle_tanks[k-1]."""

    dispenser: int  # 1-based number at the station
    nozzle_tanks: tuple[int, ...]  # 1..4 entries


@dataclass(frozen=True)
class StationConfig:
    station_id: str
    name: str
    town: str
    ownership: str  # "private" | "state"
    dialect: str  # "int_be" | "f32_le" (register dialect of every device at the station)
    transport: str  # "tcp" | "rtu"
    tanks: tuple[TankConfig, ...]
    dispensers: tuple[DispenserConfig, ...]
    throughput_l_per_day: dict[str, float]  # mean daily sales per grade
    truck_share: float = 0.1  # share of diesel fills made by heavy trucks


@dataclass(frozen=True)
class ProbeConfig:
    """Magnetostrictive probe (液位探棒) resolution and noise (1 sigma)."""

    level_resolution_mm: float = 0.1
    level_noise_mm: float = 0.2
    water_resolution_mm: float = 0.1
    water_noise_mm: float = 0.2
    min_water_mm: float = 10.0  # water below this reads 0
    temp_resolution_c: float = 0.1
    temp_noise_c: float = 0.05


@dataclass(frozen=True)
class PriceChange:
    at: float  # epoch s
    grade: str
    price_fen: int  # yuan/L in fen, e.g. 712 = ¥7.12/L


@dataclass(frozen=True)
class DeliveryPolicy:
    reorder_fraction: float = 0.35  # order when gross volume < fraction of capacity
    lead_time_h: tuple[float, float] = (4.0, 20.0)  # uniform tanker delay
    compartment_l: float = 5000.0  # the bill of lading is a whole number of compartments
    transit_loss: float = 0.002  # mean fraction lost between depot and tank (20 °C)
    fill_target: float = 0.90  # order up to this fraction of capacity
    drop_rate_l_per_min: float = 800.0


@dataclass(frozen=True)
class PowerCut:
    """An honest power loss of one dispenser (fault `device_power_loss`, docs/faults.md): no
    new fill from `at`, the fills in progress finish, event 2 power_down, silent and selling
    nothing for `duration_s`, then event 1 power_up; its clock, totalizers and FIFO content
    survive (docs/register-map.md §6, §10)."""

    station_id: str
    dispenser: int
    at: float  # epoch s
    duration_s: float

    def __post_init__(self) -> None:
        if not (self.dispenser >= 1 and self.duration_s > 0):
            raise ValueError(f"power cut at {self.station_id}/D{self.dispenser}: expected a "
                             f"dispenser ≥ 1 and a duration > 0, found {self.duration_s!r} s")


@dataclass(frozen=True)
class ClockFault:
    """A device clock (RTC, 设备时钟) that is wrong for a while (faults device_clock_drift and
    device_clock_reset, docs/faults.md): from `at` it gains `drift_s_per_day` seconds per
    day (drift), or it jumps to `reset_to` and runs on from there (reset: a flat backup
    battery at a power cycle); at `at + duration_s` it is set right again. The world's events
    keep their true times; the device stamps them with its clock (sim/device_clock.py)."""

    station_id: str
    device: str  # "G" (tank gauge) or "D<n>"
    at: float  # epoch s
    duration_s: float
    drift_s_per_day: float = 0.0
    reset_to: float | None = None  # epoch s the clock shows at `at` (reset)

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or (self.reset_to is None) == (self.drift_s_per_day == 0):
            raise ValueError(f"clock fault at {self.station_id}/{self.device}: expected a "
                             f"duration > 0 and either a drift or a reset time")


@dataclass(frozen=True)
class CheatConfig:
    """A cheat of the catalogue (docs/cheats.md) acting from `start` (to `end`, if given) on
    its target: a nozzle (dispenser, nozzle), a dispenser (dispenser; nozzle 0 = all of its
    nozzles) or a tank / its gauge (tank; dispenser = nozzle = 0)."""

    kind: str  # a kind of sim.cheats.CHEAT_KINDS, e.g. "pulse_factor"
    station_id: str
    dispenser: int  # 0 when the target is a tank
    nozzle: int  # 0 when the target is a tank, or every nozzle of the dispenser
    start: float  # epoch s
    end: float | None = None
    params: dict = field(default_factory=dict)  # pulse_factor: {"factor": 1.03, "log_event": False}
    tank: int = 0  # tank / gauge kinds
    # when it is switched on: {} = the kind's default; {"kind": "remote", "mean_on_h": 2, ...}
    schedule: dict = field(default_factory=dict)
    index: int | None = None  # place in the scenario's cheat list (default: in WorldConfig.cheats)


@dataclass(frozen=True)
class InspectionPolicy:
    """Market-regulation spot checks (市场监管抽查) drawn per station (sim/cheats/inspections.py)."""

    mean_interval_days: float = 30.0
    duration_h: tuple[float, float] = (1.0, 2.0)  # uniform


@dataclass(frozen=True)
class TaxPolicy:
    """The stations' tax declarations (纳税申报, sim/tax.py): one per period and grade sold.

    `period_days` None = calendar months in the world's zone; a number = periods of that many
    days from the start (a shortened period for short runs). Each station closes its books
    `booking_cutoff_min` before a period ends (日结): fills ending later are booked in the next
    period. A declaration is filed `filing_lag_h` after its period ends."""

    period_days: float | None = None
    filing_lag_h: float = 240.0
    booking_cutoff_min: float = 10.0
    vat_rate: float = 0.13  # VAT on fuel (增值税); prices include it

    def __post_init__(self) -> None:
        if self.period_days is not None and not 0.125 <= self.period_days <= 366:
            raise ValueError(f"tax.period_days: expected 0.125 … 366 days (or None for calendar "
                             f"months), found {self.period_days!r}")
        if not 0 <= self.filing_lag_h <= 24 * 366:
            raise ValueError(f"tax.filing_lag_h: expected 0 … 8784 h, found {self.filing_lag_h!r}")
        if not 0 <= self.booking_cutoff_min <= 30:
            raise ValueError(f"tax.booking_cutoff_min: expected 0 … 30 min, found "
                             f"{self.booking_cutoff_min!r}")
        if not 0 <= self.vat_rate < 1:
            raise ValueError(f"tax.vat_rate: expected 0 … 1, found {self.vat_rate!r}")


@dataclass(frozen=True)
class WorldConfig:
    seed: int
    start: float  # epoch s
    days: float
    timezone: str
    stations: tuple[StationConfig, ...]
    inventory_interval_s: int = 900
    probe: ProbeConfig = ProbeConfig()
    prices: tuple[PriceChange, ...] = ()  # must hold a price for every grade at or before start
    deliveries: DeliveryPolicy = DeliveryPolicy()
    cheats: tuple[CheatConfig, ...] = ()
    power_cuts: tuple[PowerCut, ...] = ()  # honest outages (a fault of the scenario)
    clock_faults: tuple[ClockFault, ...] = ()  # wrong device clocks (faults of the scenario)
    inspections: InspectionPolicy = InspectionPolicy()
    # Honest imperfections (docs/noise-budget.md): "realistic" (default) or "ideal" (exact
    # capacity table, no probe offsets, nominal densities, constant meter errors).
    imperfections: str = "realistic"
    tax: TaxPolicy = TaxPolicy()  # the stations' tax declarations (sim/tax.py)

    @property
    def end(self) -> float:
        return self.start + self.days * 86400.0
