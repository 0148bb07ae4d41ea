"""Register profiles (寄存器表): load a profile YAML into typed, validated objects.

The YAML files in contracts/register_profiles/ are the published contract that a station
collector reads; this module only parses and checks them. Every error names the file
and the path of the offending entry (e.g. ``blocks[1].fields[3] (live_volume)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts import REGISTER_PROFILES

PROFILE_DIR = REGISTER_PROFILES

# Register count of each field type; ascii takes its size from the entry.
TYPE_SIZES = {"u16": 1, "u32": 2, "measure": 2, "counter": 4}
FIELD_TYPES = (*TYPE_SIZES, "ascii")
REQUIRED_STATUS = ("pending", "head_seq", "dropped", "ack")


class ProfileError(ValueError):
    """A register profile is malformed; the message names file, entry and problem."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    type: str  # u16 | u32 | measure | counter | ascii
    size: int  # registers
    scale: float | None = None  # measure/counter resolution in `unit`
    unit: str | None = None
    access: str = "ro"  # "ro" | "rw"
    doc: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Dialect:
    name: str
    code: int
    word_order: str  # high_first | low_first
    numeric: str  # scaled_int | float


@dataclass(frozen=True)
class Block:
    """A register block; with `instances` it repeats every `stride` registers (1-based n)."""

    name: str
    base: int
    size: int
    fields: tuple[Field, ...]
    stride: int | None = None
    instances: str | None = None  # name of the header field that counts the instances

    def instance_base(self, n: int) -> int:
        if self.stride is None:
            if n != 1:
                raise ValueError(f"block {self.name!r} is not repeated; instance {n} requested")
            return self.base
        return self.base + self.stride * (n - 1)


@dataclass(frozen=True)
class FifoSpec:
    """A cursor FIFO: status registers, then a window of the oldest pending records."""

    name: str
    base: int
    status: tuple[Field, ...]
    window_offset: int
    window_records: int
    record_size: int
    record: tuple[Field, ...]

    @property
    def size(self) -> int:
        """Registers from `base` to the end of the window (one readable block)."""
        return self.window_offset + self.window_records * self.record_size

    def status_field(self, name: str) -> Field:
        for f in self.status:
            if f.name == name:
                return f
        raise KeyError(f"FIFO {self.name!r} has no status field {name!r}")

    @property
    def ack_address(self) -> int:
        return self.base + self.status_field("ack").offset

    @property
    def crc_field(self) -> Field:
        return self.record[-1]


@dataclass(frozen=True)
class Profile:
    profile: str
    profile_id: int
    version: int
    dialects: dict[str, Dialect]
    max_read_registers: int
    blocks: tuple[Block, ...]
    fifos: tuple[FifoSpec, ...]
    event_codes: dict[int, str]
    source: str

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"profile {self.profile!r} has no block {name!r}")

    def fifo(self, name: str) -> FifoSpec:
        for f in self.fifos:
            if f.name == name:
                return f
        raise KeyError(f"profile {self.profile!r} has no FIFO {name!r}")

    def event_code(self, name: str) -> int:
        for code, event in self.event_codes.items():
            if event == name:
                return code
        raise KeyError(f"profile {self.profile!r} has no event {name!r}")

    def max_instances(self, block: Block) -> int:
        """How many instances of a repeated block fit before the next region."""
        if block.stride is None:
            return 1
        starts = [b.base for b in self.blocks if b.base > block.base]
        starts += [f.base for f in self.fifos if f.base > block.base]
        limit = min(starts) if starts else 65536
        return (limit - block.size - block.base) // block.stride + 1


def load_profile(name_or_path: str | Path) -> Profile:
    """Load ``dispenser``/``tank_gauge`` (from contracts/register_profiles/) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file not found") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    return parse_profile(data, str(path))


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    """Build and validate a Profile from already-parsed YAML data."""
    p = _Parser(source)
    return p.profile(data)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.source}: {where}: {problem}")

    def get(self, d: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(d, dict):
            raise self.fail(where, f"expected a mapping, found {type(d).__name__}")
        if key not in d:
            raise self.fail(where, f"missing key {key!r}")
        value = d[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(
                f"{where}.{key}", f"expected {_kind_name(kind)}, found {value!r}"
            )
        return value

    def profile(self, data: Any) -> Profile:
        where = "profile"
        name = self.get(data, "profile", where, str)
        dialects = self.dialects(self.get(data, "dialects", where, dict))
        max_read = self.get(data, "max_read_registers", where, int)
        if not 1 <= max_read <= 125:
            raise self.fail("max_read_registers", f"must be 1..125 (Modbus limit), found {max_read}")
        blocks = tuple(
            self.block(b, f"blocks[{i}]")
            for i, b in enumerate(self.get(data, "blocks", where, list))
        )
        fifos = tuple(
            self.fifo(f, f"fifos[{i}]", max_read)
            for i, f in enumerate(self.get(data, "fifos", where, list))
        )
        codes_raw = self.get(data, "event_codes", where, dict)
        event_codes: dict[int, str] = {}
        for code, ename in codes_raw.items():
            if not isinstance(code, int) or not 0 <= code <= 0xFFFF or not isinstance(ename, str):
                raise self.fail(f"event_codes[{code!r}]", "expected u16 code: name")
            event_codes[code] = ename
        prof = Profile(
            profile=name,
            profile_id=self.get(data, "profile_id", where, int),
            version=self.get(data, "version", where, int),
            dialects=dialects,
            max_read_registers=max_read,
            blocks=blocks,
            fifos=fifos,
            event_codes=event_codes,
            source=self.source,
        )
        self.check_layout(prof)
        return prof

    def dialects(self, raw: dict) -> dict[str, Dialect]:
        out = {}
        for name, d in raw.items():
            where = f"dialects.{name}"
            order = self.get(d, "word_order", where, str)
            numeric = self.get(d, "numeric", where, str)
            if order not in ("high_first", "low_first"):
                raise self.fail(f"{where}.word_order", f"expected high_first|low_first, found {order!r}")
            if numeric not in ("scaled_int", "float"):
                raise self.fail(f"{where}.numeric", f"expected scaled_int|float, found {numeric!r}")
            out[name] = Dialect(name, self.get(d, "code", where, int), order, numeric)
        if not out:
            raise self.fail("dialects", "at least one dialect is required")
        return out

    def field(self, raw: Any, where: str) -> Field:
        name = self.get(raw, "name", where, str)
        where = f"{where} ({name})"
        ftype = self.get(raw, "type", where, str)
        if ftype not in FIELD_TYPES:
            raise self.fail(f"{where}.type", f"expected one of {', '.join(FIELD_TYPES)}, found {ftype!r}")
        if ftype == "ascii":
            size = self.get(raw, "size", where, int)
        else:
            size = TYPE_SIZES[ftype]
            if "size" in raw and raw["size"] != size:
                raise self.fail(f"{where}.size", f"type {ftype} is {size} registers, found {raw['size']!r}")
        scale = raw.get("scale")
        if ftype in ("measure", "counter"):
            scale = self.get(raw, "scale", where, (int, float))
            if scale <= 0:
                raise self.fail(f"{where}.scale", f"must be > 0, found {scale}")
        elif scale is not None:
            raise self.fail(f"{where}.scale", f"only measure/counter fields are scaled ({ftype})")
        access = raw.get("access", "ro")
        if access not in ("ro", "rw"):
            raise self.fail(f"{where}.access", f"expected ro|rw, found {access!r}")
        offset = self.get(raw, "offset", where, int)
        if offset < 0 or size < 1:
            raise self.fail(where, f"offset must be >= 0 and size >= 1 (offset {offset}, size {size})")
        return Field(name, offset, ftype, size, float(scale) if scale is not None else None,
                     raw.get("unit"), access, raw.get("doc", ""))

    def fields(self, raw: list, where: str, size: int) -> tuple[Field, ...]:
        fields = tuple(self.field(f, f"{where}[{i}]") for i, f in enumerate(raw))
        self.check_fields(fields, where, size)
        return fields

    def check_fields(self, fields: tuple[Field, ...], where: str, size: int) -> None:
        names: set[str] = set()
        ordered = sorted(fields, key=lambda f: f.offset)
        for f in fields:
            if f.name in names:
                raise self.fail(where, f"field name {f.name!r} appears twice")
            names.add(f.name)
            if f.end > size:
                raise self.fail(where, f"field {f.name!r} (offset {f.offset}, {f.size} registers) "
                                       f"runs past the size {size}")
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.offset < a.end:
                raise self.fail(where, f"fields {a.name!r} (offset {a.offset}..{a.end - 1}) and "
                                       f"{b.name!r} (offset {b.offset}) overlap")

    def block(self, raw: Any, where: str) -> Block:
        name = self.get(raw, "name", where, str)
        where = f"{where} ({name})"
        size = self.get(raw, "size", where, int)
        base = self.get(raw, "base", where, int)
        stride = raw.get("stride")
        instances = raw.get("instances")
        if (stride is None) != (instances is None):
            raise self.fail(where, "stride and instances go together")
        if stride is not None and (not isinstance(stride, int) or stride < size):
            raise self.fail(f"{where}.stride", f"must be an integer >= size {size}, found {stride!r}")
        fields = self.fields(self.get(raw, "fields", where, list), f"{where}.fields", size)
        for f in fields:
            if f.access != "ro":
                raise self.fail(f"{where}.fields ({f.name})", "only FIFO ack registers are writable (rw)")
        return Block(name, base, size, fields, stride, instances)

    def fifo(self, raw: Any, where: str, max_read: int) -> FifoSpec:
        name = self.get(raw, "name", where, str)
        where = f"{where} ({name})"
        window_offset = self.get(raw, "window_offset", where, int)
        record_size = self.get(raw, "record_size", where, int)
        window_records = self.get(raw, "window_records", where, int)
        if window_records < 1:
            raise self.fail(f"{where}.window_records", f"must be >= 1, found {window_records}")
        status = self.fields(self.get(raw, "status", where, list), f"{where}.status", window_offset)
        names = [f.name for f in status]
        for required in REQUIRED_STATUS:
            if required not in names:
                raise self.fail(f"{where}.status", f"missing the {required!r} register")
        for f in status:
            if (f.access == "rw") != (f.name == "ack"):
                raise self.fail(f"{where}.status ({f.name})", "only the ack register is writable (rw)")
            if f.name in ("pending", "head_seq", "ack") and f.type != "u16":
                raise self.fail(f"{where}.status ({f.name})", f"must be u16, found {f.type}")
        record = self.fields(self.get(raw, "record", where, list), f"{where}.record", record_size)
        if record[0].name != "seq" or record[0].offset != 0 or record[0].type != "u16":
            raise self.fail(f"{where}.record", "the first field must be seq (u16 at offset 0)")
        crc = max(record, key=lambda f: f.offset)
        if crc.name != "crc" or crc.type != "u16" or crc.offset != record_size - 1:
            raise self.fail(f"{where}.record", f"the last register (offset {record_size - 1}) must be crc (u16)")
        spec = FifoSpec(name, self.get(raw, "base", where, int), status, window_offset,
                        window_records, record_size, tuple(sorted(record, key=lambda f: f.offset)))
        if spec.size > max_read:
            raise self.fail(where, f"status + window is {spec.size} registers, more than "
                                   f"max_read_registers {max_read}: a collector could not read it at once")
        return spec

    def check_layout(self, prof: Profile) -> None:
        header_names = {f.name for f in prof.blocks[0].fields} if prof.blocks else set()
        regions: list[tuple[int, int, str]] = []
        for i, b in enumerate(prof.blocks):
            where = f"blocks[{i}] ({b.name})"
            if b.instances is not None:
                if b.instances not in header_names:
                    raise self.fail(where, f"instances names {b.instances!r}, which is not a field of "
                                           f"the first block ({prof.blocks[0].name})")
                if prof.max_instances(b) < 1:
                    raise self.fail(where, "not even one instance fits before the next region")
                last = b.instance_base(prof.max_instances(b)) + b.size
                regions.append((b.base, last, where))
            else:
                regions.append((b.base, b.base + b.size, where))
        for i, f in enumerate(prof.fifos):
            regions.append((f.base, f.base + f.size, f"fifos[{i}] ({f.name})"))
        regions.sort()
        for (a0, a1, aw), (b0, _b1, bw) in zip(regions, regions[1:], strict=False):
            if b0 < a1:
                raise self.fail(bw, f"starts at {b0}, inside {aw} ({a0}..{a1 - 1})")
        if regions and regions[-1][1] > 65536:
            raise self.fail(regions[-1][2], "runs past register 65535")
        if not prof.event_codes or "fifo_overflow" not in prof.event_codes.values():
            raise self.fail("event_codes", "must define fifo_overflow")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__
