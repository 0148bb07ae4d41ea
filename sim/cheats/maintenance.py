"""On-site maintenance of a nozzle's meter (现场维修调整), shared by the kinds that do it with a
record (verified_recalibration: fully signed; unsigned_record: a signature missing): the
transducer seal is broken (event 20, seal bit0), the display factor changed by `adjust`
(event 12 parameter_change, old / new factor, unit = the nozzle), the seal restored
`seal_minutes` later (event 23) with the institute's next seal number, and the record filed
in the station's metrology book (sim/metrology.py) at the moment of the change.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import simpy

from sim.cheats import events
from sim.cheats.base import Cheat


def adjust_and_file(cheat: Cheat, t: float, kind: str, missing: Sequence[str] = (),
                    notes: str = "") -> tuple[float, float]:
    """Open the transducer seal, change the nozzle's factor by `cheat.p["adjust"]`, file
    the record and reseal after `cheat.p["seal_minutes"]`; returns (old, new) factor."""
    host, c = cheat.h, cheat.config
    disp = host.dispenser_of(c.dispenser)
    meter = cheat.nozzles()[0].meter
    seal = disp.seal_state
    disp.seal_state = seal | events.SEAL_TRANSDUCER
    events.log(host, c.dispenser, events.SEAL_BROKEN, 0, seal, disp.seal_state)
    host.record_device_state(disp.device)
    old = meter.factor
    meter.factor = new = old * (1.0 + cheat.p["adjust"])
    events.log(host, c.dispenser, events.PARAMETER_CHANGE, c.nozzle, old, new)
    host.metrology.file(
        c.dispenser, t, kind, cheat=cheat.index, nozzle=c.nozzle, missing=missing,
        open_seals=("transducer",),
        parameters=[{"name": "pulse_factor", "old_value": old, "new_value": new}],
        notes=notes or (f"factor adjusted; transducer seal broken for the adjustment and "
                        f"restored after {cheat.p['seal_minutes']:g} min (events 20, 12, 23)"))
    host.env.process(_reseal(cheat, t + cheat.p["seal_minutes"] * 60.0))
    return old, new


def _reseal(cheat: Cheat, at: float) -> Generator[simpy.Event, Any, None]:
    host, c = cheat.h, cheat.config
    if at > host.end:
        return
    yield host.env.timeout(max(0.0, at - host.env.now))
    disp = host.dispenser_of(c.dispenser)
    seal = disp.seal_state
    disp.seal_state = seal & ~events.SEAL_TRANSDUCER
    events.log(host, c.dispenser, events.SEAL_RESTORED, 0, seal, disp.seal_state)
    host.record_device_state(disp.device)
