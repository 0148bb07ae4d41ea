"""False alerts of the reference platform's detectors when a gauge's clock drifts.

    python benchmarks/clock_drift_alerts.py

The 20-day honest station of tests/test_detectors_clocks.py (two tanks, two dispensers,
15-min readings, gauge noise 3 L): its gauge's clock drifts from a start placed at 06:00,
09:00, 13:00 and 16:00 of days 2–18 (68 placements) and is set right after the stated time.
Prints, per drift profile, how many placements raised any alert (the honest station raises
none) and which kinds; docs/detectors.md §1.7 keeps the table.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_detectors_clocks import alerts, drifting  # noqa: E402

PROFILES = ((600, 24), (-3600, 4.5), (7200, 4), (-7200, 6), (-3600, 12), (14400, 3),
            (-14400, 3))  # drift s/day, hours until set right


def main() -> int:
    print("| drift (s/day) | for (h) | offset at the end (min) | placements with an alert "
          "| kinds |")
    print("|---|---|---|---|---|")
    for rate, hours in PROFILES:
        hit, kinds = 0, Counter[str]()
        for day in range(2, 19):
            for hour in (6, 9, 13, 16):
                found = alerts(drifting(rate, hours, day, hour))
                hit += bool(found)
                kinds.update({k for k, _, _ in found})
        print(f"| {rate:+d} | {hours:g} | {rate * hours / 24 / 60:+.0f} | {hit} of 68 | "
              f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or '—'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
