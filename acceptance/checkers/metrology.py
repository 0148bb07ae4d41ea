"""MET-1 (MUST): calibration, parameter or component changes without a signed verification
or maintenance record, and expired verifications, are flagged (计量器具强制检定, 三方签字,
问题倒查追溯).

The ground truth says what the platform must flag (docs/ground-truth.md):

- `verification_lapses`: a dispenser that sold with its verification expired, from
  `expired_at` (its valid_until) until `renewed_at` (or the end) → `verification_expired`
  within `metrology_days`;
- `verification_records` with `fully_signed` false: a record lacking one of the three
  signatures → `record_unsigned` within `metrology_days` of the record's instant;
- `verification_records` with `seal_mismatch`: a seal found that is not the one the previous
  record left → `seal_mismatch` within `metrology_days`;
- cheat instances (not look-alikes, not of class MET: those are judged by their records)
  whose trace shows a change on the device — ids, a seal, a lock, events 11, 12, 20, 21,
  22, 24, 25 (docs/cheats.md §1.3) — a change no signed record covers → an identity alert
  (`component_change`, `seal_broken`, `parameter_change`, those the cheat expects) within
  `metrology_change_days` of its first activation.

A finding is *flagged* by an alert of an accepted kind at the same station naming the same
device, whose `as_of` lies in [the finding's instant − 1 h, its end + 3 days] (the oracle's
window, acceptance/oracle.py); time to flag = that `as_of` − the instant (≥ 0). Per
finding, `metrology.days_to_flag` ≤ its limit; none → fails; none and the run ended (or the
record reached the platform only after it was observed) before the limit ran out → null
with the reason, a scope measurement (incomplete, not failed).

Fleet-wide: `metrology.unexplained_flags` == 0 — alerts of the metrology kinds that flag no
finding, and identity alerts the detection oracle explains by no cheat (properly signed
work — the periodic verifications, a verified recalibration — flagged); and
`metrology.records_refused` == 0 — valid records the platform refused (4xx other than 409:
it cannot flag what it will not store). A run with no finding at all gets
`metrology.findings_judged` = 0 (scope): MET-1 is incomplete, the evidence says why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from acceptance.checkers.alarms import _scores as alarm_scores
from acceptance.checkers.common import detection_coverage, first
from acceptance.oracle import DAY_S, MATCH_AFTER_S, MATCH_BEFORE_S, normalise_alerts
from acceptance.record import Measurement
from acceptance.rundir import RunData

RID = "MET-1"
METROLOGY_KINDS = ("verification_expired", "record_unsigned", "seal_mismatch")
IDENTITY_KINDS = ("component_change", "seal_broken", "parameter_change")
# trace words of a change the device shows (docs/cheats.md §1.3)
CHANGE_TRACE = {"ids", "seal", "lock", "event:11", "event:12", "event:20", "event:21",
                "event:22", "event:24", "event:25"}
RESPONSIBLE = "旗市场监管局"  # the plan's department for 一（五）计量器具强制检定


@dataclass
class Finding:
    """Something the truth says the platform must flag."""

    what: str  # expired | unsigned_record | seal_mismatch | unsigned_change
    station_id: str
    device: str
    time: float  # the instant it became true
    since: float  # from when the run could see it (≥ the run's start)
    end: float  # the end of its matching window (before the 3 days)
    kinds: tuple[str, ...]  # alert kinds that flag it
    limit_key: str  # criteria key of its time limit
    observed_until: float  # how far the run simulated its station
    ref: dict[str, Any] = field(default_factory=dict)  # record / cheat it comes from
    certificate: str | None = None  # the record's number (to find its post)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _body(text: Any) -> dict[str, Any]:
    try:
        doc = json.loads(str(text))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def findings(data: RunData) -> list[Finding]:
    """Every finding of the run at the stations in scope, in time order."""
    def compute() -> list[Finding]:
        start, scope = data.start, set(data.station_ids)
        out: list[Finding] = []
        for r in _rows(data.truth_table("verification_lapses")):
            sid = str(r["station_id"])
            until = _until(data, sid)
            expired, renewed = _num(r["expired_at"]), _num(r["renewed_at"])
            since = max(expired, start)
            if sid not in scope or since >= until:
                continue
            out.append(Finding(
                "expired", sid, str(r["device"]), expired, since,
                until if math.isnan(renewed) else min(renewed, until),
                ("verification_expired",), "metrology_days", until,
                {"expired_at": expired, "renewed_at": None if math.isnan(renewed) else renewed,
                 "cheat": int(r["cheat"])}))
        for r in _rows(data.truth_table("verification_records")):
            sid, t = str(r["station_id"]), _num(r["performed_at"])
            until = _until(data, sid)
            if sid not in scope or not start <= t < until:
                continue
            body = _body(r["body"])
            ref = {"kind": str(r["kind"]), "certificate_no": body.get("certificate_no"),
                   "performed_at": t, "cheat": int(r["cheat"])}
            if not bool(r["fully_signed"]):
                out.append(Finding("unsigned_record", sid, str(r["device"]), t, t, t,
                                   ("record_unsigned",), "metrology_days", until,
                                   {**ref, "missing": str(r["missing_signatures"])},
                                   body.get("certificate_no")))
            if bool(r["seal_mismatch"]):
                out.append(Finding("seal_mismatch", sid, str(r["device"]), t, t, t,
                                   ("seal_mismatch",), "metrology_days", until, ref,
                                   body.get("certificate_no")))
        out += _changes(data, scope)
        return sorted(out, key=lambda f: (f.since, f.station_id, f.device, f.what))
    return data.derive("metrology:findings", compute)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def _until(data: RunData, sid: str) -> float:
    until = data.simulated_until(sid)
    return data.start if until is None else until


def _changes(data: RunData, scope: set[str]) -> list[Finding]:
    """Cheats that changed a device with no signed record (their trace shows the change)."""
    out = []
    for r in _rows(data.truth_table("cheat_instances")):
        sid, t = str(r["station_id"]), _num(r["first_start"])
        if (sid not in scope or bool(r["lookalike"]) or str(r["class"]) in ("MET", "LOOK")
                or math.isnan(t)):
            continue
        trace = set(json.loads(str(r["trace"]) or "[]"))
        if not trace & CHANGE_TRACE:
            continue
        expected = set(json.loads(str(r["expected_alerts"]) or "[]"))
        kinds = tuple(k for k in IDENTITY_KINDS if k in expected) or IDENTITY_KINDS
        last = _num(r["last_end"])
        until = _until(data, sid)
        out.append(Finding("unsigned_change", sid, str(r["device"]), t, t,
                           until if math.isnan(last) else min(last, until), kinds,
                           "metrology_change_days", until,
                           {"cheat": int(r["cheat"]), "kind": str(r["kind"]),
                            "trace": sorted(trace & CHANGE_TRACE)}))
    return out


def _alerts(data: RunData) -> pd.DataFrame:
    al = normalise_alerts(data.alerts)
    return al.assign(device=al["device"].map(lambda d: "" if d is None or d != d else str(d)))


def _matches(f: Finding, al: pd.DataFrame) -> pd.DataFrame:
    """Alerts that flag finding f (kind, station, device, window), earliest first."""
    m = ((al["station_id"] == f.station_id) & al["kind"].isin(list(f.kinds))
         & (al["device"] == f.device) & (al["as_of"] >= f.time - MATCH_BEFORE_S)
         & (al["as_of"] <= f.end + MATCH_AFTER_S))
    return al[m].sort_values(["as_of", "id"])


def _posts(data: RunData) -> dict[tuple[str, str], dict[str, Any]]:
    """(station, certificate_no) → the last post of that record (run.json inputs_posted):
    `what` is "<station>/<device> <kind> <certificate_no>"."""
    items = (data.run_info.get("inputs_posted") or {}).get("items") or []
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if isinstance(item, dict) and item.get("kind") == "verification_record":
            what = str(item.get("what", ""))
            station = what.split("/", 1)[0]
            out[(station, what.rsplit(" ", 1)[-1])] = item
    return out


def _judge(f: Finding, al: pd.DataFrame, limit: float,
           post: dict[str, Any] | None) -> tuple[float | None, bool, dict[str, Any]]:
    """(days to flag or None, a scope measurement, evidence) of one finding."""
    hits = _matches(f, al)
    ev: dict[str, Any] = {"finding": f.what, "device": f.device, "time": f.time,
                          "since": f.since, "alert_kinds": list(f.kinds), **f.ref}
    if len(hits):
        a = hits.iloc[0]
        ev["flagged_by"] = {"id": str(a["id"]), "kind": str(a["kind"]),
                            "as_of": float(a["as_of"])}
        ev["matching_alerts"] = len(hits)
        return round(max(0.0, (float(a["as_of"]) - f.since) / DAY_S), 4), False, ev
    others = al[(al["station_id"] == f.station_id) & al["kind"].isin(list(f.kinds))]
    if len(others):
        ev["alerts_elsewhere"] = first(_alert_words(a) for a in others.itertuples(index=False))
    if post is not None and post.get("source") == "truth":
        ev["reason"] = ("the record reached the platform only after it was observed "
                        "(posted from the final ground truth): not judged")
        return None, True, ev
    run_left = (f.observed_until - f.since) / DAY_S
    if run_left < limit:
        ev["reason"] = (f"run too short to judge: it ended {run_left:.2f} days after the "
                        f"finding, before the {limit:g}-day limit, with no flag yet")
        return None, True, ev
    ev["reason"] = "not flagged: no alert of the kinds expected names the device in time"
    return None, False, ev


def verification_flagged(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """MET-1: every expired verification, unsigned record, seal mismatch and unsigned change
    flagged in time at the right dispenser; no flag without cause; no record refused."""
    found = findings(data)
    al = _alerts(data)
    posts = _posts(data)
    out: list[Measurement] = []
    recs = data.truth_table("verification_records")
    t = recs["performed_at"].astype(float)
    judged_ev: dict[str, Any] = {
        **{w: sum(f.what == w for f in found)
           for w in ("expired", "unsigned_record", "seal_mismatch", "unsigned_change")},
        # the signed work the run holds (none of it may be flagged)
        "signed_records_in_run": int((recs["fully_signed"].astype(bool) & (t >= data.start)
                                      & (t < data.end)).sum()),
        "opening_records": int((t < data.start).sum())}
    if not found:
        judged_ev["reason"] = ("no expired verification, unsigned record, seal mismatch or "
                               "unsigned change happened in the run: flagging was not "
                               "exercised (only that signed work is not flagged)")
    out.append(Measurement(RID, "metrology.findings_judged", len(found), ">=", 1, "findings",
                           None, evidence=judged_ev, scope=True))
    for f in found:
        limit = float(criteria[f.limit_key])
        post = posts.get((f.station_id, str(f.certificate))) if f.certificate else None
        value, scope, ev = _judge(f, al, limit, post)
        ev["limit_key"] = f.limit_key
        out.append(Measurement(RID, "metrology.days_to_flag", value, "<=", limit, "days",
                               f.station_id, evidence=ev, scope=scope))
    out += _audit(data)
    out.append(_unexplained(data, found, al))
    out.append(_refused(posts))
    return out + detection_coverage(data, RID)


def _expired_at(lapses: pd.DataFrame, t: float) -> bool:
    """Whether one of the dispenser's lapse rows covers instant t."""
    return any(_num(r["expired_at"]) <= t < (math.inf if math.isnan(_num(r["renewed_at"]))
                                             else _num(r["renewed_at"]))
               for r in _rows(lapses))


def _listed(item: dict[str, Any], name: str) -> set[int]:
    """Instants (whole s) of the records a platform's audit item lists under `name`."""
    try:
        entries = json.loads(str(item.get(name)))
    except ValueError:
        return set()
    out = set()
    for e in entries if isinstance(entries, list) else []:
        rec = e.get("record") if isinstance(e, dict) else None
        t = _num(rec.get("performed_at")) if isinstance(rec, dict) else math.nan
        if not math.isnan(t):
            out.add(round(t))
    return out


def _audit(data: RunData) -> list[Measurement]:
    """Per station, the platform's metrology audit (GET /api/v1/metrology) as observed at the
    end against the truth at the audit's own instant (`as_of`): every dispenser listed with
    the right verification status (expired or valid), every unsigned record and seal
    mismatch performed by then listed."""
    plat = data.metrology
    items = {} if plat is None else {(str(r["station_id"]), str(r["device"])): r
                                     for r in _rows(plat)}
    lapses = data.truth_table("verification_lapses")
    recs = data.truth_table("verification_records")
    out = []
    for station in data.fleet:
        sid = str(station["station_id"])
        wrong: list[str] = []
        unlisted: list[str] = []
        for d in station["dispensers"]:
            dev = f"D{int(d['dispenser'])}"
            item = items.get((sid, dev))
            if item is None:
                wrong.append(f"{dev}: not listed")
                continue
            t = _num(item.get("as_of"))
            if math.isnan(t):
                wrong.append(f"{dev}: status {item.get('status')!r} with no as_of")
                continue
            mine = lapses[(lapses["station_id"] == sid) & (lapses["device"] == dev)]
            want = "expired" if _expired_at(mine, t) else "valid"
            if str(item.get("status")) != want:
                wrong.append(f"{dev}: {item.get('status')} at {t:.0f}, truth {want}")
            mr = recs[(recs["station_id"] == sid) & (recs["device"] == dev)
                      & (recs["performed_at"] <= t)]
            for name, col, words in (("unsigned_records", "fully_signed", "unsigned record"),
                                     ("seal_mismatches", "seal_mismatch", "seal mismatch")):
                due = mr[~mr[col]] if col == "fully_signed" else mr[mr[col]]
                listed = _listed(item, name)
                unlisted += [f"{dev}: {words} of {_num(r['performed_at']):.0f} "
                             f"({_body(r['body']).get('certificate_no')}) not listed"
                             for r in _rows(due) if round(_num(r["performed_at"])) not in listed]
        ev: dict[str, Any] = {"dispensers": len(station["dispensers"])}
        if plat is None or not len(plat):
            ev["reason"] = ("the platform offers no metrology audit (GET /api/v1/metrology "
                            "answered 404 or serves nothing): the plan asks for each "
                            "instrument's verification status (计量器具状态) at the platform")
        out.append(Measurement(RID, "metrology.audit_status_wrong", len(wrong), "==", 0,
                               "dispensers", sid, evidence={**ev, "wrong": first(wrong)}))
        out.append(Measurement(RID, "metrology.audit_unlisted", len(unlisted), "==", 0,
                               "records", sid, evidence={"unlisted": first(unlisted)}))
    return out


def _unexplained(data: RunData, found: list[Finding], al: pd.DataFrame) -> Measurement:
    """Metrology-kind alerts that flag no finding, and identity alerts no cheat explains."""
    explained = np.zeros(len(al), dtype=bool)
    for f in found:
        explained[al.index.get_indexer(_matches(f, al).index)] = True
    mine = al[al["kind"].isin(list(METROLOGY_KINDS)) & ~explained]
    false = alarm_scores(data).false_alerts
    identity = false[false["kind"].isin(list(IDENTITY_KINDS))]
    items = [f"{a.station_id} " + _alert_words(a)
             for a in pd.concat([mine, identity]).sort_values(["as_of", "id"])
             .itertuples(index=False)]
    return Measurement(RID, "metrology.unexplained_flags", len(mine) + len(identity), "==", 0,
                       "alerts", None, evidence={
                           "metrology_alerts_without_finding": len(mine),
                           "identity_alerts_without_cheat": len(identity),
                           "alerts": first(items),
                           "note": "an alert on properly signed work (a periodic "
                                   "verification, a verified recalibration) lands here"})


def _alert_words(a: Any) -> str:
    device = str(a.device) if isinstance(a.device, str) and a.device else "-"
    return f"{a.kind} {device} as_of {a.as_of}"


def _refused(posts: dict[tuple[str, str], dict[str, Any]]) -> Measurement:
    refused = [f"{key[0]} {key[1]}: HTTP {p.get('status')} {p.get('error') or ''}".strip()
               for key, p in sorted(posts.items())
               if p.get("status") not in (200, 201, 409)]
    return Measurement(RID, "metrology.records_refused", len(refused), "==", 0, "records",
                       None, evidence={"posted": len(posts), "refused": first(refused)})


# ---- report tables (record.json `tables.metrology`, `tables.metrology_findings`) ----------

def verification_table(data: RunData) -> pd.DataFrame:
    """One row per dispenser of the stations in scope: its verification at the end of the
    run (the truth), and the platform's status for it (GET /api/v1/metrology, when
    offered)."""
    rec = data.truth_table("verification_records")
    ren = rec[(rec["kind"] == "verification") & rec["valid_until"].notna()]
    plat = data.metrology
    by_dev = ({} if plat is None else
              {(str(r["station_id"]), str(r["device"])): r for r in _rows(plat)})
    rows = []
    for station in data.fleet:
        sid = str(station["station_id"])
        end = _until(data, sid)
        for d in station["dispensers"]:
            dev = f"D{int(d['dispenser'])}"
            mine = ren[(ren["station_id"] == sid) & (ren["device"] == dev)
                       & (ren["performed_at"] <= end)]
            until = float(mine["valid_until"].max()) if len(mine) else None
            last = float(mine["performed_at"].max()) if len(mine) else None
            p = by_dev.get((sid, dev))
            rows.append({
                "station_id": sid, "device": dev, "last_verification": last,
                "valid_until": until,
                "status": "no_record" if until is None else "valid" if until > end
                else "expired",
                "overdue_days": None if until is None or until > end
                else round((end - until) / DAY_S, 3),
                "platform_status": None if p is None else str(p["status"]),
                "platform_flagged": None if p is None else bool(p["flagged"])})
    return pd.DataFrame(rows)


def findings_table(data: RunData, criteria: dict[str, Any]) -> pd.DataFrame:
    """The rectification ledger (整改台账) of the metrology paperwork: one row per finding,
    whether and when the platform flagged it, and the department responsible."""
    al = _alerts(data)
    rows = []
    for f in cast(Iterable[Finding], findings(data)):
        limit = float(criteria[f.limit_key])
        value, scope, ev = _judge(f, al, limit, None)
        rows.append({"station_id": f.station_id, "device": f.device, "finding": f.what,
                     "time": f.time, "since": f.since, "flagged": value is not None,
                     "days_to_flag": value, "limit_days": limit,
                     "outcome": "in_time" if value is not None and value <= limit
                     else "late" if value is not None else "too_short" if scope
                     else "missed",
                     "certificate_no": f.ref.get("certificate_no"),
                     "detail": json.dumps({k: v for k, v in f.ref.items()
                                           if k in ("kind", "missing", "renewed_at")},
                                          ensure_ascii=False),
                     "responsible": RESPONSIBLE})
    return pd.DataFrame(rows)
