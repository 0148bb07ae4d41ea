"""Market-regulation spot checks (市场监管抽查) at a station: a Poisson process with a mean
interval of `mean_interval_days`, each on a day at a uniform start between 09:00 and 16:00
local time, lasting `duration_h` (uniform). Drawn from the station's own inspection stream,
for every station (honest ones are inspected too); `off_during_inspections` schedules use
them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

DAY_FROM_H, DAY_TO_H = 9.0, 16.0


def draw_inspections(rng: np.random.Generator, start: float, end: float, tz: ZoneInfo,
                     mean_interval_days: float,
                     duration_h: tuple[float, float]) -> list[tuple[float, float]]:
    """[(start, end)] of the inspections starting in [start, end), in time order."""
    out: list[tuple[float, float]] = []
    t = start
    while True:
        t += float(rng.exponential(mean_interval_days)) * 86400.0
        day = datetime.fromtimestamp(t, tz).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        begin = (midnight + timedelta(hours=float(rng.uniform(DAY_FROM_H, DAY_TO_H)))).timestamp()
        length = float(rng.uniform(*duration_h)) * 3600.0
        if begin >= end:
            return out
        if begin >= start and (not out or begin >= out[-1][1]):
            out.append((begin, begin + length))
        t = max(t, begin + length)
