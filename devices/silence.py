"""Devices that answer badly or not at all for a while (faults `device_silent`,
`modbus_busy`, `modbus_slow`; docs/faults.md).

A window makes one device (or every device of a station) misbehave on Modbus from simulated
time `start` until `end`:

- `silent`: no reply at all, so the collector's request times out, as with a dead RS-485 node
  or a crashed dispenser board;
- `busy`: every request is answered with exception 06 (server device busy), as a dispenser
  controller does while it is occupied;
- `slow`: every reply comes `delay_s` wall seconds late (a loaded controller, a long line).

The world goes on and the device's FIFOs keep buffering, so nothing is lost once it answers
properly again (unless a FIFO overflows meanwhile, which the ground truth records as for any
overflow).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pymodbus.exceptions import NoSuchIdException

MODES = ("silent", "busy", "slow")


@dataclass(frozen=True, slots=True)
class Silence:
    """`device` None = every device of the station; times are simulated epoch seconds."""

    station_id: str
    device: str | None
    start: float
    end: float
    mode: str = "silent"  # one of MODES
    delay_s: float = 0.0  # mode slow: how late each reply comes (wall seconds)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise ValueError(f"silence of {self.where}: expected start < end (finite epoch "
                             f"seconds), found start={self.start!r} end={self.end!r}")
        if self.mode not in MODES:
            raise ValueError(f"silence of {self.where}: mode {self.mode!r} is not one of "
                             f"{list(MODES)}")
        if self.mode == "slow" and not 0 < self.delay_s <= 60:
            raise ValueError(f"silence of {self.where}: mode slow needs 0 < delay_s <= 60, "
                             f"found {self.delay_s!r}")

    @property
    def where(self) -> str:
        return f"{self.station_id}/{self.device or '*'}"

    def covers(self, station_id: str, device: str) -> bool:
        return self.station_id == station_id and self.device in (None, device)


class DeviceSilent(NoSuchIdException):
    """Raised by a silent device's request hook. pymodbus servers started with
    `ignore_missing_devices` answer a NoSuchIdException with no reply at all."""


class SilenceWindows:
    """The intervals [start, end) of one device's misbehaviour, checked on every request:
    (start, end, mode, delay_s) tuples."""

    __slots__ = ("windows",)

    def __init__(self, windows: Iterable[tuple[float, float] | tuple[float, float, str, float]]
                 = ()) -> None:
        self.windows = tuple(sorted(w if len(w) == 4 else (*w, "silent", 0.0) for w in windows))

    def __bool__(self) -> bool:
        return bool(self.windows)

    def silent_at(self, t: float) -> bool:
        return self.mode_at(t)[0] == "silent"

    def mode_at(self, t: float) -> tuple[str | None, float]:
        """(mode, delay_s) of the window covering `t` (silent wins over the others)."""
        found: tuple[str | None, float] = (None, 0.0)
        for start, end, mode, delay in self.windows:
            if start <= t < end:
                if mode == "silent":
                    return mode, delay
                found = (mode, delay)
        return found


def windows_for(silences: Iterable[Silence], station_id: str, device: str) -> SilenceWindows:
    return SilenceWindows((s.start, s.end, s.mode, s.delay_s) for s in silences
                          if s.covers(station_id, device))
