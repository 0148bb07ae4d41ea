"""An independent client (Debian's mbpoll) reads a station server: proves 0-based addressing,
word order of both dialects, and the exception codes."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from devices.fleet import DeviceFleet, WorldClock
from devices.server import StationServer
from sim.config import DispenserConfig, PriceChange, StationConfig, TankConfig, WorldConfig
from sim.world import World

pytestmark = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed")

START = 1774972800.0  # 2026-04-01T00:00:00+08:00
ROW = re.compile(r"^\[(\d+)\]:\s+(\S+)\s*$", re.M)


def fleet_for(dialect: str) -> DeviceFleet:
    station = StationConfig(
        station_id="S03", name="mbpoll test", town="Haliut", ownership="private", dialect=dialect,
        transport="tcp", tanks=(TankConfig(1, "95", 20), TankConfig(2, "0", 30)),
        dispensers=(DispenserConfig(1, (1, 2)),), throughput_l_per_day={"95": 4000.0, "0": 4000.0})
    prices = (PriceChange(START - 86400, "95", 752), PriceChange(START - 86400, "0", 671))
    world = World(WorldConfig(seed=5, start=START, days=1.0, timezone="Asia/Shanghai",
                              stations=(station,), prices=prices))
    clock = WorldClock(world)
    fleet = DeviceFleet(world, {"S03": dialect}, clock=clock, timezone="Asia/Shanghai")
    fleet.attach()
    world.run_until(START + 3 * 3600 + 7)
    clock.stepped()
    return fleet


async def mbpoll(port: int, *args: str, values: tuple[str, ...] = ()) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "tcp", "-p", str(port), "-1", "-o", "2", *args, "127.0.0.1",
        *(("--", *values) if values else ()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace")


def rows(text: str) -> dict[int, str]:
    return {int(k): v for k, v in ROW.findall(text)}


def with_server(fleet: DeviceFleet, body):
    async def main():
        server = StationServer("S03", fleet.by_station["S03"])
        port = await server.start_tcp("127.0.0.1", 0)
        try:
            await body(port)
        finally:
            await server.stop()
    asyncio.run(asyncio.wait_for(main(), 60))


def test_mbpoll_reads_int_be_station():
    fleet = fleet_for("int_be")
    disp = fleet.devices[("S03", "D1")]
    gauge = fleet.devices[("S03", "G")]

    async def body(port):
        # mbpoll's default reference is 1-based: reference 1 is protocol address 0
        rc, out = await mbpoll(port, "-a", "11", "-r", "1", "-c", "10", "-t", "4")
        assert rc == 0, out
        expected = disp.image.read(0, 10)
        assert [int(v) for _, v in sorted(rows(out).items())] == expected
        assert expected[:4] == [1, 2, 1, 2]  # dispenser, profile v2, int_be, 2 nozzles
        assert expected[6:10] == [2026, 4, 1, 3]  # RTC: 2026-04-01 03:00 local
        # -0: protocol addresses; 32-bit big-endian word order = int_be
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "104", "-t", "4:int", "-B")
        assert rc == 0 and rows(out) == {104: "7520"}, out  # ¥7.520/L at 0.001
        rc, out = await mbpoll(port, "-a", "1", "-0", "-r", "110", "-t", "3:int", "-B")
        temp_raw = int(rows(out)[110])
        assert temp_raw == round(gauge.view.tanks[0].live_reading().temperature_c / 0.01)
        # exceptions as mbpoll reports them
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "60", "-t", "4")
        assert rc != 0 and "Illegal data address" in out
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "1004", "-t", "4",
                               values=(str((disp.fifo("transactions").head_seq - 1) & 0xFFFF),))
        assert rc != 0 and "Illegal data value" in out
        # a correct ack through mbpoll releases the head record
        head = disp.fifo("transactions").head_seq
        pending = disp.fifo("transactions").pending
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "1004", "-t", "4", values=(str(head),))
        assert rc == 0, out
        assert disp.fifo("transactions").pending == pending - 1

    with_server(fleet, body)


def test_mbpoll_reads_f32_le_station():
    fleet = fleet_for("f32_le")

    async def body(port):
        # mbpoll's float is little-endian word order by default = f32_le
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "104", "-t", "4:float")
        assert rc == 0, out
        assert float(rows(out)[104]) == pytest.approx(7.52, abs=1e-5)
        rc, out = await mbpoll(port, "-a", "11", "-0", "-r", "2", "-t", "4")
        assert rows(out) == {2: "2"}  # dialect_code
        rc, out = await mbpoll(port, "-a", "1", "-0", "-r", "120", "-t", "3:float")
        gauge = fleet.devices[("S03", "G")]
        assert float(rows(out)[120]) == pytest.approx(gauge.view.tanks[0].capacity_l, rel=1e-6)

    with_server(fleet, body)
