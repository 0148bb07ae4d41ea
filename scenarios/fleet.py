"""Fleet ledger (站点台账): one CSV row per station, parsed into typed dicts and checked.

Lines starting with `#` are comments (the ledger's provenance note). Cell formats:
  tanks       "1:92:30;2:95:20;3:0:50"  tank:grade:nominal m³
  dispensers  "1:1+2;2:1+3;3:3+3"       dispenser:tank of nozzle 1+tank of nozzle 2+... (1-4)
  throughput  "92:3000;95:800;0:5000"   grade:mean litres per day
A row is checked on its own (formats, ranges, every nozzle's tank exists, every grade sold
has a tank and a nozzle, the GB 50156 site class matches the tank capacity) and the
ledger as a whole (unique station ids).
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.errors import Problem, show

GRADES = ("92", "95", "0")  # 92#, 95# petrol, 0# diesel (same as sim.config.GRADES)
NOMINAL_M3 = (20, 30, 50)  # tank sizes the capacity tables know
MAX_TANKS = 9  # the gauge profile has room for tanks 1..9 (blocks at 100..900)
MAX_DISPENSERS = 99
MAX_NOZZLES = 4
STATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"

COLUMNS = ("station_id", "name", "town", "ownership", "site_class", "lat", "lon", "tanks",
           "dispensers", "throughput", "truck_share", "dialect", "transport")
OWNERSHIPS = ("private", "state")
DIALECTS = ("int_be", "f32_le")
TRANSPORTS = ("tcp", "rtu")

# GB 50156 station classes as in the domain brief (edition uncertain): total capacity with
# diesel counted at half, and the largest single tank.   class: (above m³, up to m³, tank m³)
SITE_CLASSES = {1: (120.0, 180.0, 50), 2: (60.0, 120.0, 50), 3: (0.0, 60.0, 30)}


@dataclass
class _Row:
    """Where a row is, so that every message can name it."""

    file: str
    line: int
    number: int  # 1-based data row
    station_id: str

    def problem(self, column: str, expected: str, found: str) -> Problem:
        label = f"fleet row {self.number}" + (f" ({self.station_id})" if self.station_id else "")
        return Problem(self.file, f"{label} column {column}", expected, found, self.line)


def equivalent_capacity_m3(tanks: list[dict[str, Any]]) -> float:
    """Total nominal capacity with diesel counted at half (GB 50156)."""
    return sum(t["nominal_m3"] * (0.5 if t["grade"] == "0" else 1.0) for t in tanks)


def site_class_for(tanks: list[dict[str, Any]]) -> int | None:
    """The GB 50156 class whose capacity band holds these tanks, or None if above class 1."""
    total = equivalent_capacity_m3(tanks)
    for cls in (3, 2, 1):
        low, high, _ = SITE_CLASSES[cls]
        if (cls == 3 or total > low) and total <= high:
            return cls
    return None


def _entries(text: str) -> list[list[str]]:
    return [[part.strip() for part in item.split(":")] for item in text.split(";") if item.strip()]


def _int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d{1,6}", text) else None


def _float(text: str) -> float | None:
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return None
    return float(text)


def _parse_tanks(cell: str, row: _Row, out: list[Problem]) -> list[dict[str, Any]]:
    fmt = "entries 'tank:grade:nominal_m3' separated by ';' (e.g. '1:92:30;2:0:50')"
    tanks: list[dict[str, Any]] = []
    for entry in _entries(cell) or [[""]]:
        text = ":".join(entry)
        number = _int(entry[0]) if len(entry) == 3 else None
        nominal = _int(entry[2]) if len(entry) == 3 else None
        if number is None or nominal is None:
            out.append(row.problem("tanks", fmt, show(text or cell)))
            continue
        grade = entry[1]
        if not 1 <= number <= MAX_TANKS:
            out.append(row.problem("tanks", f"a tank number 1..{MAX_TANKS}", f"{number} in {text!r}"))
        elif any(t["tank"] == number for t in tanks):
            out.append(row.problem("tanks", "each tank number once", f"tank {number} again"))
        elif grade not in GRADES:
            out.append(row.problem("tanks", "a grade 92, 95 or 0", f"{grade!r} in {text!r}"))
        elif nominal not in NOMINAL_M3:
            out.append(row.problem("tanks", "a nominal size of 20, 30 or 50 m³",
                                   f"{nominal} in {text!r}"))
        else:
            tanks.append({"tank": number, "grade": grade, "nominal_m3": nominal})
    return sorted(tanks, key=lambda t: t["tank"])


def _parse_dispensers(cell: str, row: _Row, tanks: list[dict[str, Any]],
                      out: list[Problem]) -> list[dict[str, Any]]:
    fmt = "entries 'dispenser:tank+tank...' separated by ';' (e.g. '1:1+2;2:3')"
    tank_numbers = [t["tank"] for t in tanks]
    dispensers: list[dict[str, Any]] = []
    for entry in _entries(cell) or [[""]]:
        text = ":".join(entry)
        number = _int(entry[0]) if len(entry) == 2 else None
        if number is None:
            out.append(row.problem("dispensers", fmt, show(text or cell)))
            continue
        nozzles = [_int(part.strip()) for part in entry[1].split("+")]
        if any(n is None for n in nozzles):
            out.append(row.problem("dispensers", fmt, show(text)))
        elif not 1 <= number <= MAX_DISPENSERS:
            out.append(row.problem("dispensers", f"a dispenser number 1..{MAX_DISPENSERS}",
                                   f"{number} in {text!r}"))
        elif any(d["dispenser"] == number for d in dispensers):
            out.append(row.problem("dispensers", "each dispenser number once",
                                   f"dispenser {number} again"))
        elif not 1 <= len(nozzles) <= MAX_NOZZLES:
            out.append(row.problem("dispensers", f"1 to {MAX_NOZZLES} nozzles per dispenser",
                                   f"{len(nozzles)} nozzles on dispenser {number}"))
        else:
            for k, tank in enumerate(nozzles, start=1):
                if tank_numbers and tank not in tank_numbers:
                    out.append(row.problem(
                        "dispensers", f"a tank of this station ({', '.join(map(str, tank_numbers))})",
                        f"tank {tank} for dispenser {number} nozzle {k}"))
            dispensers.append({"dispenser": number, "nozzle_tanks": nozzles})
    return sorted(dispensers, key=lambda d: d["dispenser"])


def _parse_throughput(cell: str, row: _Row, out: list[Problem]) -> dict[str, float]:
    fmt = "entries 'grade:litres_per_day' separated by ';' (e.g. '92:3000;0:5000')"
    result: dict[str, float] = {}
    for entry in _entries(cell) or [[""]]:
        text = ":".join(entry)
        value = _float(entry[1]) if len(entry) == 2 else None
        if value is None:
            out.append(row.problem("throughput", fmt, show(text or cell)))
        elif entry[0] not in GRADES:
            out.append(row.problem("throughput", "a grade 92, 95 or 0", f"{entry[0]!r} in {text!r}"))
        elif entry[0] in result:
            out.append(row.problem("throughput", "each grade once", f"grade {entry[0]} again"))
        elif not 0 < value <= 100_000:
            out.append(row.problem("throughput", "litres per day in (0, 100000]", f"{text!r}"))
        else:
            result[entry[0]] = value
    return {g: result[g] for g in GRADES if g in result}  # canonical grade order


def _check_grades(station: dict[str, Any], row: _Row, out: list[Problem]) -> None:
    grade_of = {t["tank"]: t["grade"] for t in station["tanks"]}
    nozzle_grades: dict[str, str] = {}  # grade -> first nozzle drawing it (for the message)
    for d in station["dispensers"]:
        for k, tank in enumerate(d["nozzle_tanks"], start=1):
            if tank in grade_of:
                nozzle_grades.setdefault(grade_of[tank], f"dispenser {d['dispenser']} nozzle {k}")
    for grade in station["throughput_l_per_day"]:
        if grade not in grade_of.values():
            out.append(row.problem("throughput", f"a tank of grade {grade} for its throughput",
                                   f"tanks of grades {', '.join(sorted(set(grade_of.values())))}"))
        elif grade not in nozzle_grades:
            out.append(row.problem("throughput", f"a nozzle drawing grade {grade} to sell it",
                                   "none in column dispensers"))
    for grade, where in nozzle_grades.items():
        if grade not in station["throughput_l_per_day"]:
            out.append(row.problem("throughput", f"a throughput for grade {grade} (sold by {where})",
                                   "none"))


def _check_site_class(station: dict[str, Any], row: _Row, out: list[Problem]) -> None:
    tanks = station["tanks"]
    if not tanks:
        return
    total = equivalent_capacity_m3(tanks)
    expected = site_class_for(tanks)
    if expected is None:
        out.append(row.problem("tanks", "at most 180 m³ in all (GB 50156 class 1, diesel at half)",
                               f"{total:g} m³"))
        return
    if station["site_class"] != expected:
        out.append(row.problem(
            "site_class", f"{expected} for {total:g} m³ (GB 50156: class 1 over 120 to 180, "
            "class 2 over 60 to 120, class 3 up to 60; diesel counted at half)",
            str(station["site_class"])))
        return
    largest = max(t["nominal_m3"] for t in tanks)
    limit = SITE_CLASSES[expected][2]
    if largest > limit:
        out.append(row.problem("tanks", f"single tanks of at most {limit} m³ at a class {expected} site",
                               f"a {largest} m³ tank"))


def _parse_row(cells: dict[str, str], row: _Row, out: list[Problem]) -> dict[str, Any]:
    def choice(column: str, options: tuple[str, ...]) -> str:
        value = cells[column]
        if value not in options:
            out.append(row.problem(column, " or ".join(options), show(value)))
        return value

    def number(column: str, low: float, high: float) -> float:
        value = _float(cells[column])
        if value is None or not low <= value <= high:
            out.append(row.problem(column, f"a number from {low:g} to {high:g}", show(cells[column])))
            return low
        return value

    station_id = cells["station_id"]
    if not re.fullmatch(STATION_ID_PATTERN, station_id):
        out.append(row.problem("station_id", "an id of letters, digits, '_' or '-' (e.g. UMB07)",
                               show(station_id)))
    for column in ("name", "town"):
        if not cells[column]:
            out.append(row.problem(column, "a non-empty text", "an empty cell"))
    site_class = _int(cells["site_class"])
    if site_class not in SITE_CLASSES:
        out.append(row.problem("site_class", "1, 2 or 3 (GB 50156 station class)",
                               show(cells["site_class"])))
    tanks = _parse_tanks(cells["tanks"], row, out)
    station = {
        "station_id": station_id,
        "name": cells["name"],
        "town": cells["town"],
        "ownership": choice("ownership", OWNERSHIPS),
        "site_class": site_class,
        "lat": number("lat", -90.0, 90.0),
        "lon": number("lon", -180.0, 180.0),
        "tanks": tanks,
        "dispensers": _parse_dispensers(cells["dispensers"], row, tanks, out),
        "throughput_l_per_day": _parse_throughput(cells["throughput"], row, out),
        "truck_share": number("truck_share", 0.0, 1.0),
        "dialect": choice("dialect", DIALECTS),
        "transport": choice("transport", TRANSPORTS),
    }
    _check_grades(station, row, out)
    if site_class in SITE_CLASSES:
        _check_site_class(station, row, out)
    return station


def _header_problems(header: list[str], file: str, line: int) -> list[Problem]:
    problems = []
    for column in COLUMNS:
        if column not in header:
            problems.append(Problem(file, "fleet header", f"a column {column!r}",
                                    f"columns {', '.join(header)}", line))
    for column in header:
        if column not in COLUMNS:
            hint = difflib.get_close_matches(column, COLUMNS, n=1)
            found = f"unknown column {column!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            problems.append(Problem(file, "fleet header", f"only the columns {', '.join(COLUMNS)}",
                                    found, line))
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        problems.append(Problem(file, "fleet header", "each column once",
                                f"{', '.join(dupes)} more than once", line))
    return problems


def _cells(line: str) -> list[str] | None:
    try:
        return [cell.strip() for cell in next(csv.reader([line]))]
    except csv.Error:  # e.g. a NUL byte
        return None


def parse_fleet(text: str, file: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Stations of a ledger (in file order) and every problem found in it."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return [], [Problem(file, "fleet", "a header line and one row per station", "no rows")]
    header_line, header_text = lines[0]
    header = _cells(header_text)
    if header is None:
        return [], [Problem(file, "fleet header", "comma-separated column names",
                            show(header_text), header_line)]
    problems = _header_problems(header, file, header_line)
    if problems:
        return [], problems
    stations: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for number, (line_no, line) in enumerate(lines[1:], start=1):
        cells = _cells(line)
        row = _Row(file, line_no, number, cells[0] if cells else "")
        if cells is None:
            problems.append(row.problem("(all)", "comma-separated cells", show(line)))
            continue
        if len(cells) != len(header):
            problems.append(row.problem("(all)", f"{len(header)} cells as in the header",
                                        f"{len(cells)} cells"))
            continue
        row_problems: list[Problem] = []
        station = _parse_row(dict(zip(header, cells, strict=True)), row, row_problems)
        sid = station["station_id"]
        if sid in first_line:
            row_problems.append(row.problem("station_id", "a unique station id",
                                            f"{sid!r} again (first on line {first_line[sid]})"))
        first_line.setdefault(sid, line_no)
        problems.extend(row_problems)
        stations.append(station)
    if not stations and not problems:
        problems.append(Problem(file, "fleet", "one row per station", "only a header"))
    return stations, problems


def load_fleet(path: Path) -> tuple[list[dict[str, Any]], bytes, list[Problem]]:
    """(stations, raw bytes, problems) of the ledger at `path`."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], b"", [Problem(file, "fleet", "a readable CSV file", exc.strerror or str(exc))]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], raw, [Problem(file, "fleet", "UTF-8 text",
                                 f"an undecodable byte at offset {exc.start}")]
    stations, problems = parse_fleet(text, file)
    return stations, raw, problems
