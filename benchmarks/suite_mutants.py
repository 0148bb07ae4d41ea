"""Run an acceptance suite's gauntlet (its first two days) against the reference SUT and
every mutant; print a Markdown table for docs/performance.md.

    python benchmarks/suite_mutants.py scenarios/acceptance/county.yaml --out /tmp/suite

Each row: who ran, exit code, verdict, the MUST requirements not passed, wall seconds. A
mutant must exit 1 (not accepted); the reference is at best incomplete (a two-day run cannot
prove six months of stability).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mutants.collector import MUTANTS
from mutants.platform import MUTANTS as PLATFORM_MUTANTS


def run_one(scenario: str, out: Path, days: float, extra: list[str]) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "acceptance.cli", "run", scenario, "--out",
                           str(out), "--days", str(days), *extra],
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    try:
        record = json.loads((out / "record.json").read_text())
    except (OSError, ValueError):
        return {"exit": proc.returncode, "verdict": "-", "not_passed": proc.stderr[-300:],
                "wall_s": wall}
    bad = [f"{r['id']} {r['outcome']}" for r in record["requirements"]
           if r["level"] == "MUST" and r["outcome"] != "pass"]
    return {"exit": proc.returncode, "verdict": record["verdict"], "not_passed": ", ".join(bad),
            "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--only", action="append", help="reference, or a mutant name (repeatable)")
    args = ap.parse_args()
    runs: list[tuple[str, list[str]]] = [("reference", [])] + [(m, ["--sut-mutant", m]) for m in MUTANTS] + [
        (m, ["--platform-mutant", m]) for m in PLATFORM_MUTANTS]
    if args.only:
        runs = [r for r in runs if r[0] in args.only]
    print("| SUT | exit | verdict | MUST requirements not passed | wall s |")
    print("|---|---|---|---|---|")
    ok = True
    for name, extra in runs:
        row = run_one(args.scenario, args.out / name, args.days, extra)
        expected = 3 if name == "reference" else 1
        ok &= row["exit"] == expected
        print(f"| {name} | {row['exit']} | {row['verdict']} | {row['not_passed']} | "
              f"{row['wall_s']:.0f} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
