"""Station registry (站点台账) read from the fleet ledger CSV, as plain data.

Columns used: station_id, name, town, ownership (private | state), tanks
("1:92:30;2:95:20" = tank:grade:nominal m³) and dispensers ("1:1+2;2:1+3" = dispenser:
the tank of each nozzle in nozzle order). Lines starting with `#` are comments; other
columns are kept as `extra`. Errors name the file, the row and the column.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from central.db import Conn

REQUIRED = ("station_id", "name", "town", "ownership", "tanks", "dispensers")
OWNERSHIP = ("private", "state")
_STATION = re.compile(r"[A-Za-z0-9_-]{1,32}")
_GRADE = re.compile(r"89|92|95|98|0|-10|-20|-35")


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class Tank:
    tank: int
    grade: str
    nominal_m3: int


@dataclass(frozen=True)
class Dispenser:
    dispenser: int
    nozzle_tanks: tuple[int, ...]  # nozzle k (1-based) draws from nozzle_tanks[k-1]


@dataclass(frozen=True)
class Station:
    station_id: str
    name: str
    town: str
    ownership: str
    tanks: tuple[Tank, ...]
    dispensers: tuple[Dispenser, ...]
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def devices(self) -> tuple[str, ...]:
        """Device keys the station should report: the gauge and every dispenser."""
        return ("G",) + tuple(f"D{d.dispenser}" for d in self.dispensers)

    def tank(self, number: int) -> Tank | None:
        return next((t for t in self.tanks if t.tank == number), None)


def _int(text: str, where: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise RegistryError(f"{where}: {what} must be an integer, found {text!r}") from None
    if value < 1:
        raise RegistryError(f"{where}: {what} must be ≥ 1, found {value}")
    return value


def parse_tanks(text: str, where: str) -> tuple[Tank, ...]:
    tanks = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        bits = part.split(":")
        if len(bits) != 3:
            raise RegistryError(f"{where}: tank {part!r} must be tank:grade:nominal_m3, "
                                "e.g. 1:92:30")
        grade = bits[1].strip()
        if not _GRADE.fullmatch(grade):
            raise RegistryError(f"{where}: tank {part!r} has unknown grade {grade!r}")
        tanks.append(Tank(_int(bits[0], where, "tank number"), grade,
                          _int(bits[2], where, "nominal m³")))
    if not tanks:
        raise RegistryError(f"{where}: at least one tank expected, e.g. 1:92:30;2:0:50")
    numbers = [t.tank for t in tanks]
    if len(set(numbers)) != len(numbers):
        raise RegistryError(f"{where}: tank numbers repeat: {numbers}")
    return tuple(tanks)


def parse_dispensers(text: str, tanks: tuple[Tank, ...], where: str) -> tuple[Dispenser, ...]:
    known = {t.tank for t in tanks}
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        bits = part.split(":")
        if len(bits) != 2 or not bits[1].strip():
            raise RegistryError(f"{where}: dispenser {part!r} must be dispenser:tank+tank…, "
                                "e.g. 1:1+2")
        nozzle_tanks = tuple(_int(t, where, "nozzle tank") for t in bits[1].split("+"))
        missing = sorted(set(nozzle_tanks) - known)
        if missing:
            raise RegistryError(f"{where}: dispenser {part!r} draws from tank(s) {missing} "
                                f"that the tanks column does not list ({sorted(known)})")
        out.append(Dispenser(_int(bits[0], where, "dispenser number"), nozzle_tanks))
    numbers = [d.dispenser for d in out]
    if len(set(numbers)) != len(numbers):
        raise RegistryError(f"{where}: dispenser numbers repeat: {numbers}")
    return tuple(out)


def parse_registry(text: str, source: str) -> list[Station]:
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#") and ln.strip()]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RegistryError(f"{source}: missing column(s) {missing}; found {header}")
    stations: list[Station] = []
    seen: set[str] = set()
    for n, row in enumerate(reader, start=1):
        sid = (row.get("station_id") or "").strip()
        where = f"{source}: row {n} ({sid or '?'})"
        if None in row:
            raise RegistryError(f"{where}: more fields than the header has columns")
        if not _STATION.fullmatch(sid):
            raise RegistryError(f"{where} column station_id: expected ^[A-Za-z0-9_-]{{1,32}}$, "
                                f"found {sid!r}")
        if sid in seen:
            raise RegistryError(f"{where} column station_id: {sid} appears twice")
        seen.add(sid)
        ownership = (row.get("ownership") or "").strip()
        if ownership not in OWNERSHIP:
            raise RegistryError(f"{where} column ownership: expected one of {OWNERSHIP}, "
                                f"found {ownership!r}")
        for col in ("name", "town"):
            if not (row.get(col) or "").strip():
                raise RegistryError(f"{where} column {col}: must not be empty")
        tanks = parse_tanks(row["tanks"] or "", f"{where} column tanks")
        dispensers = parse_dispensers(row["dispensers"] or "", tanks,
                                      f"{where} column dispensers")
        extra = {k: (v or "").strip() for k, v in row.items() if k not in REQUIRED}
        stations.append(Station(sid, row["name"].strip(), row["town"].strip(), ownership,
                                tanks, dispensers, extra))
    if not stations:
        raise RegistryError(f"{source}: no stations in the ledger")
    return stations


def load_registry(path: Path) -> list[Station]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RegistryError(f"--registry {path}: cannot read ({exc.strerror})") from None
    return parse_registry(text, str(path))


def import_registry(conn: Conn, stations: list[Station]) -> None:
    """Make the DB registry equal the ledger; stations no longer listed become inactive."""
    now = time.time()
    with conn.transaction():
        conn.execute("UPDATE stations SET active = 0")
        conn.execute("DELETE FROM station_tanks")
        conn.execute("DELETE FROM station_nozzles")
        conn.executemany(
            "INSERT INTO stations (station_id, name, town, ownership, active, extra_json, "
            "imported_at) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (station_id) DO UPDATE SET "
            "name = excluded.name, town = excluded.town, ownership = excluded.ownership, "
            "active = 1, extra_json = excluded.extra_json, imported_at = excluded.imported_at",
            [(s.station_id, s.name, s.town, s.ownership,
              json.dumps(s.extra, ensure_ascii=False, sort_keys=True), now) for s in stations])
        conn.executemany(
            "INSERT INTO station_tanks (station_id, tank, grade, nominal_m3) VALUES (?, ?, ?, ?)",
            [(s.station_id, t.tank, t.grade, t.nominal_m3) for s in stations for t in s.tanks])
        conn.executemany(
            "INSERT INTO station_nozzles (station_id, dispenser, nozzle, tank) VALUES (?, ?, ?, ?)",
            [(s.station_id, d.dispenser, k, tank) for s in stations for d in s.dispensers
             for k, tank in enumerate(d.nozzle_tanks, start=1)])
