"""mainboard_swap (换主板): a counterfeit mainboard with its own monitoring firmware skims
(domain brief §1 "mainboard swap", "129 mainboards cracked"; §6 #7). mainboard_id and
software_id change, the mainboard seal (bit2) is broken; events 20, 21, 24 only with
`log_events`. `nozzle` 0 = the board skims every nozzle of the dispenser.
"""

from __future__ import annotations

from sim.cheats import events
from sim.cheats.part import PartCheat


class MainboardSwap(PartCheat):
    kind = "mainboard_swap"
    cheat_class = "PART"
    target = "dispenser"
    attribution = "device"
    summary = "counterfeit mainboard: new mainboard and software ids, seal bit2, skim"
    resources = ("factor", "mainboard", "software", "seal_mainboard")
    replaced = ("mainboard_id", "software_id")
    seal_bit = events.SEAL_MAINBOARD

    def attribution_level(self) -> str:
        return "device"
