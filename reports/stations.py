"""Per-station acceptance outcome (站点验收结论) and coverage by town and ownership (覆盖情况).

The pass rule, used for the coverage tables and the installation subsidy alike:

* A station **fails** when a station-level measurement of a MUST requirement failed at it, or
  when a MUST requirement fails or errs in a way no single ledger station can be blamed for
  (a failing fleet-wide measurement, a failing measurement at a station outside the ledger,
  a failing requirement without a failing measurement, or a checker error): the run then
  proves nothing good about any station, so every station fails.
* Otherwise a station with no station-level measurement at all is **not checked** (未检查):
  the run says nothing about it, so it is never counted as passed.
* Otherwise it **passes**. SHOULD failures go to the rectification ledger but do not block,
  and neither do requirements the run did not prove (`not_checked`, `incomplete`, e.g. a run
  shorter than STB-1's period): the station met everything that was measured. The run's
  verdict is then `incomplete` (acceptance.record.decide), and no subsidy is payable until a
  run proves the rest (reports.subsidy).

A station is **covered** (已覆盖) when it has station-level measurements of the coverage
requirement COV-1 and all of them passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acceptance.record import Measurement, RunRecord

OWNERSHIPS = ("private", "state")  # 民营, 国营 — as in the fleet ledger
COVERAGE_REQUIREMENT = "COV-1"
STATION_OUTCOMES = ("pass", "fail", "not_checked")


@dataclass(frozen=True)
class StationResult:
    station_id: str
    name: str
    town: str
    ownership: str
    outcome: str  # one of STATION_OUTCOMES
    covered: bool
    failed_here: tuple[str, ...]  # MUST requirement ids failing at this station
    blocked_by: tuple[str, ...]  # MUST requirement ids failing or erring fleet-wide
    should_failed: tuple[str, ...]  # SHOULD requirement ids failing at this station
    measured: int  # station-level measurements of this station


@dataclass
class CoverageRow:
    key: str  # town name, ownership code or "total"
    ledger: int = 0
    covered: int = 0
    passed: int = 0
    failed: int = 0
    not_checked: int = 0

    def add(self, r: StationResult) -> None:
        self.ledger += 1
        self.covered += r.covered
        self.passed += r.outcome == "pass"
        self.failed += r.outcome == "fail"
        self.not_checked += r.outcome == "not_checked"

    @property
    def covered_pct(self) -> float:
        return 100.0 * self.covered / self.ledger if self.ledger else 0.0

    @property
    def passed_pct(self) -> float:
        return 100.0 * self.passed / self.ledger if self.ledger else 0.0


@dataclass
class Coverage:
    by_town: list[CoverageRow] = field(default_factory=list)
    by_ownership: list[CoverageRow] = field(default_factory=list)
    total: CoverageRow = field(default_factory=lambda: CoverageRow("total"))


def ledger_rows(record: RunRecord) -> list[dict[str, Any]]:
    """The station ledger of the record, checked: ids unique, town and ownership present."""
    seen: set[str] = set()
    for i, row in enumerate(record.stations):
        where = f"record.stations[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
        for key in ("station_id", "town", "ownership"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise ValueError(f"{where}: {key!r} must be a non-empty string, got {row.get(key)!r}")
        if row["ownership"] not in OWNERSHIPS:
            raise ValueError(f"{where} ({row['station_id']}): ownership {row['ownership']!r} "
                             f"is not one of {list(OWNERSHIPS)}")
        if row["station_id"] in seen:
            raise ValueError(f"{where}: station_id {row['station_id']!r} appears twice")
        seen.add(row["station_id"])
    return record.stations


def requirement_levels(record: RunRecord) -> dict[str, str]:
    """Level (MUST/SHOULD) per requirement id, from the outcomes, else the catalogue."""
    levels = {e["id"]: e["level"] for e in record.catalogue if "id" in e and "level" in e}
    levels.update({r.id: r.level for r in record.requirements})
    return levels


def fleet_blockers(record: RunRecord) -> tuple[str, ...]:
    """MUST requirements whose failure or error cannot be pinned on one ledger station."""
    ledger = {row["station_id"] for row in record.stations}
    by_req: dict[str, list[Measurement]] = {}
    for m in record.measurements:
        by_req.setdefault(m.requirement, []).append(m)
    blockers: list[str] = []
    for r in record.requirements:
        if r.level != "MUST":
            continue
        bad = [m for m in by_req.get(r.id, []) if not m.passed and not m.scope]
        unattributed = any(m.station_id is None or m.station_id not in ledger for m in bad)
        if r.outcome == "error" or (r.outcome == "fail" and not bad) or unattributed:
            blockers.append(r.id)
    return tuple(blockers)


def station_results(record: RunRecord) -> list[StationResult]:
    """Each ledger station's outcome under the pass rule above, in ledger order."""
    rows = ledger_rows(record)
    levels = requirement_levels(record)
    blockers = fleet_blockers(record)
    results: list[StationResult] = []
    for row in rows:
        sid = row["station_id"]
        mine = [m for m in record.measurements if m.station_id == sid]
        failing = {m.requirement for m in mine if not m.passed and not m.scope}
        unknown = failing - set(levels)
        if unknown:
            raise ValueError(f"record.measurements: requirement(s) {sorted(unknown)} at station "
                             f"{sid} are neither in record.requirements nor in record.catalogue")
        must = tuple(sorted(rid for rid in failing if levels[rid] == "MUST"))
        should = tuple(sorted(rid for rid in failing if levels[rid] != "MUST"))
        cov = [m for m in mine if m.requirement == COVERAGE_REQUIREMENT]
        if must or blockers:
            outcome = "fail"
        elif not mine:
            outcome = "not_checked"
        else:
            outcome = "pass"
        results.append(StationResult(
            station_id=sid, name=str(row.get("name") or sid), town=row["town"],
            ownership=row["ownership"], outcome=outcome,
            covered=bool(cov) and all(m.passed for m in cov),
            failed_here=must, blocked_by=blockers, should_failed=should, measured=len(mine)))
    return results


def coverage(results: list[StationResult]) -> Coverage:
    """Counts by town (ledger order of first appearance), by ownership, and in total."""
    cov = Coverage()
    towns: dict[str, CoverageRow] = {}
    owners = {o: CoverageRow(o) for o in OWNERSHIPS}
    for r in results:
        towns.setdefault(r.town, CoverageRow(r.town)).add(r)
        owners[r.ownership].add(r)
        cov.total.add(r)
    cov.by_town = list(towns.values())
    cov.by_ownership = list(owners.values())
    return cov
