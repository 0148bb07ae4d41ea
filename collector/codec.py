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

import functools
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
    if field.scale is None:  # profile.py gives every measure and counter a scale
        raise DecodeError(f"field {field.name!r}: a {field.type} without a scale")
    return _rounded_count(value, float(field.scale), field)


def _rounded_count(value: float, scale: float, field: Field) -> int:
    count = value / scale
    if not math.isfinite(count):  # NaN, infinity, or a float64 too large for its scale
        raise DecodeError(f"field {field.name!r}: not a finite number of counts ({value})")
    return round(count)


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
    """Every field of a block, FIFO status or record whose registers start at `start`.
    The same values as decode_field one by one, through a layout compiled once."""
    key = (id(fields), id(dialect))
    hit = _LAYOUTS.get(key)
    if hit is None or hit[0] is not fields or hit[1] is not dialect:
        if len(_LAYOUTS) >= 256:  # profiles are few; this bounds tests that make many
            _LAYOUTS.clear()
        hit = _LAYOUTS[key] = (fields, dialect, _Layout.compile(fields, dialect))
    layout = hit[2]
    if layout is None or len(registers) < start + layout.end:
        return {name: decode_field(registers, start, f, dialect) for name, f in fields.items()}
    return layout.decode(registers, start)


# struct codes of numeric fields by (type, floating); ascii is "<2·size>s"
_CODES = {("u16", False): "H", ("u16", True): "H", ("u32", False): "I", ("u32", True): "I",
          ("measure", False): "i", ("measure", True): "f",
          ("counter", False): "Q", ("counter", True): "d"}
_SIZES = {"u16": 1, "u32": 2, "measure": 2, "counter": 4}


class _Layout:
    """A field layout as one struct over its registers' bytes: a FIFO record is decoded by
    one pack and one unpack instead of a slice, a pack and an unpack per field (the
    collectors' busiest code in the fleet benchmark, docs/performance.md)."""

    __slots__ = ("end", "_lo", "_order", "_pack", "_unpack", "_names", "_floats", "_texts")

    def __init__(self, end: int, lo: int, order: tuple[int, ...] | None, fmt: str,
                 names: tuple[str, ...], floats: tuple[tuple[str, Field, float], ...],
                 texts: tuple[str, ...]) -> None:
        self.end, self._lo, self._order = end, lo, order
        self._pack = struct.Struct(f">{end - lo}H").pack
        self._unpack = struct.Struct(fmt).unpack
        self._names, self._floats, self._texts = names, floats, texts

    @classmethod
    def compile(cls, fields: dict[str, Field], dialect: Dialect) -> _Layout | None:
        """None where fields overlap or a size does not fit its type: decoded one by one."""
        ordered = sorted(fields.values(), key=lambda f: f.offset)
        if not ordered:
            return None
        lo = ordered[0].offset
        fmt, at, order = [">"], lo, list[int]()
        for f in ordered:
            if f.offset < at or _SIZES.get(f.type, f.size) != f.size or f.size < 1 or (
                dialect.floating and f.type in ("measure", "counter") and not f.scale):
                return None  # (a float without a scale: decode_value says which)
            fmt.append("x" * 2 * (f.offset - at))
            order.extend(range(at, f.offset))
            words = list(range(f.offset, f.offset + f.size))
            if f.type == "ascii":
                fmt.append(f"{2 * f.size}s")
            else:
                fmt.append(_CODES[(f.type, dialect.floating)])
                if dialect.low_word_first:
                    words.reverse()  # most significant word first, as struct reads it
            order.extend(words)
            at = f.offset + f.size
        floats = tuple((f.name, f, float(f.scale)) for f in ordered
                       if dialect.floating and f.type in ("measure", "counter") and f.scale)
        texts = tuple(f.name for f in ordered if f.type == "ascii")
        swapped = tuple(order) if order != list(range(lo, at)) else None
        return cls(at, lo, swapped, "".join(fmt), tuple(f.name for f in ordered), floats, texts)

    def decode(self, registers: Sequence[int], start: int) -> dict[str, int | str]:
        if self._order is None:
            words = registers[start + self._lo:start + self.end]
        else:
            words = [registers[start + i] for i in self._order]
        values = dict(zip(self._names, self._unpack(self._pack(*words)), strict=True))
        for name, f, scale in self._floats:
            values[name] = _rounded_count(values[name], scale, f)
        for name in self._texts:
            values[name] = values[name].rstrip(b"\x00").decode("ascii", errors="replace")
        return values


_LAYOUTS: dict[tuple[int, int], tuple[dict[str, Field], Dialect, _Layout | None]] = {}


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


@functools.cache
def _register_steps() -> tuple[int, ...]:
    """The CRC's two byte steps over one register (high byte first) as one table look-up,
    with the CRC kept byte-swapped so that the register XORs in as it is: four times faster
    than the byte loop, for every FIFO record the collector reads."""
    table = _CRC_TABLE
    steps = []
    for z in range(0x10000):
        y = _swap(z)  # the CRC XOR the register's bytes in the order the bytes are taken
        lo = table[y & 0xFF]
        steps.append(_swap((lo >> 8) ^ table[((y >> 8) ^ lo) & 0xFF]))
    return tuple(steps)


def crc16_registers(registers: Sequence[int]) -> int:
    """crc16_modbus(registers_to_bytes(registers)), a register at a time."""
    steps = _register_steps()
    crc = 0xFFFF  # byte-swapped; 0xFFFF either way
    for word in registers:
        crc = steps[crc ^ word]
    return _swap(crc)


def record_crc_ok(record: Sequence[int], crc_field: Field) -> bool:
    """CRC-16/MODBUS over the record's registers before the CRC, each big-endian."""
    return crc16_registers(record[: crc_field.offset]) == record[crc_field.offset]


def is_empty_slot(record: Sequence[int]) -> bool:
    return all(r == EMPTY for r in record)
