"""hot_delivery (热油卸油, honest look-alike): the tank's next `drops` drops arrive `delta_c`
warmer than usual (a tanker standing in the sun). The 20 °C volume is the BOL's; the gross
volume the gauge sees is larger and shrinks as the product cools (domain brief §6 #23).
Effect: the extra gross litres at the drop.
"""

from __future__ import annotations

from typing import Any

from sim.cheats.delivery import DeliveryCheat
from sim.cheats.params import Param
from sim.vcf import vcf


class HotDelivery(DeliveryCheat):
    kind = "hot_delivery"
    cheat_class = "LOOK"
    summary = "the tank's next drops arrive delta_c warmer than usual"
    param_spec = {
        "delta_c": Param("number", required=True, minimum=-30.0, maximum=30.0, nonzero=True,
                         unit="°C", doc="added to the tanker's temperature"),
        "drops": Param("integer", default=1, minimum=1, maximum=1000,
                       doc="how many drops from the switch-on"),
    }

    def change(self, plan: Any) -> None:
        plan.temperature_delta_c += self.p["delta_c"]

    def dropped(self, record: Any) -> None:
        hot = record.delivery_temperature_c
        usual = hot - self.p["delta_c"]
        self.effect_l += record.true_drop_20c_l * (1.0 / vcf(record.grade, hot)
                                                   - 1.0 / vcf(record.grade, usual))

    def values(self) -> tuple[float, float]:
        return 0.0, float(self.p["delta_c"])

    def trace(self) -> list[str]:
        return ["warm_delivery"]
