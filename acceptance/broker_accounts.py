"""Per-run MQTT accounts for the managed Mosquitto (docs/uplink.md §1): who may connect and
which topics each account may write or read.

One account per station (`fc-col-<station_id>`), the platform (`fc-platform`) and the
harness's read-only monitor (`fc-harness`), each with a random password. The passwords go
to a private JSON credentials file (format forecourt-mqtt-credentials/1) that the collectors
and the platform read; Mosquitto gets a hashed password file and an ACL file made from them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "forecourt-mqtt-credentials/1"
CREDENTIALS_FILE = "mqtt-credentials.json"
PLATFORM = "fc-platform"
HARNESS = "fc-harness"
_STATION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # docs/uplink.md §1: safe in topics and ACLs


def collector_account(station_id: str) -> str:
    return f"fc-col-{station_id}"


@dataclass(frozen=True)
class BrokerAccounts:
    stations: tuple[str, ...]
    passwords: dict[str, str] = field(repr=False)  # username → password

    @classmethod
    def generate(cls, station_ids: Iterable[str]) -> BrokerAccounts:
        stations = tuple(station_ids)
        bad = [s for s in stations if not _STATION_RE.fullmatch(s)]
        if bad:
            raise ValueError(f"station ids {bad!r}: expected ^[A-Za-z0-9_-]{{1,32}}$ "
                             f"(they name MQTT accounts and ACL topics)")
        names = [*(collector_account(s) for s in stations), PLATFORM, HARNESS]
        return cls(stations, {n: secrets.token_urlsafe(24) for n in names})

    def acl(self) -> str:
        """Mosquitto ACL file: each account exactly its topics, nothing else."""
        out = []
        for sid in self.stations:
            out += [f"user {collector_account(sid)}",
                    f"topic write fsx/v1/{sid}/+/evt/+",
                    f"topic write fsx/v1/{sid}/status/#",  # heartbeats, online and last will
                    f"topic read fsx/v1/{sid}/ack", ""]
        out += [f"user {PLATFORM}", "topic read fsx/v1/+/+/evt/+", "topic read fsx/v1/+/status/#",
                "topic write fsx/v1/+/ack", "",
                f"user {HARNESS}", "topic read fsx/v1/#", ""]
        return "\n".join(out)

    def write_credentials(self, path: Path) -> Path:
        """The credentials file, readable by its owner only."""
        _write_private(path, json.dumps({"format": FORMAT, "accounts": self.passwords},
                                        indent=1) + "\n")
        return path

    def write_mosquitto_files(self, directory: Path) -> tuple[Path, Path]:
        """(password file hashed by mosquitto_passwd, ACL file) in `directory`."""
        passwd, acl = directory / "passwd", directory / "acl"
        _write_private(passwd, "".join(f"{u}:{p}\n" for u, p in self.passwords.items()))
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        try:  # -U hashes every plain-text line of the file in place, in one call
            subprocess.run([tool, "-U", str(passwd)], check=True, capture_output=True,
                           text=True, timeout=60)
        except FileNotFoundError:
            raise FileNotFoundError(f"{tool}: not installed (Debian package `mosquitto`); "
                                    f"needed to hash the broker's password file") from None
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{tool} -U {passwd} failed with code {exc.returncode}: "
                               f"{exc.stderr.strip()}") from None
        _write_private(acl, self.acl())
        return passwd, acl


def load_credentials(path: Path) -> dict[str, str]:
    """Username → password from a credentials file; ValueError names the file and field."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read MQTT credentials: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: format: expected {FORMAT!r}")
    accounts = doc.get("accounts")
    if not isinstance(accounts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in accounts.items()):
        raise ValueError(f"{path}: accounts: expected an object of username → password")
    return dict(accounts)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
