"""DAT-5 (SHOULD): timeliness (及时) — latency p95 in the run's real-time segment.

Latency is measured only where the world runs at real-time pace (compression 1): wall
latency × compression means nothing (docs/ARCHITECTURE §3). latency.parquet holds, per
record emitted in that segment, when the device emitted it and when it first became
visible through the platform's API (wall clock). A record never seen counts with the
latency it had reached when the observation stopped (a lower bound), so it can only push
p95 up. p95 is the nearest-rank percentile (an observed latency).

A run without a real-time segment gets a measurement with value None, which fails "not
measured": the acceptance has no evidence of 及时, and the report must say so rather than
pass it. (It is a SHOULD, so it does not refuse acceptance by itself.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from acceptance.checkers.common import EVIDENCE_LIMIT
from acceptance.record import Measurement
from acceptance.rundir import REAL_TIME_SEGMENT, RunData, RunDataError

NAME = "latency.p95"


def latency_p95(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    limit = criteria["latency_p95_s"]
    segments = data.phases(REAL_TIME_SEGMENT)
    table = data.latency
    if segments and table is None:
        raise RunDataError(f"run directory {data.root}: timeline.json has a "
                           f"{REAL_TIME_SEGMENT} but there is no latency.parquet")
    windows = [{"sim_start": s.sim_start, "sim_end": s.sim_end, "wall_start": s.wall_start,
                "wall_end": s.wall_end} for s in segments]
    if table is None or not len(table):
        reason = (f"not measured: the run had no real-time segment ({REAL_TIME_SEGMENT} in "
                  f"timeline.json), so timeliness was not measured" if not segments else
                  "not measured: no record was emitted in the real-time segment")
        return [Measurement("DAT-5", NAME, None, "<=", limit, "s", None,
                            evidence={"reason": reason, "segments": windows})]
    lat = latencies(table, data.run_info.get("wall_end"))
    out = [Measurement("DAT-5", NAME, _p95(lat["latency_s"]), "<=", limit, "s", None,
                       evidence=_evidence(lat) | {"segments": windows})]
    for sid in sorted(set(lat["station_id"].unique())):
        mine = lat[lat["station_id"] == sid]
        out.append(Measurement("DAT-5", NAME, _p95(mine["latency_s"]), "<=", limit, "s", sid,
                               evidence=_evidence(mine)))
    return out


def latencies(table: pd.DataFrame, observed_until: Any = None) -> pd.DataFrame:
    """Per record: latency_s = visible − emitted; never visible → until the observation
    stopped (run.json wall_end, else the last wall time seen)."""
    emitted = pd.to_numeric(table["emitted_wall"], errors="coerce").to_numpy(np.float64)
    visible = pd.to_numeric(table["visible_wall"], errors="coerce").to_numpy(np.float64)
    if np.isnan(emitted).any():
        raise RunDataError("latency.parquet: emitted_wall is missing for "
                           f"{int(np.isnan(emitted).sum())} record(s)")
    end = float(observed_until) if observed_until is not None else float(
        np.nanmax(np.concatenate([emitted, visible])))
    never = np.isnan(visible)
    lat = np.where(never, np.maximum(end - emitted, 0.0), visible - emitted)
    return pd.DataFrame({"key": table["key"].astype(str).to_numpy(),
                         "station_id": table["station_id"].astype(str).to_numpy(),
                         "latency_s": lat, "never_visible": never})


def _p95(values: pd.Series) -> float:
    return float(np.quantile(values.to_numpy(np.float64), 0.95, method="inverted_cdf"))


def _evidence(lat: pd.DataFrame) -> dict[str, Any]:
    slow = lat.sort_values(["latency_s", "key"], ascending=[False, True]).head(EVIDENCE_LIMIT)
    return {"records": len(lat), "median_s": round(float(lat["latency_s"].median()), 3),
            "max_s": round(float(lat["latency_s"].max()), 3),
            "never_visible": int(lat["never_visible"].sum()),
            "slowest": [f"{k}: {v:.3f} s" + (" (never visible)" if n else "")
                        for k, v, n in zip(slow["key"], slow["latency_s"],
                                           slow["never_visible"], strict=True)]}
