"""Memory and time of the checkers on a run directory, checker by checker.

    python benchmarks/bench_check.py RUN_DIR [--json OUT]

Runs what `forecourt check` runs (the comparison, then every requirement's checker, in
catalogue order) without writing anything into RUN_DIR, and prints after each step the
process's current RSS, its peak so far (ru_maxrss) and the step's wall time — which step
bounds a long run's memory (issue 11: the 180-day banner run must check in ≤ 2 GiB).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acceptance.criteria import resolve_criteria  # noqa: E402
from acceptance.requirements import CATALOGUE, load_checker  # noqa: E402
from acceptance.rundir import RunData  # noqa: E402


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set of this process, MiB."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    data = RunData(args.run_dir)
    criteria = resolve_criteria(data.criteria_raw, run_days=data.days)
    steps = [("comparison", lambda: data.comparison)] + [
        (r.id, lambda r=r: load_checker(r.checker)(data, criteria))
        for r in CATALOGUE if r.checker]
    rows = [{"step": "imports", "rss_mib": rss_mib()[0], "peak_mib": rss_mib()[1], "wall_s": 0}]
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            step()
            error = None
        except Exception as exc:  # a checker's error is its requirement's outcome, not ours
            error = f"{type(exc).__name__}: {exc}"
        gc.collect()
        cur, peak = rss_mib()
        rows.append({"step": name, "rss_mib": round(cur), "peak_mib": round(peak),
                     "wall_s": round(time.perf_counter() - t0, 1), "error": error})
    print(f"{'step':<12} {'RSS MiB':>8} {'peak MiB':>9} {'wall s':>7}")
    for r in rows:
        print(f"{r['step']:<12} {r['rss_mib']:>8.0f} {r['peak_mib']:>9.0f} {r['wall_s']:>7}"
              + (f"  {r['error']}" if r.get("error") else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
