"""Register codec of the collector: registers → integers in the field's resolution.

Written from the published register map alone, independent of the devices' own encoder on
purpose: a codec shared by both sides would hide a bug both share.

Every register travels big-endian (high byte first). Multi-register values are assembled
from their words in the dialect's word order (`int_be`: high word first; `f32_le`: low word
first). Measures and counters come out as integers counting the field's `scale`:

- scaled-integer dialects already send that count (int32 / uint64);
- float dialects send the engineering value (float32 / float64); per docs/uplink.md the
  collector rounds it to the field's resolution, so both dialects give identical integers
  for identical device values.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from collector.profile import Dialect, Field

EMPTY = 0xFFFF  # a FIFO window slot past the pending count reads all 0xFFFF


class DecodeError(ValueError):
    """Registers that cannot be a value of the field (NaN, infinity, wrong length)."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected poly 0x8005, init 0xFFFF, no final xor)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def registers_to_bytes(registers: Sequence[int]) -> bytes:
    """Registers as sent on the wire: each big-endian."""
    return struct.pack(f">{len(registers)}H", *registers)


def _ordered_bytes(words: Sequence[int], dialect: Dialect) -> bytes:
    """The value's bytes most significant first, whatever the dialect's word order."""
    return registers_to_bytes(words[::-1] if dialect.low_word_first else words)


def decode_u32(words: Sequence[int], dialect: Dialect) -> int:
    return struct.unpack(">I", _ordered_bytes(words, dialect))[0]


def _to_count(value: float, field: Field) -> int:
    if not math.isfinite(value):
        raise DecodeError(f"field {field.name!r}: not a finite number ({value})")
    if field.scale is None:  # profile.py gives every measure and counter a scale
        raise DecodeError(f"field {field.name!r}: a {field.type} without a scale")
    return round(value / float(field.scale))


def decode_measure(words: Sequence[int], dialect: Dialect, field: Field) -> int:
    """Measure (2 registers) → signed count of `field.scale`."""
    raw = _ordered_bytes(words, dialect)
    if dialect.floating:
        return _to_count(struct.unpack(">f", raw)[0], field)
    return struct.unpack(">i", raw)[0]


def decode_counter(words: Sequence[int], dialect: Dialect, field: Field) -> int:
    """Counter / totalizer (4 registers) → unsigned count of `field.scale`."""
    raw = _ordered_bytes(words, dialect)
    if dialect.floating:
        return _to_count(struct.unpack(">d", raw)[0], field)
    return struct.unpack(">Q", raw)[0]


def decode_ascii(words: Sequence[int]) -> str:
    """Two characters per register, first in the high byte; NUL padding dropped."""
    return registers_to_bytes(words).rstrip(b"\x00").decode("ascii", errors="replace")


def decode_field(registers: Sequence[int], start: int, field: Field,
                 dialect: Dialect) -> int | str:
    """Value of `field` whose block starts at index `start` of `registers`."""
    return decode_value(registers[start + field.offset: start + field.offset + field.size],
                        field, dialect)


def decode_value(words: Sequence[int], field: Field, dialect: Dialect) -> int | str:
    """Value of `field` from exactly its own registers."""
    if len(words) != field.size:
        raise DecodeError(f"field {field.name!r}: needs {field.size} registers, "
                          f"got {len(words)}")
    if field.type == "u16":
        return words[0]
    if field.type == "u32":
        return decode_u32(words, dialect)
    if field.type == "measure":
        return decode_measure(words, dialect, field)
    if field.type == "counter":
        return decode_counter(words, dialect, field)
    return decode_ascii(words)


def decode_fields(registers: Sequence[int], start: int, fields: dict[str, Field],
                  dialect: Dialect) -> dict[str, int | str]:
    return {name: decode_field(registers, start, f, dialect) for name, f in fields.items()}


def record_crc_ok(record: Sequence[int], crc_field: Field) -> bool:
    """CRC-16/MODBUS over the record's registers before the CRC, each big-endian."""
    body = record[: crc_field.offset]
    return crc16_modbus(registers_to_bytes(body)) == record[crc_field.offset]


def is_empty_slot(record: Sequence[int]) -> bool:
    return all(r == EMPTY for r in record)
