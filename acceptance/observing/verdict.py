"""The run record (record.json, docs/run-record.md) of an observation, from the stored state.

STB-1 is judged per station and civil day of the observation (days of the platform's zone,
from the first to the last poll; the first and the last are partial and weigh their share):

- a day is *observed* when the polls cover `observe_min_coverage` of its part inside the
  observation (the observer itself was up);
- it is *compliant* when observed, on line in at least `daily_online_ratio` of its samples,
  complete (records received / (received + missing by sequence gaps)) at least
  `daily_completeness`, and with no totalizer break.

Measurements: the longest run of consecutive observed days against the required days
(a scope measurement — fewer leaves STB-1 incomplete, never passed); per station the longest
run of compliant days (≥ the required days, or every observed day of a shorter observation),
the records missing from the sequence chains and the totalizer volume no transaction
accounts for (both 0); the platform's answers to the polls (≥ `daily_online_ratio`).
DAT-5 (SHOULD): p95 of received_at − device time. Every other requirement needs ground truth
or inputs the observer does not have: not checked (未检查), never passed.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from acceptance.criteria import PLAN_STABILITY_DAYS, defaults
from acceptance.observing.aggregate import (
    DayVerdict,
    day_bounds,
    judge_day,
    local_day,
    longest_run,
    next_day,
    percentile,
)
from acceptance.observing.store import Store
from acceptance.record import Measurement, RunRecord, decide
from acceptance.requirements import CATALOGUE

CHECKED = {"STB-1": "acceptance.observing.verdict.measurements",
           "DAT-5": "acceptance.observing.verdict.latency_measurement"}
MIN_COVERAGE = 0.9  # share of a day the polls must cover for it to be judged
EVIDENCE_DAYS = 10
DAILY_FIELDS = ("station_id", "day", "weight", "coverage", "samples", "online_ratio",
                "records", "missing", "gaps", "completeness", "totalizer_breaks",
                "unexplained_ml", "latency_p50_s", "latency_p95_s", "observed", "compliant",
                "reasons")


def observe_criteria(required_days: float) -> dict[str, Any]:
    c = defaults()
    c["stability_days"] = required_days
    c["observe_min_coverage"] = MIN_COVERAGE
    return c


def catalogue_entries() -> list[dict[str, Any]]:
    """The catalogue with observe mode's checkers: STB-1 and DAT-5; no checker for the rest
    (→ not_checked)."""
    return [r.to_dict() | {"checker": CHECKED.get(r.id)} for r in CATALOGUE]


def _rows(conn: sqlite3.Connection, sql: str) -> list[sqlite3.Row]:
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.row_factory = None


def observation_days(first: float, last: float, tz: ZoneInfo) -> list[tuple[str, float]]:
    """(day, weight) from the first to the last poll; weight = share of the day inside."""
    out = []
    day = local_day(first, tz)
    while True:
        lo, hi = day_bounds(day, tz)
        inside = max(0.0, min(hi, last) - max(lo, first))
        out.append((day, round(inside / (hi - lo), 6)))
        if hi > last:
            return out
        day = next_day(day)


def daily_figures(store: Store, criteria: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                  list[tuple[str, float]]]:
    """One row per station and observed day (DAILY_FIELDS) and the days with weights."""
    c, tz = store.conn, store.tz
    first, last = c.execute("SELECT MIN(at), MAX(at) FROM polls").fetchone()
    if first is None:
        return [], []
    days = observation_days(float(first), float(last), tz)
    covered = {r["day"]: r["covered_s"] for r in _rows(c, "SELECT * FROM observed_daily")}
    avail = {(r["station_id"], r["day"]): r for r in _rows(c, "SELECT * FROM availability_daily")}
    seq: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in _rows(c, "SELECT station_id, day, SUM(records) AS n, SUM(missing) AS m, "
                      "SUM(gaps) AS g FROM sequence_daily GROUP BY station_id, day"):
        seq[r["station_id"], r["day"]] = [r["n"], r["m"], r["g"]]
    tot = {(r["station_id"], r["day"]): (r["b"], r["u"]) for r in _rows(
        c, "SELECT station_id, day, SUM(breaks) AS b, SUM(unexplained_ml) AS u "
           "FROM totalizer_daily GROUP BY station_id, day")}
    lat = {(r["station_id"], r["day"]): r for r in _rows(c, "SELECT * FROM latency_daily")}
    rows = []
    for sid in store.known_stations():
        for day, weight in days:
            lo, hi = day_bounds(day, tz)
            span = weight * (hi - lo)
            coverage = None if span <= 0 else min(1.0, covered.get(day, 0.0) / span)
            a = avail.get((sid, day))
            online = None if a is None or not a["samples"] else a["online"] / a["samples"]
            n, missing, gaps = seq[sid, day]
            completeness = n / (n + missing) if n + missing else None
            breaks, unexplained = tot.get((sid, day), (0, 0))
            v = judge_day(day, weight, coverage, online, completeness, breaks,
                          min_coverage=criteria["observe_min_coverage"],
                          min_online=criteria["daily_online_ratio"],
                          min_completeness=criteria["daily_completeness"])
            la = lat.get((sid, day))
            rows.append({"station_id": sid, "day": day, "weight": weight,
                         "coverage": None if coverage is None else round(coverage, 6),
                         "samples": 0 if a is None else a["samples"],
                         "online_ratio": None if online is None else round(online, 6),
                         "records": n, "missing": missing, "gaps": gaps,
                         "completeness": None if completeness is None else round(completeness, 9),
                         "totalizer_breaks": breaks, "unexplained_ml": unexplained,
                         "latency_p50_s": None if la is None else la["p50_s"],
                         "latency_p95_s": None if la is None else la["p95_s"],
                         "observed": v.observed, "compliant": v.compliant,
                         "reasons": "; ".join(v.reasons)})
    return rows, days


def _verdicts(rows: list[dict[str, Any]]) -> list[DayVerdict]:
    return [DayVerdict(r["day"], r["weight"], r["observed"], r["compliant"], ())
            for r in rows]


def measurements(store: Store, criteria: dict[str, Any], rows: list[dict[str, Any]],
                 days: list[tuple[str, float]]) -> list[Measurement]:
    need = criteria["stability_days"]
    c = store.conn
    polls, ok = c.execute("SELECT COUNT(*), COALESCE(SUM(ok), 0) FROM polls").fetchone()
    by_station: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_station[r["station_id"]].append(r)
    # observation is fleet-wide: a day is observed for every station or none
    first_station = next(iter(by_station.values()), [])
    observed_run = longest_run(_verdicts(first_station), of="observed")
    span = round(sum(w for _, w in days), 6)
    out = [Measurement(
        "STB-1", "stability.run_days", observed_run, ">=", need, "days", scope=True,
        evidence={"stability_days": need, "plan_days": PLAN_STABILITY_DAYS,
                  "shortened": need < PLAN_STABILITY_DAYS, "observed_span_days": span,
                  "polls": polls, "first_day": days[0][0] if days else None,
                  "last_day": days[-1][0] if days else None, "mode": "observe"})]
    out.append(Measurement(
        "STB-1", "stability.platform_answered", round(ok / polls, 6) if polls else None, ">=",
        criteria["daily_online_ratio"], "ratio", evidence={
            "polls": polls, "answered": ok,
            "resources": "not observable through the API: a platform that exhausts its "
                         "resources stops answering or loses records, which these figures "
                         "show"}))
    held_to = min(need, observed_run)
    for sid, mine in sorted(by_station.items()):
        bad = [r for r in mine if r["observed"] and not r["compliant"]]
        out.append(Measurement(
            "STB-1", "stability.longest_compliant_run", longest_run(_verdicts(mine)), ">=",
            held_to, "days", sid,
            evidence={"days": len(mine), "compliant_days": sum(r["compliant"] for r in mine),
                      "non_compliant": [f"{r['day']}: {r['reasons']}"
                                        for r in bad[:EVIDENCE_DAYS]]}))
        missing = [r for r in mine if r["missing"]]
        out.append(Measurement(
            "STB-1", "stability.sequence_missing", sum(r["missing"] for r in mine), "==", 0,
            "records", sid, evidence={"days": [f"{r['day']}: {r['missing']} in {r['gaps']} "
                                               "gap(s)" for r in missing[:EVIDENCE_DAYS]],
                                      **_gap_series(c, sid, [d for d, _ in days])}))
        breaks = [r for r in mine if r["totalizer_breaks"]]
        out.append(Measurement(
            "STB-1", "stability.totalizer_unexplained", sum(r["unexplained_ml"] for r in mine),
            "==", 0, "mL", sid,
            evidence={"breaks": sum(r["totalizer_breaks"] for r in mine),
                      "days": [f"{r['day']}: {r['totalizer_breaks']} break(s), "
                               f"{r['unexplained_ml']} mL" for r in breaks[:EVIDENCE_DAYS]]}))
    out.append(latency_measurement(store, criteria, [d for d, _ in days]))
    return out


def _gap_series(c: sqlite3.Connection, sid: str, days: list[str]) -> dict[str, Any]:
    if not days:
        return {}
    q = ("SELECT device, stream, SUM(missing) FROM sequence_daily WHERE station_id = ? AND "
         "day >= ? AND day <= ? AND missing > 0 GROUP BY device, stream ORDER BY device, stream")
    series = [f"{d}/{s}: {m}" for d, s, m in c.execute(q, (sid, days[0], days[-1]))]
    return {"by_device_stream": series[:EVIDENCE_DAYS]} if series else {}


def latency_measurement(store: Store, criteria: dict[str, Any], days: list[str]
                        ) -> Measurement:
    lat = [float(r[0]) for r in store.conn.execute(
        "SELECT received_at - t FROM records WHERE received_at IS NOT NULL AND day >= ? AND "
        "day <= ?", (days[0], days[-1]))] if days else []
    p95 = percentile(lat, 95)
    return Measurement(
        "DAT-5", "latency.p95", None if p95 is None else round(p95, 3), "<=",
        criteria["latency_p95_s"], "s",
        evidence={"records": len(lat), "p50_s": _r(percentile(lat, 50)),
                  "max_s": _r(max(lat) if lat else None),
                  "measured": "received_at (platform clock when stored) − the record's device "
                              "time (end_time / device_time): includes the time the record "
                              "waited in the device FIFO and any offset of the device clock"})


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def alert_table(store: Store) -> list[dict[str, Any]]:
    """Per station: alerts by lifecycle status (docs/platform-api.md §5.3, §5.12)."""
    now = store.last_poll_at() or 0.0
    out = []
    for r in _rows(store.conn, """
        SELECT station_id, COUNT(*) AS raised,
               SUM(status = 'open') AS open, SUM(status = 'confirmed') AS confirmed,
               SUM(status = 'closed' AND confirmed_at IS NOT NULL) AS rectified,
               SUM(status = 'closed' AND confirmed_at IS NULL) AS dismissed,
               MIN(CASE WHEN status != 'closed' THEN raised_at END) AS oldest_unclosed
          FROM alerts GROUP BY station_id ORDER BY station_id"""):
        oldest = r["oldest_unclosed"]
        out.append({"station_id": r["station_id"], "raised": r["raised"], "open": r["open"],
                    "confirmed": r["confirmed"], "rectified": r["rectified"],
                    "dismissed": r["dismissed"],
                    "oldest_unclosed_days": None if oldest is None
                    else round((now - float(oldest)) / 86400.0, 2)})
    return out


def cumulative_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per station over the whole observation."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["station_id"]].append(r)
    out = []
    for sid, mine in sorted(by.items()):
        samples = sum(r["samples"] for r in mine)
        online = sum((r["online_ratio"] or 0) * r["samples"] for r in mine)
        n, m = sum(r["records"] for r in mine), sum(r["missing"] for r in mine)
        out.append({"station_id": sid, "days": round(sum(r["weight"] for r in mine), 6),
                    "compliant_days": round(sum(r["weight"] for r in mine if r["compliant"]), 6),
                    "longest_compliant_run": longest_run(_verdicts(mine)),
                    "samples": samples,
                    "online_ratio": round(online / samples, 6) if samples else None,
                    "records": n, "missing": m,
                    "completeness": round(n / (n + m), 9) if n + m else None,
                    "totalizer_breaks": sum(r["totalizer_breaks"] for r in mine),
                    "unexplained_ml": sum(r["unexplained_ml"] for r in mine)})
    return out


def fleet_daily(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per day: the polls, how many the platform answered, and the stations compliant, with
    the running count of consecutive days every station was compliant (cumulative)."""
    polls = {r["day"]: r for r in _rows(store.conn, "SELECT * FROM observed_daily")}
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_day[r["day"]].append(r)
    out, run = [], 0.0
    for day in sorted(by_day):
        mine = by_day[day]
        p = polls.get(day)
        all_ok = all(r["compliant"] for r in mine)
        run = run + mine[0]["weight"] if all_ok else 0.0
        out.append({"day": day, "weight": mine[0]["weight"], "coverage": mine[0]["coverage"],
                    "polls": 0 if p is None else p["polls"],
                    "answered": 0 if p is None else p["ok_polls"],
                    "stations": len(mine), "compliant": sum(r["compliant"] for r in mine),
                    "records": sum(r["records"] for r in mine),
                    "missing": sum(r["missing"] for r in mine),
                    "consecutive_days": round(run, 6)})
    return out


def build_record(store: Store, meta: dict[str, str], *, complete: bool, notes: list[str],
                 harness: dict[str, Any]) -> RunRecord:
    criteria = observe_criteria(float(meta["required_days"]))
    rows, days = daily_figures(store, criteria)
    ms = measurements(store, criteria, rows, days)
    entries = catalogue_entries()
    outcomes, verdict = decide(ms, entries, complete=complete)
    stations = [dict(zip(("station_id", "name", "town", "ownership", "dispensers", "nozzles",
                          "tanks"), r, strict=True))
                for r in store.conn.execute(
                    "SELECT station_id, name, town, ownership, dispensers, nozzles, tanks "
                    "FROM stations ORDER BY station_id")]
    first = store.conn.execute("SELECT MIN(at) FROM polls").fetchone()[0]
    start = None if first is None else dt.datetime.fromtimestamp(float(first),
                                                                 store.tz).isoformat()
    return RunRecord(
        run_id=meta["run_id"],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scenario={"name": "observe", "path": None, "digest": None, "seed": None,
                  "start": start, "days": round(sum(w for _, w in days), 6),
                  "mode": "observe"},
        harness=harness,
        sut={"platform": {"url": meta["api"], "observed": "live platform, through its API"}},
        stations=stations, criteria=criteria, measurements=ms, requirements=outcomes,
        accepted=verdict == "accepted", verdict=verdict, complete=complete,
        catalogue=entries, notes=notes,
        tables={"daily": [{k: r[k] for k in ("station_id", "day", "completeness",
                                             "online_ratio", "compliant")} for r in rows],
                "observe_daily": rows, "observe_cumulative": cumulative_table(rows),
                "observe_fleet": fleet_daily(store, rows),
                "observe_alerts": alert_table(store)})
