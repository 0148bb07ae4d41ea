"""Benchmark the ground truth ↔ platform comparison: wall time and peak memory against days.

    python benchmarks/bench_compare.py --days 10,30 [--paths whole,stations] [--truth-dir DIR]

For each length, `forecourt simulate` writes the banner's ground truth (or reuses DIR/<days>).
The platform stored every record exactly (`expected_records`, the fields a platform returns).
Each path is measured in a fresh process:

- whole: load the whole ground truth, build the platform's frames in memory, run
  `acceptance.compare.compare` — peak RSS (ru_maxrss) after loading and after comparing;
- stations: the platform's records are first written (in another process) as a run's
  observed/<stream>.parquet (DIR/<days>-observed, one file per stream, stations in order),
  then `acceptance.station_compare.compare_by_station` reads and compares one station at a
  time from the Parquet files, as RunData.comparison does — peak RSS after importing (the
  fixed cost) and after comparing.

The growth with days tells whether the 180-day run fits in memory (issue 11).
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
STREAMS = ("transactions", "inventory", "deliveries", "events")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(truth_dir: Path) -> dict:
    """In this process: load, build the platform's frames, compare (the whole frames)."""
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


def write_observed(truth_dir: Path, out: Path) -> None:
    """The faithful platform's records as observed/<stream>.parquet, built station by
    station (written as the observer writes them: one DataFrame per stream, to_parquet)."""
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from acceptance.compare import expected_records
    from acceptance.station_compare import ParquetInputs

    out.mkdir(parents=True, exist_ok=True)
    files = {s: out / f"{s}.parquet" for s in STREAMS}
    empty = {s: pd.DataFrame({"station_id": pd.Series(dtype=str)}) for s in STREAMS}
    for s in STREAMS:
        empty[s].to_parquet(files[s], index=False)  # ParquetInputs checks the files exist
    inputs = ParquetInputs(truth_dir, files)
    dialects = {s: "int_be" for s in inputs.stations}
    parts: dict[str, list[pd.DataFrame]] = {s: [] for s in STREAMS}
    for sid in inputs.stations:
        for stream, frame in expected_records(inputs.truth(sid), dialects).items():
            parts[stream].append(frame.drop(columns=["time"]))
    for stream in STREAMS:
        pd.concat(parts[stream], ignore_index=True).to_parquet(files[stream], index=False)


def measure_stations(truth_dir: Path, observed: Path) -> dict:
    """In this process: compare station by station from the Parquet files."""
    sys.path.insert(0, str(ROOT))
    import json as _json

    from acceptance.station_compare import ParquetInputs, compare_by_station

    imported = _rss_mib()
    t0 = time.perf_counter()
    stations = _json.loads((truth_dir / "manifest.json").read_text())["stations"]
    dialects = {s: "int_be" for s in stations}
    inputs = ParquetInputs(truth_dir, {s: observed / f"{s}.parquet" for s in STREAMS})
    result = compare_by_station(inputs, dialects)
    t1 = time.perf_counter()
    assert result.ok, result.problems()
    return {"records": len(result.records), "compare_s": t1 - t0, "rss_imported_mib": imported,
            "rss_peak_mib": _rss_mib(),
            "records_mib": result.records.memory_usage(deep=True).sum() / 2**20}


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", default="10,30", help="comma-separated run lengths")
    p.add_argument("--paths", default="whole,stations",
                   help="comma-separated: whole (compare), stations (compare_by_station)")
    p.add_argument("--truth-dir", type=Path, help="keep/reuse ground truths here")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child modes
    p.add_argument("--measure-stations", type=Path, nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--write-observed", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    if args.measure_stations:
        print(json.dumps(measure_stations(*args.measure_stations)))
        return 0
    if args.write_observed:
        write_observed(*args.write_observed)
        print("{}")
        return 0
    paths = args.paths.split(",")
    tmp = None if args.truth_dir else tempfile.TemporaryDirectory(prefix="fc-bench-compare-")
    base = args.truth_dir or Path(tmp.name)  # type: ignore[union-attr]
    print("| days | records | path | wall | peak RSS before comparing | "
          "peak RSS after compare | records frame |")
    print("|---|---|---|---|---|---|---|")
    try:
        for days in (float(d) for d in args.days.split(",")):
            out = base / f"{days:g}"
            if not (out / "manifest.json").is_file():
                subprocess.run([sys.executable, "-m", "acceptance.cli", "simulate", str(BANNER),
                                "--out", str(out), "--days", f"{days:g}"], check=True,
                               cwd=ROOT, stdout=subprocess.DEVNULL)
            if "whole" in paths:
                r = _child("--measure", str(out))
                print(f"| {days:g} | {r['records']:,} | whole frames | load {r['load_s']:.1f} s "
                      f"+ compare {r['compare_s']:.1f} s | "
                      f"{r['rss_loaded_mib']:,.0f} MiB (truth + platform loaded) | "
                      f"{r['rss_peak_mib']:,.0f} MiB | — |", flush=True)
            if "stations" in paths:
                observed = base / f"{days:g}-observed"
                if not (observed / "events.parquet").is_file():
                    _child("--write-observed", str(out), str(observed))
                r = _child("--measure-stations", str(out), str(observed))
                print(f"| {days:g} | {r['records']:,} | station by station | "
                      f"read + compare {r['compare_s']:.1f} s | "
                      f"{r['rss_imported_mib']:,.0f} MiB (imports) | "
                      f"{r['rss_peak_mib']:,.0f} MiB | {r['records_mib']:,.0f} MiB |",
                      flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
