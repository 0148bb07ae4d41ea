"""Value codecs: engineering values <-> 16-bit registers for both dialects.

Dialect ``int_be`` (scaled integers, high word first):
  measure  signed int32 = round(value / scale), words high then low
  counter  unsigned int64 = round(value / scale), most significant word first
  u32      unsigned int32, high word first
Dialect ``f32_le`` (floats, low word first):
  measure  IEEE-754 float32 of the value rounded to its resolution (round(value/scale)·scale),
           low word first
  counter  IEEE-754 float64 of the value rounded to its resolution, least significant first
  u32      unsigned int32, low word first
Both: u16 as is; ascii 2 characters per register, first in the high byte, NUL-padded,
never word-swapped. A register is always sent high byte first (Modbus).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from devices.profile import Dialect, Field

Encoder = Callable[[object], list[int]]
Decoder = Callable[[Sequence[int]], object]

_S_I32_BE = struct.Struct(">i")
_S_U32_BE = struct.Struct(">I")
_S_U64_BE = struct.Struct(">Q")
_S_F32_LE = struct.Struct("<f")
_S_F64_LE = struct.Struct("<d")
_S_U32_LE = struct.Struct("<I")
_W2_BE = struct.Struct(">HH")
_W4_BE = struct.Struct(">HHHH")
_W2_LE = struct.Struct("<HH")
_W4_LE = struct.Struct("<HHHH")

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def at_resolution(value: float, scale: float) -> float:
    """The value rounded to a multiple of `scale`, as the nearest float to that decimal
    (685 × 0.01 would give 6.8500000000000005; 685 / 100 gives 6.85)."""
    inverse = 1.0 / scale
    whole = round(inverse)
    if abs(inverse - whole) < 1e-9:
        return round(value * whole) / whole
    return round(value / scale) * scale


class CodecError(ValueError):
    """A value cannot be represented in its field; names the field and the value."""


class Codec:
    """Encoders/decoders of one dialect. Word order: ``high_first`` or ``low_first``."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.high_first = dialect.word_order == "high_first"
        self.scaled = dialect.numeric == "scaled_int"

    # ---- encoding -------------------------------------------------------------
    def u16(self, value: int, name: str = "u16") -> list[int]:
        v = int(value)
        if not 0 <= v <= 0xFFFF:
            raise CodecError(f"{name}: {value!r} does not fit u16 (0..65535)")
        return [v]

    def u32(self, value: int, name: str = "u32") -> list[int]:
        v = int(value)
        if not 0 <= v <= 0xFFFFFFFF:
            raise CodecError(f"{name}: {value!r} does not fit u32")
        if self.high_first:
            return list(_W2_BE.unpack(_S_U32_BE.pack(v)))
        return list(_W2_LE.unpack(_S_U32_LE.pack(v)))

    def measure(self, value: float, scale: float, name: str = "measure") -> list[int]:
        if not math.isfinite(value):
            raise CodecError(f"{name}: {value!r} is not a finite number")
        if self.scaled:
            raw = round(value / scale)
            if not I32_MIN <= raw <= I32_MAX:
                raise CodecError(f"{name}: {value!r} / scale {scale} = {raw} does not fit int32")
            return list(_W2_BE.unpack(_S_I32_BE.pack(raw)))
        try:
            # the device shows the value at its resolution in both dialects
            return list(_W2_LE.unpack(_S_F32_LE.pack(at_resolution(value, scale))))
        except OverflowError:
            raise CodecError(f"{name}: {value!r} does not fit float32") from None

    def counter(self, value: float, scale: float, name: str = "counter") -> list[int]:
        if not math.isfinite(value):
            raise CodecError(f"{name}: {value!r} is not a finite number")
        if self.scaled:
            raw = round(value / scale)
            if not 0 <= raw < 2**64:
                raise CodecError(f"{name}: {value!r} / scale {scale} = {raw} does not fit uint64")
            return list(_W4_BE.unpack(_S_U64_BE.pack(raw)))
        if value < 0:
            raise CodecError(f"{name}: {value!r} is negative (a counter never is)")
        return list(_W4_LE.unpack(_S_F64_LE.pack(at_resolution(value, scale))))

    @staticmethod
    def ascii(text: str, size: int, name: str = "ascii") -> list[int]:
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise CodecError(f"{name}: {text!r} is not ASCII") from None
        if len(raw) > 2 * size:
            raise CodecError(f"{name}: {text!r} is longer than {2 * size} characters")
        raw = raw.ljust(2 * size, b"\0")
        return list(struct.unpack(f">{size}H", raw))

    # ---- decoding -------------------------------------------------------------
    def decode_u32(self, regs: Sequence[int]) -> int:
        if self.high_first:
            return _S_U32_BE.unpack(_W2_BE.pack(*regs[:2]))[0]
        return _S_U32_LE.unpack(_W2_LE.pack(*regs[:2]))[0]

    def decode_measure(self, regs: Sequence[int], scale: float) -> float:
        if self.scaled:
            return _S_I32_BE.unpack(_W2_BE.pack(*regs[:2]))[0] * scale
        return _S_F32_LE.unpack(_W2_LE.pack(*regs[:2]))[0]

    def decode_measure_raw(self, regs: Sequence[int]) -> int | float:
        """int_be: the scaled int32 itself; f32_le: the float32 value."""
        if self.scaled:
            return _S_I32_BE.unpack(_W2_BE.pack(*regs[:2]))[0]
        return _S_F32_LE.unpack(_W2_LE.pack(*regs[:2]))[0]

    def decode_counter(self, regs: Sequence[int], scale: float) -> float:
        if self.scaled:
            return _S_U64_BE.unpack(_W4_BE.pack(*regs[:4]))[0] * scale
        return _S_F64_LE.unpack(_W4_LE.pack(*regs[:4]))[0]

    def decode_counter_raw(self, regs: Sequence[int]) -> int | float:
        if self.scaled:
            return _S_U64_BE.unpack(_W4_BE.pack(*regs[:4]))[0]
        return _S_F64_LE.unpack(_W4_LE.pack(*regs[:4]))[0]

    @staticmethod
    def decode_ascii(regs: Sequence[int]) -> str:
        return struct.pack(f">{len(regs)}H", *regs).rstrip(b"\0").decode("ascii")

    # ---- per field --------------------------------------------------------------
    def encoder(self, field: Field) -> Encoder:
        """A function value -> registers for `field` (errors name the field)."""
        name = field.name
        if field.type == "u16":
            return lambda v: self.u16(v, name)  # type: ignore[arg-type]
        if field.type == "u32":
            return lambda v: self.u32(v, name)  # type: ignore[arg-type]
        if field.type == "measure":
            scale = field.scale
            return lambda v: self.measure(v, scale, name)  # type: ignore[arg-type]
        if field.type == "counter":
            scale = field.scale
            return lambda v: self.counter(v, scale, name)  # type: ignore[arg-type]
        if field.type == "ascii":
            size = field.size
            return lambda v: self.ascii(v, size, name)  # type: ignore[arg-type]
        raise CodecError(f"{name}: unknown field type {field.type!r}")

    def encode(self, field: Field, value: object) -> list[int]:
        return self.encoder(field)(value)

    def decode(self, field: Field, regs: Sequence[int]) -> object:
        """Registers of `field` -> engineering value (scaled ints come back multiplied)."""
        if field.type == "u16":
            return regs[0]
        if field.type == "u32":
            return self.decode_u32(regs)
        if field.type == "measure":
            return self.decode_measure(regs, field.scale)  # type: ignore[arg-type]
        if field.type == "counter":
            return self.decode_counter(regs, field.scale)  # type: ignore[arg-type]
        if field.type == "ascii":
            return self.decode_ascii(regs[: field.size])
        raise CodecError(f"{field.name}: unknown field type {field.type!r}")

    def decode_fields(self, fields: Sequence[Field], regs: Sequence[int], base: int = 0) -> dict:
        """Decode every field of a block/record whose registers start at regs[base]."""
        return {f.name: self.decode(f, regs[base + f.offset: base + f.end]) for f in fields}
