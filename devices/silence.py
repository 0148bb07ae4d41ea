"""Devices that stop answering (fault `device_silent`, docs/scenarios.md).

A silence makes one device (or every device of a station) ignore every Modbus request
from simulated time `start` until `end`: no reply at all, so the collector's request times
out, as with a dead RS-485 node or a crashed dispenser board. The world goes on and the
device's FIFOs keep buffering, so nothing is lost once it answers again (unless a FIFO
overflows meanwhile, which the ground truth records as for any overflow).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pymodbus.exceptions import NoSuchIdException


@dataclass(frozen=True, slots=True)
class Silence:
    """`device` None = every device of the station; times are simulated epoch seconds."""

    station_id: str
    device: str | None
    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise ValueError(f"silence of {self.where}: expected start < end (finite epoch "
                             f"seconds), found start={self.start!r} end={self.end!r}")

    @property
    def where(self) -> str:
        return f"{self.station_id}/{self.device or '*'}"

    def covers(self, station_id: str, device: str) -> bool:
        return self.station_id == station_id and self.device in (None, device)


class DeviceSilent(NoSuchIdException):
    """Raised by a silent device's request hook. pymodbus servers started with
    `ignore_missing_devices` answer a NoSuchIdException with no reply at all."""


class SilenceWindows:
    """The silent intervals [start, end) of one device, checked on every request."""

    __slots__ = ("windows",)

    def __init__(self, windows: Iterable[tuple[float, float]] = ()) -> None:
        self.windows = tuple(sorted(windows))

    def __bool__(self) -> bool:
        return bool(self.windows)

    def silent_at(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.windows)


def windows_for(silences: Iterable[Silence], station_id: str, device: str) -> SilenceWindows:
    return SilenceWindows((s.start, s.end) for s in silences if s.covers(station_id, device))
