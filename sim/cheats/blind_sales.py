"""blind_sales (暗枪/隐蔽管线): a hidden nozzle or unmetered line draws about
`litres_per_day` from a tank during trading hours, in fill-sized chunks (~`chunk_l`), that
are never recorded (domain brief §1 "off-book skid units, no invoice"; §6 #16). The tank
drops, no sale, no event.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import simpy

from sim.cheats import offbook
from sim.cheats.base import Cheat
from sim.cheats.params import Param

HIDDEN_FLOW_L_PER_MIN = 40.0


class BlindSales(Cheat):
    kind = "blind_sales"
    cheat_class = "STOCK"
    target = "tank"
    attribution = "tank"
    summary = "hidden nozzle draws litres_per_day from a tank in trading hours, unrecorded"
    schedules = ("constant", "remote", "off_during_inspections")
    param_spec = {
        "litres_per_day": Param("number", required=True, minimum=0.0, exclusive_minimum=True,
                                maximum=50000.0, unit="L/day", doc="mean litres drawn a day"),
        "chunk_l": Param("number", default=40.0, minimum=1.0, maximum=2000.0, unit="L",
                         doc="mean litres per hidden fill (each 0.6–1.4 × this)"),
        "from_h": Param("number", default=7.0, minimum=0.0, maximum=24.0, unit="h",
                        doc="trading hours start (local)"),
        "to_h": Param("number", default=22.0, minimum=0.0, maximum=24.0, unit="h",
                      doc="trading hours end (local; the next day when <= from_h)"),
    }

    def prepare(self) -> None:
        self.generation = 0

    def switch_on(self, t: float) -> tuple[float, float]:
        self.generation += 1
        self.h.env.process(self._draws(self.generation))
        return 0.0, float(self.p["litres_per_day"])

    def switch_off(self, t: float) -> tuple[float, float]:
        self.generation += 1
        return float(self.p["litres_per_day"]), 0.0

    def _draws(self, generation: int) -> Generator[simpy.Event, Any, None]:
        host, rng = self.h, self.rng
        assert rng is not None
        p = self.p
        hours = (p["to_h"] - p["from_h"]) % 24.0 or 24.0
        day = datetime.fromtimestamp(host.env.now, host.tz).date() - timedelta(days=1)
        while generation == self.generation:
            midnight = datetime(day.year, day.month, day.day, tzinfo=host.tz)
            opens = (midnight + timedelta(hours=p["from_h"])).timestamp()
            closes = (midnight + timedelta(hours=p["from_h"] + hours)).timestamp()
            day += timedelta(days=1)
            if opens >= host.end:
                return
            lo = max(opens, host.env.now)
            if closes <= lo:
                continue
            share = (closes - lo) / (hours * 3600.0)
            n = int(rng.poisson(p["litres_per_day"] * share / p["chunk_l"]))
            times = sorted(float(x) for x in rng.uniform(lo, closes, n))
            sizes = [float(x) for x in rng.uniform(0.6, 1.4, n) * p["chunk_l"]]
            for at, litres in zip(times, sizes, strict=True):
                yield host.env.timeout(max(0.0, at - host.env.now))
                if generation != self.generation:
                    return
                offbook.draw(self, self.config.tank, litres,
                             litres / HIDDEN_FLOW_L_PER_MIN * 60.0)

    def trace(self) -> list[str]:
        # hidden fills in otherwise idle hours are product leaving with no sale
        return ["tank_loss", "idle_loss"]

    def expected_alerts(self) -> list[str]:
        # hidden fills in otherwise idle hours are product leaving with no sale
        return ["tank_loss", "idle_loss"]
