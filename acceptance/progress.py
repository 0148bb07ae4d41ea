"""A plain terminal progress bar for long runs (stderr; silent when stderr is not a TTY)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, total: float, unit_div: float = 86400.0, unit: str = "d",
                 stream=None, min_interval: float = 0.2) -> None:
        self.label, self.total = label, total
        self.unit_div, self.unit = unit_div, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._t0 = time.monotonic()

    def __call__(self, done: float, total: float | None = None, extra: str = "") -> None:
        if not self.enabled:
            return
        total = total or self.total
        now = time.monotonic()
        if now - self._last < self.min_interval and done < total:
            return
        self._last = now
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        bar = "#" * int(frac * 30)
        elapsed = now - self._t0
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {done / self.unit_div:7.2f}/{total / self.unit_div:.2f} "
            f"{self.unit} {frac:6.1%} {elapsed:6.1f}s {extra}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
