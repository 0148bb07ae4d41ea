"""One field device (加油机 dispenser or 液位仪 tank gauge) as a Modbus unit.

A FieldDevice owns its cursor FIFOs and its register image, takes the world's records
(`accept`), and answers Modbus requests: `misbehaviour`, `write_ack` and its image serve
devices.pdu, over TCP (devices.tcp_server) and RTU (devices.rtu_server).
Unit ids: tank gauge 1, dispenser n -> 10 + n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pymodbus.constants import ExcCodes

from devices.codec import Codec, CodecError
from devices.fifo import AckError, CursorFifo, FifoDrop, RecordLayout
from devices.image import CivilTime, Clock, DeviceImage, FieldBlock, FifoRegion, Region, live_region
from devices.profile import Profile
from devices.silence import SilenceWindows
from devices.streams import (
    RECORD_VALUES,
    Values,
    dispenser_header_values,
    epoch_s,
    gauge_header_values,
    nozzle_values,
    record_time,
    rtc_values,
    tank_values,
)
from sim.config import ClockFault
from sim.device_clock import device_faults, shown
from sim.records import DispenserView, GaugeView

GAUGE_UNIT_ID = 1
DISPENSER_UNIT_BASE = 10
# FC23 (read/write multiple registers): write one FIFO ack, then read (register map §2)
READ_FCS = frozenset((3, 4, 23))
WRITE_FCS = frozenset((6, 16, 23))
MAX_READ = 125  # Modbus limit for FC03/FC04
# int_be events carry value_new as int32 at scale 0.0001: the overflow count saturates here.
MAX_EVENT_COUNT = 214748

# (station_id, device, drop) -> None: the harness records what a device lost.
DropSink = Callable[[str, str, FifoDrop], None]
# (station_id, device, code, name, unit, value_old, value_new, time) -> None: the device logs
# an event of its own (fifo_overflow); the sink must give it a sequence number of the
# device's event stream and hand it back through accept("events", ...).
EventSink = Callable[[str, str, int, str, int, float, float, float], None]


def unit_id_for(device: str) -> int:
    """'G' -> 1, 'D<n>' -> 10 + n."""
    if device == "G":
        return GAUGE_UNIT_ID
    if device.startswith("D") and device[1:].isdigit() and 1 <= int(device[1:]) <= 240:
        return DISPENSER_UNIT_BASE + int(device[1:])
    raise ValueError(f"device key {device!r} is neither 'G' nor 'D<n>' (n = 1..240)")


@dataclass
class FifoChannel:
    spec_name: str
    fifo: CursorFifo
    layout: RecordLayout
    values: Callable[[object, Callable[[float], int]], dict]
    checked: bool = False


class FieldDevice:
    """A Modbus unit serving one profile in one dialect from one device view."""

    def __init__(
        self,
        *,
        station_id: str,
        device: str,
        view: DispenserView | GaugeView,
        profile: Profile,
        dialect: str,
        clock: Clock,
        civil: CivilTime,
        depth: int = 500,
        drop_sink: DropSink | None = None,
        event_sink: EventSink | None = None,
        clock_faults: tuple[ClockFault, ...] = (),
    ) -> None:
        self.station_id = station_id
        self.device = device
        self.kind = profile.profile
        self.unit_id = unit_id_for(device)
        if (self.kind == "tank_gauge") != (device == "G"):
            raise ValueError(f"{station_id}/{device}: profile {self.kind!r} does not fit this device")
        if dialect not in profile.dialects:
            raise ValueError(f"{station_id}/{device}: dialect {dialect!r} is not in profile "
                             f"{profile.profile!r} ({', '.join(profile.dialects)})")
        self.view = view
        self.profile = profile
        self.dialect = profile.dialects[dialect]
        self.codec = Codec(self.dialect)
        self.clock = clock
        self.civil = civil
        self.clock_faults = device_faults(clock_faults, station_id, device)
        self.drop_sink = drop_sink
        self.event_sink = event_sink
        self.overflow_code = profile.event_code("fifo_overflow")
        self.channels: dict[str, FifoChannel] = {}
        regions: list[Region] = []
        for spec in profile.fifos:
            key = (self.kind, spec.name)
            if key not in RECORD_VALUES:
                raise ValueError(f"{profile.source}: no record encoder for FIFO {spec.name!r} of {self.kind}")
            fifo = CursorFifo(spec.name, depth, on_drop=self._dropped)
            self.channels[spec.name] = FifoChannel(
                spec.name, fifo, RecordLayout(spec, self.codec), RECORD_VALUES[key])
            regions.append(FifoRegion(spec, fifo, self.codec, f"{self.where} FIFO {spec.name}").region())
        regions += self._live_regions()
        self.image = DeviceImage(regions)
        self.ack_fifos = {self.profile.fifo(name).ack_address: ch.fifo for name, ch in self.channels.items()}
        # set by DeviceFleet.set_silences (faults device_silent, modbus_busy, modbus_slow,
        # rtu_line_noise, modbus_garbled)
        self.silence = SilenceWindows()
        self.ignored_requests = 0  # requests left unanswered while silent
        self.busy_replies = 0  # requests answered with exception 06 (modbus_busy)
        self.slow_replies = 0  # replies delayed (modbus_slow)
        self.garbled_replies = 0  # replies corrupted on the wire (rtu_line_noise, modbus_garbled)

    @property
    def where(self) -> str:
        return f"{self.station_id}/{self.device} ({self.profile.profile})"

    # ---- live blocks -------------------------------------------------------------------
    def _live_regions(self) -> list[Region]:
        header = self.profile.blocks[0]
        instanced = [b for b in self.profile.blocks[1:] if b.instances]
        if len(instanced) != 1 or len(self.profile.blocks) != 2:
            raise ValueError(f"{self.profile.source}: expected a header block and one repeated block")
        block = instanced[0]
        constants = {"profile_id": self.profile.profile_id, "profile_version": self.profile.version,
                     "dialect_code": self.dialect.code}
        # the header's values, and each unit's (nozzle or tank), read from the view on demand
        head: Callable[[], Values]
        unit_values: list[Callable[[], Values]]
        if self.kind == "dispenser":
            view: DispenserView = self.view  # type: ignore[assignment]
            head = partial(dispenser_header_values, view)
            unit_values = [partial(nozzle_values, n) for n in view.nozzles]
            numbers = [n.nozzle for n in view.nozzles]
        else:
            gview: GaugeView = self.view  # type: ignore[assignment]
            head = partial(gauge_header_values, gview)
            unit_values = [partial(tank_values, t) for t in gview.tanks]
            numbers = [t.tank for t in gview.tanks]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.where}: {block.name} numbers must be 1..n in order, found {numbers}")
        if len(numbers) > self.profile.max_instances(block):
            raise ValueError(f"{self.where}: {len(numbers)} {block.name}s, but the profile has room "
                             f"for {self.profile.max_instances(block)}")
        clock, civil = self.clock, self.civil

        def header_values() -> dict:
            epoch = self.stamp(clock.now)
            return {**constants, **head(), **rtc_values(epoch, civil.civil(epoch))}

        header_block = FieldBlock(header.fields, header.size, self.codec, f"{self.where} {header.name}")
        header_block.check_names(header_values().keys())
        regions = [live_region(header.base, header_block, header_values, clock)]
        unit_block = FieldBlock(block.fields, block.size, self.codec, f"{self.where} {block.name}")
        for n, values in enumerate(unit_values, start=1):
            if n == 1:
                unit_block.check_names(values().keys())
            regions.append(live_region(block.instance_base(n), unit_block, values, clock))
        return regions

    def stamp(self, t: float) -> int:
        """The device clock's second at true time `t` (wrong while a clock fault lasts)."""
        return epoch_s(shown(self.clock_faults, t))

    # ---- records ------------------------------------------------------------------------
    def accept(self, stream: str, record: object) -> None:
        """Buffer a record the world produced (encode once, with its CRC)."""
        ch = self.channels.get(stream)
        if ch is None:
            raise ValueError(f"{self.where}: no FIFO for stream {stream!r}")
        values = ch.values(record, self.stamp)
        if not ch.checked:
            ch.layout.check_names(set(values), f"{self.where} record encoder for {stream!r}")
            ch.checked = True
        try:
            regs = ch.layout.encode(values)
        except CodecError as exc:
            raise CodecError(f"{self.where}: {stream} record seq {values.get('seq')}: {exc}") from None
        ch.fifo.push(values["seq"], regs, record_time(record))  # type: ignore[arg-type]

    def _dropped(self, drop: FifoDrop) -> None:
        if self.drop_sink is not None:
            self.drop_sink(self.station_id, self.device, drop)
        # The event FIFO's own overflow is only counted: logging it would overflow it again.
        if drop.stream != "events" and self.event_sink is not None:
            self.event_sink(self.station_id, self.device, self.overflow_code, "fifo_overflow", 0,
                            float(self.profile.fifo(drop.stream).base),
                            float(min(drop.dropped_total, MAX_EVENT_COUNT)), drop.time)

    def fifo(self, stream: str) -> CursorFifo:
        return self.channels[stream].fifo

    def fill_fraction(self) -> float:
        """Fullest FIFO of this device, as a fraction of its depth."""
        return max(ch.fifo.pending / ch.fifo.depth for ch in self.channels.values())

    # ---- silence -----------------------------------------------------------------------
    @property
    def offline(self) -> bool:
        """The world took this dispenser off line (a cheat): it answers no request — until
        the simulated period is over: then the station has it back on line, so what its
        FIFOs still hold can be drained (the cheat ended with the run; docs/register-map.md
        §8)."""
        return (bool(getattr(self.view, "offline", False))
                and not getattr(self.clock, "finished", False))

    def silent_now(self) -> bool:
        """No reply to any request now: a scenario silence (fault device_silent) or the
        device taken off line in the world (docs/register-map.md §8)."""
        return self.offline or bool(self.silence and self.silence.silent_at(self.clock.now))

    def silent_reason(self) -> str:
        return "taken off line" if self.offline else "fault device_silent"

    # ---- Modbus ------------------------------------------------------------------------
    def misbehaviour(self) -> tuple[str | None, float]:
        """How the device treats the request in hand: ("silent", 0) no reply, ("busy", 0)
        exception 06, ("slow", delay_s) the reply comes late, (None, 0) as usual; counted."""
        if self.silent_now():
            self.ignored_requests += 1
            return "silent", 0.0
        mode, delay = self.silence.mode_at(self.clock.now) if self.silence else (None, 0.0)
        if mode == "busy":
            self.busy_replies += 1
        elif mode == "slow":
            self.slow_replies += 1
        return mode, delay

    def write_ack(self, address: int, count: int, value: int) -> ExcCodes | None:
        """A write (FC06, FC16, the write of FC23): only to a FIFO ack register, one at a
        time (02 otherwise); a sequence that is not pending changes nothing (03)."""
        fifo = self.ack_fifos.get(address)
        if fifo is None or count != 1:
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            fifo.ack(value)
        except AckError:
            return ExcCodes.ILLEGAL_VALUE
        return None
