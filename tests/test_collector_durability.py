"""Store-and-forward under `kill -9`: a collector process killed mid-drain loses nothing.

Real processes and sockets: the harness's devices serve a station on Modbus TCP (in a thread
of this process), Mosquitto brokers, a stand-in platform acknowledges; the collector runs as
a subprocess through its command line and is killed with SIGKILL twice while draining.
"""

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
    expected_inventory,
    expected_transaction,
    hmac_hex,
    inventory,
    strip,
    transaction,
    wait_until,
)

from acceptance.broker import Mosquitto
from collector.keys import generate_key_file, load_key_file

HAVE_MOSQUITTO = shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")
pytestmark = [pytest.mark.mosquitto, pytest.mark.e2e,
              pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")]

N_TXN, N_INV = 3000, 1500


def start_collector(tmp_path, broker: Mosquitto) -> subprocess.Popen:
    cmd = [sys.executable, "-c",
           "import sys; from collector.cli import main_collector; sys.exit(main_collector())",
           "--station", "S01", "--endpoints", str(tmp_path / "endpoints.json"),
           "--broker", broker.url, "--spool", str(tmp_path / "spool"),
           "--keys", str(tmp_path / "keys.json"), "--heartbeat", "1", "--poll-interval", "0.05",
           # at most 4 full messages (400 records) in flight: the platform's count moves in
           # steps small enough for the kills to land mid-drain (16 could send 1,600 at once)
           "--window", "4", "--ack-timeout", "3", "--log-level", "WARNING"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "collector.log", "ab"))  # noqa: SIM115


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stderr and proc.stderr.close()


def test_kill_9_mid_drain_loses_nothing(tmp_path):
    station = Station(depth=5000)
    expected: dict[str, dict] = {}
    for i in range(N_TXN):
        t = transaction((65000 + i) & 0xFFFF, i)  # crosses the 16-bit wrap
        station.d1.accept("transactions", t)
        expected[expected_transaction(t)["key"]] = expected_transaction(t)
    for i in range(N_INV):
        r = inventory((65400 + i) & 0xFFFF, i, tank=1 + i % 2)
        station.g.accept("inventory", r)
        expected[expected_inventory(r)["key"]] = expected_inventory(r)

    served = ThreadedStation(station)
    procs: list[subprocess.Popen] = []
    with Mosquitto(workdir=tmp_path / "mosquitto") as broker:
        platform = None
        try:
            served.call(station.start_tcp)
            (tmp_path / "endpoints.json").write_text(json.dumps(station.endpoints_doc()))
            key = load_key_file(generate_key_file(["S01"], tmp_path / "keys.json"))["S01"]
            platform = FakePlatform(broker.host, broker.port, "S01", key.active_key)
            boots: list[str] = []
            for kill_at in (N_TXN // 4, N_TXN):
                proc = start_collector(tmp_path, broker)
                procs.append(proc)
                assert wait_until(lambda n=kill_at, p=proc: len(platform.data) >= n
                                  or p.poll() is not None, 60)
                assert proc.poll() is None, (tmp_path / "collector.log").read_text()[-3000:]
                online = [p for p in platform.of_type("online") if p["online"]]
                boots.append(online[-1]["boot_id"])
                kill9(proc)
                # The broker publishes the killed collector's last will: signed, off line.
                assert wait_until(lambda b=boots[-1]: any(
                    p["online"] is False and p["boot_id"] == b
                    for p in platform.of_type("online")), 10)
                left = served.call(station.pending)
                assert any(left.values()) or len(platform.data) < len(expected), \
                    "the kill came too late to test anything"
            will = [p for p in platform.of_type("online") if not p["online"]][0]
            assert will["sig"] == hmac_hex(key.active_key, "fsx/v1/S01/status/online", will)

            proc = start_collector(tmp_path, broker)
            procs.append(proc)

            def reports(device: str) -> list[dict]:
                return [r for r in platform.states.values()
                        if r["key"].startswith(f"S01/{device}/")]

            # the records and each start's state report (a state may still wait in the
            # spool, behind the records, when the last record arrives)
            assert wait_until(lambda: len(platform.data) == len(expected)
                              and all(len(reports(d)) >= 3 for d in ("D1", "G")), 90)
            assert wait_until(lambda: not any(served.call(station.pending).values()), 10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            assert platform.bad_signatures == 0
            assert {k: strip(v) for k, v in platform.data.items()} == expected
            assert len(set(boots)) == 2
            # each of the three starts reported every device's state once (a baseline), with
            # the state counter carried over in the spool: three distinct keys per device
            for device in ("D1", "G"):
                assert sorted(r["seq"] for r in reports(device)) == [0, 1, 2], reports(device)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
            if platform is not None:
                platform.close()
            served.stop()
