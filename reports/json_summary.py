"""A compact summary of the run record for CI logs (one JSON object, or a few text lines)."""

from __future__ import annotations

from typing import Any

from acceptance.record import RunRecord
from reports.outcomes import requirement_views
from reports.stations import station_results
from reports.subsidy import subsidy


def summary(record: RunRecord) -> dict[str, Any]:
    views = requirement_views(record)
    stations = station_results(record)
    _, total = subsidy(stations)
    by_outcome: dict[str, list[str]] = {"pass": [], "fail": [], "not_checked": [], "error": []}
    for v in views:
        by_outcome[v.outcome.outcome].append(v.id)
    return {
        "run_id": record.run_id,
        "scenario": record.scenario.get("name"),
        "digest": record.scenario.get("digest"),
        "seed": record.scenario.get("seed"),
        "git_commit": record.harness.get("git_commit"),
        "accepted": record.accepted,
        "failed": record.failed(),
        "requirements": {k: len(v) for k, v in by_outcome.items()},
        "not_checked": by_outcome["not_checked"],
        "stations": {o: sum(s.outcome == o for s in stations)
                     for o in ("pass", "fail", "not_checked")},
        "subsidy_payable_yuan": total.payable,
    }


def summary_lines(record: RunRecord) -> list[str]:
    s = summary(record)
    req = s["requirements"]
    st = s["stations"]
    return [
        f"{'ACCEPTED' if s['accepted'] else 'NOT ACCEPTED'}: {s['scenario']} (seed {s['seed']}, "
        f"run {s['run_id']}, commit {s['git_commit']})",
        f"requirements: {req['pass']} pass, {req['fail']} fail, {req['error']} error, "
        f"{req['not_checked']} not checked" + (f"; failed: {', '.join(s['failed'])}"
                                                 if s["failed"] else ""),
        f"stations: {st['pass']} passed, {st['fail']} failed, {st['not_checked']} not checked; "
        f"subsidy payable ¥{s['subsidy_payable_yuan']:,}",
    ]
