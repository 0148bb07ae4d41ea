"""seal_breach (破封调整): the transducer's lead seal is broken and the meter adjusted
mechanically (piston stroke, domain brief §1 "mechanical"; §6 #9). Seal bit0 broken; no id
changes; the electronic self-protection cannot see a mechanical change. Event 20 (and 23
when switched off) only with `log_events`.
"""

from __future__ import annotations

from sim.cheats import events
from sim.cheats.part import PartCheat


class SealBreach(PartCheat):
    kind = "seal_breach"
    cheat_class = "PART"
    target = "nozzle"
    summary = "transducer seal broken, meter adjusted mechanically"
    resources = ("factor", "seal_transducer")
    seal_bit = events.SEAL_TRANSDUCER
