"""unbooked_delivery (进货不入账): a drop whose bill of lading is not keyed in at the gauge
console (`bol_keyed_20c_l` = 0): product bought off the books (domain brief §1 "purchases
not booked", §6 #15). mode "next": the next `drops` drops of the tank from the switch-on;
mode "extra": an extra off-book tanker of `compartments` compartments arrives at the
switch-on (or as soon as the tank has no order open; it turns back if they do not fit).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.cheats.delivery import DeliveryCheat
from sim.cheats.params import Param

RETRY_S = 1800.0


class UnbookedDelivery(DeliveryCheat):
    kind = "unbooked_delivery"
    cheat_class = "DELIV"
    summary = "a drop with no bill of lading keyed in (next drops, or an extra tanker)"
    param_spec = {
        "mode": Param("choice", default="next", choices=("next", "extra"),
                      doc="'next': the tank's next drops; 'extra': an extra off-book tanker"),
        "drops": Param("integer", default=1, minimum=1, maximum=1000,
                       doc="mode next: how many drops"),
        "compartments": Param("integer", default=1, minimum=1, maximum=20,
                              doc="mode extra: tanker compartments (deliveries.compartment_l)"),
    }

    def wants(self, tag: object) -> bool:
        if self.p["mode"] == "extra":
            return tag is self
        return self.active and self.touched < self.p["drops"]

    def switch_on(self, t: float) -> tuple[float, float]:
        changed = super().switch_on(t)
        if self.p["mode"] == "extra":
            self.h.env.process(self._order())
        return changed

    def _order(self) -> Generator[simpy.Event, Any, None]:
        host = self.h
        unit = host.unit_of(self.config.tank)
        while not host.deliveries.extra_drop(unit, int(self.p["compartments"]), self):
            if not self.active or host.env.now + RETRY_S > host.end:
                return
            yield host.env.timeout(RETRY_S)

    def change(self, plan: Any) -> None:
        plan.keyed = False

    def dropped(self, record: Any) -> None:
        self.effect_l += record.true_drop_20c_l

    def trace(self) -> list[str]:
        return ["delivery_unkeyed", "tank_gain"]

    def expected_alerts(self) -> list[str]:
        return ["delivery_unbooked", "tank_gain"]
