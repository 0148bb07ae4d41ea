"""Benchmark `simulate` at city scale (issue 11): stations × days × scheduler.

    python benchmarks/bench_city.py [--stations 46,200,416] [--days 1,7,30]
                                    [--schedulers processes,dask] [--workers 2]

Stations are evenly spaced subsets of scenarios/city-scale.yaml's ledger (416 = all), so each
subset has the city's mix. Each case runs in a fresh process (its own peak memory); the wall
time is `simulate` from call to manifest, cluster start and stop included for `dask` (a
LocalCluster of --workers processes). CPU is of that process and its workers. Prints one
Markdown row per case: wall, CPU, wall and CPU per station-day, peak RSS of the parent and of
the largest worker.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITY = ROOT / "scenarios" / "city-scale.yaml"


def _subset(ids: list[str], n: int) -> list[str]:
    if n >= len(ids):
        return ids
    return [ids[i * len(ids) // n] for i in range(n)]


def one(stations: int, days: float, scheduler: str, workers: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from acceptance.world_config import build_world_config
    from scenarios.loader import load_scenario
    from sim.runner import simulate

    scenario = load_scenario(CITY)
    ids = _subset(scenario.station_ids, stations)
    config = build_world_config(scenario, days=days, station_ids=ids)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = simulate(config, Path(tmp), workers=workers, scheduler=scheduler)
        wall = time.perf_counter() - t0
    me, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return {"stations": len(ids), "days": days, "scheduler": scheduler, "workers": workers,
            "wall_s": wall, "cpu_s": sum(u.ru_utime + u.ru_stime for u in (me, kids)),
            "transactions": data["counts"]["transactions"],
            "parent_mib": me.ru_maxrss / 1024, "worker_mib": kids.ru_maxrss / 1024}


def _row(r: dict) -> str:
    sd = r["stations"] * r["days"]
    return (f"| {r['stations']} | {r['days']:g} | {r['scheduler']} | {r['wall_s']:.1f} s | "
            f"{r['cpu_s']:.1f} s | {1000 * r['wall_s'] / sd:.1f} ms | "
            f"{1000 * r['cpu_s'] / sd:.1f} ms | {r['transactions']:,} | "
            f"{r['parent_mib']:.0f} / {r['worker_mib']:.0f} MiB |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stations", default="46,200,416")
    ap.add_argument("--days", default="1,7,30")
    ap.add_argument("--schedulers", default="processes,dask")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:  # a single case, in this fresh process
        print(json.dumps(one(int(args.stations), float(args.days), args.schedulers,
                             args.workers)))
        return 0
    print("| stations | days | scheduler | wall | CPU | wall per station-day | "
          "CPU per station-day | transactions | peak RSS parent / largest worker |")
    print("|---|---|---|---|---|---|---|---|---|")
    for stations in (int(s) for s in args.stations.split(",")):
        for days in (float(d) for d in args.days.split(",")):
            for scheduler in args.schedulers.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", "--stations", str(stations), "--days",
                     str(days), "--schedulers", scheduler, "--workers", str(args.workers)],
                    capture_output=True, text=True, check=True, cwd=ROOT)
                print(_row(json.loads(out.stdout.strip().splitlines()[-1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
