"""remote_skim (遥控作弊): a remote-controlled box switches a nozzle's skim on and off at
random (domain brief §1 "remote pulse injection", §6 #6 "remote ×1.1 per fill").

Default schedule `remote` (mean 6 h on, 18 h off); the device logs nothing.
"""

from __future__ import annotations

from sim.cheats.factor import FACTOR, FactorCheat
from sim.cheats.schedule import SCHEDULES


class RemoteSkim(FactorCheat):
    kind = "remote_skim"
    cheat_class = "PULSE"
    target = "nozzle"
    summary = "a nozzle's skim switched on and off by remote control"
    param_spec = {"factor": FACTOR}
    schedules = SCHEDULES
    default_schedule = {"kind": "remote"}
