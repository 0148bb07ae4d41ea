"""A compact summary of the run record for CI logs (one JSON object, or a few text lines)."""

from __future__ import annotations

from typing import Any

from acceptance.record import OUTCOMES, RunRecord
from reports.outcomes import requirement_views
from reports.stations import station_results
from reports.subsidy import subsidy


def summary(record: RunRecord) -> dict[str, Any]:
    views = requirement_views(record)
    stations = station_results(record)
    _, total = subsidy(stations, record.accepted)
    by_outcome: dict[str, list[str]] = {o: [] for o in OUTCOMES}
    for v in views:
        by_outcome[v.outcome.outcome].append(v.id)
    return {
        "run_id": record.run_id,
        "scenario": record.scenario.get("name"),
        "digest": record.scenario.get("digest"),
        "seed": record.scenario.get("seed"),
        "git_commit": record.harness.get("git_commit"),
        "accepted": record.accepted,
        "verdict": record.verdict,
        "failed": record.failed(),
        "not_proven_must": record.unproven_must(),
        "requirements": {k: len(v) for k, v in by_outcome.items()},
        "not_checked": by_outcome["not_checked"],
        "incomplete": by_outcome["incomplete"],
        "stations": {o: sum(s.outcome == o for s in stations)
                     for o in ("pass", "fail", "not_checked")},
        "subsidy_payable_yuan": total.payable,
    }


def summary_lines(record: RunRecord) -> list[str]:
    s = summary(record)
    req = s["requirements"]
    st = s["stations"]
    return [
        f"{record.verdict_word}: {s['scenario']} (seed {s['seed']}, "
        f"run {s['run_id']}, commit {s['git_commit']})",
        f"requirements: {req['pass']} pass, {req['fail']} fail, {req['error']} error, "
        f"{req['not_checked']} not checked, {req['incomplete']} incomplete"
        + (f"; failed: {', '.join(s['failed'])}" if s["failed"] else "")
        + (f"; MUST not proven: {', '.join(s['not_proven_must'])}"
           if s["not_proven_must"] else ""),
        f"stations: {st['pass']} passed, {st['fail']} failed, {st['not_checked']} not checked; "
        f"subsidy payable ¥{s['subsidy_payable_yuan']:,}",
    ]
