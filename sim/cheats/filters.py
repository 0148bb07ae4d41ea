"""Base of the cheats that keep some fills out of a dispenser's transaction FIFO (截留).

The FIFO assigns sequence numbers when a record is pushed, so a kept-out fill leaves no
sequence gap; whether the nozzle's electronic totalizer still counts it is the kind's
choice (`counted`). Every kept-out fill is in `off_book_draws`, and its litres are the
cheat's effect.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.cheats import offbook, taps
from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES

EVERY_N = Param("integer", required=True, minimum=2, maximum=10000,
                doc="one fill in every_n of the dispenser (nozzle) is kept out, counted from "
                    "the switch-on")


class FilterTap(taps.Tap):
    __slots__ = ("cheat",)

    def __init__(self, cheat: FilterCheat) -> None:
        self.cheat = cheat

    def settle(self, nozzle: Any, drawn_20c_l: float) -> int:
        return self.cheat.verdict()

    def hidden(self, nozzle: Any, drawn_20c_l: float, counted: bool) -> None:
        offbook.record_hidden_fill(self.cheat, nozzle, drawn_20c_l, counted)


class FilterCheat(Cheat):
    target = "dispenser"
    attribution = "device"
    schedules = SCHEDULES
    param_spec: ClassVar[dict[str, Param]] = {"every_n": EVERY_N}
    counted: ClassVar[bool] = True  # the totalizer still counts a kept-out fill

    def prepare(self) -> None:
        self._taps: list[tuple[Any, FilterTap]] = []
        self.seen = 0

    def verdict(self) -> int:
        """NORMAL, or HIDE / HIDE_UNCOUNTED for the fill being settled."""
        self.seen += 1
        if self.seen % self.p["every_n"]:
            return taps.NORMAL
        return taps.HIDE if self.counted else taps.HIDE_UNCOUNTED

    def switch_on(self, t: float) -> tuple[float, float]:
        self.seen = 0
        for n in self.nozzles():
            tap = FilterTap(self)
            taps.install(n, tap)
            self._taps.append((n, tap))
        return 0.0, 1.0 / self.p["every_n"]

    def switch_off(self, t: float) -> tuple[float, float]:
        for n, tap in self._taps:
            taps.remove(n, tap)
        self._taps = []
        return 1.0 / self.p["every_n"], 0.0
