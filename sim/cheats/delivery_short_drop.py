"""delivery_short_drop (卸油短量): the tanker drops `short_fraction` less than its bill of
lading while the station keys in the full BOL (`bol_keyed_20c_l` = BOL) — product diverted
on the way or left in the compartments (domain brief §6 #15 family; transit losses are
~0.2 %). `drops` limits how many drops (0 = every drop while on).
"""

from __future__ import annotations

from typing import Any

from sim.cheats.delivery import DROPS, DeliveryCheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES


class DeliveryShortDrop(DeliveryCheat):
    kind = "delivery_short_drop"
    cheat_class = "DELIV"
    summary = "the tanker drops short_fraction less than the BOL keyed in"
    schedules = SCHEDULES
    param_spec = {
        "short_fraction": Param("number", required=True, minimum=0.0, exclusive_minimum=True,
                                maximum=0.5, unit="fraction", doc="share of the drop withheld"),
        "drops": DROPS,
    }

    def change(self, plan: Any) -> None:
        x = self.p["short_fraction"]
        plan.short_fraction = 1.0 - (1.0 - plan.short_fraction) * (1.0 - x)

    def dropped(self, record: Any) -> None:
        x = self.p["short_fraction"]
        self.effect_l += record.true_drop_20c_l * x / (1.0 - x)

    def values(self) -> tuple[float, float]:
        return 0.0, float(self.p["short_fraction"])

    def trace(self) -> list[str]:
        return ["delivery_short", "tank_loss"]

    def expected_alerts(self) -> list[str]:
        return ["delivery_short", "tank_loss"]
