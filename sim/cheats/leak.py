"""leak (渗漏, honest look-alike): the tank leaks `litres_per_hour` of product (at its
temperature) from the switch-on, on top of any configured leak (domain brief §3, §4: the
SIR/ATG reference leak 0.2 gph = 0.76 L/h; §6 #22). The leak runs day and night, so it is
seen in idle hours as well. Effect: the litres (20 °C) this leak took.
"""

from __future__ import annotations

import dataclasses

from sim.cheats.base import Cheat
from sim.cheats.params import Param


class Leak(Cheat):
    kind = "leak"
    cheat_class = "LOOK"
    target = "tank"
    attribution = "tank"
    summary = "a physical leak of litres_per_hour from a tank"
    resources = ("leak",)
    param_spec = {
        "litres_per_hour": Param("number", required=True, minimum=0.0, exclusive_minimum=True,
                                 maximum=100.0, unit="L/h", doc="leak rate, e.g. 0.76 (0.2 gph)"),
    }

    def prepare(self) -> None:
        self._base = 0.0
        self._leaked0 = 0.0

    def _tank(self):  # sim.tank.Tank
        return self.h.unit_of(self.config.tank).physics

    def _set_rate(self, t: float, rate: float) -> None:
        tank = self._tank()
        tank.advance(max(t, tank.time))
        tank.config = dataclasses.replace(tank.config, leak_l_per_h=rate)

    def _measure(self, t: float) -> None:
        tank = self._tank()
        tank.advance(max(t, tank.time))
        total = self._base + self.p["litres_per_hour"]
        self.effect_l += (tank.leaked_20c_l - self._leaked0) * self.p["litres_per_hour"] / total
        self._leaked0 = tank.leaked_20c_l

    def switch_on(self, t: float) -> tuple[float, float]:
        tank = self._tank()
        self._base = tank.config.leak_l_per_h
        self._set_rate(t, self._base + self.p["litres_per_hour"])
        self._leaked0 = tank.leaked_20c_l
        return self._base, tank.config.leak_l_per_h

    def switch_off(self, t: float) -> tuple[float, float]:
        self._measure(t)
        self._set_rate(t, self._base)
        return self._base + self.p["litres_per_hour"], self._base

    def finish(self, t: float) -> None:
        if self.active:
            self._measure(t)

    def trace(self) -> list[str]:
        return ["leak", "tank_loss", "idle_loss"]

    def expected_alerts(self) -> list[str]:
        return ["leak_suspected"]
