"""Cheats that change what a nozzle shows per litre delivered (计量作弊), and the dispenser's
self-protection (自锁, JJG 443) that catches the changes it can see.

A nozzle shows true litres × (1 + e) × f, e its true meter error, f its display
(pulse-equivalent, 脉冲当量) factor. A factor cheat multiplies f by `factor` on its
nozzle(s) while on (or installs a `Meter.factor_rule` that does so for some fills only) and
restores what it found when off. Its effect is the litres the books gain over the tank:
Σ (shown − honest shown) / honest gain = Σ true × (f_applied / f_before − 1), honest shown =
true × (1 + e) × f_before (e the fill's honest error).

Self-protection: the encoder and the monitoring MCU check each other; a dispenser LOCKS
(device_status bit0, event 25 self_lock, no more fills) after `SELF_LOCK_FILLS` fills outside
±`SELF_LOCK_BAND` of the verified metering. It sees a change made through the dispenser's
own parameters (a keypad edit: `bypasses_self_lock = False`); cheat software, a counterfeit
board, a doctored encoder, patched firmware or a mechanical adjustment go around it
(`bypasses_self_lock = True`). A locked dispenser is unlocked (event 26) when the cheat is
switched off (the technician who restores the parameter clears the lock).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.cheats import events, taps
from sim.cheats.base import Cheat, event_trace
from sim.cheats.params import Param

SELF_LOCK_BAND = 0.006  # JJG 443: ±0.6 %
SELF_LOCK_FILLS = 5

FACTOR = Param("number", required=True, minimum=0.0, exclusive_minimum=True, maximum=2.0,
               unit="ratio", doc="litres shown per litre delivered, e.g. 1.03 (3 % more shown)")
LOG_EVENTS = Param("boolean", default=False,
                   doc="the device logs the change (a cheater's board usually does not)")


class SkimTap(taps.Tap):
    """Measures a factor cheat's effect per fill and feeds the self-protection monitor.

    The effect of a fill is true litres × (f / f_before − 1), f the factor applied to it:
    exactly (shown − honest shown) / honest gain, whatever the fill's honest meter error."""

    __slots__ = ("cheat", "base", "applied")

    def __init__(self, cheat: FactorCheat, base: float) -> None:
        self.cheat = cheat
        self.base = base  # the factor the nozzle had before the cheat
        self.applied = base  # the factor applied to the nozzle's current fill

    def measure(self, nozzle: Any, full: bool, price: int, shown: int, amount: int,
                true_l: float) -> tuple[int, int, float]:
        m = nozzle.meter
        rule = m.factor_rule
        self.applied = m.factor if rule is None else rule(true_l if full else amount / price)
        return shown, amount, true_l

    def lifted(self, nozzle: Any) -> None:
        true_l = nozzle.fill()[2]
        self.cheat.effect_l += true_l * (self.applied / self.base - 1.0)

    def settle(self, nozzle: Any, drawn_20c_l: float) -> int:
        if self.cheat.monitored:
            self.cheat.monitor(nozzle, self.applied / self.base)
        return taps.NORMAL


class FactorCheat(Cheat):
    """Base of the kinds that change a nozzle's display factor."""

    resources: ClassVar[tuple[str, ...]] = ("factor",)
    bypasses_self_lock: ClassVar[bool] = True
    param_spec: ClassVar[dict[str, Param]] = {"factor": FACTOR}

    def prepare(self) -> None:
        self._saved: list[tuple[Any, float, Any, SkimTap]] = []
        self.monitored = False
        self.out_of_band = 0
        self.locked = False
        self.locks = 0
        self.unlocks = 0

    @property
    def factor(self) -> float:
        return float(self.p["factor"])

    def factor_event_codes(self) -> list[int]:
        """Events the device logs at each change of the factor (override)."""
        return []

    def apply(self, meter: Any, base: float) -> None:
        """Change the meter (base = its factor before); override for fill-dependent rules."""
        meter.factor = base * self.factor

    # -- switching ------------------------------------------------------------------------

    def switch_on(self, t: float) -> tuple[float, float]:
        host, d = self.h, self.config.dispenser
        self._saved = []
        for n in self.nozzles():
            m = n.meter
            base = m.factor
            tap = SkimTap(self, base)
            self._saved.append((n, base, m.factor_rule, tap))
            self.apply(m, base)
            taps.install(n, tap)
            for code in self.factor_event_codes():
                events.log(host, d, code, n.nozzle, base, base * self.factor)
        self.monitored = (not self.bypasses_self_lock
                          and abs(self.factor - 1.0) > SELF_LOCK_BAND)
        self.out_of_band = 0
        base = self._saved[0][1]
        return base, base * self.factor

    def switch_off(self, t: float) -> tuple[float, float]:
        host, d = self.h, self.config.dispenser
        first_base = self._saved[0][1]
        for n, base, rule, tap in self._saved:
            n.meter.factor, n.meter.factor_rule = base, rule
            taps.remove(n, tap)
            for code in self.factor_event_codes():
                events.log(host, d, code, n.nozzle, base * self.factor, base)
        self._saved = []
        self.monitored = False
        if self.locked:
            self._set_lock(False, 0)
        return first_base * self.factor, first_base

    # -- self-protection -------------------------------------------------------------------

    def monitor(self, nozzle: Any, ratio: float) -> None:
        """One settled fill, metered at `ratio` × the verified factor, seen by the
        self-protection monitor."""
        if abs(ratio - 1.0) > SELF_LOCK_BAND:
            self.out_of_band += 1
            if self.out_of_band >= SELF_LOCK_FILLS and not self.locked:
                self._set_lock(True, nozzle.nozzle)

    def _set_lock(self, locked: bool, unit: int) -> None:
        host, d = self.h, self.config.dispenser
        disp = host.dispenser_of(d)
        old = disp.device_status
        disp.device_status = (old | events.STATUS_LOCKED) if locked \
            else (old & ~events.STATUS_LOCKED)
        events.log(host, d, events.SELF_LOCK if locked else events.SELF_UNLOCK, unit, old,
                   disp.device_status)
        host.record_device_state(disp.device)
        host.hold_dispenser(d, locked)
        self.locked = locked
        if locked:
            self.locks += 1
        else:
            self.unlocks += 1

    # -- signature ---------------------------------------------------------------------------

    def trace(self) -> list[str]:
        out = event_trace(self.factor_event_codes()) + ["tank_gain"]
        if self.locks:
            out += ["lock", "event:25"] + (["event:26"] if self.unlocks else [])
        return out

    def expected_alerts(self) -> list[str]:
        logged = {events.PULSE_FACTOR_CHANGE, events.PARAMETER_CHANGE}
        # a logged edit, or the self-lock (event 25, device_status) it tripped, shows as a
        # metrological parameter change without a signed record
        extra = ["parameter_change"] if logged & set(self.factor_event_codes()) or self.locks \
            else []
        return extra + ["tank_gain", "meter_skim"]

    def attribution_level(self) -> str:
        return "nozzle" if self.config.nozzle else "device"
