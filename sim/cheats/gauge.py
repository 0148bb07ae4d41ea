"""Base of the gauge cheats (液位仪作弊): a tamper applied to every reading the gauge makes of
one tank — the inventory records, the delivery readings and the live registers (the
station applies `GaugeTank.reading_tamper` right after the probe reading, in both places a
reading is made). The effect is the litres the gauge misstates (|shown − true| gross litres,
noise-free) when the tamper is removed or the run ends, summed over activations.
"""

from __future__ import annotations

import copy
from typing import Any

from sim.cheats.base import Cheat
from sim.records import GaugeReading, TankTruth
from sim.tank import Tank


def truth_at(unit: Any, t: float) -> TankTruth:
    """A tank's truth at t without touching its physics (a projected copy)."""
    ghost: Tank = copy.copy(unit.physics)
    ghost.advance(max(t, ghost.time))
    return ghost.truth()


class GaugeCheat(Cheat):
    target = "gauge"
    attribution = "tank"
    resources = ("gauge",)
    schedules = ("constant", "remote", "off_during_inspections")

    def tamper(self, reading: GaugeReading, t: float) -> GaugeReading:
        raise NotImplementedError

    def begin(self, unit: Any, t: float) -> None:
        """Called at switch-on, before the tamper is installed (override)."""

    def misstated_l(self, unit: Any, t: float) -> float:
        """|gauge − true| gross litres at t while tampered (noise-free)."""
        raise NotImplementedError

    def switch_on(self, t: float) -> tuple[float, float]:
        unit = self.h.unit_of(self.config.tank)
        self.begin(unit, t)
        unit.reading_tamper = self.tamper
        return self.values()

    def switch_off(self, t: float) -> tuple[float, float]:
        unit = self.h.unit_of(self.config.tank)
        self.effect_l += self.misstated_l(unit, t)
        unit.reading_tamper = None
        new, old = self.values()
        return old, new

    def finish(self, t: float) -> None:
        if self.active:
            self.effect_l += self.misstated_l(self.h.unit_of(self.config.tank), t)

    def values(self) -> tuple[float, float]:
        """(honest, tampered) value for the timeline (override)."""
        return 0.0, 1.0
