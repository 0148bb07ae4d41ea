"""Check a run directory: every checker of the catalogue → measurements → verdict → record.json.

    record = check_run("runs/smoke")       # also writes runs/smoke/record.json

Offline and repeatable: it reads only the run directory (docs/run-record.md), so `forecourt
check RUN` reproduces the verdict of the run itself. A checker that raises does not stop the
others: its requirement gets the outcome `error` with the exception's message (the run
proves nothing about it, so it cannot pass). A run directory whose metadata cannot be read,
or whose criteria are malformed, raises (RunDataError / CriteriaError): the harness could
not check it at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import traceback
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acceptance.checkers.alarms import alert_table, cheat_table
from acceptance.checkers.commerce import sales_table, stock_balance_table
from acceptance.checkers.credit import credit_table
from acceptance.checkers.metrology import findings_table, verification_table
from acceptance.checkers.stability import daily_table
from acceptance.checkers.tax import tax_table
from acceptance.criteria import CriteriaError, resolve_criteria
from acceptance.record import Measurement, RunRecord, decide
from acceptance.requirements import CATALOGUE, Requirement, load_checker
from acceptance.rundir import RunData, RunDataError

RECORD_FILE = "record.json"
EXIT_HARNESS = 2  # the run directory could not be checked; verdicts: record.VERDICTS


def check_run(run_dir: str | Path, *, write: bool = True,
              catalogue_entries: tuple[Requirement, ...] = CATALOGUE) -> RunRecord:
    """Run every checker over `run_dir`, decide, and (by default) write record.json."""
    data = RunData(run_dir)
    criteria = resolve_criteria(data.criteria_raw, run_days=data.days,
                                source=f"{data.root / 'scenario.yaml'}: criteria")
    measurements, errors = run_checkers(data, criteria, catalogue_entries)
    entries = [r.to_dict() for r in catalogue_entries]
    # interrupted, or ended by a SUT part that exited on its own or a world that stalled
    # (STB-1 fails on those)
    complete = not any(data.run_info.get(k) for k in ("interrupted", "sut_exited",
                                                      "world_stalled"))
    outcomes, verdict = decide(measurements, entries, errors, complete=complete)
    notes = list(_run_notes(data))
    tables = build_tables(data, criteria, notes)
    record = RunRecord(
        run_id=str(data.run_info.get("run_id") or data.root.name),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scenario=scenario_info(data, notes), harness=_harness(data.run_info),
        sut=_sut(data.run_info), stations=station_rows(data), criteria=criteria,
        measurements=measurements, requirements=outcomes,
        accepted=verdict == "accepted", verdict=verdict, complete=complete,
        catalogue=entries, tables=tables, notes=notes)
    if write:
        record.write(data.root / RECORD_FILE)
    return record


def run_checkers(data: RunData, criteria: dict[str, Any],
                 entries: tuple[Requirement, ...] = CATALOGUE
                 ) -> tuple[list[Measurement], dict[str, str]]:
    """Measurements of every requirement that has a checker; errors by requirement id."""
    measurements: list[Measurement] = []
    errors: dict[str, str] = {}
    for req in entries:
        if not req.checker:
            continue
        try:
            found = load_checker(req.checker)(data, criteria)
            wrong = [m for m in found if not isinstance(m, Measurement)
                     or m.requirement != req.id]
            if wrong:
                raise TypeError(f"checker {req.checker} returned {len(wrong)} item(s) that "
                                f"are not measurements of {req.id}")
        except Exception as exc:  # any failure of a checker is its requirement's outcome
            errors[req.id] = _describe(exc)
            continue
        measurements += found
    return measurements, errors


def _describe(exc: BaseException) -> str:
    """The exception and where it was raised (file:line), without volatile details."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


# ---- the rest of the record -------------------------------------------------------------

def scenario_info(data: RunData, notes: list[str]) -> dict[str, Any]:
    manifest = data.manifest
    truth_scenario = manifest.get("scenario") or {}
    digest = data.scenario_digest
    if truth_scenario.get("digest") and truth_scenario["digest"] != digest:
        notes.append("scenario.yaml and fleet.csv in the run directory do not match the "
                     "scenario digest of the ground truth (truth/manifest.json)")
    start = dt.datetime.fromtimestamp(data.start, ZoneInfo(data.timezone)).isoformat()
    return {"name": data.scenario_doc.get("name") or truth_scenario.get("name"),
            # the file the run was started with (run.json); its copy is the run's scenario.yaml
            "path": str(data.run_info.get("scenario") or "scenario.yaml"),
            "digest": digest, "seed": data.run_info.get("seed", manifest.get("seed")),
            "start": start, "days": data.days}


def _harness(info: dict[str, Any]) -> dict[str, Any]:
    h = info.get("harness")
    if isinstance(h, dict):
        return dict(h)
    return {"version": info.get("harness_version"), "git_commit": info.get("git_commit")}


def _sut(info: dict[str, Any]) -> dict[str, Any]:
    sut = info.get("sut")
    out = dict(sut) if isinstance(sut, dict) else {"description": sut}
    if info.get("sut_versions") is not None:
        out.setdefault("versions", info["sut_versions"])
    return out


def _run_notes(data: RunData) -> list[str]:
    notes = [str(n) for n in data.run_info.get("notes") or []]
    if data.run_info.get("exit_reason"):
        notes.append(f"run ended: {data.run_info['exit_reason']}")
    tax = data.scenario_doc.get("tax")
    if isinstance(tax, dict) and tax.get("period_days") is not None:
        notes.append(f"tax declarations use a shortened period of {tax['period_days']:g} "
                     f"day(s) (scenario tax.period_days; the plan's are calendar months): "
                     f"TAX-1 cross-checks them the same way, on shorter periods")
    if not data.manifest.get("complete", True):
        notes.append("the ground truth is incomplete (truth/manifest.json complete: false): "
                     "days it does not cover cannot be compliant")
    return notes


def station_rows(data: RunData) -> list[dict[str, Any]]:
    """The station ledger (站点台账) rows in scope, with equipment counts."""
    return [{"station_id": r["station_id"], "name": r["name"], "town": r["town"],
             "ownership": r["ownership"], "dispensers": len(r["dispensers"]),
             "nozzles": sum(len(d["nozzle_tanks"]) for d in r["dispensers"]),
             "tanks": len(r["tanks"])} for r in data.fleet]


def build_tables(data: RunData, criteria: dict[str, Any], notes: list[str]
                 ) -> dict[str, list[dict[str, Any]]]:
    """The report tables (daily, reconciliation, records); one that cannot be built is
    left empty with a note saying why."""
    builders = {"daily": lambda: daily_table(data, criteria).drop(columns=["reasons"]),
                "reconciliation": lambda: _reconciliation(data),
                "records": lambda: _records(data),
                "cheats": lambda: cheat_table(data),
                "alerts": lambda: alert_table(data),
                "commerce_sales": lambda: sales_table(data),
                "stock_balance": lambda: stock_balance_table(data, criteria),
                "tax": lambda: tax_table(data),
                "metrology": lambda: verification_table(data),
                "metrology_findings": lambda: findings_table(data, criteria),
                "credit": lambda: credit_table(data)}
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, build in builders.items():
        try:
            frame = build()
            tables[name] = [] if frame is None else [
                {k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
        except (RunDataError, ValueError, KeyError) as exc:  # OracleError is a ValueError
            tables[name] = []
            notes.append(f"table {name} not built: {exc}")
    return tables


def _records(data: RunData):
    counts = data.comparison.counts(by=("station_id", "stream"))
    return counts.reset_index().sort_values(["station_id", "stream"])


def _reconciliation(data: RunData):
    rec = data.reconciliation
    if rec is None:
        return None
    out = rec.assign(variance_l=rec["variance_ml"].astype(float) / 1000.0,
                     cumulative_pct=rec["cumulative_variance_pct_of_sales"])
    return out[["station_id", "tank", "day", "variance_l", "cumulative_pct"]] \
        .sort_values(["station_id", "tank", "day"])


def _plain(v: Any) -> Any:
    """JSON-friendly scalars: numpy → Python, NaN → None."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def main(argv: list[str] | None = None) -> int:
    """`python -m acceptance.check RUN` (and `forecourt check RUN`): re-check a run directory
    offline and write record.json and junit.xml; exit 0 accepted, 1 not accepted, 3
    incomplete, 2 the run directory could not be checked."""
    parser = argparse.ArgumentParser(description="re-run the acceptance checkers on a run "
                                                 "directory and write its record.json")
    parser.add_argument("run", type=Path, help="run directory (docs/run-record.md)")
    parser.add_argument("--no-write", action="store_true", help="do not write record.json")
    args = parser.parse_args(argv)
    try:
        record = check_run(args.run, write=not args.no_write)
    except (RunDataError, CriteriaError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    for r in record.requirements:
        print(f"{r.id:<10} {r.level:<6} {r.outcome:<11} {r.error or r.summary}")
    if not args.no_write:
        from reports.junit import write_junit

        write_junit(record, args.run / "junit.xml")
        from acceptance.manifest import seal

        seal(args.run, "forecourt check")  # record.json and junit.xml changed: sign anew
    print(record.verdict_line())
    return record.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
