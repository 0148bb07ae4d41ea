"""Drain and detection waits (排空与检测等待): when every record is at the platform, and when
its detectors have evaluated the whole run. Both bounded, both checking the parts still run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acceptance.observe import ApiError, detection_status

if TYPE_CHECKING:
    from acceptance.chain import Chain

# A platform without GET /api/v1/detection/status gets this long (wall s) after draining
# before its alerts are read (docs/platform-api.md §7).
DETECTION_GRACE_S = 10.0


@dataclass
class DrainReport:
    """The outcome of `wait_drained` (per station: records served by the devices, records
    the platform accepted, collector spool backlog in its last heartbeat)."""

    drained: bool
    reason: str
    waited_s: float
    finished_after_s: float | None = None  # the world reached its end (from the call)
    fifos_empty_after_s: float | None = None  # ... and every device FIFO was empty
    sim_time: float | None = None
    device_backlog: int | None = None
    served: dict[str, int] = field(default_factory=dict)
    accepted: int | None = None
    spool_backlog: dict[str, int | None] = field(default_factory=dict)


@dataclass
class DetectionReport:
    """The outcome of `wait_detection` (for run.json and observed/detection_status.json)."""

    done: bool
    supported: bool  # the platform offers GET /api/v1/detection/status
    reason: str
    waited_s: float
    through: float  # the device time every station had to be evaluated through
    status: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _at_least(value: Any, through: float) -> bool:
    n = _number(value)
    return n is not None and n >= through


def wait_drained(chain: Chain, timeout: float = 120.0, settle_s: float = 5.0) -> DrainReport:
    """Wait until the world has finished and every record is at the platform: device
    FIFOs empty and the platform's accepted count equal to what the devices served.
    A system under test that loses records never gets there: it counts as drained
    ("settled") once its accepted count has not changed for `settle_s` while no
    collector heartbeat since the FIFOs emptied reports records left in its spool.
    `timeout` counts from the world's last simulated progress: a long run's world may still
    have days to go when the schedule ends, and how long it takes is no failure of the SUT
    (a world held at a FIFO's high-water mark makes no progress, so that still times out).
    A part that dies raises ChainError."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    report = DrainReport(False, "not started", 0.0)
    fifos_empty_at: float | None = None  # wall clock (time.time), as the platform's
    stable_since, last_accepted = time.monotonic(), None
    while True:
        chain.check()
        report.waited_s = time.monotonic() - t0
        sim_before = report.sim_time
        reason, may_settle = _drain_step(chain, report), False
        if report.sim_time != sim_before:
            deadline = time.monotonic() + timeout  # the world moved
        if reason == "":
            if fifos_empty_at is None:
                fifos_empty_at = time.time()
                report.fifos_empty_after_s = report.waited_s
            reason, may_settle = _platform_step(chain, report, fifos_empty_at)
        else:
            fifos_empty_at = None
        if report.accepted != last_accepted:
            stable_since, last_accepted = time.monotonic(), report.accepted
        if reason == "" or (may_settle and time.monotonic() - stable_since >= settle_s):
            report.drained = True
            report.reason = "drained" if reason == "" else (
                f"settled: {reason}, unchanged for {settle_s} s")
            return report
        report.reason = reason
        if time.monotonic() >= deadline:
            report.reason = f"timeout after {timeout:g} s since the world last moved: {reason}"
            return report
        time.sleep(0.2)


def _drain_step(chain: Chain, report: DrainReport) -> str:
    st = chain.device_status()
    if st is None:
        return "no device status yet"
    report.sim_time = float(st["sim_time"])
    report.device_backlog = int(st["backlog"])
    report.served = {sid: v["pushed"] - v["dropped"] for sid, v in st["stations"].items()}
    if st["finished"] and report.finished_after_s is None:
        report.finished_after_s = report.waited_s
    down = [p.name for p in chain.collectors.values() if not p.wanted]
    if down:
        return f"stopped on purpose: {', '.join(down)}"
    if not st["finished"]:
        return f"world at {st['sim_time']:.0f}, ends at {st['end']:.0f}"
    if st["backlog"]:
        return f"{st['backlog']} records still in device FIFOs"
    return ""


def _platform_step(chain: Chain, report: DrainReport, fifos_empty_at: float) -> tuple[str, bool]:
    """(what is awaited or "" when drained, whether a standstill may end the wait)."""
    try:
        states = chain.station_states()
        report.accepted = int(chain.api.ingest_stats()["accepted"])
    except ApiError as exc:
        return f"platform API: {exc}", False
    busy = []
    for sid in chain.station_ids:
        col = states.get(sid, {}).get("collector") or {}
        report.spool_backlog[sid] = col.get("backlog")
        fresh = (col.get("last_heartbeat_at") or 0.0) > fifos_empty_at
        if fresh and col.get("backlog") not in (0, None):
            busy.append(f"{sid} ({col['backlog']})")
    served = sum(report.served.values())
    if report.accepted == served:
        return "", False
    if busy:
        return f"records left in the spool of {', '.join(busy)}", False
    return f"platform accepted {report.accepted} of {served} records served", True


def wait_detection(chain: Chain, through: float, timeout: float = 120.0,
                   grace_s: float = DETECTION_GRACE_S) -> DetectionReport:
    """Wait until GET /api/v1/detection/status shows evaluated_through ≥ `through` (the
    run's simulated end) for every station of the scenario. `timeout` s bound the wait
    *without progress*: each station's `evaluated_through` moving on restarts it, since the
    final evaluations of a long run take in proportion to its history (a platform evaluating
    46 stations × 180 days one after another needed 78 s of a fixed 120 on a slow machine).
    A platform without the endpoint (404) gets a fixed `grace_s` instead, and so does one
    whose detectors report no progress at all (every `updated_at` null) for `grace_s`:
    it evaluates nothing, so waiting longer would not change its alerts."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    report = DetectionReport(False, True, "not started", 0.0, through)
    best: dict[str, float] = {}  # each station's furthest evaluated_through
    while True:
        chain.check()
        report.waited_s = time.monotonic() - t0
        try:
            items = detection_status(chain.api)
        except ApiError as exc:
            items, report.reason = [], f"platform API: {exc}"
        if items is None:
            report.supported = False
            remaining = min(grace_s, deadline - time.monotonic())
            if remaining > 0:
                time.sleep(remaining)
            report.waited_s = time.monotonic() - t0
            report.done = True
            report.reason = (f"no GET /api/v1/detection/status: waited the fixed grace of "
                             f"{grace_s:g} s")
            return report
        if items:
            by_station = {i.get("station_id"): i for i in items}
            report.status = {sid: by_station.get(sid) for sid in chain.station_ids}
            idle = all((by_station.get(sid) or {}).get("updated_at") is None
                       for sid in chain.station_ids)
            if idle and time.monotonic() - t0 >= grace_s:
                report.done = True
                report.reason = (f"the platform reported no detection progress for any "
                                 f"station within {grace_s:g} s")
                return report
            behind = [sid for sid in chain.station_ids
                      if not _at_least((by_station.get(sid) or {}).get(
                          "evaluated_through"), through)]
            if not behind:
                report.done, report.reason = True, "evaluated"
                return report
            # progress: a station evaluated further than ever before (a value that only
            # flaps is none, or a broken platform could hold the run for ever)
            moved = False
            for sid in chain.station_ids:
                at = _number((by_station.get(sid) or {}).get("evaluated_through"))
                if at is not None and at > best.get(sid, float("-inf")):
                    best[sid], moved = at, True
            if moved:
                deadline = time.monotonic() + timeout
            report.reason = "evaluated_through < the run's end at " + ", ".join(
                f"{sid} ({(by_station.get(sid) or {}).get('evaluated_through')})"
                for sid in behind)
        if time.monotonic() >= deadline:
            report.reason = f"no progress for {timeout:g} s: {report.reason}"
            return report
        time.sleep(0.2)
