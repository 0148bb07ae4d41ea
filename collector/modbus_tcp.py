"""A lean Modbus TCP client: the three requests the collector makes, one at a time.

FC03 (read holding registers), FC06 (write one register) and FC23 (write one register,
then read), framed with the MBAP header (transaction id, protocol 0, length, unit id).
Through the collector's ModbusLink a 125-register read cost ≈ 140 µs of CPU with pymodbus
3.16's client (its transaction manager, a text form of every decoded reply built for a
debug log that is off, a task per request) and ≈ 55 µs with this one, which decodes a
reply with one `struct` call (benchmarks/bench_modbus_client.py, docs/performance.md).
`PduClient` holds the requests and the checks of their replies; RTU framing is in
collector/modbus_rtu.py.

A reply is taken only when its transaction id, protocol id, unit id and function code are
the request's and its length is exact; anything else is dropped (a late reply to an earlier
request) or fails the request as garbled. Each request starts on an empty buffer, so what a
garbling gateway left behind never shifts the frames after it.
"""

from __future__ import annotations

import asyncio
import struct
from abc import ABC, abstractmethod

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length (unit id + PDU), unit id
MAX_PDU = 253


class ReplyError(Exception):
    """The reply could not be used (garbled, or the connection went)."""


class ExceptionReply(Exception):
    """The device answered with a Modbus exception."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exception {code:02d}")
        self.code = code


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.header = b""  # the request's (transaction id, protocol 0) and its unit id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ReplyError(f"connection lost: {exc!r}" if exc else "connection closed"))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while len(buf) >= 7:
            tid, protocol, length, unit = MBAP.unpack_from(buf)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                buf.clear()
                self._fail(ReplyError(f"not a Modbus TCP frame (protocol id {protocol}, "
                                      f"length {length})"))
                return
            if len(buf) < 6 + length:
                return  # the rest is still on its way (or never comes: the request times out)
            frame = bytes(buf[:6 + length])
            del buf[:6 + length]
            if frame[:4] != self.header[:4]:
                continue  # a late reply to an earlier request
            if frame[6] != self.header[4]:
                self._fail(ReplyError(f"reply from unit {frame[6]}"))
                return
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(frame[7:])

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


def _time_out(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no reply in time"))


async def bounded(waiter: asyncio.Future[bytes], timeout: float) -> bytes:
    """The waiter's reply, or TimeoutError after `timeout`: a timer rather than
    asyncio.wait_for, so no task per request (a third of its CPU)."""
    timer = asyncio.get_running_loop().call_later(timeout, _time_out, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


class PduClient(ABC):
    """The collector's three requests over any framing: `_exchange` sends one request PDU
    to a unit and returns its reply PDU (function code first)."""

    @abstractmethod
    async def _exchange(self, unit: int, pdu: bytes) -> bytes: ...

    async def _request(self, unit: int, pdu: bytes) -> bytes:
        reply = await self._exchange(unit, pdu)
        if reply[0] == pdu[0] | 0x80:
            if len(reply) != 2:
                raise ReplyError(f"exception reply of {len(reply)} bytes")
            raise ExceptionReply(reply[1])
        if reply[0] != pdu[0]:
            raise ReplyError(f"reply with function code {reply[0]} to {pdu[0]}")
        return reply

    async def _registers(self, unit: int, pdu: bytes) -> list[int]:
        reply = await self._request(unit, pdu)
        if len(reply) < 2 or reply[1] != len(reply) - 2 or reply[1] % 2:
            raise ReplyError(f"register reply of {len(reply)} bytes, byte count "
                             f"{reply[1] if len(reply) > 1 else None}")
        return list(struct.unpack(f">{reply[1] // 2}H", reply[2:]))

    async def read(self, unit: int, address: int, count: int) -> list[int]:
        """FC03: the registers the reply holds (the caller checks how many)."""
        return await self._registers(unit, struct.pack(">BHH", 3, address, count))

    async def write_read(self, unit: int, address: int, count: int,
                         write_address: int, value: int) -> list[int]:
        """FC23: write one register, then read."""
        return await self._registers(unit, struct.pack(">BHHHHBH", 23, address, count,
                                                       write_address, 1, 2, value))

    async def write(self, unit: int, address: int, value: int) -> None:
        """FC06: the reply must echo the request."""
        pdu = struct.pack(">BHH", 6, address, value)
        reply = await self._request(unit, pdu)
        if reply != pdu:
            raise ReplyError("write reply does not echo the request")


class ModbusTcpClient(PduClient):
    """Every request is bounded by `timeout` (TimeoutError)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._protocol: _Protocol | None = None
        self._tid = 0

    @property
    def connected(self) -> bool:
        return self._protocol is not None and self._protocol.transport is not None

    async def connect(self) -> bool:
        self.close()
        _, self._protocol = await asyncio.get_running_loop().create_connection(
            _Protocol, self.host, self.port)
        return True

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def _exchange(self, unit: int, pdu: bytes) -> bytes:
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            raise ReplyError("not connected")
        self._tid = self._tid % 0xFFFF + 1  # 1 … 65535: 0 reads as "any" to some gateways
        header = MBAP.pack(self._tid, 0, len(pdu) + 1, unit)
        protocol.header = header[:4] + header[6:]
        protocol.buffer.clear()
        loop = asyncio.get_running_loop()
        waiter = protocol.waiter = loop.create_future()
        protocol.transport.write(header + pdu)
        try:
            return await bounded(waiter, self.timeout)
        finally:
            protocol.waiter = None
