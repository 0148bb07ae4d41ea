"""Benchmark the ground truth ↔ platform comparison: wall time and peak memory against days.

    python benchmarks/bench_compare.py --days 10,30 [--stations N] [--truth-dir DIR]

For each length, `forecourt simulate` writes the banner's ground truth (or reuses DIR/<days>),
then a fresh process loads it, builds a platform that stored every record exactly
(`expected_records`, the fields a platform returns) and runs `acceptance.compare.compare`.
Reported per case: records, wall of the comparison, peak RSS of that process (ru_maxrss) after
loading the truth and the platform frames, and after comparing — the growth with days is what
tells whether the 180-day run fits in memory (issue 11).
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

ROOT = Path(__file__).resolve().parent.parent
BANNER = ROOT / "scenarios" / "urad-middle-banner.yaml"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(truth_dir: Path) -> dict:
    """In this process: load, build the platform's frames, compare."""
    sys.path.insert(0, str(ROOT))
    from acceptance.compare import compare, expected_records, load_truth

    t0 = time.perf_counter()
    truth = load_truth(truth_dir)
    dialects = {s: "int_be" for s in truth.manifest["stations"]}
    platform = {s: f.drop(columns=["time"]) for s, f in
                expected_records(truth, dialects).items()}
    loaded = _rss_mib()
    t1 = time.perf_counter()
    result = compare(truth, platform, dialects)
    t2 = time.perf_counter()
    assert result.ok, result.problems()
    return {"records": len(result.records), "load_s": t1 - t0, "compare_s": t2 - t1,
            "rss_loaded_mib": loaded, "rss_peak_mib": _rss_mib()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", default="10,30", help="comma-separated run lengths")
    p.add_argument("--truth-dir", type=Path, help="keep/reuse ground truths here")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    tmp = None if args.truth_dir else tempfile.TemporaryDirectory(prefix="fc-bench-compare-")
    base = args.truth_dir or Path(tmp.name)  # type: ignore[union-attr]
    print("| days | records | compare wall | peak RSS after loading | peak RSS after compare |")
    print("|---|---|---|---|---|")
    try:
        for days in (float(d) for d in args.days.split(",")):
            out = base / f"{days:g}"
            if not (out / "manifest.json").is_file():
                subprocess.run([sys.executable, "-m", "acceptance.cli", "simulate", str(BANNER),
                                "--out", str(out), "--days", f"{days:g}"], check=True,
                               cwd=ROOT, stdout=subprocess.DEVNULL)
            child = subprocess.run([sys.executable, __file__, "--measure", str(out)],
                                   check=True, capture_output=True, text=True)
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"| {days:g} | {r['records']:,} | {r['compare_s']:.1f} s | "
                  f"{r['rss_loaded_mib']:.0f} MiB | {r['rss_peak_mib']:.0f} MiB |", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
