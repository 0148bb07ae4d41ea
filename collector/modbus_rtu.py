"""A lean Modbus RTU client (主站) for one serial line: the collector's three requests,
one at a time, each frame `unit, PDU, CRC-16/MODBUS` (low byte first).

Why not pymodbus 3.16's serial client: under a loaded collector process its request went
through several event-loop passes (a writer callback before the frame left, a task per
`wait_for`) and an RTU station's FIFO read took ≈ 39 ms against ≈ 12 ms over TCP, enough
for one small RTU station to hold the whole banner's world at its high-water mark
(docs/performance.md). Here a request is written at once and its reply completed in the
reader callback that brings its last byte.

RTU has no transaction id: the reply's length is known from its first bytes (an exception
5 bytes, FC06 8, FC03/FC23 5 + byte count), it must come from the request's unit with the
request's function code, and its CRC must hold; anything else fails the request as
garbled (line noise, docs/faults.md). Bytes that arrive with no request waiting (the rest of
a garbled or late reply) are dropped, and each request starts on an empty buffer.
"""

from __future__ import annotations

import asyncio
import os

import serial

from collector.codec import crc16_modbus
from collector.modbus_tcp import PduClient, ReplyError, bounded


class ModbusRtuClient(PduClient):
    """Every request is bounded by `timeout` (TimeoutError)."""

    def __init__(self, port: str, *, baudrate: int, bytesize: int, parity: str,
                 stopbits: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self._settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity,
                          "stopbits": stopbits}
        self._serial: serial.Serial | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[bytes] | None = None
        self._expect = b""  # unit and function code of the request in flight

    @property
    def connected(self) -> bool:
        return self._serial is not None

    async def connect(self) -> bool:
        self.close()
        # timeout 0: reads never block (the reader callback reads what is there)
        line = serial.Serial(self.port, timeout=0, write_timeout=0, exclusive=True,
                             **self._settings)
        asyncio.get_running_loop().add_reader(line.fileno(), self._readable)
        self._serial = line
        return True

    def close(self) -> None:
        line, self._serial = self._serial, None
        if line is not None:
            asyncio.get_running_loop().remove_reader(line.fileno())
            line.close()
            self._fail(ReplyError("serial line closed"))

    async def _exchange(self, unit: int, pdu: bytes) -> bytes:
        line = self._serial
        if line is None:
            raise ReplyError("not connected")
        frame = bytes([unit]) + pdu
        frame += crc16_modbus(frame).to_bytes(2, "little")
        self._buffer.clear()
        self._expect = frame[:2]
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            # a pty or UART takes a frame this short whole; a full output buffer means
            # nothing reads the line, which is no answer
            if os.write(line.fileno(), frame) != len(frame):
                raise ReplyError("serial line took part of the request")
            return await bounded(waiter, self.timeout)
        except BlockingIOError as exc:
            raise ReplyError("serial line does not take the request (output full)") from exc
        finally:
            self._waiter = None

    def _readable(self) -> None:
        line = self._serial
        if line is None:
            return
        try:
            data = os.read(line.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(ReplyError(f"serial line failed: {exc}"))
            self.close()
            return
        if self._waiter is None or self._waiter.done():
            return  # no request waits: the rest of a late or garbled reply
        buf = self._buffer
        buf += data
        need = self._frame_length(buf)
        if need is None or len(buf) < need:
            return
        frame = bytes(buf[:need])
        buf.clear()
        if crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            self._fail(ReplyError(f"reply of {need} bytes fails its CRC"))
        else:
            self._waiter.set_result(frame[1:-2])

    def _frame_length(self, buf: bytearray) -> int | None:
        """The reply's length in bytes once its first bytes tell it; None: not yet, or
        not a reply to the request (the request fails)."""
        if len(buf) < 3:
            return None
        unit, fc = self._expect
        if buf[1] == fc | 0x80 and buf[0] == unit:
            return 5
        if buf[1] == fc and buf[0] == unit:
            return 8 if fc == 6 else 5 + buf[2]
        self._fail(ReplyError(f"reply from unit {buf[0]} with function code {buf[1]} "
                              f"to a request to unit {unit} with {fc}"))
        buf.clear()
        return None

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
