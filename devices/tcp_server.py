"""A station's serial-to-Ethernet gateway (串口服务器) on Modbus TCP, written for the harness.

Why not pymodbus's server: serving the banner, it took 53 % of the devices process's CPU
(py-spy, docs/performance.md), most of it in generic datastore checks and debug strings,
while a request here is one MBAP header, one dictionary look-up and the device's own
image. RTU lines: devices.rtu_server.

The contract is docs/register-map.md §1, §2 and §8; the answer to a PDU is devices.pdu's.
Here: a unit id with no device answers 0x0B; a silent device answers nothing, a busy one
06, a slow one late; a frame that is not Modbus TCP (protocol id other than 0, a length
field outside 2…254) closes the connection, as a gateway drops a peer that speaks something
else. Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Mapping
from typing import cast

from devices.device import FieldDevice
from devices.pdu import DEVICE_BUSY, WireHook, exception, serve

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
GATEWAY_NO_RESPONSE = 0x0B


class _Link(asyncio.Protocol):
    """One collector's connection: frames cut from the byte stream, answered in order."""

    def __init__(self, gateway: TcpGateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.late: asyncio.TimerHandle | None = None  # a slow device's reply on its way

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport
        self.gateway.links.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.links.discard(self)
        if self.late is not None:
            self.late.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.late is None:
            self.answer()

    def answer(self) -> None:
        """Answer every complete frame in the buffer, until one must wait (slow device)."""
        buf = self.buffer
        units = self.gateway.units
        while len(buf) >= 7:
            tid, protocol, length, unit = MBAP.unpack_from(buf)
            if protocol != 0 or not 2 <= length <= 254:
                log.warning("station %s: not Modbus TCP (protocol id %d, length %d): "
                            "connection closed", self.gateway.station_id, protocol, length)
                buf.clear()
                assert self.transport is not None
                self.transport.close()
                return
            end = 6 + length
            if len(buf) < end:
                return
            pdu = bytes(buf[7:end])
            del buf[:end]
            dev = units.get(unit)
            if dev is None:
                self.send(tid, unit, exception(pdu[0], GATEWAY_NO_RESPONSE))
                continue
            mode, delay = dev.misbehaviour()
            if mode == "silent":
                continue
            if mode == "busy":
                self.send(tid, unit, exception(pdu[0], DEVICE_BUSY))
            elif mode == "slow":
                self.late = asyncio.get_running_loop().call_later(
                    delay, self.answer_late, tid, unit, dev, pdu)
                return
            else:
                self.send(tid, unit, serve(dev, pdu))

    def answer_late(self, tid: int, unit: int, dev: FieldDevice, pdu: bytes) -> None:
        self.late = None
        self.send(tid, unit, serve(dev, pdu))  # values as they are when the reply leaves
        self.answer()

    def send(self, tid: int, unit: int, pdu: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(self.gateway.on_the_wire(MBAP.pack(tid, 0, len(pdu) + 1, unit)
                                                          + pdu))


class TcpGateway:
    """Every device of one station behind one listening socket, one unit id per device.
    Start and stop it from the serving loop (the world is not thread-safe)."""

    def __init__(self, station_id: str, units: Mapping[int, FieldDevice],
                 on_the_wire: WireHook = bytes) -> None:
        self.station_id = station_id
        self.units = dict(units)
        self.on_the_wire = on_the_wire
        self.links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 = a free port); returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Link(self), host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for link in list(self.links):
                if link.transport is not None:
                    link.transport.close()
            await self._server.wait_closed()
            self._server = None
