"""unsigned_record (维修记录缺签字): a maintenance company adjusts a nozzle's meter on site and
files the record without one of the three signatures the plan requires (联合维修单位、检定机构、
加油站做好现场签字确认; domain brief §1 "三方签字") — by default the verification institute's:
the meter was adjusted without a verifier present (维修后未经检定). The device data are those of
an on-site adjustment (sim/cheats/maintenance.py: events 20, 12, 23, seal bit0 while open);
the record (kind `maintenance`, `missing` signatory absent) is posted to the platform, which
must store it and flag it; it covers nothing, so the change itself is unsigned too.
"""

from __future__ import annotations

from sim.cheats.base import Cheat
from sim.cheats.maintenance import adjust_and_file
from sim.cheats.params import Param
from sim.meter import MPE


class UnsignedRecord(Cheat):
    kind = "unsigned_record"
    cheat_class = "MET"
    target = "nozzle"
    attribution = "device"
    summary = "maintenance adjusts a nozzle's factor; its record lacks one signature"
    resources = ("factor", "seal_transducer")
    span_param = ("seal_minutes", 60.0, 0.0)
    param_spec = {
        "adjust": Param("number", required=True, minimum=-MPE, maximum=MPE, nonzero=True,
                        unit="fraction", doc="relative change of the factor, e.g. 0.001"),
        "missing": Param("choice", default="verifier", choices=("verifier", "station"),
                         doc="the signatory who did not sign (the maintainer signs its own "
                             "record)"),
        "seal_minutes": Param("number", default=30.0, minimum=1.0, maximum=1440.0, unit="min",
                              doc="how long the seal is open"),
    }

    def switch_on(self, t: float) -> tuple[float, float]:
        return adjust_and_file(self, t, "maintenance", missing=(self.p["missing"],), notes=(
            f"meter adjusted on site; not signed by the {self.p['missing']}; transducer seal "
            f"broken and restored after {self.p['seal_minutes']:g} min (events 20, 12, 23)"))

    def switch_off(self, t: float) -> tuple[float, float]:
        factor = self.nozzles()[0].meter.factor
        return factor, factor  # the adjustment stays

    def trace(self) -> list[str]:
        return ["event:20", "event:12", "event:23", "seal", "verification_record",
                "record_unsigned"]

    def expected_alerts(self) -> list[str]:
        # the record itself, and the change it does not cover (identity, docs/detectors.md)
        return ["record_unsigned", "parameter_change", "seal_broken"]
