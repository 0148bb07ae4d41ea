"""A station's serial-to-Ethernet gateway (串口服务器) on Modbus TCP, written for the harness.

Why not pymodbus's server: serving the banner, it took 53 % of the devices process's CPU
(py-spy, docs/performance.md), most of it in generic datastore checks and debug strings,
while a request here is one MBAP header, one dictionary look-up and the device's own
image. RTU lines keep pymodbus (devices.server).

The contract is docs/register-map.md §1, §2 and §8: function codes 03, 04, 06, 16, 23; a
unit id with no device answers 0x0B; a silent device answers nothing, a busy one 06, a slow
one late. A PDU whose length does not fit its function answers 03 (ILLEGAL DATA VALUE, as the
Modbus application protocol orders it); a frame that is not Modbus TCP (protocol id other
than 0, a length field outside 2…254) closes the connection, as a gateway drops a peer that
speaks something else. Requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping
from typing import cast

from devices.codec import CodecError
from devices.device import MAX_READ, READ_FCS, WRITE_FCS, FieldDevice

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
ADDRESS_COUNT = struct.Struct(">HH")
READ_WRITE = struct.Struct(">HHHHB")  # FC23: read address/count, write address/count, bytes
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, DEVICE_BUSY = 1, 2, 3, 4, 6
GATEWAY_NO_RESPONSE = 0x0B
MAX_WRITE = 123  # FC16 registers per request (Modbus limit)
MAX_RW_WRITE = 121  # FC23 write registers per request (Modbus limit)
SERVED_FCS = READ_FCS | WRITE_FCS  # as on RTU; every other function code answers 01

# (frame about to be sent) -> the frame as it goes out (devices.server garbles it in a window)
WireHook = Callable[[bytes], bytes]


def exception(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


def read_refusal(dev: FieldDevice, address: int, count: int) -> int | None:
    """Why a read is refused: 03 for 0 registers, 02 unless every register lies in a region
    (so also for more than 125, docs/register-map.md §8); None when it is served."""
    if count == 0:
        return ILLEGAL_VALUE
    if not dev.image.covers(address, count) or count > MAX_READ:
        return ILLEGAL_ADDRESS
    return None


def read_reply(dev: FieldDevice, fc: int, address: int, count: int) -> bytes:
    if (err := read_refusal(dev, address, count)) is not None:
        return exception(fc, err)
    registers = [0] * count
    dev.image.fill(registers, 0, address, count)
    return struct.pack(f">BB{count}H", fc, 2 * count, *registers)


def serve(dev: FieldDevice, pdu: bytes) -> bytes:
    """The reply PDU to one request PDU of a device that answers as usual."""
    fc = pdu[0]
    n = len(pdu)
    if fc not in SERVED_FCS:
        return exception(fc, ILLEGAL_FUNCTION)
    try:
        if fc in (3, 4):
            if n != 5:
                return exception(fc, ILLEGAL_VALUE)
            return read_reply(dev, fc, *ADDRESS_COUNT.unpack_from(pdu, 1))
        if fc == 6:
            if n != 5:
                return exception(fc, ILLEGAL_VALUE)
            address, value = ADDRESS_COUNT.unpack_from(pdu, 1)
            if (err := dev.write_ack(address, 1, value)) is not None:
                return exception(fc, err)
            # the echo reads the register back: the ack register shows the sequence acked
            return pdu[:3] + dev.image.read(address, 1)[0].to_bytes(2, "big")
        if fc == 16:
            if n < 6:
                return exception(fc, ILLEGAL_VALUE)
            address, count = ADDRESS_COUNT.unpack_from(pdu, 1)
            if not 1 <= count <= MAX_WRITE or pdu[5] != 2 * count or n != 6 + 2 * count:
                return exception(fc, ILLEGAL_VALUE)
            if (err := dev.write_ack(address, count, int.from_bytes(pdu[6:8], "big"))) is not None:
                return exception(fc, err)
            return pdu[:5]
        # FC23
        if n < 10:
            return exception(fc, ILLEGAL_VALUE)
        r_address, r_count, w_address, w_count, nbytes = READ_WRITE.unpack_from(pdu, 1)
        if not 1 <= w_count <= MAX_RW_WRITE or nbytes != 2 * w_count or n != 10 + nbytes:
            return exception(fc, ILLEGAL_VALUE)
        if (refused := read_refusal(dev, r_address, r_count)) is not None:
            return exception(fc, refused)  # before anything is written
        value = int.from_bytes(pdu[10:12], "big")
        if (err := dev.write_ack(w_address, w_count, value)) is not None:
            return exception(fc, err)
        return read_reply(dev, fc, r_address, r_count)
    except CodecError as exc:  # a value the device cannot encode (docs/register-map.md §8)
        log.error("%s: function %d: %s", dev.where, fc, exc)
        return exception(fc, DEVICE_FAILURE)


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
