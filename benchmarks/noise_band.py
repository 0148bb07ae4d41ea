"""Honest noise band: σ of the daily wetstock variance over honest tanks, budget vs empirical.

    python benchmarks/noise_band.py --scenario scenarios/urad-middle-banner.yaml --days 60
    python benchmarks/noise_band.py --truth DIR          # an existing ground-truth directory

Simulates the scenario (or reads a truth directory), computes each tank's daily variance the
way the reference platform reconciles (sim/noise_budget.py, docs/platform-api.md §5.4), and
prints, over the honest tanks (no cheat, no leak): the median and spread of σ(daily variance)
as a % of the tank's mean daily sales, and the ratio of the empirical σ to the analytic budget
σ written in the truth (`tanks.variance_sd_day_l`, `variance_sd_month_l`). docs/noise-budget.md
quotes its output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sim.noise_budget import (
    daily_variance,
    honest_tanks,
    median_daily_variance_sd_pct,
    variance_stats,
)


def _columns(path: Path, names: list[str] | None = None) -> dict[str, Any]:
    table = pq.read_table(path, columns=names)
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


def _pct(values: np.ndarray, qs: tuple[int, ...] = (10, 25, 50, 75, 90)) -> str:
    return "  ".join(f"p{q}={np.percentile(values, q):.3g}" for q in qs)


def analyse(truth: Path, timezone: str, skip_days: int) -> int:
    states = _columns(truth / "tank_states.parquet", ["station_id", "tank", "time", "kind",
                                                      "gauge_volume_20c_l",
                                                      "gauge_temperature_c"])
    txns = _columns(truth / "transactions.parquet", ["station_id", "tank", "grade", "end_time",
                                                     "displayed_volume_ml"])
    drops = _columns(truth / "deliveries.parquet")
    tanks = _columns(truth / "tanks.parquet")
    nozzles = _columns(truth / "nozzles.parquet")
    cheats_path = truth / "cheats.parquet"
    cheats = _columns(cheats_path) if cheats_path.exists() else None
    series = daily_variance(states, txns, drops, timezone)
    stats = {k: variance_stats(v, skip_days) for k, v in series.items()}
    honest = sorted(honest_tanks(tanks, nozzles, cheats))
    budget = {(str(s), int(t)): (float(d), float(m), float(b))
              for s, t, d, m, b in zip(tanks["station_id"], tanks["tank"],
                                       tanks["variance_sd_day_l"], tanks["variance_sd_month_l"],
                                       tanks["variance_bias_day_l"], strict=True)}
    keys = [k for k in honest if k in stats and np.isfinite(stats[k].sd_pct_of_sales)]
    pct = np.array([stats[k].sd_pct_of_sales for k in keys])
    ratio_day = np.array([stats[k].sd_l / budget[k][0] for k in keys])
    month = [(stats[k].sd_month_l, budget[k][1]) for k in keys
             if np.isfinite(stats[k].sd_month_l)]
    bias = np.array([(stats[k].mean_l - budget[k][2]) / stats[k].sd_l for k in keys])
    days = int(np.median([stats[k].days for k in keys]))
    print(f"truth: {truth}")
    print(f"honest tanks: {len(keys)} of {len(stats)}; days per tank (median, straddling "
          f"drops left out): {days}")
    print(f"median σ(daily variance) % of daily sales: "
          f"{median_daily_variance_sd_pct(stats, keys):.3f} %")
    print(f"  spread over tanks: {_pct(pct)}")
    rms = np.array([100 * np.hypot(stats[k].mean_l, stats[k].sd_l) / stats[k].mean_sales_l
                    for k in keys])
    mean_pct = np.array([100 * stats[k].mean_l / stats[k].mean_sales_l for k in keys])
    print(f"mean daily variance % of sales (the tank's bias): {_pct(mean_pct)}")
    print(f"RMS (bias and σ) % of sales: {_pct(rms)}")
    print(f"σ empirical / σ budget (day):  {_pct(ratio_day)}")
    windows = (days - skip_days) // 30
    if month and windows >= 4:
        ratio_month = np.array([e / b for e, b in month])
        print(f"σ empirical / σ budget (30-day, {windows} back-to-back windows, {len(month)} "
              f"tanks): {_pct(ratio_month)}")
    elif month:
        print(f"σ of 30-day variances: only {windows} windows per tank, not resolved "
              f"(run ≥ 120 days)")
    print(f"(mean empirical − budget bias) / σ:  {_pct(bias)}")
    sd_budget = np.array([budget[k][0] for k in keys])
    sales = np.array([stats[k].mean_sales_l for k in keys])
    print(f"budget σ % of sales: {_pct(100 * sd_budget / sales)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenario", help="scenario YAML to simulate")
    ap.add_argument("--days", type=float, default=60.0)
    ap.add_argument("--truth", help="an existing ground-truth directory instead")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-days", type=int, default=0,
                    help="leave out the first days (start-up)")
    ap.add_argument("--timezone", default="Asia/Shanghai")
    args = ap.parse_args(argv)
    if args.truth:
        return analyse(Path(args.truth), args.timezone, args.skip_days)
    if not args.scenario:
        ap.error("give --scenario or --truth")
    from acceptance.world_config import build_world_config
    from scenarios.loader import load_scenario
    from sim.runner import simulate

    config = build_world_config(load_scenario(args.scenario), days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        simulate(config, tmp, workers=args.workers)
        return analyse(Path(tmp), config.timezone, args.skip_days)


if __name__ == "__main__":
    sys.exit(main())
