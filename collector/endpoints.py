"""The endpoint map (`endpoints.json`, format `forecourt-endpoints/1`) written by `forecourt devices`.

It tells a collector where each station's devices answer (Modbus TCP gateway or an RTU serial
line), their unit ids, profile and register dialect. Validated here so that a bad file fails
at start-up with the file, the path of the field and what was expected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "forecourt-endpoints/1"
STATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEVICE_KEY = re.compile(r"^(G|D[1-9][0-9]*)$")


class EndpointError(ValueError):
    """Bad endpoint map: the message names the file, the field and what was expected."""


@dataclass(frozen=True, slots=True)
class DeviceEndpoint:
    device: str  # "G" or "D<n>"
    kind: str  # tank_gauge | dispenser
    unit_id: int
    profile: str
    units: tuple[int, ...]  # tanks of a gauge, nozzles of a dispenser


@dataclass(frozen=True, slots=True)
class StationEndpoint:
    station_id: str
    transport: str  # tcp | rtu
    dialect: str
    devices: tuple[DeviceEndpoint, ...]
    host: str = ""
    port: int = 0
    serial_port: str = ""
    baudrate: int = 38400
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def describe(self) -> str:
        if self.transport == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"rtu:{self.serial_port}@{self.baudrate}"


@dataclass(frozen=True, slots=True)
class EndpointMap:
    scenario: str
    timezone: str
    stations: dict[str, StationEndpoint]
    source: str


def _object(obj: object, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise EndpointError(f"{where}: expected an object, found {type(obj).__name__}")
    return obj


def _get(obj: object, key: str, where: str, kind: type | tuple[type, ...]):
    obj = _object(obj, where)
    if key not in obj:
        raise EndpointError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise EndpointError(f"{where}.{key}: expected {name}, found {value!r}")
    return value


def _device(raw: object, where: str) -> DeviceEndpoint:
    device = _get(raw, "device", where, str)
    if not DEVICE_KEY.fullmatch(device):
        raise EndpointError(f"{where}.device: expected 'G' or 'D<n>', found {device!r}")
    kind = _get(raw, "kind", where, str)
    if kind not in ("tank_gauge", "dispenser"):
        raise EndpointError(f"{where}.kind: expected 'tank_gauge' or 'dispenser', found {kind!r}")
    unit_id = _get(raw, "unit_id", where, int)
    if not 1 <= unit_id <= 247:
        raise EndpointError(f"{where}.unit_id: expected 1..247, found {unit_id}")
    units_key = "tanks" if kind == "tank_gauge" else "nozzles"
    units = _get(raw, units_key, where, list)
    if not units or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1
                            for u in units):
        raise EndpointError(f"{where}.{units_key}: expected a non-empty list of numbers ≥ 1, "
                            f"found {units!r}")
    return DeviceEndpoint(device, kind, unit_id, _get(raw, "profile", where, str), tuple(units))


def _station(station_id: str, raw: object, where: str) -> StationEndpoint:
    if not STATION_ID.fullmatch(station_id):
        raise EndpointError(f"{where}: station id {station_id!r} does not match "
                            f"{STATION_ID.pattern}")
    raw = _object(raw, where)
    transport = _get(raw, "transport", where, str)
    dialect = _get(raw, "dialect", where, str)
    devices_raw = _get(raw, "devices", where, list)
    if not devices_raw:
        raise EndpointError(f"{where}.devices: a station needs at least one device")
    devices = tuple(_device(d, f"{where}.devices[{i}]") for i, d in enumerate(devices_raw))
    seen: set[str] = set()
    for i, d in enumerate(devices):
        if d.device in seen:
            raise EndpointError(f"{where}.devices[{i}].device: duplicate device {d.device!r}")
        seen.add(d.device)
    if transport == "tcp":
        return StationEndpoint(station_id, transport, dialect, devices,
                               host=_get(raw, "host", where, str),
                               port=_get(raw, "port", where, int))
    if transport == "rtu":
        parity = raw.get("parity", "N")
        if parity not in ("N", "E", "O"):
            raise EndpointError(f"{where}.parity: expected N, E or O, found {parity!r}")
        return StationEndpoint(station_id, transport, dialect, devices,
                               serial_port=_get(raw, "serial_port", where, str),
                               baudrate=int(raw.get("baudrate", 38400)), parity=parity,
                               stopbits=int(raw.get("stopbits", 1)),
                               bytesize=int(raw.get("bytesize", 8)))
    raise EndpointError(f"{where}.transport: expected 'tcp' or 'rtu', found {transport!r}")


def parse_endpoints(doc: object, source: str) -> EndpointMap:
    doc = _object(doc, source)
    fmt = _get(doc, "format", source, str)
    if fmt != FORMAT:
        raise EndpointError(f"{source}: format: expected {FORMAT!r}, found {fmt!r}")
    stations_raw = _get(doc, "stations", source, dict)
    stations = {sid: _station(sid, raw, f"{source}: stations.{sid}")
                for sid, raw in stations_raw.items()}
    return EndpointMap(str(doc.get("scenario", "")), str(doc.get("timezone", "Asia/Shanghai")),
                       stations, source)


def load_endpoints(path: Path) -> EndpointMap:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EndpointError(f"{path}: cannot read the endpoint map: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise EndpointError(f"{path}: not valid JSON: {exc}") from exc
    return parse_endpoints(doc, str(path))
