"""Devices that answer badly or not at all for a while (faults `device_silent`,
`modbus_busy`, `modbus_slow`, `rtu_line_noise`, `modbus_garbled`; docs/faults.md).

A window makes one device (or every device of a station) misbehave on Modbus from simulated
time `start` until `end`:

- `silent`: no reply at all, so the collector's request times out, as with a dead RS-485 node
  or a crashed dispenser board;
- `busy`: every request is answered with exception 06 (server device busy), as a dispenser
  controller does while it is occupied;
- `slow`: every reply comes `delay_s` wall seconds late (a loaded controller, a long line);
- `noise` (RTU) and `garbled` (TCP): a fraction `rate` of the device's reply frames is
  corrupted on the wire (`garble`, applied by devices.server where the bytes go out).

The world goes on and the device's FIFOs keep buffering, so nothing is lost once it answers
properly again (unless a FIFO overflows meanwhile, which the ground truth records as for any
overflow).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

MODES = ("silent", "busy", "slow", "noise", "garbled")
# modes that act on the reply's bytes, not on the request: the transport each one fits
WIRE_MODES = {"noise": "rtu", "garbled": "tcp"}
DEFAULT_RATE = 0.3  # a scenario's rtu_line_noise/modbus_garbled without `rate`


@dataclass(frozen=True, slots=True)
class Silence:
    """`device` None = every device of the station; times are simulated epoch seconds."""

    station_id: str
    device: str | None
    start: float
    end: float
    mode: str = "silent"  # one of MODES
    delay_s: float = 0.0  # mode slow: how late each reply comes (wall seconds)
    rate: float = 0.0  # modes noise/garbled: the fraction of replies corrupted
    seed: int = 0  # modes noise/garbled: the scenario's seed (same scenario, same pattern)

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
        if self.mode in WIRE_MODES and not 0 < self.rate <= 1:
            raise ValueError(f"silence of {self.where}: mode {self.mode} needs 0 < rate <= 1, "
                             f"found {self.rate!r}")

    @property
    def where(self) -> str:
        return f"{self.station_id}/{self.device or '*'}"

    def covers(self, station_id: str, device: str) -> bool:
        return self.station_id == station_id and self.device in (None, device)


class SilenceWindows:
    """The intervals [start, end) of one device's misbehaviour, checked on every request:
    (start, end, mode, delay_s) tuples; and its wire windows (modes noise/garbled), checked
    on every reply frame."""

    __slots__ = ("windows", "wire")

    def __init__(self, windows: Iterable[tuple[float, float] | tuple[float, float, str, float]]
                 = (), wire: Iterable[Silence] = ()) -> None:
        self.windows = tuple(sorted(w if len(w) == 4 else (*w, "silent", 0.0) for w in windows))
        self.wire = tuple(sorted(wire, key=lambda s: s.start))

    def __bool__(self) -> bool:
        return bool(self.windows or self.wire)

    def wire_at(self, t: float) -> Silence | None:
        """The noise/garbled window covering `t` (the first, if several)."""
        return next((s for s in self.wire if s.start <= t < s.end), None)

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
    mine = [s for s in silences if s.covers(station_id, device)]
    return SilenceWindows([(s.start, s.end, s.mode, s.delay_s) for s in mine
                           if s.mode not in WIRE_MODES], [s for s in mine if s.mode in WIRE_MODES])


# ---- corrupted replies (modes noise and garbled) -------------------------------------------

def garble(frame: bytes, window: Silence, device: str, n: int) -> bytes:
    """The `n`-th reply frame of `device` inside `window`, as it arrives: unchanged, or (with
    probability `window.rate`) corrupted as its mode says. The draw depends only on the seed,
    the window, the device and `n`, so the same requests meet the same corruption."""
    rng = random.Random(f"{window.seed}/{window.station_id}/{device}/{window.start!r}/{n}")
    if rng.random() >= window.rate:
        return frame
    return corrupt_rtu(frame, rng) if window.mode == "noise" else corrupt_tcp(frame, rng)


def corrupt_rtu(frame: bytes, rng: random.Random) -> bytes:
    """RS-485 noise: one to three bits flipped anywhere in the frame — CRC-16/MODBUS detects
    every error of up to three bits in a frame this short (its generator is (x+1)·p(x), p
    primitive of degree 15) — or, one time in five, the frame cut short (the line dropped)."""
    if rng.random() < 0.2:
        return frame[:rng.randrange(1, len(frame))]
    out = bytearray(frame)
    for bit in rng.sample(range(len(frame) * 8), rng.randint(1, 3)):
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def corrupt_tcp(frame: bytes, rng: random.Random) -> bytes:
    """A gateway garbling its Modbus TCP reply (MBAP: transaction id 0-1, protocol id 2-3,
    length 4-5, unit id 6; then the PDU). TCP itself delivers bytes intact, so only what a
    faulty gateway does is modelled; the register values are never silently changed."""
    how = rng.randrange(5)
    out = bytearray(frame)
    if how == 0:  # a reply to another transaction (never 0: pymodbus takes 0 as "any")
        tid = int.from_bytes(frame[0:2], "big")
        out[0:2] = ((tid - 1 + rng.randrange(1, 0xFFFF)) % 0xFFFF + 1).to_bytes(2, "big")
    elif how == 1:  # not Modbus: a protocol id other than 0
        out[2:4] = rng.randrange(1, 0x10000).to_bytes(2, "big")
    elif how == 2:  # the answer of another unit
        out[6] = (frame[6] + rng.randrange(1, 256)) % 256
    elif how == 3:  # PDU cut short, MBAP length as sent: the rest never comes
        return frame[:rng.randrange(7, len(frame))]
    else:  # PDU cut short and the length made to fit: a complete frame, an incomplete PDU
        cut = rng.randrange(8, len(frame))
        out = out[:cut]
        out[4:6] = (cut - 6).to_bytes(2, "big")
    return bytes(out)
