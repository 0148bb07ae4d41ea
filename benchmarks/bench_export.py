"""Benchmark: the harness's export of a run's records through the platform API — the
"observed" phase of `forecourt run` (acceptance/observed_records.py: every record of every
station, pages of 1000, into observed/<stream>.parquet), over HTTP from a real
`forecourt platform` serving a copy of a run's database (with the run's keys and registry,
and an embedded broker that carries nothing).

    python benchmarks/bench_export.py --run RUN [--repeat 2]

Reports records per second and the CPU seconds of both sides: the platform process
(listing, JSON encoding, HTTP) and this process (HTTP, JSON decoding, DataFrames, Parquet).
Their sum over the wall time shows how much the two overlap (at most 2 on 2 cores).
The platform runs with --no-detect, so it does nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc_stat import cpu_seconds

from acceptance.broker import EmbeddedBroker, free_port
from acceptance.observe import ApiError, PlatformClient
from acceptance.observed_records import write_observed_records


def export_once(client: PlatformClient, pid: int, stations: list[str], out: Path) -> dict:
    out.mkdir()
    cpu0, here0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    written = write_observed_records(client, stations, out)
    wall = time.perf_counter() - t0
    shutil.rmtree(out)
    records = sum(written.values())
    return {"records": records, "wall_s": round(wall, 2),
            "records_per_s": round(records / wall), "platform_cpu_s": round(cpu_seconds(pid) - cpu0, 2),
            "harness_cpu_s": round(time.process_time() - here0, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True,
                   help="a `forecourt run` directory (platform.db, keys.json, fleet.csv)")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    missing = [n for n in ("platform.db", "keys.json", "fleet.csv") if not (args.run / n).is_file()]
    if missing:
        p.error(f"--run {args.run}: no {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="fc-bench-export-") as tmp:
        work = Path(tmp)
        for suffix in ("", "-wal", "-shm"):  # the platform migrates and writes: a copy
            src = args.run / f"platform.db{suffix}"
            if src.exists():
                shutil.copy(src, work / f"platform.db{suffix}")
        token, port = secrets.token_hex(16), free_port()
        (work / "tokens.json").write_text(json.dumps(
            {"tokens": [{"token": token, "role": "read", "name": "bench"}]}))
        broker = EmbeddedBroker(port=free_port()).start()
        with open(work / "platform.log", "wb") as log:
            platform = subprocess.Popen(
                [sys.executable, "-m", "acceptance.cli", "platform", "--db",
                 f"sqlite:///{work / 'platform.db'}", "--http", f"127.0.0.1:{port}",
                 "--broker", broker.url, "--keys", str(args.run / "keys.json"),
                 "--registry", str(args.run / "fleet.csv"), "--tokens", str(work / "tokens.json"),
                 "--no-detect", "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT)
        try:
            client = PlatformClient(f"http://127.0.0.1:{port}", token, timeout=60.0)
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.healthz()
                    break
                except ApiError:
                    if platform.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("platform did not start: "
                                         + (work / "platform.log").read_text()[-2000:]) from None
                    time.sleep(0.2)
            stations = [s["station_id"] for s in client.stations()]
            runs = [export_once(client, platform.pid, stations, work / f"out{i}")
                    for i in range(args.repeat)]
        finally:
            platform.terminate()
            platform.wait(30)
            broker.stop()
    for r in runs:
        print(f"{r['records']:,} records in {r['wall_s']} s = {r['records_per_s']:,} records/s; "
              f"CPU: platform {r['platform_cpu_s']} s, harness {r['harness_cpu_s']} s "
              f"(together {(r['platform_cpu_s'] + r['harness_cpu_s']) / r['wall_s']:.2f} "
              f"of the wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
