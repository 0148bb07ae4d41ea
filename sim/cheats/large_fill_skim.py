"""large_fill_skim: the skim acts only on fills of at least `min_fill_l` litres (as ordered:
the litres of a fill to full, or preset / price of a prepaid fill) — cheat software that
spares the small test fills an inspector makes with a 20 L measure (domain brief §1, §2).
"""

from __future__ import annotations

from typing import Any

from sim.cheats.factor import FACTOR, FactorCheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES


class LargeFillSkim(FactorCheat):
    kind = "large_fill_skim"
    cheat_class = "PULSE"
    target = "nozzle"
    summary = "a nozzle skims only fills of at least `min_fill_l` litres"
    param_spec = {
        "factor": FACTOR,
        "min_fill_l": Param("number", required=True, minimum=0.0, exclusive_minimum=True,
                            maximum=5000.0, unit="L", doc="smallest fill that is skimmed"),
    }
    schedules = SCHEDULES

    def apply(self, meter: Any, base: float) -> None:
        skim, least = base * self.factor, float(self.p["min_fill_l"])
        meter.factor_rule = lambda litres: skim if litres >= least else base
