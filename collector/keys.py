"""Per-station signing keys (key file format `forecourt-keys/1`, docs/uplink.md §2).

    {"format": "forecourt-keys/1",
     "stations": {"UMB01": {"active": "k1", "keys": {"k1": "<64 hex chars>"}}}}

The collector signs with the station's `active` key and accepts acknowledgements signed with
any key listed for the station (rotation).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FORMAT = "forecourt-keys/1"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class KeyFileError(ValueError):
    """Bad key file: names the file, the station and the field."""


@dataclass(frozen=True, slots=True)
class StationKeys:
    station_id: str
    active: str  # key id used for signing
    keys: dict[str, bytes]  # kid → 32-byte key

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]


def parse_key_file(doc: object, source: str) -> dict[str, StationKeys]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{source}: format: expected {FORMAT!r}")
    stations = doc.get("stations")
    if not isinstance(stations, dict):
        raise KeyFileError(f"{source}: stations: expected an object station_id → keys")
    out: dict[str, StationKeys] = {}
    for sid, entry in stations.items():
        where = f"{source}: stations.{sid}"
        if not isinstance(entry, dict) or not isinstance(entry.get("keys"), dict):
            raise KeyFileError(f"{where}.keys: expected an object kid → 64 hex chars")
        keys: dict[str, bytes] = {}
        for kid, hexkey in entry["keys"].items():
            if not isinstance(hexkey, str) or not _HEX64.fullmatch(hexkey):
                raise KeyFileError(f"{where}.keys.{kid}: expected 64 hex characters")
            keys[kid] = bytes.fromhex(hexkey)
        active = entry.get("active")
        if active not in keys:
            raise KeyFileError(f"{where}.active: {active!r} is not one of the listed key ids "
                               f"{sorted(keys)}")
        out[sid] = StationKeys(sid, active, keys)
    return out


def load_key_file(path: Path) -> dict[str, StationKeys]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path}: not valid JSON: {exc}") from exc
    return parse_key_file(doc, str(path))


def station_keys(keyring: dict[str, StationKeys], station_id: str, source: str) -> StationKeys:
    try:
        return keyring[station_id]
    except KeyError:
        raise KeyFileError(f"{source}: no keys for station {station_id!r}") from None


def generate_key_file(station_ids: Iterable[str], path: Path, kid: str = "k1") -> Path:
    """Write a fresh key file with one random 256-bit key per station (mode 0600)."""
    path = Path(path)
    doc = {"format": FORMAT,
           "stations": {sid: {"active": kid, "keys": {kid: secrets.token_hex(32)}}
                        for sid in station_ids}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    return path
