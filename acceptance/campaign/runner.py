"""`forecourt campaign SPEC --out DIR`: run every world of a campaign and write its figures.

Worlds are independent, so they run in worker processes (`--workers`, default 2); results
are gathered in the spec's order, so campaign.json does not depend on the worker count.
Each world: simulate → feed the reference platform (direct) or run the whole chain (full)
→ the platform's alerts → the oracle. docs/campaigns.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, cast

import pandas as pd

from acceptance.campaign.spec import CampaignSpec, SpecError, load_spec
from acceptance.campaign.stats import summarise
from acceptance.campaign.tasks import Task, make_tasks, write_tasks
from acceptance.campaign.world import WorldResult, direct_world, judge, truth_of_run
from acceptance.record import VERDICTS
from acceptance.run import harness_version
from mutants.platform import MUTANTS as PLATFORM_MUTANTS

EXIT_OK, EXIT_HARNESS = 0, 2
TRANSPORTS = ("direct", "full")


def _world_result(task: Task, got: WorldResult) -> dict[str, Any]:
    return {"task": task.id, "plan": task.plan, "station": task.station, "seed": task.seed,
            **got.summary()}


def _run_direct(args: tuple[Task, str, str | None]) -> dict[str, Any]:
    task, out, mutant = args
    t0 = time.monotonic()
    got = direct_world(task.scenario, platform_mutant=mutant)
    got.alerts.to_parquet(Path(out) / "alerts" / f"{task.id}.parquet", index=False)
    result = _world_result(task, got)
    result["wall_s"] = round(time.monotonic() - t0, 3)
    return result


def _run_full(task: Task, out: Path, mutant: str | None) -> dict[str, Any]:
    """The world through `forecourt run` (devices, Modbus, collector, broker, platform)."""
    run_dir = out / "full" / task.id
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [sys.executable, "-m", "acceptance.cli", "run", str(task.scenario), "--out",
           str(run_dir)]
    if mutant:
        cmd += ["--platform-mutant", mutant]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in VERDICTS.values():  # a verdict, whichever: the alerts count
        raise RuntimeError(f"world {task.id}: forecourt run exited {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    instances, alerts, end, station_days, tanks = truth_of_run(run_dir)
    got = judge(instances, alerts, end, station_days, tanks)
    got.alerts.to_parquet(out / "alerts" / f"{task.id}.full.parquet", index=False)
    result = _world_result(task, got)
    result["wall_s"] = round(time.monotonic() - t0, 3)
    return result


def run_campaign(spec: CampaignSpec, out: Path, *, transport: str = "direct",
                 workers: int = 2, platform_mutant: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport: expected one of {TRANSPORTS}, found {transport!r}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "alerts").mkdir(exist_ok=True)
    tasks = make_tasks(spec, out / "worlds")
    write_tasks(spec, tasks)
    t0 = time.monotonic()
    results: list[dict[str, Any]] = []
    if transport == "direct":
        jobs = [(t, str(out), platform_mutant) for t in tasks]
        if workers <= 1:
            for i, job in enumerate(jobs):
                results.append(_run_direct(job))
                if progress:
                    progress(i + 1, len(jobs))
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for i, r in enumerate(pool.imap(_run_direct, jobs)):
                    results.append(r)
                    if progress:
                        progress(i + 1, len(jobs))
    else:
        direct = {t.id: _run_direct((t, str(out), platform_mutant)) for t in tasks}
        for i, task in enumerate(tasks):
            results.append(_run_full(task, out, platform_mutant))
            if progress:
                progress(i + 1, len(tasks))
    doc: dict[str, Any] = {
        "format": "forecourt-campaign/1", "name": spec.name,
        "description": spec.description, "spec": str(spec.path),
        "transport": transport,
        "platform": f"reference {harness_version()}"
        + (f" (mutant {platform_mutant})" if platform_mutant else ""),
        "worlds": len(tasks), "wall_s": round(time.monotonic() - t0, 1),
        "days_by": list(spec.days_by),
        **summarise(spec, results),
        "per_world": results,
    }
    if transport == "full":
        doc["transport_check"] = transport_check(direct, results, out)
    (out / "campaign.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False,
                                                  sort_keys=False) + "\n", encoding="utf-8")
    from reports.campaign import write_campaign_report
    write_campaign_report(out / "campaign.json")
    return doc


ALERT_TARGET = ("kind", "device", "nozzle", "tank")


def _plain(value: Any) -> str | None:
    """A target field as text, whether the frame held it as int, float (a column with
    nulls) or string."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _AlertRow(Protocol):
    """A row of alerts.parquet: the target columns (ALERT_TARGET, read by name) and as_of."""

    as_of: float


def _alerts(path: Path) -> dict[tuple, list[float]]:
    """Alert target (kind, device, nozzle, tank) → the as_of of each such alert."""
    out: dict[tuple, list[float]] = {}
    for r in cast(Iterable[_AlertRow], pd.read_parquet(path).itertuples(index=False)):
        key = tuple(_plain(getattr(r, c)) for c in ALERT_TARGET)
        out.setdefault(key, []).append(float(r.as_of))
    return {k: sorted(v) for k, v in out.items()}


def transport_check(direct: dict[str, dict[str, Any]], full: list[dict[str, Any]],
                    out: Path) -> dict[str, Any]:
    """Do the worlds give the same alerts through the whole chain as through the direct
    feed? Same kinds and targets, each as often; `as_of` may differ where the evidence
    reaches the platform at the collector's pace rather than the device's (state reports
    come from header reads): the largest difference is reported."""
    diffs = []
    identical = 0
    worst = 0.0
    for r in full:
        a = _alerts(out / "alerts" / f"{r['task']}.parquet")
        b = _alerts(out / "alerts" / f"{r['task']}.full.parquet")
        same = {k: len(v) for k, v in a.items()} == {k: len(v) for k, v in b.items()}
        if same:
            identical += 1
            for k, times in a.items():
                worst = max([worst, *(abs(x - y) for x, y in zip(times, b[k], strict=True))])
        else:
            diffs.append({"world": r["task"],
                          "direct_only": sorted(str(k) for k in set(a) - set(b))[:20],
                          "full_only": sorted(str(k) for k in set(b) - set(a))[:20],
                          "counts_differ": sorted(str(k) for k in set(a) & set(b)
                                                  if len(a[k]) != len(b[k]))[:20]})
    return {"worlds": len(full), "identical": identical, "max_as_of_difference_s": worst,
            "differences": diffs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="forecourt campaign",
                                description="detection-power campaign: many worlds, honest "
                                            "and cheating → PD by day, false alerts, noise "
                                            "(docs/campaigns.md)")
    p.add_argument("spec", type=Path, help="campaign spec (YAML)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--transport", choices=TRANSPORTS, default="direct")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--platform-mutant", choices=PLATFORM_MUTANTS, default=None)
    args = p.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"forecourt campaign: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    if args.out.exists() and any(args.out.iterdir()):
        print(f"forecourt campaign: {args.out} is not empty: give each campaign its own "
              f"directory", file=sys.stderr)
        return EXIT_HARNESS

    def show(done: int, total: int) -> None:
        print(f"\r{done}/{total} worlds", end="", file=sys.stderr, flush=True)

    doc = run_campaign(spec, args.out, transport=args.transport, workers=args.workers,
                       platform_mutant=args.platform_mutant, progress=show)
    print(file=sys.stderr)
    pfa = doc["pfa_per_station_month"]
    print(f"false alerts: {pfa['false_alerts']} in {pfa['station_months']} honest "
          f"station-months (PFA {pfa['estimate']}, 95 % upper {pfa['ci95_high']})")
    for c in doc["classes"]:
        pd_ = ", ".join(f"{d}d {v}" for d, v in c["pd_by_day"].items())
        print(f"{c['kind']} {c['size']}: {c['instances']} worlds, PD {pd_}, median "
              f"{c['median_days_to_detect']} d, attribution {c['attribution_rate']}")
    print(f"noise: median σ(daily variance) {doc['noise']['median_daily_variance_sd_pct']} % "
          f"of daily sales over {doc['noise']['tanks']} honest tanks")
    print(f"campaign: {args.out / 'campaign.json'}  report: {args.out / 'campaign.html'}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
