"""When the platform showed each fault's stations whole again (timeline.json `detail.recovered`).

A fault ends when the harness restores what it broke (or when its window closes, for the
kinds the devices and the world serve); the SUT has **recovered** when the platform, sampled
during the run (observed/availability.parquet), shows the collector and every device of each
station the fault touched on line again. The first such sample after the end is the observed
recovery: `recovered_sim`, `recovered_wall` and `recovery_wall_s` (wall seconds from the end,
when the end's wall time is known) — or `recovered: false` when no sample showed it before the
run ended. Its resolution is the sampling interval.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from acceptance.faults import KINDS


def add_recoveries(timeline: list[dict[str, Any]], availability: pd.DataFrame,
                   station_ids: list[str]) -> list[dict[str, Any]]:
    """The timeline with the observed recovery of every fault entry filled in."""
    if availability.empty:
        return timeline
    # per sample instant: the stations shown whole (collector and all devices on line)
    whole = (availability.groupby(["wall_time", "sim_time", "station_id"])["online"].all()
             .unstack("station_id").sort_index())
    for row in timeline:
        if row["kind"] not in KINDS or row.get("sim_end") is None:
            continue
        stations = [row["station_id"]] if row["station_id"] else station_ids
        stations = [s for s in stations if s in whole.columns]
        if not stations:
            continue
        by_wall = row.get("wall_end") is not None
        times = whole.index.get_level_values("wall_time" if by_wall else "sim_time")
        after = whole[(times >= (row["wall_end"] if by_wall else row["sim_end"]))]
        ok = after[after[stations].fillna(False).all(axis=1)]
        detail = row.setdefault("detail", {})
        if ok.empty:
            detail["recovered"] = False
            continue
        wall, sim = ok.index[0]
        detail.update(recovered=True, recovered_wall=float(wall), recovered_sim=float(sim))
        if by_wall:
            detail["recovery_wall_s"] = round(float(wall) - float(row["wall_end"]), 3)
    return timeline
