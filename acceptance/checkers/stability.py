"""STB-1: continuous stable operation (连续稳定运行6个月以上).

Per station and simulated day (days counted from the run's start, in the scenario's zone):

- **completeness** = the day's ground-truth records (every stream, by the instant the device
  logged them) that are at the platform exactly once with their values, over the day's
  ground-truth records; a day the ground truth does not cover has none (not compliant);
- **on-line ratio** (checkers/availability.py), with the harness's own faults excused;
- **compliant** = completeness ≥ `daily_completeness` and on-line ratio ≥ `daily_online_ratio`.

Measurements: the run's days against `stability_days` (a scope measurement: a run shorter
than the period leaves STB-1 incomplete, never passed); per station the longest run of
consecutive compliant days (≥ `stability_days`, or every day of a shorter run) and the records not at the platform at the end (unrecovered loss, must
be 0); SUT processes that exited on their own (must be none: the run then ends early, with
the exit status and the log's tail as evidence); per SUT role the growth of resident memory (MiB per simulated day, straight-line fit
of its longest-lived process after `resource_warmup_fraction` of its life, ≤
max(`rss_growth_mib_per_day`, `rss_growth_allowance_mib` / fitted days)) and its peak
(≤ `rss_peak_mib`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acceptance.checkers.availability import day_bounds, online_by_day
from acceptance.checkers.common import EVIDENCE_LIMIT, first, record_keys
from acceptance.criteria import PLAN_STABILITY_DAYS, shortened_stability
from acceptance.record import Measurement
from acceptance.rundir import DAY_S, RunData, is_sut_role

MIB = 1024.0 * 1024.0
DAILY_COLUMNS = ("station_id", "day", "day_index", "expected", "received_once",
                 "completeness", "online_ratio", "compliant", "reasons")


def stable_operation(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    daily = daily_table(data, criteria)
    need = criteria["stability_days"]
    # The SUT is held to every day the run had (up to the period); whether the run had
    # enough days is a separate scope measurement: too few leaves STB-1 incomplete, not passed.
    held_to = min(need, data.day_count)
    recs = data.comparison.records
    out = [Measurement(
        "STB-1", "stability.run_days", data.day_count, ">=", need, "days", scope=True,
        evidence={"stability_days": need, "plan_days": PLAN_STABILITY_DAYS,
                  "shortened": shortened_stability(criteria)})]
    for sid in data.station_ids:
        mine = daily[daily["station_id"] == sid]
        bad = mine[~mine["compliant"]]
        out.append(Measurement(
            "STB-1", "stability.longest_compliant_run", longest_run(mine["compliant"]), ">=",
            held_to, "days", sid,
            evidence={"days": len(mine), "compliant_days": int(mine["compliant"].sum()),
                      "non_compliant": [f"{r.day}: {r.reasons}" for r in
                                        bad.head(EVIDENCE_LIMIT).itertuples(index=False)]}))
        lost = recs[(recs["station_id"] == sid) & (recs["status"] == "lost")]
        out.append(Measurement(
            "STB-1", "stability.unrecovered_records", len(lost), "==", 0, "records", sid,
            evidence={"by_stream": {s: int(n) for s, n in
                                    sorted(lost.groupby("stream").size().items())},
                      "dropped_at_device": int(lost["dropped_at_device"].sum()),
                      "records": record_keys(lost)}))
    out += [sut_exits(data), world_stalled(data)]
    out += resource_measurements(data, criteria)
    return out


def sut_exits(data: RunData) -> Measurement:
    """A collector or platform process that exited on its own ended the run: the SUT did not
    operate stably, whatever the data say (the harness restarts only what it crashed)."""
    exited = data.run_info.get("sut_exited")
    return Measurement("STB-1", "sut.exited_on_its_own", 1 if exited else 0, "==", 0,
                       "processes", evidence=exited or {})


def world_stalled(data: RunData) -> Measurement:
    """The run ended because the world was held at a station's FIFO high-water mark, without
    progress and with no fault in force: that station's collector did not drain its devices
    (acceptance/schedule.py WorldStalled)."""
    stalled = data.run_info.get("world_stalled")
    return Measurement("STB-1", "sut.world_stalled", 1 if stalled else 0, "==", 0, "runs",
                       stalled.get("station") if stalled else None, evidence=stalled or {})


def longest_run(flags: pd.Series | list[bool]) -> int:
    """Longest stretch of consecutive True values."""
    best = cur = 0
    for ok in flags:
        cur = cur + 1 if ok else 0
        best = max(best, cur)
    return best


def daily_table(data: RunData, criteria: dict[str, Any]) -> pd.DataFrame:
    """Per station in scope and simulated day: completeness, on-line ratio, compliance."""
    def compute() -> pd.DataFrame:
        days = day_bounds(data)
        zone = ZoneInfo(data.timezone)
        labels = [dt.datetime.fromtimestamp(d0, zone).date().isoformat() for d0, _ in days]
        recs = data.comparison.records
        truth = recs[recs["status"] != "unexpected"]
        idx = np.clip(np.floor((truth["time"].to_numpy(np.float64) - data.start) / DAY_S),
                      0, len(days) - 1).astype(np.int64)
        truth = truth.assign(_day=idx, _ok=(truth["status"] == "received_once").to_numpy())
        per_day = truth.groupby(["station_id", "_day"]).agg(
            expected=("_ok", "size"), received_once=("_ok", "sum"))
        online = online_by_day(data, criteria).set_index(["station_id", "day_index"])
        rows = []
        for sid in data.station_ids:
            until = data.simulated_until(sid)
            for d, (_, d1) in enumerate(days):
                exp, got = (int(v) for v in cast(pd.Series, per_day.loc[(sid, d)])) \
                    if (sid, d) in per_day.index else (0, 0)
                covered = until is not None and until >= d1 - 1e-6
                completeness = got / exp if covered and exp else None
                av = cast(pd.Series, online.loc[(sid, d)])  # one row: a full index key
                reasons = []
                if completeness is None:
                    reasons.append("ground truth does not cover the day" if not covered
                                   else "no records in the ground truth")
                elif completeness < criteria["daily_completeness"]:
                    reasons.append(f"completeness {completeness:.6f} ({exp - got} of {exp} "
                                   f"records not received once)")
                if not av["availability_ok"]:
                    reasons.append(av["availability_note"] or
                                   f"on line {av['online_ratio']:.4f} of the observed time")
                rows.append({"station_id": sid, "day": labels[d], "day_index": d,
                             "expected": exp, "received_once": got,
                             "completeness": completeness, "online_ratio": av["online_ratio"],
                             "compliant": not reasons, "reasons": "; ".join(reasons)})
        return pd.DataFrame(rows, columns=list(DAILY_COLUMNS))
    return data.derive("daily:" + ",".join(f"{k}={criteria[k]}" for k in (
        "daily_completeness", "daily_online_ratio", "recovery_grace_wall_s")), compute)


# ---- resources of the systems under test -------------------------------------------------

def resource_measurements(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    res = data.resources
    res = res[[is_sut_role(str(r)) for r in res["role"]]]  # the harness's own are not judged
    res = res.assign(sim_time=pd.to_numeric(res["sim_time"], errors="coerce"),
                     rss_bytes=pd.to_numeric(res["rss_bytes"], errors="coerce"),
                     cpu_seconds=pd.to_numeric(res["cpu_seconds"], errors="coerce"))
    res = res[res["rss_bytes"].notna()]
    growth_limit, peak_limit = criteria["rss_growth_mib_per_day"], criteria["rss_peak_mib"]
    if not len(res):
        ev: dict[str, Any] = {
            "reason": "not measured: resources.parquet has no sample of an SUT process"}
        return [Measurement("STB-1", "resources.rss_growth", None, "<=", growth_limit,
                            "MiB/day", None, evidence=ev),
                Measurement("STB-1", "resources.rss_peak", None, "<=", peak_limit, "MiB",
                            None, evidence=ev)]
    out = []
    for role in sorted(res["role"].astype(str).unique()):
        mine = res[res["role"].astype(str) == role]
        fits = [fit_growth(g, criteria["resource_warmup_fraction"], data.end) | {"pid": int(pid)}
                for pid, g in sorted(mine.groupby("pid"), key=lambda kv: int(kv[0]))]
        judged = max(fits, key=lambda f: (f["span_days"], -f["pid"]))
        cpu = _cpu_per_day(mine, data)
        limit = growth_limit
        if judged.get("fitted_days"):  # short runs: a one-off growth up to the allowance
            limit = max(growth_limit, round(criteria["rss_growth_allowance_mib"]
                                            / judged["fitted_days"], 6))
        ev = {"role": role, "processes": len(fits), "judged_pid": judged["pid"],
              "instances": first(fits), "cpu_seconds_per_sim_day": cpu,
              "limit": f"max({growth_limit} MiB/day, {criteria['rss_growth_allowance_mib']} "
                       f"MiB over {judged.get('fitted_days')} fitted days)"}
        if judged["slope_mib_per_day"] is None:
            ev["reason"] = "not measured: " + judged["note"]
        out.append(Measurement("STB-1", f"resources.rss_growth.{role}",
                               judged["slope_mib_per_day"], "<=", limit, "MiB/day",
                               None, evidence=ev))
        out.append(Measurement("STB-1", f"resources.rss_peak.{role}",
                               round(float(mine["rss_bytes"].max()) / MIB, 3), "<=",
                               peak_limit, "MiB", None,
                               evidence={"role": role, "processes": len(fits)}))
    return out


def fit_growth(samples: pd.DataFrame, warmup: float, world_end: float) -> dict[str, Any]:
    """Straight-line fit of one process's rss (MiB) against simulated days, after its
    warm-up; samples taken after the world ended (draining) are left out."""
    s = samples[samples["sim_time"].notna() & (samples["sim_time"] < world_end)]
    s = s.sort_values(["sim_time", "wall_time"])
    t = s["sim_time"].to_numpy(np.float64)
    info: dict[str, Any] = {"samples": len(s), "span_days": 0.0, "slope_mib_per_day": None,
                            "note": ""}
    if len(t) < 2:
        info["note"] = "fewer than 2 samples while the world ran"
        return info
    info["span_days"] = round((t[-1] - t[0]) / DAY_S, 6)
    cut = t[0] + warmup * (t[-1] - t[0])
    keep = t >= cut
    x = (t[keep] - t[0]) / DAY_S
    y = s["rss_bytes"].to_numpy(np.float64)[keep] / MIB
    if len(x) < 3 or np.ptp(x) <= 0:
        info["note"] = "fewer than 3 samples after the warm-up"
        return info
    slope = float(np.polyfit(x, y, 1)[0])
    info.update(slope_mib_per_day=round(slope, 6), fitted_samples=int(keep.sum()),
                fitted_days=round(float(np.ptp(x)), 6),
                rss_start_mib=round(float(y[0]), 3), rss_end_mib=round(float(y[-1]), 3))
    return info


def _cpu_per_day(samples: pd.DataFrame, data: RunData) -> float | None:
    spent = samples.groupby("pid")["cpu_seconds"].agg(lambda c: c.max() - c.min()).sum()
    days = (data.end - data.start) / DAY_S
    return round(float(spent) / days, 3) if days > 0 and np.isfinite(spent) else None
