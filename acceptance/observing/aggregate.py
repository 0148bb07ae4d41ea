"""Pure figures of observe mode: local days, sequence and totalizer chains, percentiles,
observation coverage and runs of compliant days. No I/O: the store feeds them rows."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

SEQ_MOD = 65536  # device FIFO sequence numbers wrap (docs/uplink.md §3)
HALF = SEQ_MOD // 2


def local_day(t: float, tz: ZoneInfo) -> str:
    """The civil day (YYYY-MM-DD) of epoch `t` in zone `tz`."""
    return dt.datetime.fromtimestamp(t, tz).date().isoformat()


def day_bounds(day: str, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of a civil day as epoch seconds."""
    d = dt.date.fromisoformat(day)
    start = dt.datetime.combine(d, dt.time(), tz)
    end = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tz)
    return start.timestamp(), end.timestamp()


def next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class SeqFigures:
    """One device stream over one day: records, and what the sequence numbers say."""

    records: int = 0
    gaps: int = 0  # places where numbers were skipped
    missing: int = 0  # records skipped in all
    repeats: int = 0  # a number seen again right after itself
    out_of_order: int = 0  # a number behind its predecessor


def order_chain(rows: Sequence[tuple[float, int]], prev_seq: int | None
                ) -> list[tuple[float, int]]:
    """Rows (device time, seq) in chain order: by time, and records with the same time in
    sequence order relative to the record before them (which keeps a wrap exact)."""
    out: list[tuple[float, int]] = []
    rows = sorted(rows, key=lambda r: r[0])
    i = 0
    last = prev_seq
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        group = rows[i:j]
        if last is not None:
            base = last
            group = sorted(group, key=lambda r: (r[1] - base - 1) % SEQ_MOD)
        else:
            group = sorted(group, key=lambda r: r[1])
        out += group
        last = group[-1][1]
        i = j
    return out


def sequence_figures(rows: Sequence[tuple[float, int]], prev_seq: int | None) -> SeqFigures:
    """Figures of a day's records (device time, seq) of one device stream, given the
    sequence number of the record before the day (None: the first the platform holds)."""
    records = gaps = missing = repeats = backwards = 0
    last = prev_seq
    for _, seq in order_chain(rows, prev_seq):
        records += 1
        if last is not None:
            step = (seq - last) % SEQ_MOD
            if step == 0:
                repeats += 1
            elif step >= HALF:
                backwards += 1
            elif step > 1:
                gaps += 1
                missing += step - 1
        last = seq
    return SeqFigures(records, gaps, missing, repeats, backwards)


@dataclass(frozen=True)
class TotalizerFigures:
    """One nozzle over one day: fills, their volume, and the totalizer's account of them."""

    fills: int = 0
    volume_ml: int = 0
    breaks: int = 0  # fills whose totalizer does not follow from the previous one
    unexplained_ml: int = 0  # totalizer advance no transaction accounts for (> 0)
    resets: int = 0  # totalizer went backwards


def totalizer_figures(rows: Sequence[tuple[float, int, int, int]],
                      prev_total: int | None) -> TotalizerFigures:
    """Rows (device time, seq, volume_ml, volume_total_ml) of one nozzle's fills over a day,
    given the totalizer after the fill before the day (None: the first the platform holds).
    Each fill must satisfy previous total + volume = its total."""
    fills = volume = breaks = unexplained = resets = 0
    last = prev_total
    for _, _, vol, total in sorted(rows, key=lambda r: (r[0], r[1])):
        fills += 1
        volume += vol
        if last is not None:
            gap = total - (last + vol)
            if gap:
                breaks += 1
                if gap > 0:
                    unexplained += gap
                else:
                    resets += 1
        last = total
    return TotalizerFigures(fills, volume, breaks, unexplained, resets)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100, linear interpolation as numpy's default); None if empty."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def split_span(a: float, b: float, tz: ZoneInfo) -> list[tuple[str, float]]:
    """The seconds of [a, b) that fall in each civil day."""
    out: list[tuple[str, float]] = []
    while a < b:
        day = local_day(a, tz)
        end = min(b, day_bounds(day, tz)[1])
        out.append((day, end - a))
        a = end
    return out


def covered_span(prev_at: float | None, at: float, gap_limit: float) -> tuple[float, float]:
    """The time a sample at `at` shows as observed since the previous one: the whole gap up
    to `gap_limit`, the last `gap_limit` seconds of a longer one (the observer was away)."""
    if prev_at is None or at <= prev_at:
        return at, at
    return max(prev_at, at - gap_limit), at


@dataclass(frozen=True)
class DayVerdict:
    """One station-day as STB-1 judges it."""

    day: str
    weight: float  # share of the day inside the observation (the first and last are partial)
    observed: bool  # enough of it was observed to judge it
    compliant: bool
    reasons: tuple[str, ...]


def judge_day(day: str, weight: float, coverage: float | None, online_ratio: float | None,
              completeness: float | None, totalizer_breaks: int, *, min_coverage: float,
              min_online: float, min_completeness: float) -> DayVerdict:
    """A day is observed when the samples cover `min_coverage` of its part inside the
    observation; it is compliant when observed, on line at least `min_online` of its samples,
    complete at least `min_completeness` and with no totalizer break."""
    reasons: list[str] = []
    observed = coverage is not None and coverage >= min_coverage
    if not observed:
        reasons.append("not observed enough"
                       + ("" if coverage is None else f" ({coverage:.3f} of the day covered)"))
    if online_ratio is None or online_ratio < min_online:
        reasons.append("no on-line sample" if online_ratio is None
                       else f"on line {online_ratio:.4f} of the samples")
    if completeness is None:
        reasons.append("no record from the station")
    elif completeness < min_completeness:
        reasons.append(f"completeness {completeness:.6f} (sequence gaps)")
    if totalizer_breaks:
        reasons.append(f"{totalizer_breaks} totalizer break(s)")
    return DayVerdict(day, weight, observed, not reasons, tuple(reasons))


def longest_run(days: Iterable[DayVerdict], *, of: str = "compliant") -> float:
    """The longest run of consecutive days (in days, partial days by their weight) that are
    `compliant` (or `observed`); days must be consecutive civil days in order — a missing
    day breaks the run."""
    best = cur = 0.0
    prev: str | None = None
    for d in days:
        if prev is not None and next_day(prev) != d.day:
            cur = 0.0
        cur = cur + d.weight if getattr(d, of) else 0.0
        best = max(best, cur)
        prev = d.day
    return round(best, 6)
