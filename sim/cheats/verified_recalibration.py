"""verified_recalibration (检定调整, honest look-alike): maintenance corrects a nozzle's drift
by adjusting its factor by `adjust` (e.g. −0.0015): the transducer seal is broken (event 20,
seal bit0), the parameter changed (event 12 parameter_change, old / new factor), the seal
restored `seal_minutes` later (event 23, with the institute's next seal number) — and a
fully signed verification record exists (table `verification_records`, the body of POST
/api/v1/verification-records) that the harness posts to the platform (domain brief §1
"三方签字", §2 verification). The record renews the dispenser's verification (valid six
months, sim/metrology.py). The adjustment stays; effect 0 (it corrects, it moves nothing
off the books).
"""

from __future__ import annotations

from sim.cheats.base import Cheat
from sim.cheats.maintenance import adjust_and_file
from sim.cheats.params import Param
from sim.meter import MPE


class VerifiedRecalibration(Cheat):
    kind = "verified_recalibration"
    cheat_class = "LOOK"
    target = "nozzle"
    summary = "signed maintenance adjusts a nozzle's factor; events 20, 12, 23"
    resources = ("factor", "seal_transducer")
    span_param = ("seal_minutes", 60.0, 0.0)
    param_spec = {
        "adjust": Param("number", required=True, minimum=-MPE, maximum=MPE, nonzero=True,
                        unit="fraction", doc="relative change of the factor, e.g. -0.0015"),
        "seal_minutes": Param("number", default=30.0, minimum=1.0, maximum=1440.0, unit="min",
                              doc="how long the seal is open"),
    }

    def switch_on(self, t: float) -> tuple[float, float]:
        return adjust_and_file(self, t, "verification", notes=(
            "drift corrected; transducer seal broken for the adjustment and restored after "
            f"{self.p['seal_minutes']:g} min (events 20, 12, 23)"))

    def switch_off(self, t: float) -> tuple[float, float]:
        factor = self.nozzles()[0].meter.factor
        return factor, factor  # the adjustment stays

    def trace(self) -> list[str]:
        return ["event:20", "event:12", "event:23", "seal", "verification_record"]
