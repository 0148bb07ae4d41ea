"""Base of the cheats and look-alikes that act on a tank's deliveries (卸油).

Each registers a drop adjuster with the station's DeliveryManager when bound; for every drop
of its tank the adjuster may change the drop's plan (sim.deliveries.DropPlan: temperature,
short fraction, BOL keyed in or not) and ask to see the finished DeliveryRecord. Only drops
that start while the cheat is on are touched; the first such drop's start is the cheat's
first_start (switching on changes nothing until a drop comes).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.cheats.base import Cheat
from sim.cheats.params import Param

DROPS = Param("integer", default=0, minimum=0, maximum=1000,
              doc="how many drops it acts on from the switch-on (0 = every drop while on)")


class DeliveryCheat(Cheat):
    target = "tank"
    attribution = "tank"
    acts_on_switch = False
    param_spec: ClassVar[dict[str, Param]] = {"drops": DROPS}

    def prepare(self) -> None:
        self.touched = 0  # drops acted on
        self.h.deliveries.add_adjuster(self.config.tank, self.adjust)

    def wants(self, tag: object) -> bool:
        """Whether this cheat acts on a drop starting now with order tag `tag`."""
        limit = self.p.get("drops", 0)
        return self.active and (not limit or self.touched < limit)

    def adjust(self, unit: Any, start: float, tag: object, plan: Any) -> None:
        if self.wants(tag):
            self.effect_at(start)
            self.change(plan)
            plan.done.append(self._done)

    def _done(self, record: Any) -> None:
        self.touched += 1
        self.dropped(record)

    def change(self, plan: Any) -> None:
        """Change the drop's plan (override)."""

    def dropped(self, record: Any) -> None:
        """The drop this cheat changed is finished (override: measure the effect)."""

    def switch_on(self, t: float) -> tuple[float, float]:
        self.touched = 0
        return self.values()

    def switch_off(self, t: float) -> tuple[float, float]:
        honest, changed = self.values()
        return changed, honest

    def values(self) -> tuple[float, float]:
        return 0.0, 1.0
