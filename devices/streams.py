"""What a device shows, as field name -> engineering value, from the world's records and views.

Units follow the profiles: volumes in L (from *_ml / 1000), amounts in yuan (fen / 100),
prices in yuan/L (unit_price_fen / 100), levels in mm, temperatures in degC, epochs in
whole seconds (the device clock's second: the floor of the simulated time, unless a clock
fault makes the device's clock wrong). The names
are checked against the profile when a device is built (devices.image / devices.device),
so a renamed field fails at start-up, not on the wire.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sim.records import (
    DeliveryRecord,
    DeviceEvent,
    DispenserView,
    GaugeView,
    InventoryRecord,
    NozzleView,
    TankView,
    Transaction,
)

Values = dict[str, object]


def epoch_s(t: float) -> int:
    return math.floor(t)


# The device clock's second at a true instant: epoch_s, or through a clock fault
# (sim/device_clock.py)
Stamp = Callable[[float], int]


def grade_code(grade: str) -> int:
    """'92' -> 92, '95' -> 95, '0' (0# diesel) -> 0."""
    try:
        return int(grade)
    except ValueError:
        raise ValueError(f"grade {grade!r} is not numeric (expected 92, 95 or 0)") from None


# ---- FIFO records -------------------------------------------------------------------

def transaction_values(t: Transaction, stamp: Stamp = epoch_s) -> Values:
    return {
        "seq": t.seq,
        "nozzle": t.nozzle,
        "grade": grade_code(t.grade),
        "tank": t.tank,
        "start_epoch": stamp(t.start_time),
        "end_epoch": stamp(t.end_time),
        "volume": t.displayed_volume_ml / 1000,
        "amount": t.amount_fen / 100,
        "unit_price": t.unit_price_fen / 100,
        "volume_totalizer_end": t.volume_total_after_ml / 1000,
        "amount_totalizer_end": t.amount_total_after_fen / 100,
    }


def dispenser_event_values(e: DeviceEvent, stamp: Stamp = epoch_s) -> Values:
    return {
        "seq": e.seq,
        "code": e.code,
        "nozzle": e.unit,
        "epoch": stamp(e.time),
        "value_old": e.value_old,
        "value_new": e.value_new,
    }


def gauge_event_values(e: DeviceEvent, stamp: Stamp = epoch_s) -> Values:
    return {
        "seq": e.seq,
        "code": e.code,
        "tank": e.unit,
        "epoch": stamp(e.time),
        "value_old": e.value_old,
        "value_new": e.value_new,
    }


def inventory_values(r: InventoryRecord, stamp: Stamp = epoch_s) -> Values:
    g = r.reading
    return {
        "seq": r.seq,
        "tank": r.tank,
        "epoch": stamp(r.time),
        "product_level": g.level_mm,
        "water_level": g.water_level_mm,
        "temperature": g.temperature_c,
        "gross_volume": g.gross_l,
        "volume_20c": g.volume_20c_l,
        "ullage": g.ullage_l,
        "water_volume": g.water_l,
    }


def delivery_values(d: DeliveryRecord, stamp: Stamp = epoch_s) -> Values:
    s, e = d.start_reading, d.end_reading
    return {
        "seq": d.seq,
        "tank": d.tank,
        "start_epoch": stamp(d.start_time),
        "end_epoch": stamp(d.end_time),
        "start_gross_volume": s.gross_l,
        "start_volume_20c": s.volume_20c_l,
        "end_gross_volume": e.gross_l,
        "end_volume_20c": e.volume_20c_l,
        "start_temperature": s.temperature_c,
        "end_temperature": e.temperature_c,
        "start_level": s.level_mm,
        "end_level": e.level_mm,
        "bol_volume_20c": d.bol_keyed_20c_l,  # 提单 keyed in at the console; 0 = none
    }


# Value mapper per (device kind, stream), and the simulated time a record was produced.
RECORD_VALUES: dict[tuple[str, str], Callable[[object, Stamp], Values]] = {
    ("dispenser", "transactions"): transaction_values,  # type: ignore[dict-item]
    ("dispenser", "events"): dispenser_event_values,  # type: ignore[dict-item]
    ("tank_gauge", "inventory"): inventory_values,  # type: ignore[dict-item]
    ("tank_gauge", "deliveries"): delivery_values,  # type: ignore[dict-item]
    ("tank_gauge", "events"): gauge_event_values,  # type: ignore[dict-item]
}


def record_time(record: object) -> float:
    """When the device logged the record (end of a fill or drop; event/inventory time)."""
    if isinstance(record, Transaction | DeliveryRecord):
        return record.end_time
    if isinstance(record, DeviceEvent | InventoryRecord):
        return record.time
    raise TypeError(f"not a device record: {type(record).__name__}")


# ---- live blocks ----------------------------------------------------------------------

def rtc_values(epoch: int, civil: tuple[int, int, int, int, int, int]) -> Values:
    y, mo, d, h, mi, s = civil
    return {"rtc_epoch": epoch, "rtc_year": y, "rtc_month": mo, "rtc_day": d,
            "rtc_hour": h, "rtc_minute": mi, "rtc_second": s}


def dispenser_header_values(view: DispenserView) -> Values:
    """Header fields except the profile constants and the RTC (added by the image)."""
    return {
        "nozzle_count": len(view.nozzles),
        "seal_state": view.seal_state,
        "device_status": view.device_status,
        "serial_number": view.serial_number,
        "software_id": view.software_id,
        "mainboard_id": view.mainboard_id,
        "encoder_id": view.encoder_id,
    }


def gauge_header_values(view: GaugeView) -> Values:
    return {
        "tank_count": len(view.tanks),
        "inventory_interval": view.inventory_interval_s,
        "serial_number": view.serial_number,
        "software_id": view.software_id,
    }


def nozzle_values(n: NozzleView) -> Values:
    return {
        "state": n.state,
        "grade": grade_code(n.grade),
        "tank": n.tank,
        "unit_price": n.unit_price_fen / 100,
        "live_volume": n.live_volume_ml / 1000,
        "live_amount": n.live_amount_fen / 100,
        "volume_totalizer": n.volume_total_ml / 1000,
        "amount_totalizer": n.amount_total_fen / 100,
        "last_transaction_seq": n.last_seq,
    }


def tank_values(t: TankView) -> Values:
    g = t.live_reading()
    return {
        "status": t.status,
        "alarms": t.alarms,
        "grade": grade_code(t.grade),
        "product_level": g.level_mm,
        "water_level": g.water_level_mm,
        "temperature": g.temperature_c,
        "gross_volume": g.gross_l,
        "volume_20c": g.volume_20c_l,
        "ullage": g.ullage_l,
        "water_volume": g.water_l,
        "capacity": t.capacity_l,
    }
