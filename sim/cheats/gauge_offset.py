"""gauge_offset (液位偏移): the gauge adds `offset_mm` to a tank's product level — a raised
float or a doctored probe (domain brief §6 #19 "stuck or raised float", #20) — and computes
its volumes from the offset level: a step at activation, then a constant bias.
"""

from __future__ import annotations

from typing import Any

from sim.cheats.gauge import GaugeCheat, truth_at
from sim.cheats.params import Param
from sim.records import GaugeReading
from sim.vcf import vcf


class GaugeOffset(GaugeCheat):
    kind = "gauge_offset"
    cheat_class = "STOCK"
    summary = "the gauge adds offset_mm to a tank's level"
    param_spec = {
        "offset_mm": Param("number", required=True, minimum=-500.0, maximum=500.0,
                           nonzero=True, unit="mm", doc="added to the level the probe measures"),
    }

    def begin(self, unit: Any, t: float) -> None:
        self.unit = unit

    def tamper(self, reading: GaugeReading, t: float) -> GaugeReading:
        table = self.unit.gauge_errors.table  # the gauge's own capacity table
        level = min(max(reading.level_mm + self.p["offset_mm"], reading.water_level_mm),
                    float(table.diameter_mm))
        total = table.volume_at(level)
        gross = total - reading.water_l
        return GaugeReading(level_mm=level, water_level_mm=reading.water_level_mm,
                            temperature_c=reading.temperature_c, gross_l=gross,
                            volume_20c_l=gross * vcf(self.unit.grade, reading.temperature_c),
                            ullage_l=table.capacity_l - total, water_l=reading.water_l)

    def misstated_l(self, unit: Any, t: float) -> float:
        truth = truth_at(unit, t)
        table = unit.gauge_errors.table
        level = min(max(truth.level_mm + self.p["offset_mm"], 0.0), float(table.diameter_mm))
        return abs(table.volume_at(level) - table.volume_at(truth.level_mm))

    def values(self) -> tuple[float, float]:
        return 0.0, float(self.p["offset_mm"])

    def trace(self) -> list[str]:
        return ["gauge_step"]

    def expected_alerts(self) -> list[str]:
        return ["gauge_step", "tank_gain" if self.p["offset_mm"] > 0 else "tank_loss"]
