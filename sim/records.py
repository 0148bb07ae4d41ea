"""Records the world produces, and the read-only views that devices serve.

These are the seam between sim/ and devices/: the world emits records (which a
device buffers in its FIFOs and the ground-truth ledger stores) and exposes live
device state (which a device shows in its registers). Units are exact integers where
the device shows a rounded value (mL, fen) and floats for physical truth (litres, °C).

Device keys: "D<n>" for dispenser n, "G" for the station's tank gauge.
Streams: dispenser "transactions" | "events"; gauge "inventory" | "deliveries" | "events".
Sequence numbers are assigned by the world per (station, device, stream), start at a
value drawn from the seed and wrap at 16 bits, so the ground truth knows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Transaction:
    """One fill (一笔加油交易) as the dispenser recorded it, with its physical truth."""

    station_id: str
    dispenser: int
    nozzle: int
    grade: str
    tank: int
    seq: int  # device sequence number, 0..65535, wraps
    txn_no: int  # unwrapped running number per dispenser (ground truth only)
    start_time: float  # epoch s
    end_time: float
    true_volume_l: float  # litres that physically left the tank
    true_volume_20c_l: float
    displayed_volume_ml: int  # multiple of 10 (display rounds to 0.01 L)
    amount_fen: int
    unit_price_fen: int
    volume_total_before_ml: int
    volume_total_after_ml: int
    amount_total_before_fen: int
    amount_total_after_fen: int
    vehicle: str  # "car" | "truck"
    fill_type: str  # "full" | "amount"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    station_id: str
    device: str  # "D<n>" or "G"
    seq: int
    time: float
    code: int  # event code of the device profile
    name: str
    unit: int  # nozzle (dispenser) or tank (gauge); 0 = whole device
    value_old: float = 0.0
    value_new: float = 0.0


@dataclass(frozen=True, slots=True)
class GaugeReading:
    """What the tank gauge shows for one tank: probe measurement through the capacity table."""

    level_mm: float
    water_level_mm: float
    temperature_c: float
    gross_l: float
    volume_20c_l: float
    ullage_l: float
    water_l: float


@dataclass(frozen=True, slots=True)
class TankTruth:
    """Physical truth of one tank at an instant."""

    level_mm: float
    water_level_mm: float
    temperature_c: float
    gross_l: float  # product at its temperature
    volume_20c_l: float
    water_l: float


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """Periodic inventory-history record of the tank gauge (one per tank per interval)."""

    station_id: str
    tank: int
    seq: int
    time: float
    reading: GaugeReading  # what the gauge recorded
    truth: TankTruth  # what was physically there


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A fuel drop (卸油): the bill of lading and what the gauge saw."""

    station_id: str
    tank: int
    seq: int
    grade: str
    ordered_time: float
    start_time: float
    end_time: float
    bol_volume_20c_l: float  # bill of lading (提单) standard volume
    true_drop_20c_l: float  # what physically entered the tank
    true_drop_gross_l: float
    delivery_temperature_c: float
    start_reading: GaugeReading
    end_reading: GaugeReading
    bol_keyed_20c_l: float  # bill of lading keyed in at the gauge console (0 = none keyed in)
    density_20c_kg_m3: float = float("nan")  # the batch's real density at 20 °C (truth only)


class NozzleView(Protocol):
    # read-only: a device shows these, the world sets them
    @property
    def nozzle(self) -> int: ...
    @property
    def grade(self) -> str: ...
    @property
    def tank(self) -> int: ...
    @property
    def state(self) -> int: ...  # 0 idle, 1 lifted, 2 authorised, 4 filling, 5 completed
    @property
    def unit_price_fen(self) -> int: ...
    @property
    def live_volume_ml(self) -> int: ...
    @property
    def live_amount_fen(self) -> int: ...
    @property
    def volume_total_ml(self) -> int: ...
    @property
    def amount_total_fen(self) -> int: ...
    @property
    def last_seq(self) -> int: ...


class DispenserView(Protocol):
    station_id: str
    dispenser: int
    serial_number: str
    software_id: str
    mainboard_id: str
    encoder_id: str
    seal_state: int
    device_status: int
    offline: bool  # taken off line: the device answers no request

    @property
    def nozzles(self) -> Sequence[NozzleView]: ...


class TankView(Protocol):
    # read-only: a device shows these, the world sets them
    @property
    def tank(self) -> int: ...
    @property
    def grade(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def alarms(self) -> int: ...
    @property
    def capacity_l(self) -> float: ...

    def live_reading(self) -> GaugeReading:
        """Current gauge display; draws noise from a stream separate from the ground truth."""
        ...


class GaugeView(Protocol):
    station_id: str
    serial_number: str
    software_id: str
    inventory_interval_s: int

    @property
    def tanks(self) -> Sequence[TankView]: ...


class RecordListener(Protocol):
    """Receives every record as the world produces it (device FIFOs, the ledger)."""

    def __call__(self, station_id: str, device: str, stream: str, record: object) -> None: ...
