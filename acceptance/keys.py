"""Per-station HMAC key files for the uplink (format in docs/uplink.md §2)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def make_key_file(station_ids: Iterable[str], path: Path, kid: str = "k1") -> Path:
    """Write a fresh random key per station; the file is readable by its owner only."""
    doc = {
        "format": "forecourt-keys/1",
        "stations": {sid: {"active": kid, "keys": {kid: secrets.token_hex(32)}}
                     for sid in station_ids},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    return path
