"""CPU and rate of power-safe spool commits from one event loop, as a collectors process
makes them: every station's poll round commits a few records with `add_async`.

    python benchmarks/bench_spool_commit.py [--stations 23] [--rounds 200] [--records 6]

Modes: `group` (the default: one writer thread, one sync of all WAL files per step),
`sqlite-full` (SQLite's own synchronous=FULL, an fsync per commit on the worker threads, the
collector before 2026-12-07), `normal` (no sync at all: the floor, not power-safe).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.group_commit import GroupCommit  # noqa: E402
from collector.spool import Spool, SpoolRecord  # noqa: E402

PAYLOAD = "x" * 200  # about a transaction record's canonical JSON


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def station(spool: Spool, rounds: int, records: int) -> None:
    for n in range(rounds):
        await spool.add_async([SpoolRecord(f"{spool.station_id}/D1/transactions/{n}/{k}",
                                           "transaction", "D1", {"k": k, "v": PAYLOAD})
                               for k in range(records)])


def measure(mode: str, work: Path, stations: int, rounds: int, records: int) -> dict:
    group = GroupCommit() if mode == "group" else None
    sync = "NORMAL" if mode == "normal" else "FULL"
    spools = [Spool(work / mode / f"S{i:02}", f"S{i:02}", synchronous=sync, group=group)
              for i in range(stations)]

    async def main() -> None:
        await asyncio.gather(*(station(s, rounds, records) for s in spools))

    c0, t0 = cpu_s(), time.perf_counter()
    asyncio.run(main())
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    for s in spools:
        s.close()
    commits = stations * rounds
    out = {"mode": mode, "commits_per_s": commits / wall, "cpu_us_per_commit": cpu / commits * 1e6}
    if group is not None:
        out["commits_per_step"] = group.commits / group.steps
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stations", type=int, default=23)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--records", type=int, default=6, help="records per commit")
    p.add_argument("--passes", type=int, default=2)
    args = p.parse_args(argv)
    print(f"{args.stations} spools × {args.rounds} commits of {args.records} records, "
          f"one event loop")
    print("| mode | commits/s | CPU per commit (µs, all threads) | commits per sync step |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="fc-bench-spool-") as tmp:
        for n in range(args.passes):
            for mode in ("sqlite-full", "group", "normal"):
                r = measure(mode, Path(tmp) / str(n), args.stations, args.rounds, args.records)
                step = f"{r['commits_per_step']:.1f}" if "commits_per_step" in r else "–"
                print(f"| {mode} | {r['commits_per_s']:.0f} | {r['cpu_us_per_commit']:.0f} "
                      f"| {step} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
