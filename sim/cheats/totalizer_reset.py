"""totalizer_reset (断电清零): at a power cut the dispenser's electronic totalizers restart
from 0 (or `keep_fraction` of their value) (domain brief §6 #13). The cut waits for the
fills in progress, logs event 2 power_down, the dispenser is silent and sells nothing for
`outage_min`, then logs event 1 power_up with its totalizers reset.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.cheats import events
from sim.cheats.base import Cheat
from sim.cheats.params import Param


class TotalizerReset(Cheat):
    kind = "totalizer_reset"
    cheat_class = "DATA"
    target = "dispenser"
    attribution = "device"
    summary = "power cut; the dispenser's totalizers restart from 0 or a lower value"
    resources = ("offline", "lock")
    span_param = ("outage_min", 60.0, 3600.0)  # the outage, after the fills in progress
    param_spec = {
        "keep_fraction": Param("number", default=0.0, minimum=0.0, maximum=0.99,
                               unit="fraction", doc="share of each totalizer kept (0 = from 0)"),
        "outage_min": Param("number", default=10.0, minimum=0.0, exclusive_minimum=True,
                            maximum=1440.0, unit="min", doc="how long the power is off"),
    }

    def validate(self) -> None:
        if self.config.nozzle:
            raise ValueError(f"{self.where}: kind 'totalizer_reset' resets the whole "
                             f"dispenser: nozzle must be 0 (omitted), got {self.config.nozzle}")

    def prepare(self) -> None:
        self.resets = 0

    def switch_on(self, t: float) -> tuple[float, float]:
        self.h.env.process(self._power_cut())
        return 1.0, float(self.p["keep_fraction"])

    def switch_off(self, t: float) -> tuple[float, float]:
        return float(self.p["keep_fraction"]), float(self.p["keep_fraction"])

    def _power_cut(self) -> Generator[simpy.Event, Any, None]:
        host, d = self.h, self.config.dispenser
        disp = host.dispenser_of(d)
        idle_at = host.hold_dispenser(d, True)  # no new fills; those in progress finish
        yield host.env.timeout(max(0.0, idle_at - host.env.now))
        events.log(host, d, events.POWER_DOWN)
        disp.offline = True
        host.record_device_state(disp.device)
        yield host.env.timeout(self.p["outage_min"] * 60.0)
        keep = float(self.p["keep_fraction"])
        for n in disp.nozzles:
            m = n.meter
            m.volume_total_ml = int(m.volume_total_ml * keep) // 10 * 10
            m.amount_total_fen = int(m.amount_total_fen * keep)
        self.resets += 1
        disp.offline = False
        events.log(host, d, events.POWER_UP)
        host.record_device_state(disp.device)
        host.hold_dispenser(d, False)

    def trace(self) -> list[str]:
        return ["event:2", "event:1", "offline", "totalizer_reset"]

    def expected_alerts(self) -> list[str]:
        return ["totalizer_reset"]
