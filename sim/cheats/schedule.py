"""When a cheat is switched on and off, inside its [start, end) span.

- constant: on at start, off at end (or never).
- remote (遥控): switched on and off at random, exponential on/off durations with means
  `mean_on_h` / `mean_off_h` (on first, at start) — a cheat box with a remote control.
- nights: on from `from_h` to `to_h` local time each night (a window may cross midnight),
  each night with probability `share`.
- off_during_inspections: on, except from `off_before_min` before each market-regulation
  inspection of the station until `on_after_min` after it (the cheater is tipped off).

Random choices come from the cheat's own stream, so a schedule never moves any other
random draw of the world.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from sim.cheats.params import Param, check_params

# schedule kind -> its options
SCHEDULE_OPTIONS: dict[str, dict[str, Param]] = {
    "constant": {},
    "remote": {
        "mean_on_h": Param("number", default=6.0, minimum=0.0, exclusive_minimum=True,
                           maximum=720.0, unit="h", doc="mean time switched on"),
        "mean_off_h": Param("number", default=18.0, minimum=0.0, exclusive_minimum=True,
                            maximum=720.0, unit="h", doc="mean time switched off"),
    },
    "nights": {
        "from_h": Param("number", default=22.0, minimum=0.0, maximum=24.0, unit="h",
                        doc="local hour the window opens"),
        "to_h": Param("number", default=6.0, minimum=0.0, maximum=24.0, unit="h",
                      doc="local hour it closes (the next day when <= from_h)"),
        "share": Param("number", default=1.0, minimum=0.0, exclusive_minimum=True,
                       maximum=1.0, doc="probability that a given night is used"),
    },
    "off_during_inspections": {
        "off_before_min": Param("number", default=30.0, minimum=0.0, maximum=1440.0,
                                unit="min", doc="switched off this long before an inspection"),
        "on_after_min": Param("number", default=60.0, minimum=0.0, maximum=1440.0,
                              unit="min", doc="back on this long after it ends"),
    },
}
SCHEDULES = tuple(SCHEDULE_OPTIONS)


@dataclass(frozen=True)
class ScheduleContext:
    """What a schedule needs from the station."""

    run_end: float
    tz: ZoneInfo
    rng: np.random.Generator
    inspections: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Schedule:
    kind: str
    options: dict[str, Any]

    def windows(self, start: float, end: float | None,
                ctx: ScheduleContext) -> Iterator[tuple[float, float | None]]:
        """(on, off) windows in time order inside [start, end); off None = never off.
        Stops once a window would open at or after the run's end."""
        stop = ctx.run_end if end is None else min(end, ctx.run_end)
        if self.kind == "constant":
            yield start, end
        elif self.kind == "remote":
            yield from self._remote(start, end, stop, ctx.rng)
        elif self.kind == "nights":
            yield from self._nights(start, end, stop, ctx)
        else:
            yield from self._around_inspections(start, end, stop, ctx.inspections)

    def _remote(self, start: float, end: float | None, stop: float,
                rng: np.random.Generator) -> Iterator[tuple[float, float | None]]:
        on_s, off_s = self.options["mean_on_h"] * 3600.0, self.options["mean_off_h"] * 3600.0
        t = start
        while t < stop:
            off = t + float(rng.exponential(on_s))
            if end is not None and off >= end:
                yield t, end
                return
            yield t, off
            t = off + float(rng.exponential(off_s))
            if end is not None and t >= end:
                return

    def _nights(self, start: float, end: float | None, stop: float,
                ctx: ScheduleContext) -> Iterator[tuple[float, float | None]]:
        o = self.options
        day = datetime.fromtimestamp(start, ctx.tz).date() - timedelta(days=1)
        share = o["share"]
        while True:
            midnight = datetime(day.year, day.month, day.day, tzinfo=ctx.tz)
            opens = (midnight + timedelta(hours=o["from_h"])).timestamp()
            to_day = midnight if o["to_h"] > o["from_h"] else midnight + timedelta(days=1)
            closes = (datetime(to_day.year, to_day.month, to_day.day, tzinfo=ctx.tz)
                      + timedelta(hours=o["to_h"])).timestamp()
            day += timedelta(days=1)
            if opens >= stop:
                return
            used = share >= 1.0 or float(ctx.rng.random()) < share
            on, off = max(opens, start), closes if end is None else min(closes, end)
            if used and off > on:
                yield on, off

    def _around_inspections(self, start: float, end: float | None, stop: float,
                            inspections: Sequence[tuple[float, float]]
                            ) -> Iterator[tuple[float, float | None]]:
        before = self.options["off_before_min"] * 60.0
        after = self.options["on_after_min"] * 60.0
        blocks: list[list[float]] = []
        for s, e in sorted(inspections):
            lo, hi = s - before, e + after
            if blocks and lo <= blocks[-1][1]:
                blocks[-1][1] = max(blocks[-1][1], hi)
            else:
                blocks.append([lo, hi])
        t = start
        limit = math.inf if end is None else end
        for lo, hi in blocks:
            if hi <= t:
                continue
            if lo >= limit or t >= stop:
                break
            if lo > t:
                yield t, min(lo, limit)
            t = hi
        if t < limit and t < stop:
            yield t, end


def make_schedule(where: str, given: dict[str, Any] | None, default: dict[str, Any],
                  allowed: Sequence[str]) -> Schedule:
    """The cheat's schedule: `given` (a mapping {kind, options…}; None/{} = the kind's
    default), options of the default filled in when the kinds agree."""
    given = dict(given or {})
    kind = given.pop("kind", default.get("kind", "constant"))
    if kind not in SCHEDULE_OPTIONS:
        raise ValueError(f"{where}: schedule.kind must be one of {list(SCHEDULES)}, "
                         f"got {kind!r}")
    if kind not in allowed:
        raise ValueError(f"{where}: schedule.kind {kind!r} is not allowed for this cheat "
                         f"kind; allowed: {list(allowed)}")
    base = {k: v for k, v in default.items() if k != "kind"} \
        if default.get("kind", "constant") == kind else {}
    options = check_params(where, kind, SCHEDULE_OPTIONS[kind], {**base, **given},
                           label="schedule")
    return Schedule(kind, options)
