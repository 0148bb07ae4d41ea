"""A station's RS-485 line on Modbus RTU, served by the harness on the device end of a pty
pair (devices.rtu).

Why not pymodbus's serial server: under the banner's load an RTU station's request took
≈ 40 ms against ≈ 13 ms over TCP (a task per request and a writer callback before each
reply left, each an event-loop pass in a busy process), and one small RTU station held the
whole world at its high-water mark (docs/performance.md). Here a request is answered in the
reader callback that brings its last byte, with devices.pdu's answer, as over TCP.

Framing: the request's length follows from its function code (01–06: 8 bytes; 15, 16: 9 +
byte count; 23: 13 + byte count); for another function code the bytes that have arrived are
the frame (a master sends one request at a time). On the line, as on an RS-485 bus: a frame
whose CRC fails is ignored, and so is one for a unit with no device (nobody answers) or for
unit 0 (a broadcast is never answered). A silent device answers nothing, a busy one 06, a
slow one late; requests are answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

import serial

from devices.crc import crc16_modbus
from devices.device import FieldDevice
from devices.pdu import DEVICE_BUSY, WireHook, exception, serve

log = logging.getLogger(__name__)

RTU_SERIAL = {"baudrate": 38400, "parity": "N", "stopbits": 1, "bytesize": 8}


def request_length(buf: bytearray) -> int | None:
    """Bytes of the request frame at the start of `buf` (None: not known yet)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if 1 <= fc <= 6:
        return 8
    if fc in (15, 16):
        return 9 + buf[6] if len(buf) > 6 else None
    if fc == 23:
        return 13 + buf[10] if len(buf) > 10 else None
    return len(buf)


class RtuLine:
    """Every device of one station on one serial line, one unit id per device. Start and
    stop it from the serving loop (the world is not thread-safe)."""

    def __init__(self, station_id: str, units: Mapping[int, FieldDevice],
                 on_the_wire: WireHook = bytes) -> None:
        self.station_id = station_id
        self.units = dict(units)
        self.on_the_wire = on_the_wire
        self.buffer = bytearray()
        self.late: asyncio.TimerHandle | None = None  # a slow device's reply on its way
        self._line: serial.Serial | None = None

    async def start(self, serial_port: str) -> None:
        # timeout 0: reads never block (the reader callback reads what is there)
        self._line = serial.Serial(serial_port, timeout=0, write_timeout=0, **RTU_SERIAL)
        asyncio.get_running_loop().add_reader(self._line.fileno(), self._readable)

    async def stop(self) -> None:
        line, self._line = self._line, None
        if self.late is not None:
            self.late.cancel()
        if line is not None:
            asyncio.get_running_loop().remove_reader(line.fileno())
            line.close()

    def _readable(self) -> None:
        if self._line is None:
            return
        try:
            data = os.read(self._line.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # the pty pair is gone (socat ended): a cut line, not a spin
            log.warning("station %s: serial line failed (%s); no longer served",
                        self.station_id, exc)
            asyncio.get_running_loop().remove_reader(self._line.fileno())
            return
        self.buffer += data
        if self.late is None:
            self.answer()

    def answer(self) -> None:
        """Answer every complete frame in the buffer, until one must wait (slow device)."""
        buf = self.buffer
        while (n := request_length(buf)) is not None and len(buf) >= n:
            frame = bytes(buf[:n])
            del buf[:n]
            if n < 4 or crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
                continue  # noise: ignored, as a device ignores a frame that fails its CRC
            dev = self.units.get(frame[0])
            if dev is None:
                continue
            pdu = frame[1:-2]
            mode, delay = dev.misbehaviour()
            if mode == "silent":
                continue
            if mode == "busy":
                self.send(dev.unit_id, exception(pdu[0], DEVICE_BUSY))
            elif mode == "slow":
                self.late = asyncio.get_running_loop().call_later(
                    delay, self.answer_late, dev, pdu)
                return
            else:
                self.send(dev.unit_id, serve(dev, pdu))

    def answer_late(self, dev: FieldDevice, pdu: bytes) -> None:
        self.late = None
        self.send(dev.unit_id, serve(dev, pdu))  # values as they are when the reply leaves
        self.answer()

    def send(self, unit: int, pdu: bytes) -> None:
        if self._line is None:
            return
        frame = bytes((unit,)) + pdu
        frame += crc16_modbus(frame).to_bytes(2, "little")
        try:
            os.write(self._line.fileno(), self.on_the_wire(frame))
        except OSError as exc:  # nobody reads the line: the reply is lost, as on a bus
            log.debug("station %s: reply not sent: %s", self.station_id, exc)
