"""The platform's reader of the per-station HMAC key file (docs/uplink.md §2).

    {"format": "forecourt-keys/1",
     "stations": {"UMB01": {"active": "k1", "keys": {"k1": "<64 hex chars>"}}}}

Written independently of the collector's reader on purpose. `KeyFile` re-reads the file
when it changes on disk, so keys can be rotated without restarting the platform.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = "forecourt-keys/1"
_STATION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class KeyFileError(Exception):
    """The key file is unusable; the message names the file and the field."""


@dataclass(frozen=True)
class StationKeys:
    active: str
    keys: dict[str, bytes]


@dataclass(frozen=True)
class KeyRing:
    stations: dict[str, StationKeys]

    def key(self, station_id: str, kid: str) -> bytes | None:
        entry = self.stations.get(station_id)
        return entry.keys.get(kid) if entry else None

    def active(self, station_id: str) -> tuple[str, bytes] | None:
        entry = self.stations.get(station_id)
        if entry is None:
            return None
        return entry.active, entry.keys[entry.active]


def parse_key_file(text: str, source: str) -> KeyRing:
    """Validate and parse key-file text; errors name `source` and the JSON path."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{source}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"{source}: expected a JSON object at the top level")
    if doc.get("format") != FORMAT:
        raise KeyFileError(f"{source}: field format: expected {FORMAT!r}, "
                           f"found {doc.get('format')!r}")
    stations = doc.get("stations")
    if not isinstance(stations, dict):
        raise KeyFileError(f"{source}: field stations: expected an object of station id → keys")
    ring: dict[str, StationKeys] = {}
    for sid, entry in stations.items():
        where = f"{source}: stations.{sid}"
        if not _STATION.fullmatch(sid):
            raise KeyFileError(f"{where}: station id must match ^[A-Za-z0-9_-]{{1,32}}$")
        if not isinstance(entry, dict) or not isinstance(entry.get("keys"), dict):
            raise KeyFileError(f"{where}: expected {{'active': kid, 'keys': {{kid: hex}}}}")
        keys: dict[str, bytes] = {}
        for kid, hexkey in entry["keys"].items():
            if not kid or not isinstance(hexkey, str) or not _HEX64.fullmatch(hexkey):
                raise KeyFileError(f"{where}.keys.{kid}: expected 64 hex characters "
                                   "(a 256-bit key)")
            keys[kid] = bytes.fromhex(hexkey)
        active = entry.get("active")
        if active not in keys:
            raise KeyFileError(f"{where}.active: {active!r} is not one of the listed keys "
                               f"{sorted(keys)}")
        ring[sid] = StationKeys(active=active, keys=keys)
    return KeyRing(ring)


def load_key_file(path: Path) -> KeyRing:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"--keys {path}: cannot read ({exc.strerror})") from None
    return parse_key_file(text, str(path))


class KeyFile:
    """A key file that is reloaded when its modification time or size changes.

    A reload that fails (half-written file, bad edit) keeps the previous keys and logs why,
    so a botched rotation never locks every station out.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._ring = load_key_file(self.path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> KeyRing:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._ring = load_key_file(self.path)
                        log.info("key file %s reloaded (%d stations)", self.path,
                                 len(self._ring.stations))
                    except KeyFileError as exc:
                        log.error("key file reload failed, keeping the previous keys: %s", exc)
                    self._stamp = stamp
        return self._ring
