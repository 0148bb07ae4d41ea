"""gauge_frozen (液位冻结): the gauge's reading of a tank stays at its value at activation — a
stuck float or a doctored probe (domain brief §6 #19 "level flat-lines"). Deliveries and
sales no longer move it.
"""

from __future__ import annotations

from typing import Any

from sim.cheats.gauge import GaugeCheat, truth_at
from sim.records import GaugeReading


class GaugeFrozen(GaugeCheat):
    kind = "gauge_frozen"
    cheat_class = "STOCK"
    summary = "the gauge's reading of a tank stays at its value at activation"

    def begin(self, unit: Any, t: float) -> None:
        assert self.rng is not None
        self.frozen = unit.gauge_errors.read(truth_at(unit, t), t, self.rng)

    def tamper(self, reading: GaugeReading, t: float) -> GaugeReading:
        return self.frozen

    def misstated_l(self, unit: Any, t: float) -> float:
        return abs(self.frozen.gross_l - truth_at(unit, t).gross_l)

    def values(self) -> tuple[float, float]:
        return 0.0, self.frozen.level_mm

    def trace(self) -> list[str]:
        return ["gauge_flat"]

    def expected_alerts(self) -> list[str]:
        return ["gauge_frozen"]
