"""DAT-6: the platform shows a device's operating state as it is (计量器具运行状态如实反映).

For every fault window in which a device stops working — silent, powered off, or answering
only exceptions (SHOWN_OFF_LINE kinds of docs/faults.md) — and for each device it covers,
`device.offline_shown_after_s` is the wall time from the first availability sample inside
the window to the first sample in which the platform shows that device off line (sampled
through GET /api/v1/stations during the run; resolution: the sampling interval). It must be
at most `device_offline_shown_s`. A device never shown off line while the window lasted has
no value and fails — a collector that reports dead devices as on line is refused — unless the
window lasted less wall time than the limit: then the run did not give the SUT its time, and
the measurement only makes DAT-6 incomplete (a scope measurement). The harness paces device
faults to last 1.5 × the limit in wall time (acceptance/run.py, pace_windows).

A run without such a fault gets the scope measurement `device_faults.judged` = 0 (≥ 1): the
on-line state was not exercised, so DAT-6 is incomplete, never passed on nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from acceptance.record import Measurement
from acceptance.rundir import COLLECTOR, RunData

SHOWN_OFF_LINE = ("device_silent", "device_power_loss", "modbus_busy")


def offline_shown(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    limit = float(criteria["device_offline_shown_s"])
    avail = data.availability
    out: list[Measurement] = []
    for e in data.timeline:
        if e.kind not in SHOWN_OFF_LINE or e.sim_start is None or e.sim_end is None:
            continue
        mine = avail[(avail["station_id"] == e.station_id) & (avail["device"] != COLLECTOR)]
        devices = [e.device] if e.device else sorted(set(mine["device"]))
        for device in devices:
            out.append(_window(e, device, mine[mine["device"] == device], limit))
    if not out:
        out.append(Measurement(
            "DAT-6", "device_faults.judged", 0, ">=", 1, "windows", scope=True,
            evidence={"note": "no device fault in this run: whether the platform shows a "
                              "dead device off line was not exercised"}))
    return out


def _window(e: Any, device: str, samples: pd.DataFrame, limit: float) -> Measurement:
    inside = samples[(samples["sim_time"] >= e.sim_start) & (samples["sim_time"] < e.sim_end)]
    inside = inside.sort_values("wall_time")
    where = f"{e.kind} {e.station_id}/{device} from sim {e.sim_start:.0f}"
    if inside.empty:
        return Measurement("DAT-6", "device.offline_shown_after_s", None, "<=", limit, "s",
                           e.station_id, scope=True,
                           evidence={"window": where, "reason": "no platform sample inside "
                                     "the window (the platform was down or not sampled)"})
    w0 = float(inside["wall_time"].iloc[0])
    span = float(inside["wall_time"].iloc[-1]) - w0
    off = inside[~inside["online"]]
    value = round(float(off["wall_time"].iloc[0]) - w0, 3) if len(off) else None
    evidence = {"window": where, "device": device, "window_wall_s": round(span, 3),
                "samples": len(inside), "samples_off_line": len(off)}
    if value is None:
        evidence["reason"] = ("the platform showed the device on line throughout the window"
                              + (" — but the window lasted less wall time than the limit"
                                 if span < limit else ""))
    return Measurement("DAT-6", "device.offline_shown_after_s", value, "<=", limit, "s",
                       e.station_id, scope=value is None and span < limit, evidence=evidence)
