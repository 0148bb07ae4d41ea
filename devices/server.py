"""Modbus servers: one per station, like the station's serial-to-Ethernet gateway (串口服务器).

TCP: every device of the station behind one listening socket, one unit id per device
(devices.tcp_server); an unknown unit id answers exception 0x0B (gateway target failed to
respond).
RTU: the same devices on one serial line (a pty from devices.rtu; devices.rtu_server); an
unknown unit id gets no answer, as on a real RS-485 bus.
Both answer a request PDU as devices.pdu says; a silent device (devices.silence) answers
nothing; a device in a noise (RTU) or garbled (TCP) window has some of its reply frames
corrupted on their way out (`_on_the_wire` sees every frame just before it is written).
"""

from __future__ import annotations

from collections.abc import Sequence

from devices.device import FieldDevice
from devices.rtu_server import RtuLine
from devices.silence import WIRE_MODES, garble
from devices.tcp_server import TcpGateway


class StationServer:
    """One station's devices on Modbus TCP or RTU. Start and stop from the serving loop."""

    def __init__(self, station_id: str, devices: Sequence[FieldDevice]) -> None:
        self.station_id = station_id
        self.devices = list(devices)
        ids = [d.unit_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate unit ids at station {station_id}: {sorted(ids)}")
        self._server: TcpGateway | RtuLine | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.serial_port: str | None = None
        self._by_unit = {d.unit_id: d for d in self.devices}
        self._transport = ""
        self._replies: dict[tuple[str, float], int] = {}  # (device, window start) → frames sent

    def _serve_as(self, transport: str) -> None:
        """Refuse a wire fault that does not fit the line (bit noise on TCP would change
        register values no check could see; there is no MBAP header on RTU)."""
        for d in self.devices:
            for w in d.silence.wire:
                if WIRE_MODES[w.mode] != transport:
                    raise ValueError(f"station {self.station_id}: mode {w.mode} of "
                                     f"{w.where} needs Modbus {WIRE_MODES[w.mode].upper()}, "
                                     f"the station is served over {transport.upper()}")
        self._transport = transport

    def _on_the_wire(self, frame: bytes) -> bytes:
        """A reply frame leaves corrupted if its device is in a
        noise/garbled window and the window's draw for this frame says so."""
        if len(frame) < 5:  # 5: an RTU exception reply, the shortest frame
            return frame
        dev = self._by_unit.get(frame[0] if self._transport == "rtu" else frame[6])
        window = dev.silence.wire_at(dev.clock.now) if dev is not None else None
        if dev is None or window is None:
            return frame
        key = (dev.device, window.start)
        n = self._replies[key] = self._replies.get(key, -1) + 1
        out = garble(frame, window, dev.device, n)
        dev.garbled_replies += out != frame
        return out

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 = a free port); returns the port."""
        self._serve_as("tcp")
        gateway = TcpGateway(self.station_id, self._by_unit,
                             on_the_wire=self._on_the_wire)
        try:
            self.port = await gateway.start(host, port)
        except OSError as exc:
            raise OSError(f"station {self.station_id}: cannot listen on {host}:{port} ({exc})") from None
        self._server = gateway
        self.host = host
        return self.port

    async def start_rtu(self, serial_port: str) -> None:
        """Serve on a serial device (the device end of a pty pair), 38400 8N1."""
        self._serve_as("rtu")
        line = RtuLine(self.station_id, self._by_unit,
                       on_the_wire=self._on_the_wire)
        try:
            await line.start(serial_port)
        except (OSError, ValueError) as exc:
            raise OSError(f"station {self.station_id}: cannot open serial port {serial_port} ({exc})") from None
        self._server = line
        self.serial_port = serial_port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None
