"""keypad_edit_unlogged: as keypad_edit_logged, but the event log is suppressed (the
"T key erases traces" of the cheat software, domain brief §1). The self-protection still
sees the change: beyond ±0.6 % the dispenser locks after 5 fills (event 25).
"""

from __future__ import annotations

from sim.cheats.factor import FACTOR, FactorCheat


class KeypadEditUnlogged(FactorCheat):
    kind = "keypad_edit_unlogged"
    cheat_class = "PULSE"
    target = "nozzle"
    summary = "pulse equivalent edited at the keypad; no event logged"
    bypasses_self_lock = False
    resources = ("factor", "lock")
    param_spec = {"factor": FACTOR}
