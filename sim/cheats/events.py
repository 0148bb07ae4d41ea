"""Dispenser event codes the cheat catalogue logs (docs/register-map.md §10), seal and
status bits of the dispenser header (§4.1)."""

from __future__ import annotations

from typing import Any

POWER_UP = 1  # 0 / 0
POWER_DOWN = 2  # 0 / 0
PULSE_FACTOR_CHANGE = 11  # old / new pulse-equivalent factor (unit = nozzle)
PARAMETER_CHANGE = 12  # old / new value of the metrological parameter (unit = nozzle)
SEAL_BROKEN = 20  # seal_state before / after
MAINBOARD_REPLACED = 21  # 0 / 0 (see mainboard_id)
ENCODER_REPLACED = 22  # 0 / 0 (see encoder_id; unit = nozzle)
SEAL_RESTORED = 23  # seal_state before / after
SOFTWARE_CHANGED = 24  # 0 / 0 (see software_id)
SELF_LOCK = 25  # device_status before / after (unit = nozzle that tripped it)
SELF_UNLOCK = 26  # device_status before / after

NAMES = {
    POWER_UP: "power_up", POWER_DOWN: "power_down",
    PULSE_FACTOR_CHANGE: "pulse_factor_change", PARAMETER_CHANGE: "parameter_change",
    SEAL_BROKEN: "seal_broken", MAINBOARD_REPLACED: "mainboard_replaced",
    ENCODER_REPLACED: "encoder_replaced", SEAL_RESTORED: "seal_restored",
    SOFTWARE_CHANGED: "software_changed", SELF_LOCK: "self_lock", SELF_UNLOCK: "self_unlock",
}

SEAL_TRANSDUCER, SEAL_ENCODER, SEAL_MAINBOARD = 1, 2, 4  # seal_state bits (broken)
STATUS_LOCKED = 1  # device_status bit0: locked by self-protection (自锁)


def log(host: Any, dispenser: int, code: int, unit: int = 0, old: float = 0.0,
        new: float = 0.0) -> None:
    """Log event `code` in dispenser `dispenser`'s event stream."""
    host.dispenser_event(dispenser, code, NAMES[code], unit, old, new)
