"""DAT-3: the tank gauge's periodic inventory readings (库存, 进销存) are complete."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from acceptance.checkers.common import EVIDENCE_LIMIT, record_keys, scope, stream_records
from acceptance.record import Measurement
from acceptance.rundir import RunData


def inventory_complete(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """DAT-3: per station, the share of the gauge's interval readings at the platform
    exactly once with the gauge's values (≥ `inventory_completeness`); the tanks with an
    interval missing altogether (must be none); readings the gauge never took (must be 0)."""
    limit = criteria["inventory_completeness"]
    recs = stream_records(data, "inventory")
    out = []
    for sid in scope(data, recs):
        mine = recs[recs["station_id"] == sid]
        truth = mine[mine["status"] != "unexpected"]
        received = int((truth["status"] == "received_once").sum())
        ratio = received / len(truth) if len(truth) else None
        bad = truth[truth["status"] != "received_once"]
        out.append(Measurement(
            "DAT-3", "inventory.received_once_ratio", ratio, ">=", limit, "ratio", sid,
            evidence={"expected": len(truth), "received_once": received,
                      "by_status": {s: int(n) for s, n in
                                    sorted(bad.groupby("status").size().items())},
                      "records": record_keys(bad, with_detail=True)}
            | ({} if len(truth) else {"reason": "no inventory interval in the ground truth"})))
        lost = _with_tank(data, sid, truth[truth["status"] == "lost"])
        # tank: the float64 column _with_tank adds
        per_tank = {str(int(cast(float, t))): int(n)
                    for t, n in sorted(lost.groupby("tank").size().items())}
        out.append(Measurement(
            "DAT-3", "inventory.tanks_with_missing_intervals", len(per_tank), "==", 0, "tanks",
            sid, evidence={"missing_intervals_by_tank": per_tank,
                           "dropped_at_device": int(lost["dropped_at_device"].sum()),
                           "first_missing": _missing(lost.head(EVIDENCE_LIMIT))}))
        extra = mine[mine["status"] == "unexpected"]
        out.append(Measurement(
            "DAT-3", "inventory.unexpected", len(extra), "==", 0, "records", sid,
            evidence={"records": record_keys(extra)}))
    return out


def _with_tank(data: RunData, station_id: str, lost: pd.DataFrame) -> pd.DataFrame:
    """The station's lost inventory readings with the tank of each (from the ground truth;
    read only for a station that lost any: the readings are millions in a long run)."""
    if not len(lost):
        return lost.assign(tank=pd.Series(dtype=np.float64))
    ts = data.station_truth_table("tank_states", station_id,
                                  ("tank", "time", "kind", "inventory_seq"))
    ts = ts[(ts["kind"] == "interval") & ts["inventory_seq"].notna()]
    tanks = pd.DataFrame({
        "seq": ts["inventory_seq"].astype(np.int64).to_numpy(),
        "device_time": np.floor(ts["time"].to_numpy(np.float64)).astype(np.int64),
        "tank": ts["tank"].astype(np.float64).to_numpy()})
    keyed = lost.astype({"seq": np.int64, "device_time": np.int64})
    merged = keyed.merge(tanks, on=["seq", "device_time"], how="left")
    return lost.assign(tank=merged["tank"].to_numpy(np.float64))


class _TankRecordRow(Protocol):
    """The columns _missing reads from a row of _with_tank's table."""

    tank: float  # NaN: no ground-truth reading matched
    seq: float
    device_time: float


def _missing(lost: pd.DataFrame) -> list[str]:
    rows = cast(Iterable[_TankRecordRow], lost.itertuples(index=False))
    return [f"tank {int(r.tank)} @{int(r.device_time)}" if not pd.isna(r.tank)
            else f"seq {int(r.seq)} @{int(r.device_time)}"
            for r in rows]
