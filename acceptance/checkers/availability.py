"""On-line time of each station per simulated day, from the platform's own view.

The observer samples GET /api/v1/stations during the run (observed/availability.parquet:
one row per station and device per sample; device "" is the collector). At a sample a
station is **on line** when the platform shows its collector and every one of its devices
on line. Time is weighted in simulated seconds: a sample's state holds until the next
sample of the station (the last one for the median sampling step), cut at day boundaries.

Off-line time the harness itself caused is **excused** — left out of both the on-line and
the observed time: the windows of the timeline's faults (EXCUSED_KINDS; a
`device_silent` fault excuses only its device), and the recovery after each — after the
window ends, a device (or the collector) stays excused until the platform shows it on line
again, for at most `recovery_grace_wall_s` of wall time (the platform needs its heartbeat
timeout to notice). The start of the observation is treated as such a recovery: the parts
are still connecting. The recovery is bounded in wall time because the platform's timeouts
are; it ends as soon as the device is back, so at high compression a quick recovery costs
little simulated time and a slow one is not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from acceptance.rundir import COLLECTOR, DAY_S, EXCUSED_KINDS, RunData

INF = float("inf")
NAN = float("nan")


@dataclass(frozen=True)
class Excuse:
    """Off-line time the harness caused (station/device None: all)."""

    station_id: str | None
    device: str | None
    sim_start: float
    sim_end: float
    wall_start: float
    wall_end: float  # NaN: not recorded (the recovery then starts at sim_end)


def excuses(data: RunData) -> list[Excuse]:
    out = []
    for e in data.timeline:
        if e.kind not in EXCUSED_KINDS:
            continue
        # a window with no end recorded lasted to the end of the run
        sim = (e.sim_start, INF if e.sim_end is None else e.sim_end) \
            if e.sim_start is not None else (INF, INF)
        wall = (e.wall_start, INF if e.wall_end is None else e.wall_end) \
            if e.wall_start is not None else (INF, NAN)
        hit = (e.detail or {}).get("stations") if isinstance(e.detail, dict) else None
        for sid in hit or [e.station_id]:  # fleet mode: every station the fault took down
            out.append(Excuse(sid, e.device, sim[0], sim[1], wall[0], wall[1]))
    return out


def excused_rows(samples: pd.DataFrame, windows: list[Excuse], grace_s: float) -> np.ndarray:
    """Per availability row: is it inside a window the harness caused, or in the recovery
    after one (or after start-up): until that station's device is back on line, at most
    `grace_s` of wall time after the window ended?"""
    n = len(samples)
    out = np.zeros(n, dtype=bool)
    if not n:
        return out
    station = samples["station_id"].to_numpy()
    device = samples["device"].to_numpy()
    sim = samples["sim_time"].to_numpy(np.float64)
    wall = samples["wall_time"].to_numpy(np.float64)
    for w in windows:
        match = np.ones(n, dtype=bool)
        if w.station_id is not None:
            match &= station == w.station_id
        if w.device is not None:
            match &= device == w.device
        inside = match & (((sim >= w.sim_start) & (sim < w.sim_end))
                          | ((wall >= w.wall_start) & (wall <= w.wall_end)))
        out |= inside
        end = w.wall_end
        if np.isnan(end):  # ended at sim_end: recovery from the first sample after it
            later = match & (sim >= w.sim_end)
            end = float(wall[later].min()) if later.any() else INF
        if np.isfinite(end):
            out |= _recovering(samples, match & ~inside & (wall >= end), end, grace_s)
    out |= _recovering(samples, np.ones(n, dtype=bool), float(np.nanmin(wall)), grace_s)
    return out


def _recovering(samples: pd.DataFrame, candidates: np.ndarray, since: float,
                grace_s: float) -> np.ndarray:
    """Candidate rows within `grace_s` after `since` that come before their station's
    device is first on line again."""
    wall = samples["wall_time"].to_numpy(np.float64)
    rows = candidates & (wall <= since + grace_s)
    if not rows.any():
        return rows
    sub = samples.loc[rows, ["station_id", "device", "wall_time", "online"]]
    # as_index=False: the keys stay columns, so min() gives a frame (the stubs say a series)
    firsts = cast(pd.DataFrame, sub[sub["online"]].groupby(["station_id", "device"],
                                                             as_index=False)["wall_time"].min())
    back = firsts.rename(columns={"wall_time": "_back"})
    first = sub.merge(back, on=["station_id", "device"], how="left")["_back"] \
        .fillna(INF).to_numpy(np.float64)
    out = np.zeros(len(samples), dtype=bool)
    out[np.flatnonzero(rows)] = sub["wall_time"].to_numpy(np.float64) < first
    return out


def snapshots(data: RunData, grace_s: float) -> pd.DataFrame:
    """One row per station and sample: sim_time, state (1 on line, 0 off line, -1 excused)."""
    samples = data.availability
    samples = samples[samples["sim_time"].notna() & samples["wall_time"].notna()]
    if not len(samples):
        return pd.DataFrame(columns=["station_id", "wall_time", "sim_time", "state"])
    excused = excused_rows(samples, excuses(data), grace_s)
    rows = samples.assign(_excused=excused, _ok=samples["online"].to_numpy() | excused)
    snap = rows.groupby(["station_id", "wall_time"], sort=True).agg(
        sim_time=("sim_time", "min"), all_excused=("_excused", "all"), all_ok=("_ok", "all"))
    state = np.where(snap["all_excused"], -1, np.where(snap["all_ok"], 1, 0))
    return snap.assign(state=state)[["sim_time", "state"]].reset_index()


def day_bounds(data: RunData) -> list[tuple[float, float]]:
    return [(data.start + d * DAY_S, min(data.start + (d + 1) * DAY_S, data.end))
            for d in range(data.day_count)]


def online_by_day(data: RunData, criteria: dict[str, Any]) -> pd.DataFrame:
    """Per station in scope and day: online_s, offline_s, excused_s, online_ratio (None when
    nothing non-excused was observed), availability_ok and a note."""
    def compute() -> pd.DataFrame:
        limit = criteria["daily_online_ratio"]
        snap = snapshots(data, criteria["recovery_grace_wall_s"])
        days = day_bounds(data)
        rows = []
        for sid in data.station_ids:
            s = snap[snap["station_id"] == sid].sort_values(["sim_time", "wall_time"])
            times = split_by_day(s["sim_time"].to_numpy(np.float64), s["state"].to_numpy(),
                                 days)
            for d, (on, off, exc) in enumerate(times):
                observed = on + off
                ratio = on / observed if observed > 0 else None
                if ratio is not None:
                    ok, note = ratio >= limit, ""
                elif exc > 0:
                    ok, note = True, "off line only in harness-caused windows (excused)"
                else:
                    ok, note = False, "not observed (no availability sample)"
                rows.append({"station_id": sid, "day_index": d, "online_s": on,
                             "offline_s": off, "excused_s": exc, "online_ratio": ratio,
                             "availability_ok": bool(ok), "availability_note": note})
        return pd.DataFrame(rows)
    return data.derive(f"online_by_day:{criteria['daily_online_ratio']}:"
                       f"{criteria['recovery_grace_wall_s']}", compute)


def split_by_day(times: np.ndarray, states: np.ndarray, days: list[tuple[float, float]]
                 ) -> list[tuple[float, float, float]]:
    """(on line, off line, excused) seconds per day of a station's samples (sorted by time;
    state 1, 0 or -1): each state holds until the next sample, the last one for the
    typical sampling step; time outside the days is not counted."""
    if not len(days):
        return []
    lo, hi = days[0][0], days[-1][1]
    a = np.asarray(times, dtype=np.float64)
    b = np.append(a[1:], a[-1] + _step(a)) if len(a) else a
    a, b = np.clip(a, lo, hi), np.clip(b, lo, hi)
    out = []
    for d0, d1 in days:
        overlap = np.clip(np.minimum(b, d1) - np.maximum(a, d0), 0.0, None)
        out.append((float(overlap[states == 1].sum()), float(overlap[states == 0].sum()),
                    float(overlap[states == -1].sum())))
    return out


def _step(a: np.ndarray) -> float:
    """Typical sampling step (the last sample's state holds this long)."""
    d = np.diff(a)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 0.0


def seen_online(data: RunData) -> dict[str, dict[str, Any]]:
    """Per station of the platform's view: was its collector ever on line, and when first."""
    samples = data.availability
    col = samples[samples["device"] == COLLECTOR]
    out: dict[str, dict[str, Any]] = {}
    for sid, g in col.groupby("station_id"):
        on = g[g["online"]]
        out[str(sid)] = {"samples": len(g), "online_samples": len(on), "in_registry": False,
                         "first_online_sim": None if not len(on)
                         else float(on["sim_time"].min())}
    for st in data.stations_doc:
        sid = str(st.get("station_id"))
        collector = st.get("collector") or {}
        entry = out.setdefault(sid, {"samples": 0, "online_samples": 0,
                                     "first_online_sim": None})
        entry["in_registry"] = True
        entry["platform_online_at_end"] = bool(collector.get("online"))
        entry["platform_heard"] = bool(collector.get("heard"))
    return out
