"""Collector throughput end to end: devices (compression max) → collectors → Mosquitto → acker.

    python benchmarks/bench_collector.py [scenarios/smoke.yaml] [--days N] [--spool-sync FULL]

Starts a Mosquitto broker, `forecourt devices SCENARIO --compression max --linger`, a minimal
acknowledging platform in this process (verifies every signature, de-duplicates by key, acks)
and `forecourt collectors` for every station. The world advances only as fast as the
collectors drain, so the rate measured is the collector chain's. When nothing new has been
acknowledged for `--idle` seconds the devices are stopped and the records the platform holds
are compared with what the devices report they served (devices.json: pushed − dropped).
Prints records/s and the CPU seconds of each process (where the time goes).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proc_stat import cpu_seconds  # noqa: E402

from acceptance.broker import Mosquitto  # noqa: E402
from collector.keys import generate_key_file, load_key_file  # noqa: E402


class Acker:
    """Stores record keys per (station, device, stream), acks every valid data message."""

    def __init__(self, broker: Mosquitto, keys: dict[str, bytes]) -> None:
        self.keys = keys
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.per_stream: Counter = Counter()
        self.duplicates = 0
        self.bad = 0
        self.msg_seq = 0
        self.last_new = time.monotonic()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-platform",
                                  clean_session=False)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = lambda c, *a: c.subscribe("fsx/v1/+/+/evt/+", qos=1)
        self.client.on_message = self.on_message
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()

    @staticmethod
    def mac(key: bytes, topic: str, payload: dict) -> str:
        body = {k: v for k, v in payload.items() if k != "sig"}
        canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hmac.new(key, topic.encode() + b"\n" + canon.encode(), hashlib.sha256).hexdigest()

    def on_message(self, client, userdata, msg) -> None:
        p = json.loads(msg.payload)
        sid = msg.topic.split("/")[2]
        key = self.keys.get(sid)
        if key is None or p.get("sig") != self.mac(key, msg.topic, p):
            self.bad += 1
            return
        accepted, dups = [], []
        with self.lock:
            for r in p["records"]:
                if r["key"] in self.seen:
                    dups.append(r["key"])
                    self.duplicates += 1
                else:
                    self.seen.add(r["key"])
                    accepted.append(r["key"])
                    station, device, stream = r["key"].split("/")[:3]
                    self.per_stream[(station, device, stream)] += 1
            if accepted:
                self.last_new = time.monotonic()
            self.msg_seq += 1
            ack = {"v": 1, "type": "ack", "station_id": sid, "msg_seq": self.msg_seq,
                   "sent_at": time.time(), "kid": "k1", "acked_msg_seq": p["msg_seq"],
                   "accepted": accepted, "duplicates": dups, "rejected": []}
        ack["sig"] = self.mac(key, f"fsx/v1/{sid}/ack", ack)
        client.publish(f"fsx/v1/{sid}/ack", json.dumps(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def free_port_range(n: int) -> int:
    """A base port with n free consecutive ports after it (the devices take base + i)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        try:
            socks = []
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports found")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "smoke.yaml"))
    ap.add_argument("--days", type=float, default=None)
    ap.add_argument("--spool-sync", default="FULL", choices=("FULL", "NORMAL"))
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a cProfile of the collectors process to this file")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    procs: list[subprocess.Popen] = []
    with Mosquitto(workdir=work / "mosquitto") as broker:
        acker = None
        try:
            dev_cmd = [sys.executable, "-m", "acceptance.cli", "devices", args.scenario,
                       "--compression", "max", "--linger", "--out", str(work / "devices"),
                       "--port-base", str(free_port_range(100))]
            if args.days:
                dev_cmd += ["--days", str(args.days)]
            devices = subprocess.Popen(dev_cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=open(work / "devices.log", "wb"))  # noqa: SIM115
            procs.append(devices)
            endpoints = work / "devices" / "endpoints.json"
            deadline = time.monotonic() + 60
            while not endpoints.exists() and time.monotonic() < deadline:
                if devices.poll() is not None:
                    print((work / "devices.log").read_text()[-3000:], file=sys.stderr)
                    return 2
                time.sleep(0.1)
            stations = list(json.loads(endpoints.read_text())["stations"])
            keys = load_key_file(generate_key_file(stations, work / "keys.json"))
            acker = Acker(broker, {s: k.active_key for s, k in keys.items()})
            t0 = time.monotonic()
            prof = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
            collectors = subprocess.Popen(
                [sys.executable, *prof, "-m", "acceptance.cli", "collectors", "--endpoints",
                 str(endpoints), "--broker", broker.url, "--spool-dir", str(work / "spools"),
                 "--keys", str(work / "keys.json"), "--spool-sync", args.spool_sync,
                 "--log-level", "WARNING"],
                cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=open(work / "collectors.log", "wb"))  # noqa: SIM115
            procs.append(collectors)
            last_report = t0
            while time.monotonic() - t0 < args.timeout:
                time.sleep(0.5)
                now = time.monotonic()
                if collectors.poll() is not None or devices.poll() is not None:
                    print("a process exited early; logs in", work, file=sys.stderr)
                    return 2
                if now - last_report >= 5:
                    last_report = now
                    print(f"{now - t0:6.1f} s  {len(acker.seen):9d} records  "
                          f"{len(acker.seen) / (now - t0):8.0f} rec/s", flush=True)
                if acker.seen and now - acker.last_new > args.idle:
                    break
            elapsed = acker.last_new - t0
            cpu = {"devices": cpu_seconds(devices.pid), "collectors": cpu_seconds(collectors.pid),
                   "bench (acker)": time.process_time()}
            devices.send_signal(signal.SIGINT)
            devices.wait(60)
            collectors.send_signal(signal.SIGTERM)
            collectors.wait(60)
            served = json.loads((work / "devices" / "devices.json").read_text())
            missing = 0
            for sid, devs in served["devices"].items():
                for dev, info in devs.items():
                    for stream, s in info["streams"].items():
                        want = s["pushed"] - s["dropped"]
                        got = acker.per_stream[(sid, dev, stream)]
                        if got != want:
                            missing += want - got
                            print(f"  {sid}/{dev}/{stream}: served {want}, platform has {got}")
            total = len(acker.seen)
            print(f"records: {total} in {elapsed:.1f} s = {total / max(elapsed, 1e-9):.0f} "
                  f"records/s end to end ({len(stations)} stations, spool {args.spool_sync})")
            print(f"duplicates on the wire: {acker.duplicates}; bad signatures: {acker.bad}; "
                  f"missing vs devices: {missing}; FIFO drops: {served['drops']}")
            print("CPU seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
            return 0 if missing == 0 and acker.bad == 0 else 1
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
            if acker is not None:
                acker.close()


if __name__ == "__main__":
    sys.exit(main())
