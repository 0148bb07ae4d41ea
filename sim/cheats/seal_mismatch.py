"""seal_mismatch (铅封号不符): the transducer's lead seal is cut and replaced at `start` by one
that is not the verification institute's (a different number), with no record — the usual
cover for a mechanical adjustment (domain brief §1 "Seals and serials": seals on the
transducer adjustment; §6 #9). `record_after_h` later a maintenance company does routine
work on the dispenser and files a fully signed record that states the seals as found: its
transducer seal `before` is the foreign number, not the `after` of the previous record
(sim/metrology.py) — the broken chain of seal numbers is what lets the platform trace the
problem back (问题倒查追溯). The electronic seal sensor sees the swap only with `log_events`
(event 20, seal bit0 for `seal_minutes`, event 23). Effect 0: only the paperwork differs.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.cheats import events
from sim.cheats.base import Cheat
from sim.cheats.params import Param

FOREIGN_SEAL = "ZS"  # prefix of a seal not issued by the institute


class SealMismatch(Cheat):
    kind = "seal_mismatch"
    cheat_class = "MET"
    target = "dispenser"
    attribution = "device"
    summary = "transducer seal replaced without a record; the next record finds another number"
    resources = ("seal_transducer",)
    span_param = ("record_after_h", 3600.0, 0.0)
    param_spec = {
        "record_after_h": Param("number", default=4.0, minimum=0.1, maximum=720.0, unit="h",
                                doc="when the next (routine, fully signed) record is filed"),
        "log_events": Param("boolean", default=False,
                            doc="the seal sensor logs the swap (events 20, 23, seal bit0)"),
        "seal_minutes": Param("number", default=10.0, minimum=1.0, maximum=1440.0,
                              unit="min", doc="how long the seal is off (with log_events)"),
    }

    def validate(self) -> None:
        if self.config.nozzle:
            raise ValueError(f"{self.where}: kind {self.kind!r} acts on a dispenser's seal: "
                             f"nozzle must be omitted, got {self.config.nozzle}")
        if self.p["log_events"] and self.p["seal_minutes"] > 60.0 * self.p["record_after_h"]:
            raise ValueError(f"{self.where}: params.seal_minutes must end before the record "
                             f"(record_after_h × 60 = {60.0 * self.p['record_after_h']:g}), got "
                             f"{self.p['seal_minutes']:g}")

    def prepare(self) -> None:
        self.record_filed = False

    def switch_on(self, t: float) -> tuple[float, float]:
        host, c = self.h, self.config
        assert self.rng is not None
        foreign = f"{FOREIGN_SEAL}{int(self.rng.integers(10_000_000, 100_000_000)):08d}"
        host.metrology.swap_seal(c.dispenser, "transducer", foreign)
        if self.p["log_events"]:
            self._seal(True)
            host.env.process(self._later(t + self.p["seal_minutes"] * 60.0, self._seal, False))
        host.env.process(self._later(t + self.p["record_after_h"] * 3600.0, self._file))
        return 0.0, 1.0  # the institute's seal → a foreign one

    def switch_off(self, t: float) -> tuple[float, float]:
        return 1.0, 1.0  # the foreign seal stays

    def _later(self, at: float, action: Any, *args: Any) -> Generator[simpy.Event, Any, None]:
        host = self.h
        if at > host.end:
            return
        yield host.env.timeout(max(0.0, at - host.env.now))
        action(*args)

    def _seal(self, broken: bool) -> None:
        host, c = self.h, self.config
        disp = host.dispenser_of(c.dispenser)
        seal = disp.seal_state
        if broken:
            disp.seal_state = seal | events.SEAL_TRANSDUCER
            events.log(host, c.dispenser, events.SEAL_BROKEN, 0, seal, disp.seal_state)
        else:
            disp.seal_state = seal & ~events.SEAL_TRANSDUCER
            events.log(host, c.dispenser, events.SEAL_RESTORED, 0, seal, disp.seal_state)
        host.record_device_state(disp.device)

    def _file(self) -> None:
        host, c = self.h, self.config
        host.metrology.file(c.dispenser, host.now, "maintenance", cheat=self.index, notes=(
            "routine maintenance (hoses and filters); seals checked and recorded as found"))
        self.record_filed = True

    def trace(self) -> list[str]:
        out = ["event:20", "event:23", "seal"] if self.p["log_events"] else []
        return out + (["verification_record", "seal_mismatch"] if self.record_filed else [])

    def expected_alerts(self) -> list[str]:
        return ["seal_mismatch"] + (["seal_broken"] if self.p["log_events"] else [])
