"""How long the reference platform's detectors take over one busy station and 180 days.

    python benchmarks/bench_detectors.py [--repeat 5]

The station of tests/test_detectors_causality.py (half_year_station: four dispensers, three
tanks, ≈ 900 fills and ≈ 290 gauge readings a day): each repeat evaluates a fresh snapshot of
its data (nothing cached). Prints the times and their median; docs/performance.md keeps the
figure (tests do not time anything).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_detectors_causality import half_year_station  # noqa: E402

from central.detectors.base import Context  # noqa: E402
from central.detectors.runner import detect  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    s = half_year_station()
    times = []
    for _ in range(args.repeat):
        data = s.data.cut(s.end)
        t0 = time.perf_counter()
        detect(data, Context())
        times.append(time.perf_counter() - t0)
    print(f"{len(s.data.transactions)} transactions, {len(s.data.inventory)} readings over 180 "
          f"days: {', '.join(f'{t:.3f}' for t in times)} s; median {statistics.median(times):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
