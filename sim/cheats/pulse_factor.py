"""pulse_factor (脉冲当量作弊): cheat software sets a nozzle's pulse equivalent so it shows
`factor` × the litres it delivers (domain brief §1: 1–3 %, hotkeys 10–20 %; §6 #1, #2).

The software goes around the self-protection; the device logs event 11 only when
`log_event` is true (a cheater usually hides it). Any schedule (a toggled cheat: §6 #3).
"""

from __future__ import annotations

from sim.cheats import events
from sim.cheats.factor import FACTOR, FactorCheat
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULES


class PulseFactor(FactorCheat):
    kind = "pulse_factor"
    cheat_class = "PULSE"
    target = "nozzle"
    summary = "a nozzle shows `factor` × the litres it delivers (cheat software)"
    param_spec = {
        "factor": FACTOR,
        "log_event": Param("boolean", default=False,
                           doc="the dispenser logs event 11 pulse_factor_change at each change"),
    }
    schedules = SCHEDULES

    def factor_event_codes(self) -> list[int]:
        return [events.PULSE_FACTOR_CHANGE] if self.p["log_event"] else []
