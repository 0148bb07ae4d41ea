"""night_withdrawal (夜间偷抽): `litres` are pumped out of a tank off the books in a night
window (default 01:00–04:00, every night; `share` for some nights) at `rate_l_per_min`
(domain brief §6 #16 "unmetered pump/skid; tank drop with no sales (night)"). Each window
pumps until `litres` are out, the window closes or the tank is at its dead stock.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.cheats import offbook
from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES

STEP_S = 60.0


class NightWithdrawal(Cheat):
    kind = "night_withdrawal"
    cheat_class = "STOCK"
    target = "tank"
    attribution = "tank"
    summary = "off-book withdrawal of `litres` from a tank in night windows"
    schedules = SCHEDULES
    default_schedule = {"kind": "nights", "from_h": 1.0, "to_h": 4.0}
    param_spec = {
        "litres": Param("number", required=True, minimum=0.0, exclusive_minimum=True,
                        maximum=50000.0, unit="L", doc="litres taken in each window"),
        "rate_l_per_min": Param("number", default=100.0, minimum=1.0, maximum=2000.0,
                                unit="L/min", doc="pump rate"),
    }

    def prepare(self) -> None:
        self.generation = 0

    def switch_on(self, t: float) -> tuple[float, float]:
        self.generation += 1
        self.h.env.process(self._pump(self.generation))
        return 0.0, float(self.p["litres"])

    def switch_off(self, t: float) -> tuple[float, float]:
        self.generation += 1
        return float(self.p["litres"]), 0.0

    def _pump(self, generation: int) -> Generator[simpy.Event, Any, None]:
        host = self.h
        left = float(self.p["litres"])
        per_step = self.p["rate_l_per_min"] * STEP_S / 60.0
        while left > 1e-9:
            litres = min(per_step, left)
            yield host.env.timeout(litres / self.p["rate_l_per_min"] * 60.0)
            if generation != self.generation or host.env.now > host.end:
                return
            if offbook.draw(self, self.config.tank, litres,
                            litres / self.p["rate_l_per_min"] * 60.0) == 0.0:
                return  # the tank is at its dead stock
            left -= litres

    def trace(self) -> list[str]:
        return ["idle_loss", "tank_loss"]

    def expected_alerts(self) -> list[str]:
        return ["idle_loss", "tank_loss"]
