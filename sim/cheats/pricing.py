"""Base of the price cheats (价格作弊): a tap on the dispenser's nozzles that changes what is
charged. The effect is the litre-equivalent of the overcharge: Σ (amount − displayed
volume × posted price) / posted price, the litres customers paid for and did not get.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.cheats import taps
from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES

MARKUP = Param("number", required=True, minimum=-0.5, maximum=0.5, nonzero=True,
               unit="fraction", doc="relative overcharge, e.g. 0.02 (2 %)")


def round_half_up(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


class PriceTap(taps.Tap):
    """Measures the overcharge of each fill (subclasses change the fill)."""

    __slots__ = ("cheat",)

    def __init__(self, cheat: PriceCheat) -> None:
        self.cheat = cheat

    def lifted(self, nozzle: Any) -> None:
        _, _, _, shown, amount, _ = nozzle.fill()
        posted = nozzle.posted_price_fen
        self.cheat.effect_l += (amount - shown * posted / 1000.0) / posted


class PriceCheat(Cheat):
    target = "dispenser"
    schedules = SCHEDULES
    param_spec: ClassVar[dict[str, Param]] = {"markup": MARKUP}
    tap_class: ClassVar[type[PriceTap]] = PriceTap

    def prepare(self) -> None:
        self._taps: list[tuple[Any, PriceTap]] = []

    def switch_on(self, t: float) -> tuple[float, float]:
        for n in self.nozzles():
            tap = self.tap_class(self)
            taps.install(n, tap)
            self._taps.append((n, tap))
        return 1.0, 1.0 + self.p["markup"]

    def switch_off(self, t: float) -> tuple[float, float]:
        for n, tap in self._taps:
            taps.remove(n, tap)
        self._taps = []
        return 1.0 + self.p["markup"], 1.0

    def attribution_level(self) -> str:
        return "nozzle" if self.config.nozzle else "device"
