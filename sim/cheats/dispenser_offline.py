"""dispenser_offline (离线加油): the dispenser is taken off line — it answers no Modbus
request (`Dispenser.offline`) — while it goes on selling; the fills of an off-line window
never enter its FIFO, the totalizer counts them (domain brief §6 #17 "collector unplugged,
outage while trading"). Default schedule: every night 22:00–06:00.
"""

from __future__ import annotations

from typing import Any

from sim.cheats import offbook, taps
from sim.cheats.base import Cheat
from sim.cheats.schedule import SCHEDULES


class OfflineTap(taps.Tap):
    __slots__ = ("cheat",)

    def __init__(self, cheat: DispenserOffline) -> None:
        self.cheat = cheat

    def settle(self, nozzle: Any, drawn_20c_l: float) -> int:
        return taps.HIDE

    def hidden(self, nozzle: Any, drawn_20c_l: float, counted: bool) -> None:
        offbook.record_hidden_fill(self.cheat, nozzle, drawn_20c_l, counted)


class DispenserOffline(Cheat):
    kind = "dispenser_offline"
    cheat_class = "DATA"
    target = "dispenser"
    attribution = "device"
    summary = "dispenser silent on Modbus while selling; its fills never enter the FIFO"
    resources = ("offline",)
    schedules = SCHEDULES
    default_schedule = {"kind": "nights", "from_h": 22.0, "to_h": 6.0}

    def validate(self) -> None:
        if self.config.nozzle:
            raise ValueError(f"{self.where}: kind 'dispenser_offline' takes the whole "
                             f"dispenser: nozzle must be 0 (omitted), got {self.config.nozzle}")

    def prepare(self) -> None:
        self._taps: list[tuple[Any, OfflineTap]] = []

    def _set(self, offline: bool) -> None:
        host = self.h
        disp = host.dispenser_of(self.config.dispenser)
        disp.offline = offline
        host.record_device_state(disp.device)

    def switch_on(self, t: float) -> tuple[float, float]:
        self._set(True)
        for n in self.nozzles():
            tap = OfflineTap(self)
            taps.install(n, tap)
            self._taps.append((n, tap))
        return 0.0, 1.0

    def switch_off(self, t: float) -> tuple[float, float]:
        self._set(False)
        for n, tap in self._taps:
            taps.remove(n, tap)
        self._taps = []
        return 1.0, 0.0

    def trace(self) -> list[str]:
        return ["offline", "totalizer_gap", "tank_loss"]

    def expected_alerts(self) -> list[str]:
        return ["device_offline_sales", "totalizer_gap", "tank_loss", "idle_loss"]
