"""Pacing of the world's clock: where a run goes fast and where it slows down.

A run at `max` compression (flow-controlled by the FIFOs' high-water marks) would pass a
ten-minute collector crash in a few milliseconds of wall time, and would make wall-clock
latency meaningless. A harness therefore gives the devices pace windows: simulated
intervals served at a fixed compression (a fault lasting long enough in wall time to act
on it; a near-real-time segment where latency is measured), and an optional ceiling on the
compression everywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALL = "*"  # PaceWindow.exempt: every station


@dataclass(frozen=True)
class PaceWindow:
    """Serve simulated [start, end) at `compression`, at most: the world still holds while
    a FIFO is at its high-water mark, so a window faster than the chain can carry does not
    overflow the devices of a correct SUT. `exempt`: stations whose FIFOs do not hold it
    (a fault keeps their collector from draining: they fill, and overflow, as the fault makes
    them; "*": all). `latency`: log when records appear."""

    start: float
    end: float
    compression: float
    latency: bool = False
    exempt: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise ValueError(f"pace window {self.start}..{self.end}: end must follow start")
        if not (math.isfinite(self.compression) and self.compression > 0):
            raise ValueError(f"pace window at {self.start}: compression must be > 0, "
                             f"got {self.compression!r}")

    @classmethod
    def parse(cls, text: str) -> PaceWindow:
        """`START:END:COMPRESSION[:latency][:exempt=ID,ID…]`, times in epoch seconds."""
        parts = text.split(":")
        exempt: tuple[str, ...] = ()
        if len(parts) > 3 and parts[-1].startswith("exempt="):
            exempt = tuple(x for x in parts.pop()[len("exempt="):].split(",") if x)
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "latency"):
            raise ValueError(f"--pace {text!r}: expected "
                             f"START:END:COMPRESSION[:latency][:exempt=ID,ID…] (epoch seconds)")
        try:
            start, end, comp = (float(p) for p in parts[:3])
        except ValueError:
            raise ValueError(f"--pace {text!r}: START, END and COMPRESSION must be numbers") from None
        return cls(start, end, comp, len(parts) == 4, exempt)

    def format(self) -> str:
        return (f"{self.start!r}:{self.end!r}:{self.compression!r}"
                + (":latency" if self.latency else "")
                + (f":exempt={','.join(self.exempt)}" if self.exempt else ""))


class Pacer:
    """Which compression is in force at a simulated time, and how far the world may go."""

    def __init__(self, windows: tuple[PaceWindow, ...] | list[PaceWindow] = (),
                 default: float | None = None, ceiling: float | None = None) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: w.start))
        for a, b in zip(self.windows, self.windows[1:], strict=False):
            if b.start < a.end:
                raise ValueError(f"pace windows overlap: {a.start}..{a.end} and {b.start}..{b.end}")
        if ceiling is not None and not ceiling > 0:
            raise ValueError(f"compression ceiling must be > 0, got {ceiling!r}")
        self.default, self.ceiling = default, ceiling
        self._anchor: tuple[float, float, object] | None = None  # (wall, sim, regime)

    def reset(self) -> None:
        """Start the regime's clock afresh (after the world was held)."""
        self._anchor = None

    def window(self, sim: float) -> PaceWindow | None:
        for w in self.windows:
            if w.start <= sim < w.end:
                return w
            if w.start > sim:
                break
        return None

    def exempt(self, sim: float) -> tuple[str, ...]:
        """Stations whose FIFOs do not hold the world at `sim` (PaceWindow.exempt)."""
        win = self.window(sim)
        return win.exempt if win else ()

    def _next_start(self, sim: float) -> float:
        return next((w.start for w in self.windows if w.start > sim), math.inf)

    def target(self, sim: float, wall: float, step: float) -> tuple[float, bool]:
        """(simulated time to advance to, whether flow control applies)."""
        win = self.window(sim)
        regime = win if win else ("default", self.default)
        if self._anchor is None or self._anchor[2] != regime:
            self._anchor = (wall, sim, regime)  # a new regime starts its clock here
        wall0, sim0, _ = self._anchor
        if win is not None:
            return (min(sim0 + (wall - wall0) * win.compression, win.end),
                    ALL not in win.exempt)
        limit = self._next_start(sim)
        if self.default is not None:
            return min(sim0 + (wall - wall0) * self.default, limit), False
        target = sim + step
        if self.ceiling is not None:
            target = min(target, sim0 + (wall - wall0) * self.ceiling)
        return min(target, limit), True
