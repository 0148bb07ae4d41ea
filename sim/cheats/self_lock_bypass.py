"""self_lock_bypass (屏蔽自锁): patched firmware disables the self-protection so a large skim
(e.g. 10 %) goes on without the dispenser locking (domain brief §1 JJG 443 self-protection,
"21 cheating software packages"). software_id changes (event 24 only with `log_events`);
`nozzle` 0 = every nozzle of the dispenser skims. The same factor through a keypad edit
locks the dispenser after 5 fills (keypad_edit_*).
"""

from __future__ import annotations

from sim.cheats.part import PartCheat


class SelfLockBypass(PartCheat):
    kind = "self_lock_bypass"
    cheat_class = "PART"
    target = "dispenser"
    attribution = "device"
    summary = "patched firmware: new software id, large skim without locking"
    resources = ("factor", "software")
    replaced = ("software_id",)

    def attribution_level(self) -> str:
        return "device"
