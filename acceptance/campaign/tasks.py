"""The worlds of a campaign, one scenario file each (so `forecourt run` can replay any of them).

A task is one station over `days` with its own seed: honest, or with one cheat of a class
of the spec. Seeds and random targets are derived from the spec's seed and the task's
place in the spec only, so the same spec always gives the same worlds.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from acceptance.campaign.spec import RANDOM, CampaignSpec, CheatPlan

HONEST_SEED_BASE = 1_000_000
CLASS_SEED_STRIDE = 10_000


@dataclass(frozen=True)
class Task:
    id: str
    plan: int | None  # index of the cheat class in the spec; None = honest
    station: str
    seed: int
    days: float
    start_day: float  # when the cheat starts (0 for honest worlds)
    cheat: dict[str, Any] | None  # the scenario's cheat entry
    scenario: Path  # the world's scenario file, written by `write_tasks`

    @property
    def honest(self) -> bool:
        return self.plan is None


def _ledger_row(spec: CampaignSpec, station: str) -> dict[str, Any]:
    return next(r for r in spec.scenario.fleet if r["station_id"] == station)


def _target(plan: CheatPlan, row: dict[str, Any], rng: np.random.Generator) -> dict[str, int]:
    """The plan's target with every 'random' drawn from the station's equipment."""
    t = dict(plan.target)
    if t.get("nozzle") == RANDOM or t.get("dispenser") == RANDOM:
        pairs = [(d["dispenser"], k) for d in row["dispensers"]
                 for k in range(1, len(d["nozzle_tanks"]) + 1)
                 if t.get("dispenser") in (RANDOM, None, d["dispenser"])]
        if "nozzle" in t and t["nozzle"] != RANDOM:
            pairs = [p for p in pairs if p[1] == t["nozzle"]]
        disp, nozzle = pairs[int(rng.integers(len(pairs)))]
        t["dispenser"] = disp
        if "nozzle" in t:
            t["nozzle"] = nozzle
    if t.get("tank") == RANDOM:
        tanks = [tk["tank"] for tk in row["tanks"]]
        t["tank"] = tanks[int(rng.integers(len(tanks)))]
    return t


def make_tasks(spec: CampaignSpec, worlds_dir: Path) -> list[Task]:
    tasks: list[Task] = []
    if spec.honest is not None:
        h = spec.honest
        for k in range(h.seeds):
            for j, station in enumerate(h.stations):
                seed = spec.seed + HONEST_SEED_BASE + k * len(h.stations) + j
                tid = f"honest-{station}-{k}"
                tasks.append(Task(tid, None, station, seed, h.days, 0.0, None,
                                  worlds_dir / f"{tid}.yaml"))
    for plan in spec.cheats:
        for i in range(plan.instances):
            seed = spec.seed + CLASS_SEED_STRIDE * (plan.index + 1) + i
            station = plan.stations[i % len(plan.stations)]
            rng = np.random.default_rng([spec.seed, plan.index, i])
            cheat = {"kind": plan.kind, "station": station,
                     **_target(plan, _ledger_row(spec, station), rng),
                     "start": f"+{plan.start_day:g}d", **plan.params}
            if plan.schedule:
                cheat["schedule"] = dict(plan.schedule)
            tid = f"c{plan.index:02d}-{plan.kind}-{i:04d}"
            tasks.append(Task(tid, plan.index, station, seed, plan.days, plan.start_day,
                              cheat, worlds_dir / f"{tid}.yaml"))
    return tasks


def write_tasks(spec: CampaignSpec, tasks: list[Task]) -> None:
    """Write each task's scenario file: the base scenario, one station, its seed, length
    and cheat, no faults (a campaign measures detection, not transport)."""
    base = yaml.safe_load(spec.scenario.path.read_text(encoding="utf-8"))
    ledger = spec.scenario.fleet_path.resolve()
    for task in tasks:
        doc = copy.deepcopy(base)
        task.scenario.parent.mkdir(parents=True, exist_ok=True)
        doc["name"] = f"{spec.name}-{task.id}"
        doc["description"] = (f"World {task.id} of campaign {spec.name} "
                              f"({'honest' if task.cheat is None else 'cheat ' + task.cheat['kind']}).")
        doc["seed"] = task.seed
        doc["days"] = task.days
        doc["stations"] = [task.station]
        doc["rtu_stations"] = []
        doc["fleet"] = os.path.relpath(ledger, task.scenario.parent.resolve())
        doc["tank_conditions"] = [c for c in doc.get("tank_conditions") or []
                                  if c.get("station") == task.station]
        doc["cheats"] = [] if task.cheat is None else [task.cheat]
        doc["faults"] = []
        task.scenario.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                                 encoding="utf-8")
