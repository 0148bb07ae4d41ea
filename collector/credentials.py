"""MQTT account credentials for the uplink (docs/uplink.md §1): the broker URL's
`user:password@`, or a credentials file (format forecourt-mqtt-credentials/1) in which each
station uses the account `fc-col-<station_id>`."""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "forecourt-mqtt-credentials/1"


def station_account(station_id: str) -> str:
    return f"fc-col-{station_id}"


def load_mqtt_password(path: Path, account: str) -> str:
    """The password of `account`; ValueError naming the file and field otherwise."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--mqtt-credentials {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"--mqtt-credentials {path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path}: format: expected {FORMAT!r}, found {found!r}")
    accounts = doc.get("accounts")
    if not isinstance(accounts, dict):
        raise ValueError(f"{path}: accounts: expected an object of username → password")
    password = accounts.get(account)
    if not isinstance(password, str) or not password:
        raise ValueError(f"{path}: accounts.{account}: expected the password of MQTT account "
                         f"{account!r} (a non-empty string), found "
                         f"{'no such account' if password is None else type(password).__name__}")
    return password
