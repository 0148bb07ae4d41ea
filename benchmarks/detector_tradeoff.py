"""Detection versus false alerts for other detector limits, on a campaign's own worlds.

    python benchmarks/detector_tradeoff.py runs/skim-1pct \\
        '{"tank_variance": {"window_h": 4.0}}' '{"tank_variance": {"window_h": 5.0}}'

The first call keeps every world's platform database in RUN/dbs (the world is simulated and
fed again: `direct_world(…, keep_db=…)`); each settings document (central.detectors.base
`Settings.overrides`) then re-evaluates the tank detectors on the stored data — no new
simulation — and prints PD by day 7 (per tank of the cheat), attribution and the false
alerts of the honest worlds. For a campaign whose classes are skims (`tank_gain`,
`meter_skim`), as scenarios/campaigns/skim-1pct.yaml. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd

from acceptance.campaign.world import direct_world
from acceptance.oracle import DAY_S, MONTH_DAYS, poisson_upper, score
from central.db import Database
from central.detectors.base import Settings
from central.detectors.data import load_station_data
from central.detectors.runner import detect
from scenarios.loader import load_scenario

DETECTORS = {"tank_variance", "nozzle_attribution"}


def _keep(args: tuple[str, str]) -> None:
    world, db = args
    if not Path(db).exists():
        direct_world(Path(world), keep_db=Path(db))


def _evaluate(db: Path, world: Path, settings: Settings) -> tuple[str, float, pd.DataFrame]:
    scenario = load_scenario(world)
    end = scenario.end_epoch
    d = Database(f"sqlite:///{db}")
    try:
        with d.borrow() as conn:
            sid = scenario.station_ids[0]
            data = load_station_data(conn, sid, int(end))
    finally:
        d.close()
    props = [p for name, p in detect(data, settings.context()) if name in DETECTORS]
    alerts = pd.DataFrame([{"id": str(i), "station_id": sid, "kind": p.kind, "as_of": p.as_of,
                            "device": p.device, "nozzle": p.nozzle, "tank": p.tank}
                           for i, p in enumerate(props)],
                          columns=["id", "station_id", "kind", "as_of", "device", "nozzle",
                                   "tank"])
    return sid, float(end), alerts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("campaign", type=Path, help="a campaign's output directory")
    p.add_argument("settings", nargs="+", help="JSON of Settings.overrides, e.g. '{}'")
    args = p.parse_args()
    doc = json.loads((args.campaign / "campaign.json").read_text(encoding="utf-8"))
    dbs = args.campaign / "dbs"
    dbs.mkdir(exist_ok=True)
    worlds = {w["task"]: w for w in doc["per_world"]}
    jobs = [(str(args.campaign / "worlds" / f"{t}.yaml"), str(dbs / f"{t}.db")) for t in worlds]
    with mp.get_context("spawn").Pool(2) as pool:
        list(pool.imap_unordered(_keep, jobs))
    for text in args.settings:
        settings = Settings(overrides=json.loads(text))
        false, honest_days, found = 0, 0.0, []
        for task, w in worlds.items():
            sid, end, alerts = _evaluate(dbs / f"{task}.db",
                                         args.campaign / "worlds" / f"{task}.yaml", settings)
            if w["plan"] is None:
                empty = pd.DataFrame(columns=["station_id", "cheat", "kind", "class",
                                              "lookalike", "device", "dispenser", "nozzle",
                                              "tank", "first_start", "last_end",
                                              "expected_alerts", "attribution"])
                false += len(score(empty, alerts, end).false_alerts)
                honest_days += w["station_days"]
                continue
            for inst in w["instances"]:
                t = inst["target"]
                first = end - inst["observed_days"] * DAY_S
                row = pd.DataFrame([{
                    "station_id": sid, "cheat": 0, "kind": inst["kind"], "class": inst["class"],
                    "lookalike": False, "device": t["device"], "dispenser": 0,
                    "nozzle": t["nozzle"], "tank": t["tank"], "first_start": first,
                    "last_end": float("nan"), "expected_alerts": '["tank_gain", "meter_skim"]',
                    "attribution": t["attribution"]}])
                s = score(row, alerts, end).instances[0]
                found.append((t["tank"], s.detected and s.days_to_detect is not None
                              and s.days_to_detect <= 7, s.detected,
                              s.attributed))
        months = honest_days / MONTH_DAYS
        by_tank = {tk: round(float(np.mean([f[1] for f in found if f[0] == tk])), 2)
                   for tk in sorted({f[0] for f in found})}
        detected = [f for f in found if f[2]]
        print(f"{text}: PD by day 7 {np.mean([f[1] for f in found]):.2f} (per tank {by_tank}), "
              f"attribution {np.mean([f[3] for f in detected]) if detected else 0:.2f}; "
              f"false alerts {false} in {months:.1f} honest station-months "
              f"(PFA {false / months:.4f}, 95 % upper {poisson_upper(false) / months:.4f})",
              flush=True)


if __name__ == "__main__":
    main()
