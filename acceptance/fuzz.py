"""Generative fault campaigns: `forecourt fuzz SCENARIO --budget N --out DIR`.

Draws fault schedules with hypothesis (kinds of docs/faults.md at the scenario's stations,
at times inside the run), runs each through the whole chain (`forecourt run`, the scenario's
world and SUT with the drawn faults instead of its own), and on the first schedule the SUT
is refused for (exit 1: a MUST requirement failed) shrinks it — fewer faults, faults moved
together, then shorter ones — to a minimal schedule that still fails, written as a scenario file that reproduces it (`forecourt run DIR/minimal.yaml --days D`, with the same mutant
options). Every run is kept in DIR/runs/NNN and listed in DIR/fuzz.json with its faults, exit
code and failed requirements.

Exit codes: 1 a failing schedule was found (DIR/minimal.yaml), 0 none within the budget,
2 the campaign could not run. A run the harness could not carry out (exit 2) or that was
incomplete (3) is not a failure of the SUT and is not shrunk towards.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from acceptance.faults import KINDS
from scenarios.crosscheck import CLOCK_FAULTS, FAULT_PARTS, WIRE_FAULTS
from scenarios.loader import ScenarioError, load_scenario
from scenarios.variant import write_scenario_variant

DURATIONS_MIN = (10, 30, 60, 120, 240)  # shrinks towards the first
ALIGN_MIN = 10  # shrinking moves a fault to start this long after another
STEP_MIN = 30  # fault start times on a half-hour grid (shrinks towards the run's start)
EXIT_FOUND, EXIT_NONE, EXIT_ERROR = 1, 0, 2

Schedule = list[dict[str, Any]]
Runner = Callable[[Schedule], "Outcome"]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    failed: tuple[str, ...] = ()
    run_dir: str = ""


@dataclass
class Campaign:
    """The fuzzing state: every run, in order, and the budget left."""

    budget: int  # schedules to draw
    max_runs: int  # runs in all, shrinking included
    runs: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, bool] = field(default_factory=dict)  # schedule → refused

    def judge(self, runner: Runner, schedule: Schedule) -> bool:
        """True when the SUT is refused under `schedule` (the property hypothesis looks for).
        A schedule is run once: hypothesis replays a failing example to confirm it, and a
        SUT that fails only sometimes would make it give up (`confirm` measures that)."""
        key = json.dumps(schedule, sort_keys=True)
        if key in self.seen:
            return self.seen[key]
        if len(self.runs) >= self.max_runs:
            return False  # out of runs: shrinking stops where it is
        self.seen[key] = refused = self.run(runner, schedule)
        return refused

    def run(self, runner: Runner, schedule: Schedule) -> bool:
        t0 = time.monotonic()
        out = runner(schedule)
        self.runs.append({"n": len(self.runs) + 1, "faults": schedule,
                          "exit_code": out.exit_code, "failed": list(out.failed),
                          "run_dir": out.run_dir, "wall_s": round(time.monotonic() - t0, 1)})
        return out.exit_code == 1

    def confirm(self, runner: Runner, schedule: Schedule, times: int) -> int:
        """Run `schedule` again `times` times; how often the SUT was refused."""
        return sum(self.run(runner, schedule) for _ in range(times))


def schedules(station_ids: list[str], run_minutes: int, kinds: list[str],
              max_faults: int = 4, rtu_ids: Sequence[str] = ()) -> st.SearchStrategy[Schedule]:
    """Fault schedules inside the run, in the scenario format (docs/faults.md). `rtu_ids`:
    the stations served over Modbus RTU (rtu_line_noise fits only them, modbus_garbled only
    the others)."""
    slots = max(1, (run_minutes - 60) // STEP_MIN)
    fitting = {k: [s for s in station_ids if (s in rtu_ids) == (line == "rtu")]
               for k, line in WIRE_FAULTS.items()}
    kinds = [k for k in kinds if fitting.get(k, station_ids)]

    @st.composite
    def one(draw: st.DrawFn) -> dict[str, Any]:
        kind = draw(st.sampled_from(kinds))
        k = KINDS[kind]
        fault: dict[str, Any] = {"kind": kind}
        if k.scope != "fleet":
            fault["station"] = draw(st.sampled_from(fitting.get(kind, station_ids)))
        if kind == "device_power_loss":
            fault["device"] = draw(st.sampled_from(["D1", "D2"]))
        elif kind in CLOCK_FAULTS:
            fault["device"] = draw(st.sampled_from(["D1", "G"]))
        elif k.scope == "device":
            fault["device"] = draw(st.sampled_from([None, "D1", "G"]))
        start = STEP_MIN * (1 + draw(st.integers(0, slots - 1)))
        duration = draw(st.sampled_from([d for d in DURATIONS_MIN
                                         if start + d < run_minutes] or [5]))
        fault["at"] = f"+{start}min"
        fault["duration"] = f"{duration}min"
        return {key: v for key, v in fault.items() if v is not None}

    return st.lists(one(), min_size=1, max_size=max_faults).filter(conflict_free)


def conflict_free(schedule: Schedule) -> bool:
    """No two faults on one part at once (the scenario rule of scenarios/crosscheck.py)."""
    def minutes(text: str) -> int:
        return int(text.strip("+min"))

    windows = []
    for f in schedule:
        # two wire faults at one station: refused if on one device, kept apart here for all
        part = FAULT_PARTS.get(f["kind"]) or ("wire" if f["kind"] in WIRE_FAULTS else None)
        if part is not None:
            at = minutes(f["at"])
            windows.append(((part, f.get("station")), at, at + minutes(f["duration"])))
    return not any(p == q and a < d and c < b
                   for i, (p, a, b) in enumerate(windows) for q, c, d in windows[i + 1:])


def search(runner: Runner, strategy: st.SearchStrategy[Schedule], budget: int,
           max_runs: int, seed: int) -> tuple[Schedule | None, Campaign]:
    """The first failing schedule hypothesis draws within the budget, shrunk (below), or
    None. Hypothesis only generates: its own shrinker stops after five minutes of wall time,
    a few runs of the chain, so the shrinking here is ours and bounded by runs instead."""
    campaign = Campaign(budget, max_runs)
    try:
        found = find(strategy, lambda s: campaign.judge(runner, s),
                     settings=settings(max_examples=budget, database=None, deadline=None,
                                       phases=[Phase.generate],
                                       suppress_health_check=list(HealthCheck)),
                     random=random.Random(seed))
    except NoSuchExample:
        return None, campaign
    return shrink(found, lambda s: campaign.judge(runner, s)), campaign


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool]) -> Schedule:
    """Greedy delta debugging: drop faults one at a time while it still fails; when none can
    go, move one fault to start just after another (faults that break a SUT together often
    need only to overlap; a third may have mattered only by its timing) and drop again; then
    make each remaining fault as short as DURATIONS_MIN allows. Each try is one run."""
    schedule = _drop(schedule, fails)
    while len(schedule) > 1 and (moved := _align(schedule, fails)) is not None:
        schedule = _drop(moved, fails)
    for i, fault in enumerate(schedule):
        for minutes in DURATIONS_MIN:
            if minutes >= int(fault["duration"].strip("min")):
                break
            candidate = [*schedule[:i], dict(fault, duration=f"{minutes}min"), *schedule[i + 1:]]
            if fails(candidate):
                schedule = candidate
                break
    return schedule


def _drop(schedule: Schedule, fails: Callable[[Schedule], bool]) -> Schedule:
    changed = True
    while changed and len(schedule) > 1:
        changed = False
        for i in range(len(schedule)):
            candidate = schedule[:i] + schedule[i + 1:]
            if fails(candidate):
                schedule, changed = candidate, True
                break
    return schedule


def _align(schedule: Schedule, fails: Callable[[Schedule], bool]) -> Schedule | None:
    """A still-failing schedule with one fault moved to ALIGN_MIN after another's start,
    after which some fault can be dropped; None if there is none."""
    for i, f in enumerate(schedule):
        for g in schedule:
            at = f"+{int(g['at'].strip('+min')) + ALIGN_MIN}min"
            candidate = [*schedule[:i], dict(f, at=at), *schedule[i + 1:]]
            if (g is f or at == f["at"] or not conflict_free(candidate)
                    or not fails(candidate)):
                continue
            if _drop(candidate, fails) != candidate:
                return candidate
    return None


def subprocess_runner(scenario: Path, out: Path, days: float, extra: list[str]) -> Runner:
    """Each schedule as one `forecourt run` of the scenario with those faults."""
    count = 0

    def run(schedule: Schedule) -> Outcome:
        nonlocal count
        count += 1
        run_dir = out / "runs" / f"{count:03d}"
        variant = write_scenario_variant(scenario, out / "schedules" / f"{count:03d}.yaml",
                                         faults=schedule)
        res = subprocess.run([sys.executable, "-m", "acceptance.cli", "run", str(variant),
                              "--out", str(run_dir), "--days", repr(days), *extra],
                             capture_output=True, text=True)
        failed: tuple[str, ...] = ()
        record = run_dir / "record.json"
        if record.exists():
            doc = json.loads(record.read_text(encoding="utf-8"))
            failed = tuple(r["id"] for r in doc["requirements"]
                           if r["outcome"] in ("fail", "error"))
        print(f"fuzz: run {count}: {len(schedule)} fault(s) → exit {res.returncode}"
              + (f" (failed {', '.join(failed)})" if failed else ""), flush=True)
        return Outcome(res.returncode, failed, str(run_dir))

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="forecourt fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", type=Path)
    p.add_argument("--out", type=Path, required=True, help="campaign directory (must be new)")
    p.add_argument("--budget", type=int, default=20, help="schedules to draw (default 20)")
    p.add_argument("--max-runs", type=int, default=None,
                   help="runs in all, shrinking included (default 3 × budget)")
    p.add_argument("--days", type=float, default=0.6, help="simulated days per run (0.6)")
    p.add_argument("--seed", type=int, default=0, help="the search's random seed")
    p.add_argument("--kinds", default=None,
                   help="comma-separated fault kinds to draw (default: every kind)")
    p.add_argument("--max-faults", type=int, default=4)
    p.add_argument("--confirm", type=int, default=2,
                   help="runs of the minimal schedule afterwards, to say how reliably it "
                        "fails (default 2)")
    p.add_argument("--sut-mutant", default=None)
    p.add_argument("--platform-mutant", default=None)
    args = p.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print("fuzz: scenario rejected:\n  - " + "\n  - ".join(exc.messages), file=sys.stderr)
        return EXIT_ERROR
    kinds = list(KINDS) if args.kinds is None else args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or args.budget < 1 or not 0 < args.days <= scenario.data["days"]:
        print(f"fuzz: --kinds {unknown} unknown (known: {', '.join(KINDS)})" if unknown else
              "fuzz: expected --budget ≥ 1 and 0 < --days ≤ the scenario's days", file=sys.stderr)
        return EXIT_ERROR
    if args.out.exists() and any(args.out.iterdir()):
        print(f"fuzz: {args.out} is not empty", file=sys.stderr)
        return EXIT_ERROR
    args.out.mkdir(parents=True, exist_ok=True)
    extra = [*(["--sut-mutant", args.sut_mutant] if args.sut_mutant else []),
             *(["--platform-mutant", args.platform_mutant] if args.platform_mutant else [])]
    strategy = schedules(list(scenario.station_ids), int(args.days * 1440), kinds,
                         args.max_faults, scenario.rtu_station_ids)
    runner = subprocess_runner(args.scenario, args.out, args.days, extra)
    found, campaign = search(runner, strategy, args.budget, args.max_runs or 3 * args.budget,
                             args.seed)
    summary = {"scenario": str(args.scenario), "days": args.days, "seed": args.seed,
               "options": extra, "budget": args.budget, "runs": campaign.runs,
               "minimal": found}
    (args.out / "fuzz.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False),
                                        encoding="utf-8")
    if found is None:
        print(f"fuzz: no failing schedule in {len(campaign.runs)} runs")
        return EXIT_NONE
    minimal = write_scenario_variant(args.scenario, args.out / "minimal.yaml", faults=found)
    failing = next(r for r in campaign.runs if r["faults"] == found and r["exit_code"] == 1)
    again = campaign.confirm(runner, found, args.confirm)
    summary.update(runs=campaign.runs, confirmed=f"{again}/{args.confirm}")
    (args.out / "fuzz.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False),
                                        encoding="utf-8")
    print(f"fuzz: minimal failing schedule ({len(found)} fault(s), failed "
          f"{', '.join(failing['failed'])}) after {len(campaign.runs)} runs, refused again in "
          f"{again} of {args.confirm} more runs: {minimal}\n"
          f"reproduce: forecourt run {minimal} --out RUN --days {args.days} {' '.join(extra)}")
    return EXIT_FOUND


if __name__ == "__main__":
    raise SystemExit(main())
