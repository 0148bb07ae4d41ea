"""Benchmark `simulate`: wall time and peak memory for N stations × D days.

    python benchmarks/bench_simulate.py [--stations 46] [--days 10] [--workers 2] [--out DIR]
    python benchmarks/bench_simulate.py --scenario scenarios/urad-middle-banner.yaml --days 180

Without --scenario it builds a synthetic banner-like fleet (27 private, 19 state-owned
stations; rural petrol stations, a few diesel-heavy truck stations near the port), so the
figure can be measured before the scenario loader exists. Peak memory is the maximum
resident set of this process and of its worker processes (getrusage), which is what the
2 GiB target is about.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from sim.config import (
    DispenserConfig,
    PriceChange,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.runner import simulate


def synthetic_config(stations: int = 46, days: float = 10.0, seed: int = 2026) -> WorldConfig:
    """A banner-like fleet: ~6,500 L/day per station on average (≈1.2 M fills in 180 days)."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 4, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    fleet = []
    for i in range(stations):
        state = i % 46 < 19
        port = i % 9 == 4  # diesel-heavy truck stations
        petrol = float(rng.uniform(2500, 6000) * (1.4 if state else 1.0))
        diesel = float(rng.uniform(12000, 20000) if port else rng.uniform(1000, 3500))
        tanks = (TankConfig(1, "92", 30), TankConfig(2, "95", 20),
                 TankConfig(3, "0", 50 if port else 30))
        dispensers = [DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 3))]
        if state or port:
            dispensers.append(DispenserConfig(3, (3, 3) if port else (1, 2)))
        if port:
            dispensers.append(DispenserConfig(4, (3, 3)))
        fleet.append(StationConfig(
            station_id=f"UMB{i + 1:02d}", name=f"synthetic {i + 1}", town="synthetic",
            ownership="state" if state else "private", dialect="int_be" if i % 5 < 3 else "f32_le",
            transport="tcp", tanks=tanks, dispensers=tuple(dispensers),
            throughput_l_per_day={"92": petrol * 0.8, "95": petrol * 0.2, "0": diesel},
            truck_share=0.7 if port else 0.1))
    prices = [PriceChange(start - 86400, g, p) for g, p in (("92", 712), ("95", 761), ("0", 701))]
    for k in range(1, int(days // 10) + 1):  # NDRC-style adjustment every ~10 days
        step = int(rng.choice([-20, -10, 10, 20]))
        prices += [PriceChange(start + k * 10 * 86400, g, p + step * k)
                   for g, p in (("92", 712), ("95", 761), ("0", 701))]
    return WorldConfig(seed=seed, start=start, days=days, timezone="Asia/Shanghai",
                       stations=tuple(fleet), prices=tuple(prices))


def _load_scenario(path: str, days: float | None) -> WorldConfig:
    from acceptance.world_config import build_world_config  # the scenarios engineer's builder
    from scenarios.loader import load_scenario

    return build_world_config(load_scenario(path), days=days)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenario", help="scenario YAML (default: synthetic fleet)")
    ap.add_argument("--stations", type=int, default=46)
    ap.add_argument("--days", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="output directory (default: a temporary one)")
    args = ap.parse_args(argv)
    config = (_load_scenario(args.scenario, args.days) if args.scenario
              else synthetic_config(args.stations, args.days))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        result = simulate(config, out, workers=args.workers)
        wall = time.perf_counter() - t0
    self_use = resource.getrusage(resource.RUSAGE_SELF)
    child_use = resource.getrusage(resource.RUSAGE_CHILDREN)
    own, children = self_use.ru_maxrss / 1024, child_use.ru_maxrss / 1024
    cpu = sum(u.ru_utime + u.ru_stime for u in (self_use, child_use))
    counts = result["counts"]
    print(f"stations={len(config.stations)} days={config.days:g} workers={args.workers}")
    print(f"wall={wall:.2f} s  transactions={counts['transactions']}  "
          f"tank_states={counts['tank_states']}  deliveries={counts['deliveries']}")
    # CPU time does not depend on what else the machine is doing; wall time does.
    print(f"cpu={cpu:.2f} s (all processes)  cpu/wall={cpu / wall:.2f}")
    print(f"peak RSS: parent={own:.0f} MiB  largest worker={children:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
