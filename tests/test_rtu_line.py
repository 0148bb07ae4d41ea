"""Modbus RTU framing of the harness's own RTU line (devices.rtu_server) and of the
collector's RTU client (collector/modbus_rtu.py), each against scripted bytes on a pty
(os.openpty: no socat needed). The answer to a PDU is devices.pdu's, the same as over TCP."""

from __future__ import annotations

import asyncio
import os
import struct
import time

import pytest
from test_device_tcp_server import exchange, filled_station, requests
from waiting import HANG_S

from collector.codec import crc16_modbus
from collector.modbus_rtu import ModbusRtuClient
from collector.modbus_tcp import ExceptionReply, ReplyError
from devices.server import StationServer

SERIAL = {"baudrate": 38400, "bytesize": 8, "parity": "N", "stopbits": 1}


def rtu(unit: int, pdu: bytes) -> bytes:
    frame = bytes((unit,)) + pdu
    return frame + crc16_modbus(frame).to_bytes(2, "little")


PROBE = rtu(1, b"\x04\x00\x00\x00\x01")  # the gauge's device-type register
PROBE_REPLY = rtu(1, b"\x04\x02\x00\x02")


class Master:
    """The test's end of a pty pair; the code under test opens `path`."""

    def __init__(self) -> None:
        self.fd, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()

    async def read(self, n: int) -> bytes:
        buf = self.buffer
        deadline = time.monotonic() + HANG_S
        while len(buf) < n:
            assert time.monotonic() < deadline, f"only {buf.hex()} within {HANG_S} s"
            try:
                buf += os.read(self.fd, 4096)
            except BlockingIOError:
                await asyncio.sleep(0.002)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    async def reply(self) -> bytes:
        """One reply frame, its length told by its first bytes."""
        head = await self.read(3)
        n = 5 if head[1] & 0x80 else 8 if head[1] in (6, 16) else 5 + head[2]
        return head + await self.read(n - 3)

    async def unanswered(self, frame: bytes) -> bool:
        """Send `frame`, then a read every device answers: True if the first reply to come
        back is the probe's, i.e. `frame` got none (no waiting on a clock)."""
        self.write(frame + PROBE)
        return await self.reply() == PROBE_REPLY

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


# -- the devices' RTU line ---------------------------------------------------------------------

def test_every_request_is_answered_as_over_tcp_and_a_missing_unit_not_at_all():
    """1 500 requests of every function code (devices.pdu's table) over RTU and over TCP to
    identical stations: the same reply PDU, except that a unit with no device answers 0x0B
    over TCP and nothing on the RS-485 line."""
    devices = filled_station()
    units = {d.unit_id for d in devices}
    reqs = requests(devices, 1500, seed=11)

    async def scenario():
        tcp = StationServer("S01", filled_station())
        try:
            over_tcp = await exchange(await tcp.start_tcp("127.0.0.1", 0), reqs)
        finally:
            await tcp.stop()
        master = Master()
        line = StationServer("S01", filled_station())
        await line.start_rtu(master.path)
        over_rtu = []
        try:
            for unit, pdu in reqs:
                if unit not in units:
                    over_rtu.append(b"" if await master.unanswered(rtu(unit, pdu)) else b"?")
                    continue
                master.write(rtu(unit, pdu))
                over_rtu.append(await master.reply())
        finally:
            await line.stop()
            master.close()
        return over_tcp, over_rtu

    over_tcp, over_rtu = asyncio.run(scenario())
    for (unit, pdu), t, r in zip(reqs, over_tcp, over_rtu, strict=True):
        if unit not in units:
            assert r == b"", (unit, pdu.hex(), r.hex())
            continue
        assert r[0] == unit and crc16_modbus(r[:-2]) == int.from_bytes(r[-2:], "little")
        assert r[1:-2] == t[7:], (unit, pdu.hex(), t.hex(), r.hex())
    assert sum(u not in units for u, _ in reqs) > 100


def test_noise_a_missing_unit_and_pipelined_or_split_requests():
    """A request whose CRC fails gets no answer, and the line answers the next one; two
    requests in one write are answered in order; a request cut in three arrives whole."""
    read = struct.pack(">BHH", 3, 1000, 2)

    async def scenario():
        master = Master()
        line = StationServer("S01", filled_station())
        await line.start_rtu(master.path)
        try:
            bad = bytearray(rtu(11, read))
            bad[3] ^= 0x10
            ignored = await master.unanswered(bytes(bad))
            master.write(rtu(11, read) + rtu(12, read) + PROBE)  # unit 12: no such device
            one = await master.reply()
            nothing = await master.reply() == PROBE_REPLY
            whole = rtu(1, read)
            for part in (whole[:2], whole[2:5], whole[5:]):
                master.write(part)
                await asyncio.sleep(0.01)
            two = await master.reply()
            return ignored, one, nothing, two
        finally:
            await line.stop()
            master.close()

    ignored, one, nothing, two = asyncio.run(scenario())
    assert ignored and nothing
    assert one[:3] == b"\x0b\x03\x04" and two[:3] == b"\x01\x03\x04"


# -- the collector's RTU client ----------------------------------------------------------------

def client_run(script):
    """Run `script(client, master)` with the client connected to a pty."""
    async def main():
        master = Master()
        client = ModbusRtuClient(master.path, timeout=0.3, **SERIAL)
        try:
            await client.connect()
            return await script(client, master)
        finally:
            client.close()
            master.close()
    return asyncio.run(main())


def test_the_client_takes_a_reply_in_pieces_and_an_exception():
    async def script(client, master):
        task = asyncio.create_task(client.read(11, 1000, 2))
        request = await master.read(8)
        reply = rtu(11, b"\x03\x04\x00\x05\x00\x06")
        for piece in (reply[:1], reply[1:4], reply[4:]):
            master.write(piece)
            await asyncio.sleep(0.01)
        values = await task
        task = asyncio.create_task(client.write_read(11, 1000, 2, 1004, 7))
        await master.read(15)
        master.write(rtu(11, b"\x97\x02"))
        with pytest.raises(ExceptionReply) as refused:
            await task
        return request, values, refused.value.code

    request, values, code = client_run(script)
    assert request == rtu(11, struct.pack(">BHH", 3, 1000, 2))
    assert values == [5, 6] and code == 2


@pytest.mark.parametrize("reply, error", [
    (lambda good: good[:-1] + bytes((good[-1] ^ 1,)), "fails its CRC"),
    (lambda good: rtu(12, good[1:-2]), "from unit 12"),
    (lambda good: rtu(11, b"\x04" + good[2:-2]), "function code 4"),
    (lambda good: good[:-3], None),  # cut short: the rest never comes
])
def test_the_client_refuses_a_garbled_reply_and_goes_on(reply, error):
    """A garbled reply fails the request (TimeoutError when it was cut short); what is left
    of it does not spill into the next request, which gets its own reply."""
    good = rtu(11, b"\x03\x04\x00\x05\x00\x06")

    async def script(client, master):
        task = asyncio.create_task(client.read(11, 1000, 2))
        await master.read(8)
        master.write(reply(good) + b"\x11\x22")  # and trailing line noise
        failed = None
        try:
            await task
        except (ReplyError, TimeoutError) as exc:
            failed = exc
        task = asyncio.create_task(client.read(11, 1000, 2))
        await master.read(8)
        master.write(good)
        return failed, await task

    failed, values = client_run(script)
    if error is None:
        assert isinstance(failed, TimeoutError)
    else:
        assert isinstance(failed, ReplyError) and error in str(failed), failed
    assert values == [5, 6]
