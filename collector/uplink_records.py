"""Decoded FIFO records → uplink records (docs/uplink.md §3) in exact integer units.

A decoded record holds integer counts of each field's profile scale (e.g. 0.01 L). The
uplink wants fixed units (mL, fen, µm, m°C, value × 10⁴); the conversion factor is
scale / unit, computed exactly with fractions from the profile, so a profile that changes a
scale changes the factor instead of silently corrupting values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

from collector.profile import Fifo, Profile

log = logging.getLogger(__name__)

KIND_BY_STREAM = {"transactions": "transaction", "inventory": "inventory",
                  "deliveries": "delivery", "events": "event"}

MILLI = Fraction(1, 1000)  # mL per L, µm per mm, m°C per °C
CENTI = Fraction(1, 100)  # fen per yuan
E4 = Fraction(1, 10000)


@dataclass(frozen=True, slots=True)
class Conv:
    """Uplink field `out` from profile field `src`; `unit` in the profile's unit, None = as is.
    `optional`: left out of the record when the profile lacks `src` (an older profile
    version; the uplink field is optional too)."""

    out: str
    src: str
    unit: Fraction | None = None
    optional: bool = False


@dataclass(frozen=True, slots=True)
class StreamMap:
    time_field: str  # profile field whose value is the key's device_time
    convs: tuple[Conv, ...]


_TRANSACTION = StreamMap("start_epoch", (
    Conv("nozzle", "nozzle"), Conv("grade", "grade"), Conv("tank", "tank"),
    Conv("start_time", "start_epoch"), Conv("end_time", "end_epoch"),
    Conv("volume_ml", "volume", MILLI), Conv("amount_fen", "amount", CENTI),
    Conv("unit_price_fen", "unit_price", CENTI),
    Conv("volume_total_ml", "volume_totalizer_end", MILLI),
    Conv("amount_total_fen", "amount_totalizer_end", CENTI),
))


def _event_map(unit_field: str) -> StreamMap:
    return StreamMap("epoch", (
        Conv("code", "code"), Conv("unit", unit_field), Conv("device_time", "epoch"),
        Conv("value_old_e4", "value_old", E4), Conv("value_new_e4", "value_new", E4),
    ))


_INVENTORY = StreamMap("epoch", (
    Conv("tank", "tank"), Conv("device_time", "epoch"),
    Conv("product_level_um", "product_level", MILLI), Conv("water_level_um", "water_level", MILLI),
    Conv("temperature_mc", "temperature", MILLI),
    Conv("gross_volume_ml", "gross_volume", MILLI), Conv("volume_20c_ml", "volume_20c", MILLI),
    Conv("ullage_ml", "ullage", MILLI), Conv("water_volume_ml", "water_volume", MILLI),
))

_DELIVERY = StreamMap("start_epoch", (
    Conv("tank", "tank"), Conv("start_time", "start_epoch"), Conv("end_time", "end_epoch"),
    Conv("start_gross_volume_ml", "start_gross_volume", MILLI),
    Conv("start_volume_20c_ml", "start_volume_20c", MILLI),
    Conv("end_gross_volume_ml", "end_gross_volume", MILLI),
    Conv("end_volume_20c_ml", "end_volume_20c", MILLI),
    Conv("start_temperature_mc", "start_temperature", MILLI),
    Conv("end_temperature_mc", "end_temperature", MILLI),
    Conv("start_level_um", "start_level", MILLI), Conv("end_level_um", "end_level", MILLI),
    # register map v2 / uplink 1.1: bill of lading keyed in at the gauge (0 = none)
    Conv("bol_volume_20c_ml", "bol_volume_20c", MILLI, optional=True),
))

STREAM_MAPS: dict[tuple[str, str], StreamMap] = {
    ("dispenser", "transactions"): _TRANSACTION,
    ("dispenser", "events"): _event_map("nozzle"),
    ("tank_gauge", "inventory"): _INVENTORY,
    ("tank_gauge", "deliveries"): _DELIVERY,
    ("tank_gauge", "events"): _event_map("tank"),
}


class MappingError(ValueError):
    """The profile lacks a field the uplink needs (names profile, stream and field)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A StreamMap resolved against one profile: per output field, source and exact factor."""

    kind: str
    time_field: str
    steps: tuple[tuple[str, str, Fraction | None], ...]
    since: dict[str, int]  # output field → profile version its source field came with


class RecordBuilder:
    """Builds uplink records for one station from decoded FIFO records."""

    def __init__(self, station_id: str, profiles: dict[str, Profile]) -> None:
        self.station_id = station_id
        self._plans: dict[tuple[str, str], _Plan] = {}
        for pname, profile in profiles.items():
            for fifo in profile.fifos.values():
                if (pname, fifo.name) in STREAM_MAPS:
                    self._plans[(pname, fifo.name)] = self._resolve(profile, fifo)
        self.inexact = 0  # values that did not convert exactly (rounded; logged)

    @staticmethod
    def _resolve(profile: Profile, fifo: Fifo) -> _Plan:
        smap = STREAM_MAPS[(profile.name, fifo.name)]
        steps = []
        since: dict[str, int] = {}
        for conv in smap.convs:
            field = fifo.record.get(conv.src)
            if field is None and conv.optional:
                continue
            if field is None:
                raise MappingError(f"{profile.source}: FIFO {fifo.name!r} has no field "
                                   f"{conv.src!r}, needed for uplink field {conv.out!r}")
            factor = None
            if conv.unit is not None:
                if field.scale is None:
                    raise MappingError(f"{profile.source}: FIFO {fifo.name!r} field "
                                       f"{conv.src!r} has no scale; {conv.out!r} needs one")
                factor = field.scale / conv.unit
            steps.append((conv.out, conv.src, factor))
            if field.since > 1:
                since[conv.out] = field.since
        return _Plan(KIND_BY_STREAM[fifo.name], smap.time_field, tuple(steps), since)

    def kind(self, profile: str, stream: str) -> str:
        return self._plans[(profile, stream)].kind

    def build(self, device: str, profile: str, stream: str, fields: dict[str, int | str],
              collected_at: float, device_version: int | None = None) -> dict:
        """One uplink record (with its idempotency key) from a decoded FIFO record.
        `device_version`: the profile_version of the device's header; fields that came with
        a later version are left out (the device does not have them)."""
        plan = self._plans.get((profile, stream))
        if plan is None:
            raise MappingError(f"no uplink mapping for profile {profile!r} stream {stream!r}")
        seq = int(fields["seq"])
        device_time = int(fields[plan.time_field])
        record: dict = {
            "key": f"{self.station_id}/{device}/{stream}/{seq}/{device_time}",
            "seq": seq,
            "collected_at": round(collected_at, 3),
        }
        for out, src, factor in plan.steps:
            if device_version is not None and plan.since.get(out, 1) > device_version:
                continue
            value = fields[src]
            if factor is None:
                record[out] = value
                continue
            if isinstance(value, str):  # a scale belongs to measures and counters: numbers
                raise MappingError(f"{device} {stream} seq {seq}: field {src!r} = {value!r} "
                                   f"is text, {out!r} needs a number")
            if factor.denominator == 1:  # the usual case: a whole multiple, integer maths
                record[out] = value * factor.numerator
                continue
            exact = value * factor
            if exact.denominator != 1:
                # Finer device resolution than the uplink unit (e.g. price in 0.1 fen).
                self.inexact += 1
                log.warning("%s %s seq %d: %s = %s is not a whole %s; rounded",
                            device, stream, seq, src, value, out)
            record[out] = round(exact)
        if "grade" in record:
            record["grade"] = str(record["grade"])  # uplink grades are strings: "92", "95", "0"
        return record
