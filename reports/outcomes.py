"""Each requirement of the catalogue with its outcome and its measurements, grouped for reading.

Measurements of one requirement are grouped by name: a fleet of 46 stations gives one line
per measured figure (fleet value, stations within the limit, the worst station), and the
failing measurements are listed in full with their evidence, up to FAILING_SHOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acceptance.record import OUTCOMES, Measurement, RequirementOutcome, RunRecord

FAILING_SHOWN = 20  # failing measurements listed per requirement (the rest are counted)
REQUIRED_ENTRY_KEYS = ("id", "level")


@dataclass(frozen=True)
class MeasurementGroup:
    name: str
    op: str
    unit: str
    limits: tuple[Any, ...]  # distinct limits, sorted (usually one)
    fleet: Measurement | None  # the fleet-wide measurement of this name, if any
    stations: int  # station-level measurements
    stations_passed: int
    worst: Measurement | None  # the station-level one furthest on the wrong side

    @property
    def passed(self) -> bool:
        return (self.fleet is None or self.fleet.passed) and self.stations_passed == self.stations


@dataclass(frozen=True)
class RequirementView:
    entry: dict[str, Any]  # catalogue entry
    outcome: RequirementOutcome
    groups: tuple[MeasurementGroup, ...]
    failing: tuple[Measurement, ...]  # first FAILING_SHOWN failing measurements
    failing_total: int
    measured: int
    passed: int

    @property
    def id(self) -> str:
        return self.outcome.id


def catalogue_by_id(record: RunRecord) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(record.catalogue):
        if not isinstance(e, dict) or any(k not in e for k in REQUIRED_ENTRY_KEYS):
            raise ValueError(f"record.catalogue[{i}]: expected an object with "
                             f"{list(REQUIRED_ENTRY_KEYS)}, got {e!r:.120}")
        if e["id"] in entries:
            raise ValueError(f"record.catalogue[{i}]: id {e['id']!r} appears twice")
        entries[e["id"]] = e
    return entries


def requirement_views(record: RunRecord) -> list[RequirementView]:
    """Catalogue order; a catalogue entry without an outcome is shown as not checked."""
    catalogue = catalogue_by_id(record)
    outcomes: dict[str, RequirementOutcome] = {}
    for i, r in enumerate(record.requirements):
        if r.outcome not in OUTCOMES:
            raise ValueError(f"record.requirements[{i}] ({r.id}): outcome {r.outcome!r} is not "
                             f"one of {list(OUTCOMES)}")
        if r.id not in catalogue:
            raise ValueError(f"record.requirements[{i}]: requirement {r.id!r} has no entry in "
                             "record.catalogue (its title, clause and department come from there)")
        outcomes[r.id] = r
    by_req: dict[str, list[Measurement]] = {}
    for m in record.measurements:
        by_req.setdefault(m.requirement, []).append(m)
    stray = sorted(set(by_req) - set(catalogue))
    if stray:
        raise ValueError(f"record.measurements: requirement(s) {stray} are not in record.catalogue")
    views = []
    for rid, entry in catalogue.items():
        outcome = outcomes.get(rid) or RequirementOutcome(rid, entry["level"], "not_checked",
                                                          "no outcome in the record")
        mine = by_req.get(rid, [])
        failing = [m for m in mine if not m.passed]
        views.append(RequirementView(entry, outcome, _groups(mine), tuple(failing[:FAILING_SHOWN]),
                                     len(failing), len(mine), len(mine) - len(failing)))
    return views


def _groups(ms: list[Measurement]) -> tuple[MeasurementGroup, ...]:
    names: dict[str, list[Measurement]] = {}
    for m in ms:
        names.setdefault(m.name, []).append(m)
    groups = []
    for name, group in names.items():
        fleet = next((m for m in group if m.station_id is None), None)
        per_station = [m for m in group if m.station_id is not None]
        groups.append(MeasurementGroup(
            name=name, op=group[0].op, unit=group[0].unit,
            limits=tuple(sorted({m.limit for m in group})), fleet=fleet,
            stations=len(per_station), stations_passed=sum(m.passed for m in per_station),
            worst=min(per_station, key=_badness_key) if per_station else None))
    return tuple(groups)


def _badness_key(m: Measurement) -> tuple[int, float]:
    """Sort key putting the worst measurement first: failed, then furthest from its limit."""
    if m.value is None or m.value != m.value:  # None or NaN
        return (0, 0.0)
    margin = float(m.value) - float(m.limit)
    if m.op in (">=", ">"):
        slack = margin  # smaller is worse
    elif m.op in ("<=", "<"):
        slack = -margin
    else:  # "==": any distance is bad
        slack = -abs(margin)
    return (0 if not m.passed else 1, slack)
