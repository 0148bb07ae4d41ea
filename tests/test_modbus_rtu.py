"""Modbus RTU over a socat pseudo-terminal pair, read with the pymodbus serial client."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType
from waiting import HANG_S

from devices.crc import crc_registers
from devices.fleet import DeviceFleet, WorldClock
from devices.profile import load_profile
from devices.rtu import PtyPair
from devices.rtu_server import RTU_SERIAL
from devices.server import StationServer
from sim.config import DispenserConfig, PriceChange, StationConfig, TankConfig, WorldConfig
from sim.world import World

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

START = 1774972800.0  # 2026-04-01T00:00:00+08:00
DISPENSER = load_profile("dispenser")


def small_world(dialect: str = "f32_le", days: float = 1.0) -> World:
    station = StationConfig(
        station_id="S02", name="RTU test", town="Haliut", ownership="state", dialect=dialect,
        transport="rtu", tanks=(TankConfig(1, "92", 30), TankConfig(2, "0", 20)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (2,))),
        throughput_l_per_day={"92": 5000.0, "0": 3000.0})
    prices = tuple(PriceChange(START - 86400, g, p) for g, p in (("92", 703), ("0", 671)))
    return World(WorldConfig(seed=11, start=START, days=days, timezone="Asia/Shanghai",
                             stations=(station,), prices=prices))


def test_pty_pair_starts_and_stops(tmp_path):
    pty = PtyPair(tmp_path, "S9").start()
    pid = pty.pid
    assert os.path.exists(pty.device_path) and os.path.exists(pty.collector_path)
    pty.stop()
    assert not os.path.lexists(pty.device_path)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # socat is gone (reaped by wait)


def test_rtu_station_read_and_drain(tmp_path):
    world = small_world()
    clock = WorldClock(world)
    fleet = DeviceFleet(world, {"S02": "f32_le"}, clock=clock, timezone="Asia/Shanghai", depth=50)
    fleet.attach()
    world.run_until(START + 6 * 3600)
    clock.stepped()
    disp = fleet.devices[("S02", "D1")]
    gauge = fleet.devices[("S02", "G")]
    pending = disp.fifo("transactions").pending
    assert pending > 0

    async def scenario():
        with PtyPair(tmp_path, "S02") as pty:
            server = StationServer("S02", fleet.by_station["S02"])
            await server.start_rtu(pty.device_path)
            client = AsyncModbusSerialClient(pty.collector_path, framer=FramerType.RTU,
                                             timeout=1, retries=0, **RTU_SERIAL)
            try:
                assert await client.connect()
                # header and live blocks: same registers as the device image, 0-based addresses
                r = await client.read_holding_registers(0, count=60, device_id=11)
                assert not r.isError(), r
                assert r.registers == disp.image.read(0, 60)
                assert r.registers[:4] == [1, 2, 2, 2]  # dispenser, v2, f32_le, 2 nozzles
                r = await client.read_input_registers(100, count=30, device_id=1)
                assert r.registers == gauge.image.read(100, 30)
                # drain the transaction FIFO over the serial line
                spec = DISPENSER.fifo("transactions")
                got = []
                for _ in range(pending + 2):
                    r = await client.read_holding_registers(spec.base, count=spec.size, device_id=11)
                    regs = r.registers
                    if regs[0] == 0:
                        break
                    n = min(regs[0], spec.window_records)
                    recs = [regs[10 + 28 * k: 38 + 28 * k] for k in range(n)]
                    assert all(rec[27] == crc_registers(rec[:27]) for rec in recs)
                    got += [rec[0] for rec in recs]
                    w = await client.write_register(spec.ack_address, recs[-1][0], device_id=11)
                    assert not w.isError(), w
                assert len(got) == pending and disp.fifo("transactions").pending == 0
                assert got == [(got[0] + i) & 0xFFFF for i in range(pending)]
                # wrong ack -> exception 03; unknown address -> 02
                r = await client.write_register(spec.ack_address, got[-1], device_id=11)
                assert r.isError() and r.exception_code == 3
                r = await client.read_holding_registers(60, count=1, device_id=11)
                assert r.isError() and r.exception_code == 2
                # no device with unit id 5 on the line: silence, as on a real RS-485 bus
                with pytest.raises(ModbusIOException):
                    await client.read_holding_registers(0, count=1, device_id=5)
                r = await client.read_holding_registers(0, count=4, device_id=1)
                assert r.registers == [2, 2, 2, 2]  # the line still works: gauge, v2, f32_le, 2 tanks
            finally:
                client.close()
                await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


SERVE_SCRIPT = """
import signal, sys
# Ctrl-C as at a terminal: a test run started in the background (`cmd &` in a script)
# inherits SIGINT ignored, and Python then keeps ignoring it
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from test_modbus_rtu import small_world
from devices.runner import serve
r = serve(small_world(days=3.0), compression=None, out_dir={out!r}, fifo_depth=30,
          scenario_name="ctrl-c", echo=False)
print("RESULT", r.stop_reason, flush=True)
"""


def test_ctrl_c_stops_cleanly_and_leaves_consistent_truth(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pyarrow.parquet as pq

    out = tmp_path / "run"
    script = SERVE_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = ""
    try:
        deadline = time.monotonic() + HANG_S
        while not (out / "endpoints.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        ep = json.loads((out / "endpoints.json").read_text())
        assert ep["stations"]["S02"]["transport"] == "rtu"  # from the station config
        assert Path(ep["stations"]["S02"]["serial_port"]).exists()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pass  # a hang: the assertion below shows its output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # with its socat
            output += proc.communicate()[0]
    assert proc.returncode == 0, output
    assert "RESULT interrupted" in output
    assert json.loads((out / "devices.json").read_text())["stop_reason"] == "interrupted"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    for name, info in manifest["files"].items():
        assert pq.read_metadata(out / name).num_rows == info["rows"]
    # socat was stopped by its pid and the pty links removed
    assert not (out / "tty" / "S02.dev").exists() and not (out / "tty" / "S02.col").exists()
    assert "exiting on signal 15" in (out / "tty" / "S02.socat.log").read_text()
