"""CPU of one full detection pass over a finished run's platform database, by detector:
what the reference platform's detection worker spends at the end of a compressed run, when
every station is evaluated through its watermark (central/detectors/service.py).

    python benchmarks/bench_detection_pass.py RUN_DIR [--stations UMB01,UMB02]

RUN_DIR is a `forecourt run` output directory holding platform.db (the embedded SQLite
platform). Nothing is written to the database: the data are loaded and the detectors run,
no alert is raised. `--digest` prints a SHA-256 of every proposal (each detector's, in
order, as JSON with its evidence): two versions of the detectors that print the same digest
for a run's database proposed exactly the same alerts, to the last digit of the evidence.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central.db import Database  # noqa: E402
from central.detectors.base import Settings  # noqa: E402
from central.detectors.data import load_station_data  # noqa: E402
from central.detectors.runner import DETECTORS  # noqa: E402
from central.detectors.watermark import station_watermark  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--stations", help="comma-separated (default: every station evaluated)")
    p.add_argument("--digest", action="store_true",
                   help="print a SHA-256 of every proposal (module doc)")
    args = p.parse_args(argv)
    path = args.run_dir / "platform.db"
    if not path.is_file():
        p.error(f"{path}: no such file (a run with the embedded SQLite platform)")
    conn = Database(f"sqlite:///{path.resolve()}").connect()
    settings = Settings()
    stations = args.stations.split(",") if args.stations else [
        r[0] for r in conn.query("SELECT station_id FROM detection_progress ORDER BY 1")]
    by_detector: collections.defaultdict[str, float] = collections.defaultdict(float)
    load_s, found = 0.0, 0
    digest = hashlib.sha256()
    for sid in stations:
        wm = station_watermark(conn, sid, settings)
        if wm.watermark is None:
            print(f"{sid}: no watermark, left out")
            continue
        started = time.process_time()
        data = load_station_data(conn, sid, wm.watermark, wm.device_through)
        load_s += time.process_time() - started
        ctx = settings.context()
        for det in DETECTORS:
            t0 = time.process_time()
            proposals = list(det.evaluate(data, ctx))
            by_detector[det.name] += time.process_time() - t0
            found += len(proposals)
            for prop in proposals:
                digest.update(json.dumps([sid, det.name, dataclasses.asdict(prop)],
                                         sort_keys=True, default=repr).encode())
    total = load_s + sum(by_detector.values())
    print(f"{len(stations)} stations, {found} proposals: {total:.1f} s of CPU "
          f"(loading the data {load_s:.1f} s)")
    if args.digest:
        print(f"proposals' SHA-256: {digest.hexdigest()}")
    print("| detector | CPU s | share |\n|---|---|---|")
    for name, s in sorted(by_detector.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.1f} | {s / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
