"""Command lines: bad input is refused with the file and field named; `collectors` serves every
station of an endpoint map in one process and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from test_collector_support import (
    FakePlatform,
    Station,
    ThreadedStation,
    expected_transaction,
    transaction,
    wait_until,
)

from acceptance.broker import Mosquitto
from collector.cli import main_collector, main_collectors
from collector.keys import generate_key_file, load_key_file

HAVE_MOSQUITTO = shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")


def write_endpoints(path, stations: list[Station]) -> None:
    doc = stations[0].endpoints_doc()
    for st in stations[1:]:
        doc["stations"].update(st.endpoints_doc()["stations"])
    path.write_text(json.dumps(doc))


def test_bad_endpoint_file_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "endpoints.json").write_text('{"format": "forecourt-endpoints/1", "stations": '
                                             '{"S01": {"transport": "tcp", "dialect": "int_be", '
                                             '"devices": []}}}')
    generate_key_file(["S01"], tmp_path / "keys.json")
    code = main_collector(["--station", "S01", "--endpoints", str(tmp_path / "endpoints.json"),
                           "--keys", str(tmp_path / "keys.json"), "--spool", str(tmp_path / "s")])
    assert code == 2
    err = capsys.readouterr().err
    assert "endpoints.json: stations.S01.devices" in err


def test_unknown_station_and_missing_key_exit_2(tmp_path, capsys):
    station = Station()
    station.port = 1502
    write_endpoints(tmp_path / "endpoints.json", [station])
    generate_key_file(["S09"], tmp_path / "keys.json")
    common = ["--endpoints", str(tmp_path / "endpoints.json"), "--keys",
              str(tmp_path / "keys.json")]
    assert main_collector(["--station", "S02", "--spool", str(tmp_path / "s"), *common]) == 2
    assert "station 'S02' is not in the endpoint map" in capsys.readouterr().err
    assert main_collectors(["--spool-dir", str(tmp_path / "s"), *common]) == 2
    assert "no keys for station 'S01'" in capsys.readouterr().err


@pytest.mark.mosquitto
@pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")
def test_collectors_serve_every_station_and_stop_on_sigterm(tmp_path):
    stations = [Station("S01"), Station("S02", dialect="f32_le")]
    expected: dict[str, set[str]] = {}
    for st in stations:
        expected[st.station_id] = set()
        for i in range(40):
            t = transaction(i, i, station=st.station_id)
            st.d1.accept("transactions", t)
            expected[st.station_id].add(expected_transaction(t, st.station_id)["key"])
    served = [ThreadedStation(st) for st in stations]
    platforms: list[FakePlatform] = []
    proc = None
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        try:
            for s in served:
                s.call(s.station.start_tcp)
            write_endpoints(tmp_path / "endpoints.json", stations)
            keys = load_key_file(generate_key_file(["S01", "S02"], tmp_path / "keys.json"))
            platforms = [FakePlatform(broker.host, broker.port, sid, keys[sid].active_key)
                         for sid in ("S01", "S02")]
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from collector.cli import main_collectors; "
                 "sys.exit(main_collectors())",
                 "--endpoints", str(tmp_path / "endpoints.json"), "--broker", broker.url,
                 "--spool-dir", str(tmp_path / "spools"), "--keys", str(tmp_path / "keys.json"),
                 "--heartbeat", "0.5", "--log-level", "WARNING"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert wait_until(lambda: all(set(p.data) == expected[p.station_id]
                                          for p in platforms) or proc.poll() is not None, 30)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert wait_until(lambda: all(p.of_type("heartbeat") and
                                          p.of_type("heartbeat")[-1]["backlog"] == 0
                                          for p in platforms), 10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            for p in platforms:
                assert p.of_type("online")[-1]["online"] is False
            assert sorted(os.listdir(tmp_path / "spools")) == ["S01", "S02"]
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                proc.stderr.close()
            for p in platforms:
                p.close()
            for s in served:
                s.stop()


@pytest.mark.mosquitto
@pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")
def test_one_stations_unusable_spool_does_not_take_the_fleet_down(tmp_path):
    """S02's spool directory cannot be made (a file is in the way): S02 is not served and
    says so at ERROR; S01 is served all the same; the process exits 1 at SIGTERM."""
    stations = [Station("S01"), Station("S02")]
    expected = set()
    for i in range(10):
        t = transaction(i, i, station="S01")
        stations[0].d1.accept("transactions", t)
        expected.add(expected_transaction(t, "S01")["key"])
    (tmp_path / "spools").mkdir()
    (tmp_path / "spools" / "S02").write_text("not a directory")
    served = [ThreadedStation(st) for st in stations]
    platform = None
    proc = None
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        try:
            for s in served:
                s.call(s.station.start_tcp)
            write_endpoints(tmp_path / "endpoints.json", stations)
            keys = load_key_file(generate_key_file(["S01", "S02"], tmp_path / "keys.json"))
            platform = FakePlatform(broker.host, broker.port, "S01", keys["S01"].active_key)
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from collector.cli import main_collectors; "
                 "sys.exit(main_collectors())",
                 "--endpoints", str(tmp_path / "endpoints.json"), "--broker", broker.url,
                 "--spool-dir", str(tmp_path / "spools"), "--keys", str(tmp_path / "keys.json"),
                 "--heartbeat", "0.5", "--log-level", "WARNING"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert wait_until(lambda: set(platform.data) == expected
                              or proc.poll() is not None, 30)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 1
            err = proc.stderr.read().decode()
            assert "station S02: cannot open its spool" in err, err[-2000:]
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                proc.stderr.close()
            if platform is not None:
                platform.close()
            for s in served:
                s.stop()


@pytest.mark.parametrize("choice", ["uvloop", "asyncio", "uv"])
def test_the_event_loop_is_uvloop_unless_told_asyncio(monkeypatch, choice):
    """The collectors and the devices run on uvloop by default; FORECOURT_EVENT_LOOP=asyncio
    selects asyncio's own loop; anything else is refused, naming the variable."""
    import asyncio

    from collector import aio
    from devices.runner import run_loop

    monkeypatch.setenv("FORECOURT_EVENT_LOOP", choice)

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    if choice == "uv":
        for run in (aio.run, run_loop):
            with pytest.raises(ValueError, match="FORECOURT_EVENT_LOOP='uv'"):
                run(loop_module())
        return
    expected = "uvloop" if choice == "uvloop" else "asyncio"
    assert aio.run(loop_module()).startswith(expected)
    assert run_loop(loop_module()).startswith(expected)
