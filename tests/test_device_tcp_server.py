"""The devices' own Modbus TCP gateway (devices.tcp_server) answers every request byte for
byte as pymodbus's server did with the same devices, or as the register map orders where
pymodbus did not; and it handles pipelined and split frames, frames that are not Modbus and
PDUs of the wrong length."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest
import uvloop
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus_reference import sim_device
from test_modbus_tcp import build_station, make_txn

from devices.server import StationServer
from sim.records import DeviceEvent

T0 = 1767225600.0


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a coroutine function on the loop the devices process may use (devices.runner)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def run_on(coro_fn, timeout: float = 30.0):
        async def main():
            return await asyncio.wait_for(coro_fn(), timeout)
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main())
    return run_on


def filled_station():
    devices, _, _, _ = build_station("int_be")
    disp, gauge = devices
    for s in range(10, 410):
        disp.accept("transactions", make_txn(s, s))
    gauge.accept("events", DeviceEvent("S01", "G", 500, T0, 1, "power_up", 0))
    return devices


async def pymodbus_server(devices) -> tuple[ModbusTcpServer, int]:
    """The server the devices had before devices.tcp_server: pymodbus's, with a catch-all
    unit answering 0x0B."""
    async def gateway_no_response(*_args):
        return ExcCodes.GATEWAY_NO_RESPONSE
    catch_all = SimDevice(id=0, simdata=[SimData(0, count=65536, datatype=DataType.REGISTERS)],
                          action=gateway_no_response)
    server = ModbusTcpServer([sim_device(d) for d in devices] + [catch_all],
                             address=("127.0.0.1", 0), ignore_missing_devices=True)
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]


def requests(devices, n: int, seed: int) -> list[tuple[int, bytes]]:
    """(unit, PDU) pairs around every region's edges and the FIFO ack registers."""
    rng = random.Random(seed)
    edges = sorted({a for d in devices for r in d.image.regions
                    for a in (r.start - 1, r.start, r.end - 1, r.end) if 0 <= a <= 65535}
                   | {a for d in devices for a in d.image.writable()} | {0, 65535})
    acks = sorted({a for d in devices for a in d.image.writable()})
    counts = (0, 1, 2, 3, 10, 60, 123, 125, 126)
    units = {d.unit_id: d for d in devices}
    out = []
    while len(out) < n:
        unit = rng.choice((11, 11, 11, 1, 1, 12, 0))
        fc = rng.choice((3, 4, 3, 23, 23, 6, 16, 1, 5))
        address, count = rng.choice(edges), rng.choice(counts)
        # acks near the transactions FIFO's head (10 … 409 pending), some wrong ones
        value = rng.choice((10 + 400 * len(out) // n + rng.randint(-3, 3), 500, 0xFFFF))
        target = rng.choice(acks if rng.random() < 0.5 else edges)  # of a write
        if fc in (3, 4, 1):
            pdu = struct.pack(">BHH", fc, address, count)
        elif fc in (6, 5):
            pdu = struct.pack(">BHH", fc, target, value)
        elif fc == 16:
            k = rng.choice((1, 1, 2))
            pdu = struct.pack(f">BHHB{k}H", fc, target, k, 2 * k, *[value] * k)
        else:
            pdu = struct.pack(">BHHHHBH", fc, address, count, target, 1, 2, value)
            if unit in units and 1 <= count <= 125 and not units[unit].image.covers(address, count):
                continue  # pymodbus applied the ack: the two stations would part (see below)
        out.append((unit, pdu))
    return out


async def exchange(port: int, reqs: list[tuple[int, bytes]]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    try:
        for tid, (unit, pdu) in enumerate(reqs, 1):
            writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
            head = await asyncio.wait_for(reader.readexactly(7), 5)
            replies.append(head + await reader.readexactly(struct.unpack(">H", head[4:6])[0] - 1))
    finally:
        writer.close()
    return replies


def by_the_map(devices, unit: int, pdu: bytes) -> bytes | None:
    """The reply PDU docs/register-map.md §8 orders where pymodbus's server answered
    otherwise; None where they agree. (pymodbus answered a read of 0 or more than 125
    registers with function 0x80 exception 01, coils with 01 or 02 by address, an FC23 with a
    refused read part after applying its ack, and a missing unit only after checking the
    addresses.)"""
    fc = pdu[0]
    device = {d.unit_id: d for d in devices}.get(unit)
    if device is None:
        return bytes((fc | 0x80, 0x0B))
    if fc not in (3, 4, 6, 16, 23):
        return bytes((fc | 0x80, 1))
    if fc in (3, 4, 23):
        address, count = struct.unpack_from(">HH", pdu, 1)
        if count == 0:
            return bytes((fc | 0x80, 3))
        if count > 125 or (fc == 23 and not device.image.covers(address, count)):
            return bytes((fc | 0x80, 2))
    return None


def test_every_request_is_answered_as_pymodbus_answered_it_or_as_the_map_orders(run):
    devices = filled_station()
    reqs = requests(devices, 1500, seed=7)

    async def scenario():
        theirs, port = await pymodbus_server(filled_station())
        try:
            expected = await exchange(port, reqs)
        finally:
            await theirs.shutdown()
        ours = StationServer("S01", filled_station())
        try:
            got = await exchange(await ours.start_tcp("127.0.0.1", 0), reqs)
        finally:
            await ours.stop()
        return expected, got

    expected, got = run(scenario, timeout=120)
    same = differ = 0
    for (unit, pdu), theirs, ours in zip(reqs, expected, got, strict=True):
        want = by_the_map(devices, unit, pdu)
        if want is None:
            assert ours == theirs, (unit, pdu.hex(), theirs.hex(), ours.hex())
            same += 1
        else:
            assert ours[:2] == theirs[:2] and ours[6] == unit and ours[7:] == want, (
                unit, pdu.hex(), ours.hex())
            differ += 1
    answered = {r[7] for r in got}  # served and refused requests were both compared
    assert {3, 4, 6, 16, 23, 0x83, 0x97, 0x86, 0x90} <= answered, sorted(answered)
    assert same > 500 and differ > 100, (same, differ)


def test_pipelined_split_and_foreign_frames(run):
    """Three requests in one segment, one request cut in three segments: every reply, in
    order. A PDU of the wrong length: 03. A frame with protocol id 1 (not Modbus): the
    connection is closed."""
    def frame(tid: int, unit: int, pdu: bytes) -> bytes:
        return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu

    read = struct.pack(">BHH", 3, 1000, 2)

    async def scenario():
        server = StationServer("S01", filled_station())
        port = await server.start_tcp("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(1, 11, read) + frame(2, 12, read) + frame(3, 1, b"\x01\x00\x00\x00\x01"))
            one = await reader.readexactly(7 + 2 + 4)  # FIFO status, 2 registers
            two = await reader.readexactly(9)  # exception 0x0B
            three = await reader.readexactly(9)  # exception 01
            whole = frame(4, 11, read)
            for part in (whole[:3], whole[3:8], whole[8:]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.01)
            four = await reader.readexactly(7 + 2 + 4)
            writer.write(frame(5, 11, read + b"\x00"))  # one byte too many for FC03
            five = await reader.readexactly(9)
            writer.write(struct.pack(">HHHB", 6, 1, 6, 11) + read)
            rest = await asyncio.wait_for(reader.read(), 5)  # b"" once the peer closed
            writer.close()
            return one, two, three, four, five, rest
        finally:
            await server.stop()

    one, two, three, four, five, rest = run(scenario)
    assert one[:2] == b"\x00\x01" and one[7:9] == b"\x03\x04"
    assert two[:2] == b"\x00\x02" and two[6:] == b"\x0c\x83\x0b"
    assert three[:2] == b"\x00\x03" and three[7:] == b"\x81\x01"
    assert four[:2] == b"\x00\x04" and four[7:] == one[7:]
    assert five[:2] == b"\x00\x05" and five[7:] == b"\x83\x03"
    assert rest == b""


def test_an_fc23_whose_read_is_refused_writes_nothing(run):
    """The read part is checked before the ack is applied (docs/register-map.md §8)."""
    devices = filled_station()
    fifo = devices[0].ack_fifos[1004]

    async def scenario():
        server = StationServer("S01", devices)
        try:
            bad_read = struct.pack(">BHHHHBH", 23, 60, 1, 1004, 1, 2, 12)  # 60: a gap
            return await exchange(await server.start_tcp("127.0.0.1", 0), [(11, bad_read)])
        finally:
            await server.stop()

    pending = fifo.pending
    (reply,) = run(scenario)
    assert reply[7:] == b"\x97\x02" and fifo.pending == pending == 400
