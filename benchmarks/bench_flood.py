"""Benchmark a garbage flood against the reference platform (issue 10 §6, Must show).

    python benchmarks/bench_flood.py                  # 50,000 messages
    python benchmarks/bench_flood.py --messages 5000 --json out.json

A managed Mosquitto with per-run accounts (acceptance/broker_accounts.py) and the reference
platform (`forecourt platform`, SQLite) as real processes. Station UMB02's account — a
dishonest station, the only kind of publisher the ACL lets in — floods its own topic with
garbage (random bytes, unsigned JSON, wrongly signed fills, in turn) as fast as it can,
while station UMB01 sends one correctly signed fill every 0.1 s throughout. Reported:

- honest fills stored per second before and during the flood, and the slowest time from an
  honest fill's publication to its appearance in the platform's counters (polled at 0.1 s);
- how long the platform took to count every garbage message, and its rate;
- the platform's resident memory before and after, the database's size, and the rejection
  rows kept (the sample is bounded: 1,000 per station) against the rejections counted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from acceptance.attacks.base import MqttSession, data_topic, forged_transaction, signed
from acceptance.broker import Mosquitto, free_port, wait_listening
from acceptance.broker_accounts import BrokerAccounts
from acceptance.keys import make_key_file
from acceptance.observe import ApiError, PlatformClient

REPO = Path(__file__).resolve().parent.parent
REGISTRY = REPO / "scenarios" / "fleets" / "urad-middle-banner.csv"
HONEST, FLOODER = "UMB01", "UMB02"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def garbage(i: int, key: bytes) -> bytes:
    """Three kinds in turn: bytes, unsigned JSON, a fill signed with a wrong key."""
    if i % 3 == 0:
        return secrets.token_bytes(64)
    msg = forged_transaction(FLOODER, i % 65536, 1_700_000_000 + i, 10**9 + i, time.time())
    if i % 3 == 1:
        return json.dumps(msg).encode()
    return signed(data_topic(FLOODER), msg, "k1", key)


class Honest(threading.Thread):
    """One correctly signed fill every `period` seconds; remembers when each was sent."""

    def __init__(self, session: MqttSession, kid: str, key: bytes, period: float) -> None:
        super().__init__(daemon=True)
        self.session, self.kid, self.key, self.period = session, kid, key, period
        self.sent: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.period):
            n += 1
            msg = forged_transaction(HONEST, n % 65536, 1_700_000_000 + 60 * n, n, time.time())
            self.session.publish(data_topic(HONEST), signed(data_topic(HONEST), msg, self.kid,
                                                            self.key))
            self.sent.append(time.time())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="fc-flood-"))
    accounts = BrokerAccounts.generate([HONEST, FLOODER])
    creds = accounts.write_credentials(work / "mqtt.json")
    keys_path = make_key_file([HONEST, FLOODER], work / "keys.json")
    keys = json.loads(keys_path.read_text())["stations"]
    token = secrets.token_urlsafe(24)
    (work / "tokens.json").write_text(json.dumps({"tokens": [
        {"token": token, "role": "read", "name": "bench"}]}))
    port = free_port()
    with Mosquitto(workdir=work / "mosquitto", accounts=accounts) as broker:
        platform = subprocess.Popen(
            [sys.executable, "-m", "acceptance.cli", "platform", "--db",
             f"sqlite:///{work / 'platform.db'}", "--broker", broker.url, "--http",
             f"127.0.0.1:{port}", "--keys", str(keys_path), "--registry", str(REGISTRY),
             "--tokens", str(work / "tokens.json"), "--mqtt-credentials", str(creds),
             "--log-level", "ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening("127.0.0.1", port, 30)
            api = PlatformClient(f"http://127.0.0.1:{port}", token)
            out = _measure(api, platform.pid, broker, accounts, keys, args.messages)
        finally:
            platform.terminate()
            platform.wait(30)
    out["database_bytes"] = sum(p.stat().st_size for p in work.glob("platform.db*"))
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def _stats(api: PlatformClient, station: str) -> dict:
    while True:
        try:
            return api.ingest_stats(station)
        except ApiError:  # not up yet
            time.sleep(0.2)


def _measure(api: PlatformClient, pid: int, broker: Mosquitto, accounts: BrokerAccounts,
             keys: dict, n: int) -> dict:
    def session(station: str) -> MqttSession:
        user = f"fc-col-{station}"
        s = MqttSession(broker.host, broker.port, (user, accounts.passwords[user]), user)
        if not s.connect():
            raise RuntimeError(f"{user}: refused (CONNACK {s.connack})")
        return s

    honest_key = bytes.fromhex(keys[HONEST]["keys"]["k1"])
    _stats(api, HONEST)
    honest = Honest(session(HONEST), "k1", honest_key, 0.1)
    honest.start()
    seen: list[tuple[float, int]] = []  # (wall, honest fills stored)
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.1):
            seen.append((time.time(), int(_stats(api, HONEST)["accepted"])))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(5)  # baseline
    rss_before = rss_mib(pid)
    flood_start = time.time()
    flooder = session(FLOODER)
    wrong = secrets.token_bytes(32)
    for i in range(n):
        flooder.publish(data_topic(FLOODER), garbage(i, wrong)) if i % 500 == 0 else \
            flooder.client.publish(data_topic(FLOODER), garbage(i, wrong), qos=1)
    published = time.time()
    while int(_stats(api, FLOODER).get("rejected_total", 0)) < n:
        time.sleep(0.2)
    counted = time.time()
    time.sleep(3)
    honest.stop.set()
    sampling.set()
    sampler.join()
    rss_after = rss_mib(pid)
    flooder.close()
    honest.session.close()
    stats = _stats(api, FLOODER)
    kept = sum(1 for _ in api.items("ingest/rejections", station_id=FLOODER))

    def rate(a: float, b: float) -> float:
        pts = [(t, c) for t, c in seen if a <= t <= b]
        return round((pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]), 2) if len(pts) > 1 \
            else float("nan")

    # slowest appearance: the k-th fill sent is stored once the counter reaches k
    lags = [next((t for t, c in seen if c >= k), float("inf")) - sent
            for k, sent in enumerate(honest.sent, start=1) if sent <= counted]
    return {"garbage_messages": n, "publish_s": round(published - flood_start, 2),
            "counted_all_after_s": round(counted - flood_start, 2),
            "garbage_per_s": round(n / (counted - flood_start), 1),
            "rejected_counted": int(stats.get("rejected_total", 0)),
            "rejection_rows_kept": kept,
            "honest_fills_per_s_before": rate(flood_start - 5, flood_start),
            "honest_fills_per_s_during": rate(flood_start, counted),
            "honest_fills_sent": len(honest.sent),
            "honest_fills_stored": seen[-1][1] if seen else 0,
            "honest_slowest_visible_s": round(max(lags), 2) if lags else None,
            "platform_rss_mib_before": round(rss_before, 1),
            "platform_rss_mib_after": round(rss_after, 1),
            "cores": os.cpu_count()}


if __name__ == "__main__":
    sys.exit(main())
