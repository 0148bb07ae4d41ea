"""keypad_edit_logged: the pulse equivalent is edited through the dispenser's own menu
(keypad or back-office hotkey, domain brief §1 "edited from keypad"; §6 #5): the device logs
the change (event 11 pulse_factor_change, or 12 parameter_change) and its self-protection
sees it — beyond ±0.6 % the dispenser locks after 5 fills (event 25) until the edit is
reverted. Edits inside the band (e.g. +0.5 %) go on unlocked.
"""

from __future__ import annotations

from sim.cheats.factor import FACTOR, FactorCheat
from sim.cheats.params import Param


class KeypadEditLogged(FactorCheat):
    kind = "keypad_edit_logged"
    cheat_class = "PULSE"
    target = "nozzle"
    summary = "pulse equivalent edited at the keypad; the device logs it"
    bypasses_self_lock = False
    resources = ("factor", "lock")
    param_spec = {
        "factor": FACTOR,
        "event": Param("choice", default=11, choices=(11, 12),
                       doc="event logged: 11 pulse_factor_change or 12 parameter_change"),
    }

    def factor_event_codes(self) -> list[int]:
        return [int(self.p["event"])]
