"""Register images: the registers of one Modbus unit, computed from live state on each read.

An image is a sorted list of regions (header block, one block per nozzle/tank, one
region per FIFO from its status registers to the end of its window). A read fills the
requested range from the regions it overlaps; addresses outside every region are never
asked for here, because the server marks them invalid (exception 02) before calling us.
Rendered regions are cached per world step (`Clock.generation`) or per FIFO version, so
a busy collector costs an encode only when something changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from devices.codec import Codec
from devices.fifo import NO_SEQ, CursorFifo
from devices.profile import Field, FifoSpec


class Clock(Protocol):
    """Simulated time as the devices see it; `generation` changes whenever the world steps."""

    @property
    def now(self) -> float: ...

    @property
    def generation(self) -> int: ...


class IllegalAddress(LookupError):
    """A read or write outside every region (Modbus exception 02)."""


class CivilTime:
    """Device RTC broken-down local time (北京时间 by default), cached per second."""

    def __init__(self, timezone: str) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise ValueError(f"unknown timezone {timezone!r}: {exc}") from None
        self._epoch = -1
        self._civil = (0, 0, 0, 0, 0, 0)

    def civil(self, epoch: int) -> tuple[int, int, int, int, int, int]:
        if epoch != self._epoch:
            d = datetime.fromtimestamp(epoch, self.zone)
            self._civil = (d.year, d.month, d.day, d.hour, d.minute, d.second)
            self._epoch = epoch
        return self._civil


class FieldBlock:
    """Encodes a fixed set of fields into `size` registers (reserved registers read 0)."""

    def __init__(self, fields: Sequence[Field], size: int, codec: Codec, where: str) -> None:
        self.size = size
        self.where = where
        self.names = frozenset(f.name for f in fields)
        self._encoders = [(f.offset, f.end, f.name, codec.encoder(f)) for f in fields]

    def check_names(self, provided: AbstractSet[str]) -> None:
        missing = self.names - set(provided)
        extra = set(provided) - self.names
        if missing or extra:
            raise ValueError(
                f"{self.where}: values do not match the profile: missing {sorted(missing)}, "
                f"unknown {sorted(extra)}"
            )

    def render(self, values: Mapping[str, object]) -> list[int]:
        regs = [0] * self.size
        for start, end, name, enc in self._encoders:
            regs[start:end] = enc(values[name])
        return regs


@dataclass
class Region:
    start: int
    size: int
    render: Callable[[], list[int]]
    writable: tuple[int, ...] = ()  # absolute addresses that accept writes

    @property
    def end(self) -> int:
        return self.start + self.size


def live_region(
    start: int,
    block: FieldBlock,
    values: Callable[[], Mapping[str, object]],
    clock: Clock,
) -> Region:
    """A block rendered from live values, re-rendered once per world step."""
    cache: list = [None, None]  # generation, registers

    def render() -> list[int]:
        gen = clock.generation
        if cache[0] != gen:
            cache[1] = block.render(values())
            cache[0] = gen
        return cache[1]

    return Region(start, block.size, render)


class FifoRegion:
    """Status registers + window of one cursor FIFO, re-rendered when the FIFO changes."""

    def __init__(self, spec: FifoSpec, fifo: CursorFifo, codec: Codec, where: str) -> None:
        self.spec = spec
        self.fifo = fifo
        self.status = FieldBlock(spec.status, spec.window_offset, codec, f"{where} status")
        self.status.check_names({"pending", "head_seq", "dropped", "ack"})
        self._empty_slot = [NO_SEQ] * spec.record_size
        self._version = -1
        self._regs: list[int] = []

    def render(self) -> list[int]:
        fifo = self.fifo
        if fifo.version != self._version:
            regs = self.status.render({
                "pending": fifo.pending,
                "head_seq": fifo.head_seq,
                "dropped": fifo.dropped,
                "ack": fifo.last_ack,
            })
            window = fifo.window(self.spec.window_records)
            for rec in window:
                regs.extend(rec)
            for _ in range(self.spec.window_records - len(window)):
                regs.extend(self._empty_slot)
            self._regs = regs
            self._version = fifo.version
        return self._regs

    def region(self) -> Region:
        return Region(self.spec.base, self.spec.size, self.render, (self.spec.ack_address,))


class DeviceImage:
    """All regions of one unit; `fill` serves a read in place."""

    def __init__(self, regions: Sequence[Region]) -> None:
        self.regions = sorted(regions, key=lambda r: r.start)
        for a, b in zip(self.regions, self.regions[1:], strict=False):
            if b.start < a.end:
                raise ValueError(f"regions at {a.start} and {b.start} overlap")
        self._starts = [r.start for r in self.regions]

    def fill(self, registers: list[int], offset: int, address: int, count: int) -> None:
        """Write registers [address, address+count) into registers[offset:]."""
        end = address + count
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            raise IllegalAddress(f"address {address} is outside every block")
        a = address
        regions = self.regions
        while a < end:
            if i >= len(regions) or not regions[i].start <= a < regions[i].end:
                raise IllegalAddress(f"address {a} is outside every block")
            r = regions[i]
            stop = min(end, r.end)
            regs = r.render()
            registers[offset + a - address: offset + stop - address] = regs[a - r.start: stop - r.start]
            a = stop
            i += 1

    def covers(self, address: int, count: int) -> bool:
        """Every register of [address, address+count) lies in a region (else exception 02)."""
        end = address + count
        i = bisect.bisect_right(self._starts, address) - 1
        a = address
        while a < end:
            if i < 0 or i >= len(self.regions) or not self.regions[i].start <= a < self.regions[i].end:
                return False
            a = self.regions[i].end
            i += 1
        return True

    def read(self, address: int, count: int) -> list[int]:
        out = [0] * count
        self.fill(out, 0, address, count)
        return out

    def writable(self) -> set[int]:
        return {a for r in self.regions for a in r.writable}
