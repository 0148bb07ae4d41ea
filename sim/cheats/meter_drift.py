"""meter_drift (计量漂移, honest look-alike): a nozzle's calibration error drifts by `drift`
(e.g. +0.002 = +0.2 %) linearly over `over_days` (default: from the switch-on to the end of
the cheat or the run), updated hourly and kept inside the ±0.30 % MPE (domain brief §2,
§6 #21 "honest meter drift +0.2 % over months"), on top of the meter's own honest
imperfections (sim/imperfections.py). No event, no id, no seal. Effect: the litres the drift
over-registered, Σ true × (e − e0) / (1 + e0).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.cheats import taps
from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.meter import MPE

STEP_S = 3600.0


class DriftTap(taps.Tap):
    """Effect of a fill: true litres × (e_now − e0) / (1 + e0), the over-registration the
    drifted calibration error adds (noise-free)."""

    __slots__ = ("cheat", "e0")

    def __init__(self, cheat: MeterDrift, e0: float) -> None:
        self.cheat, self.e0 = cheat, e0

    def lifted(self, nozzle: Any) -> None:
        true_l = nozzle.fill()[2]
        self.cheat.effect_l += true_l * (nozzle.meter.error - self.e0) / (1.0 + self.e0)


class MeterDrift(Cheat):
    kind = "meter_drift"
    cheat_class = "LOOK"
    target = "nozzle"
    summary = "a nozzle's honest meter error drifts by `drift` inside the MPE"
    resources = ("meter_error",)
    param_spec = {
        "drift": Param("number", required=True, minimum=-MPE, maximum=MPE, unit="fraction",
                       doc="change of the relative meter error over over_days, e.g. 0.002"),
        "over_days": Param("number", default=None, minimum=0.0, exclusive_minimum=True,
                           maximum=3660.0, unit="d",
                           doc="duration of the drift (default: to the end of the cheat/run)"),
    }

    def prepare(self) -> None:
        self.generation = 0
        self._tap: DriftTap | None = None

    def switch_on(self, t: float) -> tuple[float, float]:
        nozzle = self.nozzles()[0]
        e0 = nozzle.meter.error
        end = self.h.end if self.config.end is None else min(self.config.end, self.h.end)
        span = self.p["over_days"] * 86400.0 if self.p["over_days"] else max(end - t, STEP_S)
        self.generation += 1
        self._tap = DriftTap(self, e0)
        taps.install(nozzle, self._tap)
        self.h.env.process(self._drift(nozzle, e0, t, span, self.generation))
        return e0, min(max(e0 + self.p["drift"], -MPE), MPE)

    def switch_off(self, t: float) -> tuple[float, float]:
        self.generation += 1
        nozzle = self.nozzles()[0]
        if self._tap is not None:
            taps.remove(nozzle, self._tap)
            self._tap = None
        return nozzle.meter.error, nozzle.meter.error  # the drift stops; the error stays

    def _drift(self, nozzle: Any, e0: float, t0: float, span: float,
               generation: int) -> Generator[simpy.Event, Any, None]:
        host = self.h
        k = 0
        while generation == self.generation:
            k += 1
            at = t0 + k * STEP_S
            if at > host.end:
                return
            yield host.env.timeout(max(0.0, at - host.env.now))
            if generation != self.generation:
                return
            e = e0 + self.p["drift"] * min(1.0, (at - t0) / span)
            nozzle.meter.error = min(max(e, -MPE), MPE)
            if at - t0 >= span:
                return

    def trace(self) -> list[str]:
        return ["drift"]
