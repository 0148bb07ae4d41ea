"""Load and validate a scenario file and its fleet ledger.

    scenario = load_scenario("scenarios/smoke.yaml")   # raises ScenarioError
    messages = validate_file("scenarios/smoke.yaml")   # [] when valid

Checks, all reported together: YAML syntax (file:line:column), the JSON Schema
(scenario.schema.json), the fleet ledger's rows, and cross-references (stations, dispensers,
nozzles and tanks named by cheats, tank conditions and faults; a price for every grade at
start; times within the run). Every message names the file, the field path, what was
expected and what was found. docs/scenarios.md describes the format.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.crosscheck import cross_check
from scenarios.errors import Problem, ScenarioError, show
from scenarios.fleet import load_fleet
from scenarios.schemacheck import apply_defaults, load_schema, schema_problems
from scenarios.timespec import parse_datetime, parse_instant
from scenarios.yamlsource import Positions, locate, parse_yaml

__all__ = ["Scenario", "ScenarioError", "load_scenario", "validate_file", "main"]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Treat `data` and `fleet` as read-only.

    data: the scenario fields with defaults applied (times as written, grades as "92"/"95"/"0").
    fleet: every station of the ledger (not only the selected ones), typed, in file order.
    digest: SHA-256 hex of the scenario file and the ledger (see `scenario_digest`).
    """

    path: Path
    name: str
    data: dict[str, Any]
    fleet: list[dict[str, Any]]
    digest: str

    @property
    def fleet_path(self) -> Path:
        return self.path.parent / self.data["fleet"]

    @property
    def station_ids(self) -> list[str]:
        """The stations this scenario runs, in ledger order (all when `stations` is omitted)."""
        wanted = self.data["stations"]
        return [s["station_id"] for s in self.fleet if wanted is None or s["station_id"] in wanted]

    @property
    def stations(self) -> list[dict[str, Any]]:
        ids = set(self.station_ids)
        return [s for s in self.fleet if s["station_id"] in ids]

    @property
    def timezone(self) -> str:
        return self.data["timezone"]

    @property
    def start_epoch(self) -> float:
        return parse_datetime(self.data["start"]).timestamp()

    @property
    def end_epoch(self) -> float:
        return self.start_epoch + self.data["days"] * 86400.0

    @property
    def fifo_depth(self) -> int:
        return self.data["fifo"]["depth"]

    @property
    def rtu_station_ids(self) -> list[str]:
        """Stations served over Modbus RTU: `rtu_stations` if given, else the ledger's transport."""
        override = self.data["rtu_stations"]
        if override is not None:
            return [sid for sid in self.station_ids if sid in override]
        return [s["station_id"] for s in self.stations if s["transport"] == "rtu"]

    def instant(self, value: str) -> float:
        """Epoch seconds of a scenario time (absolute, or "+1d12h" after start)."""
        return parse_instant(value, self.start_epoch)


def scenario_digest(scenario_bytes: bytes, fleet_bytes: bytes) -> str:
    """SHA-256 over both files, each framed by its length so the split is unambiguous."""
    h = hashlib.sha256()
    for part in (scenario_bytes, fleet_bytes):
        h.update(f"{len(part)}\n".encode("ascii"))
        h.update(part)
    return h.hexdigest()


def _cheat_defaults(data: dict[str, Any]) -> None:
    # each cheat kind's parameter defaults (the schema's x-cheat-kinds, docs/cheats.md)
    kinds = load_schema()["x-cheat-kinds"]
    for cheat in data["cheats"]:
        for name, value in kinds[cheat["kind"]]["defaults"].items():
            cheat.setdefault(name, value)


def _normalise_grades(data: dict[str, Any]) -> None:
    # YAML reads `grade: 92` as a number; the world uses the strings of sim.config.GRADES.
    for item in data["prices"]:
        item["grade"] = item["grade"] if isinstance(item["grade"], str) else str(int(item["grade"]))


def _read_text(path: Path) -> tuple[bytes, str]:
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([str(Problem(file, "(file)", "a readable scenario file",
                                         exc.strerror or str(exc)))]) from None
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError([str(Problem(file, "(file)", "UTF-8 text",
                                         f"an undecodable byte at offset {exc.start}"))]) from None


def _load_fleet(data: dict[str, Any], path: Path,
                positions: Positions) -> tuple[list[dict[str, Any]] | None, bytes, list[Problem]]:
    ref = data.get("fleet")
    if not isinstance(ref, str) or not ref:
        return None, b"", []  # the schema reports it
    fleet_path = path.parent / ref
    if not fleet_path.is_file():
        line, col = locate(positions, ("fleet",))
        return None, b"", [Problem(str(path), "fleet", "the path of a fleet ledger CSV, relative "
                                   f"to the scenario file ({fleet_path} does not exist)",
                                   show(ref), line, col)]
    stations, raw, problems = load_fleet(fleet_path)
    return (None if problems else stations), raw, problems


def load_scenario(path: str | Path) -> Scenario:
    """Load, validate and complete a scenario; ScenarioError lists every problem found."""
    path = Path(path)
    file = str(path)
    raw, text = _read_text(path)
    data, positions, problems = parse_yaml(text, file)
    if problems:
        raise ScenarioError.from_problems(problems)
    if not isinstance(data, dict):
        line, col = locate(positions, ())
        raise ScenarioError([str(Problem(
            file, "(top level)", "an object of scenario fields (name, seed, start, days, fleet, "
            "prices, ...)", "an empty file" if data is None else show(data), line, col))])
    problems = schema_problems(data, file, positions)
    fleet, fleet_raw, fleet_problems = _load_fleet(data, path, positions)
    if not problems:
        data = apply_defaults(data)
        _cheat_defaults(data)
        _normalise_grades(data)
        problems = cross_check(data, file, positions, fleet)
    problems += fleet_problems
    if problems:
        raise ScenarioError.from_problems(problems)
    if fleet is None:  # _load_fleet gives None only with a problem (its own or the schema's)
        raise ScenarioError([f"{file}: fleet: no fleet ledger was loaded"])
    return Scenario(path=path, name=data["name"], data=data, fleet=fleet,
                    digest=scenario_digest(raw, fleet_raw))


def validate_file(path: str | Path) -> list[str]:
    """Every problem of a scenario file and its ledger as messages; [] when it is valid."""
    try:
        load_scenario(path)
    except ScenarioError as exc:
        return exc.messages
    return []


def main(argv: list[str] | None = None) -> int:
    """`python -m scenarios.loader FILE...`: print problems; exit 0 if all valid, else 2."""
    files = sys.argv[1:] if argv is None else argv
    status = 0
    for file in files:
        messages = validate_file(file)
        for message in messages:
            print(message, file=sys.stderr)
        status = 2 if messages else status
        if not messages:
            print(f"{file}: valid")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
