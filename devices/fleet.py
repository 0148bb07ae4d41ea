"""Every field device of a world: built from its views, fed by its record listener.

The fleet is the world's RecordListener for device records: each record goes into the
FIFO of its device. A FIFO overflow is recorded (ground truth of what was lost) and the
device logs a fifo_overflow event through its station, so the event gets the next
sequence number of the device's own event stream and reaches the ledger like any other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Protocol

from devices.device import FieldDevice
from devices.fifo import FifoDrop
from devices.image import CivilTime
from devices.profile import Profile, load_profile
from devices.silence import Silence, windows_for
from sim.config import WorldConfig
from sim.records import DispenserView, GaugeView


class EventStation(Protocol):
    """The part of a sim station that logs device events (assigns their sequence numbers)."""

    def dispenser_event(self, dispenser: int, code: int, name: str, unit: int,
                        value_old: float, value_new: float) -> None: ...

    def gauge_event(self, code: int, name: str, unit: int, value_old: float,
                    value_new: float) -> None: ...


class WorldLike(Protocol):
    @property
    def now(self) -> float: ...

    @property
    def stations(self) -> tuple[str, ...]: ...

    def dispensers(self, station_id: str) -> list[DispenserView]: ...

    def gauge(self, station_id: str) -> GaugeView: ...

    def station(self, station_id: str) -> EventStation: ...

    def add_listener(self, fn) -> None: ...

    @property
    def config(self) -> WorldConfig: ...


class WorldClock:
    """The devices' clock: the world's time, and a generation that the driver bumps per step."""

    def __init__(self, world: WorldLike) -> None:
        self._world = world
        self.generation = 0

    @property
    def now(self) -> float:
        return self._world.now

    @property
    def finished(self) -> bool:
        """The simulated period is over (the devices linger, serving the final state)."""
        return bool(getattr(self._world, "finished", False))

    def stepped(self) -> None:
        self.generation += 1


@dataclass(frozen=True, slots=True)
class DropRow:
    station_id: str
    device: str
    stream: str
    seq: int
    time: float
    dropped_total: int


class DeviceFleet:
    """FieldDevices of every station, keyed by (station_id, device key)."""

    def __init__(
        self,
        world: WorldLike,
        dialects: dict[str, str],
        *,
        clock: WorldClock,
        timezone: str,
        depth: int = 500,
        profiles: dict[str, Profile] | None = None,
    ) -> None:
        self.world = world
        self.clock = clock
        self.depth = depth
        profiles = profiles or {"dispenser": load_profile("dispenser"),
                                "tank_gauge": load_profile("tank_gauge")}
        civil = CivilTime(timezone)
        self.drops: list[DropRow] = []
        self.devices: dict[tuple[str, str], FieldDevice] = {}
        self.by_station: dict[str, list[FieldDevice]] = {}
        for sid in world.stations:
            if sid not in dialects:
                raise ValueError(f"station {sid}: no register dialect given")
            common = dict(station_id=sid, dialect=dialects[sid], clock=clock, civil=civil,
                          depth=depth, drop_sink=self._dropped, event_sink=self._log_event,
                          clock_faults=world.config.clock_faults)
            devs = [FieldDevice(device="G", view=world.gauge(sid), profile=profiles["tank_gauge"],
                                **common)]  # type: ignore[arg-type]
            for d in world.dispensers(sid):
                devs.append(FieldDevice(device=f"D{d.dispenser}", view=d,
                                        profile=profiles["dispenser"], **common))  # type: ignore[arg-type]
            self.by_station[sid] = devs
            for dev in devs:
                self.devices[(sid, dev.device)] = dev

    def set_silences(self, silences: list[Silence] | tuple[Silence, ...]) -> None:
        """Make devices ignore every request during their silences (fault device_silent).
        A silence naming a station or device this fleet does not have is an error."""
        for s in silences:
            keys = [k for (sid, k) in self.devices if sid == s.station_id]
            if not keys:
                raise ValueError(f"silence of {s.where}: no station {s.station_id!r} here "
                                 f"(stations: {', '.join(self.by_station)})")
            if s.device is not None and s.device not in keys:
                raise ValueError(f"silence of {s.where}: station {s.station_id} has no device "
                                 f"{s.device!r} (devices: {', '.join(keys)})")
        for (sid, key), dev in self.devices.items():
            dev.silence = windows_for(silences, sid, key)

    def silent_now(self) -> list[str]:
        """'station/device' of every device that answers nothing at the world's current time
        (a silence of the scenario, or a dispenser the world took off line)."""
        return [f"{sid}/{key}" for (sid, key), dev in self.devices.items() if dev.silent_now()]

    def attach(self) -> None:
        """Start receiving the world's records (register the ledger first, so it sees a
        record before the device that may log an overflow event because of it)."""
        self.world.add_listener(self)

    def __call__(self, station_id: str, device: str, stream: str, record: object) -> None:
        dev = self.devices.get((station_id, device))
        if dev is None:
            raise KeyError(f"record for unknown device {station_id}/{device} ({stream})")
        dev.accept(stream, record)

    def _dropped(self, station_id: str, device: str, drop: FifoDrop) -> None:
        self.drops.append(DropRow(station_id, device, drop.stream, drop.seq, drop.time,
                                  drop.dropped_total))

    def _log_event(self, station_id: str, device: str, code: int, name: str, unit: int,
                   value_old: float, value_new: float, time: float) -> None:
        # The station stamps the event with its own clock (the same instant as `time`).
        station = self.world.station(station_id)
        if device == "G":
            station.gauge_event(code, name, unit, value_old, value_new)
        else:
            station.dispenser_event(int(device[1:]), code, name, unit, value_old, value_new)

    def fifos(self) -> Iterator[tuple[FieldDevice, str]]:
        for dev in self.devices.values():
            for stream in dev.channels:
                yield dev, stream

    def at_high_water(self, high_water: int, exempt: Collection[str] = ()) -> str | None:
        """The station of the first FIFO holding `high_water` records or more, other than
        the `exempt` stations' (None: none)."""
        for (sid, _device), dev in self.devices.items():
            if sid in exempt:
                continue
            for ch in dev.channels.values():
                if ch.fifo.pending >= high_water:
                    return sid
        return None

    def backlog(self) -> int:
        """Records pending in every FIFO together."""
        return sum(ch.fifo.pending for dev in self.devices.values() for ch in dev.channels.values())

    def summary(self) -> dict:
        """Per device and stream: records pushed, released by ack, dropped, still pending;
        per device: requests left unanswered and replies answered busy, late or garbled."""
        out: dict[str, dict] = {}
        for (sid, key), dev in self.devices.items():
            st = out.setdefault(sid, {})
            st[key] = {
                "unit_id": dev.unit_id,
                "streams": {name: {"pushed": ch.fifo.pushed, "acknowledged": ch.fifo.released,
                                   "dropped": ch.fifo.dropped, "pending": ch.fifo.pending,
                                   "last_ack": ch.fifo.last_ack}
                            for name, ch in dev.channels.items()},
                # what the scenario's Modbus faults did to its replies (evidence that they did)
                "modbus_faults": {"ignored": dev.ignored_requests, "busy": dev.busy_replies,
                                  "slow": dev.slow_replies, "garbled": dev.garbled_replies},
            }
        return out
