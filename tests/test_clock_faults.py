"""Wrong device clocks (faults device_clock_drift and device_clock_reset): the world's model
(sim/device_clock.py), what the devices show (header RTC and record times) and the scenario
rules. The device times the harness expects from the ground truth: tests/test_compare.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient
from test_faults import START, small_world

from devices.fleet import DeviceFleet, WorldClock
from devices.server import StationServer
from scenarios.loader import validate_file
from sim.config import ClockFault
from sim.device_clock import shown, shown_array

Y2000 = 946656000.0  # 2000-01-01T00:00:00+08:00
RESET = ClockFault("S01", "D1", START + 3600, 7200.0, reset_to=Y2000)
DRIFT = ClockFault("S01", "G", START, 86400.0, drift_s_per_day=600.0)


def test_a_reset_clock_runs_on_from_its_zero_and_a_drifting_one_gains_its_rate():
    assert shown((RESET,), START + 3599) == START + 3599  # before
    assert shown((RESET,), START + 3600 + 10) == Y2000 + 10  # reset, then runs on
    assert shown((RESET,), START + 3600 + 7200) == START + 3600 + 7200  # set right at the end
    assert shown((DRIFT,), START + 43200) == pytest.approx(START + 43200 + 300)
    t = np.array([START - 1, START + 86399.0])
    assert shown_array((DRIFT,), t) == pytest.approx([START - 1, START + 86399 + 599.993], abs=1e-3)
    with pytest.raises(ValueError, match="either a drift or a reset time"):
        ClockFault("S01", "D1", START, 60.0)


def test_devices_show_the_wrong_clock_in_the_header_and_stamp_records_with_it():
    world = small_world(clock_faults=(RESET,))
    clock = WorldClock(world)
    fleet = DeviceFleet(world, {"S01": "int_be"}, clock=clock, timezone="Asia/Shanghai")
    fleet.attach()
    d1, d2 = fleet.devices[("S01", "D1")], fleet.devices[("S01", "D2")]

    async def rtc(client, dev) -> int:
        reply = await client.read_holding_registers(4, count=2, device_id=dev.unit_id)
        assert not reply.isError()
        hi, lo = reply.registers
        return hi << 16 | lo

    async def scenario():
        server = StationServer("S01", fleet.by_station["S01"])
        port = await server.start_tcp("127.0.0.1", 0)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0)
        try:
            assert await client.connect()
            world.run_until(START + 5400)  # half an hour into the reset
            clock.stepped()
            assert await rtc(client, d1) == Y2000 + 1800
            assert await rtc(client, d2) == START + 5400  # the other dispenser's is right
            world.run_until(START + 12000)  # after it: set right
            clock.stepped()
            assert await rtc(client, d1) == START + 12000
        finally:
            client.close()
            await server.stop()

    asyncio.run(scenario())
    assert d1.stamp(START + 3700.5) == Y2000 + 100 and d2.stamp(START + 3700.5) == START + 3700


@pytest.mark.parametrize("fault, message", [
    ({"kind": "device_clock_reset", "station": "UMB25", "at": "+1h", "duration": "1h"},
     "faults[0].device: expected a device 'G' or 'D<n>'"),
    ({"kind": "device_clock_drift", "station": "UMB25", "device": "D1", "at": "+1h",
      "duration": "1h", "reset_to": "2000-01-01T00:00:00+08:00"},
     "faults[0].reset_to: expected no reset_to for kind device_clock_drift"),
    ({"kind": "device_clock_drift", "station": "UMB25", "device": "D1", "at": "+1h",
      "duration": "1h", "drift_s_per_day": 0}, "faults[0].drift_s_per_day"),
])
def test_bad_clock_faults_are_refused_naming_the_field(tmp_path, fault, message):
    from test_faults import SMOKE
    data = yaml.safe_load(SMOKE.read_text())
    data["fleet"] = str(SMOKE.parent / data["fleet"])
    data["faults"] = [fault]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    problems = "\n".join(validate_file(path))
    assert message in problems, problems


def test_two_faults_of_one_clock_may_not_overlap(tmp_path):
    from test_faults import SMOKE
    data = yaml.safe_load(SMOKE.read_text())
    data["fleet"] = str(SMOKE.parent / data["fleet"])
    data["faults"] = [
        {"kind": "device_clock_reset", "station": "UMB25", "device": "G", "at": "+1h",
         "duration": "2h"},
        {"kind": "device_clock_drift", "station": "UMB25", "device": "G", "at": "+2h",
         "duration": "2h"}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    problems = "\n".join(validate_file(path))
    assert "faults[1].at: expected no overlap with faults[0] (both act on the clock of UMB25/G)" \
        in problems, problems
