"""Fault `device_silent`: a device that stops answering for a simulated interval, and the
devices' status.json the chain watches (devices.silence, devices.runner)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from waiting import HANG_S

from acceptance.schedule import scenario_faults
from devices.fleet import DeviceFleet, WorldClock
from devices.runner import serve_async
from devices.server import StationServer
from devices.silence import Silence, SilenceWindows
from scenarios.loader import load_scenario
from sim.config import DispenserConfig, PriceChange, StationConfig, TankConfig, WorldConfig
from sim.world import World

REPO = Path(__file__).resolve().parent.parent
START = 1774972800.0  # 2026-04-01T00:00:00+08:00


def small_world(days: float = 1.0) -> World:
    station = StationConfig(
        station_id="S01", name="silence test", town="Haliut", ownership="private",
        dialect="int_be", transport="tcp", tanks=(TankConfig(1, "92", 30),),
        dispensers=(DispenserConfig(1, (1,)), DispenserConfig(2, (1,))),
        throughput_l_per_day={"92": 20000.0})
    return World(WorldConfig(seed=5, start=START, days=days, timezone="Asia/Shanghai",
                             stations=(station,),
                             prices=(PriceChange(START - 86400, "92", 703),)))


def test_silence_windows_and_validation():
    with pytest.raises(ValueError, match="S01/D1.*start < end"):
        Silence("S01", "D1", 10.0, 10.0)
    w = SilenceWindows([(20.0, 30.0), (0.0, 5.0)])
    assert [w.silent_at(t) for t in (-1, 0, 4.9, 5, 25, 30)] == [False, True, True, False,
                                                                  True, False]
    assert not SilenceWindows()
    world = small_world()
    fleet = DeviceFleet(world, {"S01": "int_be"}, clock=WorldClock(world),
                        timezone="Asia/Shanghai")
    with pytest.raises(ValueError, match="no station 'S09'"):
        fleet.set_silences([Silence("S09", None, START, START + 1)])
    with pytest.raises(ValueError, match=r"S01 has no device 'D7' \(devices: G, D1, D2\)"):
        fleet.set_silences([Silence("S01", "D7", START, START + 1)])
    fleet.set_silences([Silence("S01", None, START + 10, START + 20)])  # every device
    world.run_until(START + 15)
    assert fleet.silent_now() == ["S01/G", "S01/D1", "S01/D2"]
    world.run_until(START + 20)
    assert fleet.silent_now() == []


def test_a_silent_device_does_not_answer_and_buffers_meanwhile():
    world = small_world()
    fleet = DeviceFleet(world, {"S01": "int_be"}, clock=WorldClock(world),
                        timezone="Asia/Shanghai")
    fleet.attach()
    fleet.set_silences([Silence("S01", "D1", START + 10 * 3600, START + 12 * 3600)])
    d1 = fleet.devices[("S01", "D1")]

    async def scenario():
        server = StationServer("S01", fleet.by_station["S01"])
        port = await server.start_tcp("127.0.0.1", 0)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        try:
            assert await client.connect()
            assert not (await client.read_holding_registers(0, count=4, device_id=11)).isError()
            world.run_until(START + 10 * 3600 + 100)  # inside the silence (10:01)
            pending_before = d1.fifo("transactions").pending
            with pytest.raises(Exception, match="(?i)no response|timed? ?out"):
                r = await client.read_holding_registers(1000, count=2, device_id=11)
                raise AssertionError(f"a silent device answered: {r}")
            # the same station's other devices answer, an unknown unit still gets 0x0B
            if not client.connected:
                assert await client.connect()
            assert not (await client.read_holding_registers(0, count=4, device_id=12)).isError()
            assert not (await client.read_holding_registers(0, count=4, device_id=1)).isError()
            r = await client.read_holding_registers(0, count=1, device_id=30)
            assert r.isError() and r.exception_code == 0x0B
            world.run_until(START + 12 * 3600 - 100)  # still silent; the world goes on buffering
            assert d1.fifo("transactions").pending > pending_before
            world.run_until(START + 12 * 3600)  # the silence is over
            r = await client.read_holding_registers(1000, count=2, device_id=11)
            assert not r.isError() and r.registers[0] == d1.fifo("transactions").pending
        finally:
            client.close()
            await server.stop()
        return d1.ignored_requests

    ignored = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert ignored == 1


def test_status_json_tracks_the_world_and_the_silences(tmp_path):
    world = small_world(days=0.05)
    stop = threading.Event()
    silence = Silence("S01", "G", START, START + 0.05 * 86400)

    async def scenario():
        task = asyncio.create_task(serve_async(
            world, compression=None, out_dir=tmp_path, stop_event=stop, linger=True,
            echo=False, ledger=None, silences=[silence], status_every_s=0.05))
        deadline = time.monotonic() + HANG_S
        while True:
            assert time.monotonic() < deadline and not task.done(), "no finished status"
            try:
                status = json.loads((tmp_path / "status.json").read_text())
            except (OSError, ValueError):
                status = None
            if status and status["state"] == "finished":
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
        return status

    status = asyncio.run(scenario())
    assert status["format"] == "forecourt-device-status/1"
    assert status["finished"] is True and status["sim_time"] == status["end"] == world.end
    assert status["start"] == START and status["compression"] == "max"
    # nobody drained: everything pushed is pending
    st = status["stations"]["S01"]
    assert st["pushed"] > 0 and st["pending"] == st["pushed"] == status["backlog"]
    assert st["acknowledged"] == st["dropped"] == 0
    assert status["silent"] == []  # the world is at its end, where the silence has ended
    final = json.loads((tmp_path / "status.json").read_text())
    assert final["state"] == "stopped"
    fleet_seen = json.loads((tmp_path / "devices.json").read_text())
    assert fleet_seen["stop_reason"] == "stopped"


def test_scenario_faults_resolve_times():
    scenario = load_scenario(REPO / "scenarios" / "smoke.yaml")
    faults = scenario_faults(scenario)
    start = scenario.start_epoch
    assert [(f.kind, f.station, f.at - start, f.duration, f.device) for f in faults] == [
        ("device_silent", "UMB25", 5 * 3600, 3600, "D1"),
        ("network_cut", "UMB25", 9 * 3600, 4 * 3600, None),
        ("collector_crash", "UMB25", 12 * 3600, 600, None),
        ("network_cut", "UMB44", 20 * 3600, 7200, None)]
    assert faults[0].end == start + 6 * 3600


def test_forecourt_devices_stops_cleanly_on_sigterm(tmp_path):
    """The harness stops `forecourt devices --linger` with SIGTERM: ground truth closed."""
    out = tmp_path / "dev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "acceptance.cli", "devices", str(REPO / "scenarios/smoke.yaml"),
         "--days", "0.05", "--compression", "max", "--port-base", "0", "--linger",
         "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        deadline = time.monotonic() + HANG_S
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the world did not finish"
            try:
                if json.loads((out / "status.json").read_text())["finished"]:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert json.loads((out / "devices.json").read_text())["stop_reason"] == "stopped"
    assert json.loads((out / "status.json").read_text())["state"] == "stopped"
