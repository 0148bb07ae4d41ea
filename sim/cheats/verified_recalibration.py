"""verified_recalibration (检定调整, honest look-alike): maintenance corrects a nozzle's drift
by adjusting its factor by `adjust` (e.g. −0.0015): the transducer seal is broken (event 20,
seal bit0), the parameter changed (event 12 parameter_change, old / new factor), the seal
restored `seal_minutes` later (event 23) — and a fully signed verification record exists
(table `verification_records`, the body of POST /api/v1/verification-records) that the
harness posts to the platform (domain brief §1 "三方签字", §2 verification). The adjustment
stays; effect 0 (it corrects, it moves nothing off the books).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import simpy

from sim.cheats import events
from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.cheats.records import VerificationRecord
from sim.meter import MPE

ORGANISATION = "巴彦淖尔市计量检定测试所"
MAINTAINER = "乌拉特中旗加油机维修服务部"
VALIDITY_DAYS = 182  # verification is valid six months (domain brief §2)


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
        host, c = self.h, self.config
        disp = host.dispenser_of(c.dispenser)
        meter = self.nozzles()[0].meter
        seal = disp.seal_state
        disp.seal_state = seal | events.SEAL_TRANSDUCER
        events.log(host, c.dispenser, events.SEAL_BROKEN, 0, seal, disp.seal_state)
        host.record_device_state(disp.device)
        old = meter.factor
        meter.factor = new = old * (1.0 + self.p["adjust"])
        events.log(host, c.dispenser, events.PARAMETER_CHANGE, c.nozzle, old, new)
        host.record_truth("verification_record", self._record(t, old, new))
        host.env.process(self._reseal(t + self.p["seal_minutes"] * 60.0))
        return old, new

    def switch_off(self, t: float) -> tuple[float, float]:
        factor = self.nozzles()[0].meter.factor
        return factor, factor  # the adjustment stays

    def _reseal(self, at: float) -> Generator[simpy.Event, Any, None]:
        host, c = self.h, self.config
        if at > host.end:
            return
        yield host.env.timeout(max(0.0, at - host.env.now))
        disp = host.dispenser_of(c.dispenser)
        seal = disp.seal_state
        disp.seal_state = seal & ~events.SEAL_TRANSDUCER
        events.log(host, c.dispenser, events.SEAL_RESTORED, 0, seal, disp.seal_state)
        host.record_device_state(disp.device)

    def _record(self, t: float, old: float, new: float) -> VerificationRecord:
        c, tz = self.config, self.h.tz
        when = datetime.fromtimestamp(t, tz)
        body = {
            "station_id": c.station_id, "device": f"D{c.dispenser}", "nozzle": c.nozzle,
            "kind": "verification", "performed_at": when.isoformat(timespec="seconds"),
            "valid_until": (when + timedelta(days=VALIDITY_DAYS)).date().isoformat(),
            "result": "pass",
            "certificate_no": f"JD-{when.year}-{c.station_id}-{self.index:03d}",
            "organisation": ORGANISATION,
            "signatures": {"maintainer": MAINTAINER, "verifier": ORGANISATION,
                           "station": f"{c.station_id} 站长"},
            "parameters": [{"name": "pulse_factor", "old_value": old, "new_value": new}],
            "notes": ("drift corrected; transducer seal broken for the adjustment and "
                      f"restored after {self.p['seal_minutes']:g} min (events 20, 12, 23)"),
        }
        return VerificationRecord(c.station_id, self.index, f"D{c.dispenser}", c.nozzle, t,
                                  "verification", json.dumps(body, ensure_ascii=False,
                                                             sort_keys=True))

    def trace(self) -> list[str]:
        return ["event:20", "event:12", "event:23", "seal", "verification_record"]
