"""Register profiles (寄存器表) as the collector reads them: the published YAML files.

The collector stands in for a vendor's product, so it reads `contracts/register_profiles/*.yaml` as plain
files (never `import devices`) and builds its own typed view of them. Only what a collector
needs is kept: block and FIFO layouts, field types and scales, dialect codes, event names.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar, overload

import yaml

from contracts import REGISTER_PROFILES

DEFAULT_PROFILES_DIR = REGISTER_PROFILES

# Register count of each field type; `ascii` takes its size from the field.
TYPE_SIZES = {"u16": 1, "u32": 2, "measure": 2, "counter": 4}
FIELD_TYPES = (*TYPE_SIZES, "ascii")


class ProfileError(ValueError):
    """A profile file does not say what the collector needs; the message names file and path."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int
    type: str  # u16 | u32 | measure | counter | ascii
    size: int  # registers
    scale: Fraction | None  # measure/counter: value of one count; None for raw types
    writable: bool = False
    since: int = 1  # profile version that introduced the field (older devices: reserved)


@dataclass(frozen=True, slots=True)
class Block:
    name: str
    base: int
    size: int
    fields: dict[str, Field]
    stride: int = 0
    instances: str | None = None  # header field holding the instance count, e.g. nozzle_count

    def address(self, instance: int) -> int:
        """Protocol address of 1-based `instance` (blocks without instances: instance 1)."""
        return self.base + self.stride * (instance - 1)

    @property
    def read_size(self) -> int:
        """Registers up to the end of the last field (trailing reserved space is not read)."""
        return max(f.offset + f.size for f in self.fields.values())


@dataclass(frozen=True, slots=True)
class Fifo:
    """Cursor FIFO: status registers, then a window of fixed-size records."""

    name: str  # stream name: transactions | events | inventory | deliveries
    base: int
    status: dict[str, Field]
    window_offset: int
    window_records: int
    record_size: int
    record: dict[str, Field]

    @property
    def read_count(self) -> int:
        """One read = status + the whole window."""
        return self.window_offset + self.window_records * self.record_size

    @property
    def ack_address(self) -> int:
        return self.base + self.status["ack"].offset


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    code: int
    low_word_first: bool
    floating: bool  # measures are float32 and counters float64 instead of scaled integers


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    profile_id: int
    version: int
    dialects: dict[str, Dialect]
    max_read_registers: int
    blocks: dict[str, Block]
    fifos: dict[str, Fifo]
    event_codes: dict[int, str]
    source: str  # file it came from, for error messages


_T = TypeVar("_T")


def _mapping(value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected a mapping, found {type(value).__name__}")
    return value


@overload
def _need(mapping: object, key: str, where: str, kind: type[_T]) -> _T: ...
@overload
def _need(mapping: object, key: str, where: str, kind: tuple[type, ...]) -> object: ...
def _need(mapping: object, key: str, where: str, kind: type | tuple[type, ...]) -> object:
    mapping = _mapping(mapping, where)
    if key not in mapping:
        raise ProfileError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ProfileError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, "
                           f"found {value!r}")
    return value


def _field(raw: object, where: str) -> Field:
    raw = _mapping(raw, where)
    name = _need(raw, "name", where, str)
    where = f"{where}({name})"
    offset = _need(raw, "offset", where, int)
    ftype = _need(raw, "type", where, str)
    if ftype not in FIELD_TYPES:
        raise ProfileError(f"{where}.type: expected one of {FIELD_TYPES}, found {ftype!r}")
    size = _need(raw, "size", where, int) if ftype == "ascii" else TYPE_SIZES[ftype]
    scale: Fraction | None = None
    if ftype in ("measure", "counter"):
        raw_scale = _need(raw, "scale", where, (int, float))
        # str() keeps the decimal the author wrote (0.01, not the nearest binary float).
        scale = Fraction(str(raw_scale))
        if scale <= 0:
            raise ProfileError(f"{where}.scale: must be positive, found {raw_scale}")
    if offset < 0 or size <= 0:
        raise ProfileError(f"{where}: offset {offset} / size {size} out of range")
    since = raw.get("since", 1)
    if not isinstance(since, int) or isinstance(since, bool) or since < 1:
        raise ProfileError(f"{where}.since: expected a profile version ≥ 1, found {since!r}")
    return Field(name, offset, ftype, size, scale, raw.get("access") == "rw", since)


def _fields(raw: object, where: str, limit: int | None) -> dict[str, Field]:
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{where}: expected a non-empty list of fields")
    fields: dict[str, Field] = {}
    used: dict[int, str] = {}
    for i, item in enumerate(raw):
        f = _field(item, f"{where}[{i}]")
        if f.name in fields:
            raise ProfileError(f"{where}[{i}]: duplicate field name {f.name!r}")
        for reg in range(f.offset, f.offset + f.size):
            if reg in used:
                raise ProfileError(f"{where}[{i}]({f.name}): register {reg} overlaps {used[reg]!r}")
            used[reg] = f.name
        if limit is not None and f.offset + f.size > limit:
            raise ProfileError(f"{where}[{i}]({f.name}): ends at {f.offset + f.size}, "
                               f"beyond the size {limit}")
        fields[f.name] = f
    return fields


def _fifo(raw: object, where: str, max_read: int) -> Fifo:
    raw = _mapping(raw, where)
    name = _need(raw, "name", where, str)
    where = f"{where}({name})"
    window_offset = _need(raw, "window_offset", where, int)
    record_size = _need(raw, "record_size", where, int)
    fifo = Fifo(
        name=name,
        base=_need(raw, "base", where, int),
        status=_fields(raw.get("status"), f"{where}.status", window_offset),
        window_offset=window_offset,
        window_records=_need(raw, "window_records", where, int),
        record_size=record_size,
        record=_fields(raw.get("record"), f"{where}.record", record_size),
    )
    for needed in ("pending", "head_seq", "ack"):
        if needed not in fifo.status:
            raise ProfileError(f"{where}.status: missing field {needed!r}")
    for needed in ("seq", "crc"):
        if needed not in fifo.record:
            raise ProfileError(f"{where}.record: missing field {needed!r}")
    crc = fifo.record["crc"]
    if crc.offset != record_size - 1 or crc.type != "u16":
        raise ProfileError(f"{where}.record(crc): expected a u16 in the last register "
                           f"({record_size - 1}), found {crc.type} at {crc.offset}")
    if fifo.read_count > max_read:
        raise ProfileError(f"{where}: status + window = {fifo.read_count} registers, more than "
                           f"max_read_registers {max_read}")
    return fifo


def _dialect(name: str, raw: object, where: str) -> Dialect:
    order = _need(raw, "word_order", where, str)
    numeric = _need(raw, "numeric", where, str)
    if order not in ("high_first", "low_first"):
        raise ProfileError(f"{where}.word_order: expected high_first|low_first, found {order!r}")
    if numeric not in ("scaled_int", "float"):
        raise ProfileError(f"{where}.numeric: expected scaled_int|float, found {numeric!r}")
    return Dialect(name, _need(raw, "code", where, int), order == "low_first", numeric == "float")


def parse_profile(doc: object, source: str) -> Profile:
    where = source
    doc = _mapping(doc, where)
    name = _need(doc, "profile", where, str)
    max_read = _need(doc, "max_read_registers", where, int)
    dialects_raw = _need(doc, "dialects", where, dict)
    dialects = {k: _dialect(k, v, f"{where}: dialects.{k}") for k, v in dialects_raw.items()}
    blocks: dict[str, Block] = {}
    for i, raw in enumerate(_need(doc, "blocks", where, list)):
        bw = f"{where}: blocks[{i}]"
        bname = _need(raw, "name", bw, str)
        size = _need(raw, "size", bw, int)
        blocks[bname] = Block(bname, _need(raw, "base", bw, int), size,
                              _fields(raw.get("fields"), f"{bw}({bname}).fields", size),
                              int(raw.get("stride", 0)), raw.get("instances"))
    fifos: dict[str, Fifo] = {}
    for i, raw in enumerate(_need(doc, "fifos", where, list)):
        fifo = _fifo(raw, f"{where}: fifos[{i}]", max_read)
        fifos[fifo.name] = fifo
    codes = doc.get("event_codes") or {}
    if not isinstance(codes, dict):
        raise ProfileError(f"{where}: event_codes: expected a mapping code → name")
    return Profile(name, _need(doc, "profile_id", where, int), _need(doc, "version", where, int),
                   dialects, max_read, blocks, fifos, {int(k): str(v) for k, v in codes.items()},
                   source)


def load_profile(path: Path) -> Profile:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_profile(doc, str(path))


def load_profiles(directory: Path | None = None) -> dict[str, Profile]:
    """Every `*.yaml` profile in `directory`, keyed by its `profile` name."""
    directory = Path(directory or DEFAULT_PROFILES_DIR)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ProfileError(f"{directory}: no register profiles (*.yaml) found; "
                           f"point --profiles at the contracts/register_profiles directory")
    profiles = {}
    for path in files:
        profile = load_profile(path)
        profiles[profile.name] = profile
    return profiles
