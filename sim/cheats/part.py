"""Base of the component cheats (部件/铅封): a factor skim that comes with a change of the
dispenser's identity (mainboard / encoder / software ids) and/or a broken seal.

The header registers always show the device as it presents itself (new ids, seal bits), so
the change is in `device_states` (and the uplink `state` records) whether or not the device
logs events; `log_events` says whether it also logs 20 seal_broken, 21/22 replaced,
24 software_changed (and 23 seal_restored and the replacements again when switched off: the
genuine part goes back and the seal is faked).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sim.cheats import events
from sim.cheats.base import event_trace
from sim.cheats.factor import FACTOR, LOG_EVENTS, FactorCheat

# header field -> event logged when it changes
_REPLACED_EVENT = {"mainboard_id": events.MAINBOARD_REPLACED,
                   "encoder_id": events.ENCODER_REPLACED,
                   "software_id": events.SOFTWARE_CHANGED}


def fresh_id(field: str, old: str, rng: np.random.Generator) -> str:
    """A new id for header `field`, different from `old`."""
    while True:
        if field == "software_id":
            new = f"{old.split('-')[0]}-{int(rng.integers(0, 1 << 16)):04X}"  # same version
        else:
            new = f"{'MB' if field == 'mainboard_id' else 'EC'}{int(rng.integers(0, 1 << 32)):08X}"
        if new != old:
            return new


class PartCheat(FactorCheat):
    """A skim through a replaced or tampered part."""

    param_spec = {"factor": FACTOR, "log_events": LOG_EVENTS}
    replaced: ClassVar[tuple[str, ...]] = ()  # header ids that change
    seal_bit: ClassVar[int] = 0  # seal_state bit broken (0 = none)

    def prepare(self) -> None:
        super().prepare()
        self._genuine: dict[str, str] = {}

    @property
    def logs(self) -> bool:
        return bool(self.p["log_events"])

    def _unit(self) -> int:
        return self.config.nozzle if "encoder_id" in self.replaced else 0

    def switch_on(self, t: float) -> tuple[float, float]:
        changed = super().switch_on(t)
        host, d = self.h, self.config.dispenser
        disp: Any = host.dispenser_of(d)
        assert self.rng is not None
        if self.seal_bit:
            old = disp.seal_state
            disp.seal_state = old | self.seal_bit
            if self.logs:
                events.log(host, d, events.SEAL_BROKEN, 0, old, disp.seal_state)
        for field in self.replaced:
            self._genuine[field] = getattr(disp, field)
            setattr(disp, field, fresh_id(field, self._genuine[field], self.rng))
            if self.logs:
                events.log(host, d, _REPLACED_EVENT[field], self._unit())
        host.record_device_state(disp.device)
        return changed

    def switch_off(self, t: float) -> tuple[float, float]:
        changed = super().switch_off(t)
        host, d = self.h, self.config.dispenser
        disp: Any = host.dispenser_of(d)
        for field in self.replaced:
            setattr(disp, field, self._genuine[field])
            if self.logs:
                events.log(host, d, _REPLACED_EVENT[field], self._unit())
        if self.seal_bit:
            old = disp.seal_state
            disp.seal_state = old & ~self.seal_bit
            if self.logs:
                events.log(host, d, events.SEAL_RESTORED, 0, old, disp.seal_state)
        host.record_device_state(disp.device)
        return changed

    def part_event_codes(self) -> list[int]:
        if not self.logs:
            return []
        codes = [events.SEAL_BROKEN] if self.seal_bit else []
        codes += [_REPLACED_EVENT[f] for f in self.replaced]
        if self.last_end == self.last_end and self.seal_bit:  # switched off at least once
            codes.append(events.SEAL_RESTORED)
        return codes

    def header_change_at_start(self) -> bool:
        return bool(self.replaced or self.seal_bit) and not self.logs

    def trace(self) -> list[str]:
        return (event_trace(self.part_event_codes())
                + (["ids"] if self.replaced else []) + (["seal"] if self.seal_bit else [])
                + super().trace())

    def expected_alerts(self) -> list[str]:
        return ((["component_change"] if self.replaced else [])
                + (["seal_broken"] if self.seal_bit else []) + super().expected_alerts())

    def attribution_level(self) -> str:
        # component ids and seal bits are registers of the dispenser (docs/register-map.md
        # §4.1): naming the dispenser is what the trace allows
        return "device"

