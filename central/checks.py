"""Message admission (pure, no database): topic, JSON, schema, identity, signature.

Order of checks, each with its rejection reason (docs/uplink.md §7):
bad_topic → unknown_station → malformed_json → schema → station_mismatch →
device_mismatch → unknown_kid → bad_signature. The replay check needs the database and
happens in `central.store`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from central import schemas, signing
from central.keys import KeyRing
from central.registry import Station
from central.topics import STREAM_OF_KIND, Topic, TopicError, parse_topic

MAX_PAYLOAD_BYTES = 1 << 20

# Field that carries the device time in a record's idempotency key, per kind.
KEY_TIME_FIELD = {"transaction": "start_time", "inventory": "device_time",
                  "delivery": "start_time", "event": "device_time", "state": "device_time"}


@dataclass(frozen=True)
class Inbound:
    """One MQTT message as received."""

    topic: str
    payload: bytes
    received_at: float
    retained: bool = False


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str
    station_id: str  # registered station it is attributed to, or ""


@dataclass(frozen=True)
class Verified:
    topic: Topic
    payload: dict[str, Any]
    digest: str  # SHA-256 of the canonical form (without sig)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


INT64 = 1 << 63


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: a literal no IEEE double holds
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    value = int(text)
    if not -INT64 <= value < INT64:  # no uplink field holds more; the database could not
        raise ValueError(f"integer {text[:40]} is out of the 64-bit range")
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, numbers a double or a 64-bit
    integer holds."""
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for k, v in pairs:
            if k in obj:
                raise ValueError(f"duplicate key {k[:40]!r}")
            obj[k] = v
        return obj

    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant,
                      parse_float=_finite_float, parse_int=_int64,
                      object_pairs_hook=no_duplicates)


def check_message(msg: Inbound, stations: Mapping[str, Station], keys: KeyRing) -> (
        Verified | Rejection):
    try:
        topic = parse_topic(msg.topic)
    except TopicError as exc:
        return Rejection("bad_topic", str(exc), "")
    station_id = topic.station_id
    if station_id not in stations:
        return Rejection("unknown_station", f"station {station_id} is not in the registry", "")
    if len(msg.payload) > MAX_PAYLOAD_BYTES:
        return Rejection("malformed_json", f"payload of {len(msg.payload)} bytes exceeds "
                         f"{MAX_PAYLOAD_BYTES}", station_id)
    try:
        payload = parse_json(msg.payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Rejection("malformed_json", str(exc)[:200], station_id)
    problem = schemas.first_error(topic.kind, payload)
    if problem is not None:
        return Rejection("schema", problem, station_id)
    try:
        canonical = signing.canonical_bytes(payload)
    except UnicodeEncodeError:  # "\ud800" parses to a lone surrogate, not UTF-8 encodable
        return Rejection("malformed_json", "string with a lone UTF-16 surrogate", station_id)
    if payload["station_id"] != station_id:
        return Rejection("station_mismatch", f"payload station_id {payload['station_id']!r} "
                         f"≠ topic station {station_id!r}", station_id)
    if topic.device is not None and payload["device"] != topic.device:
        return Rejection("device_mismatch", f"payload device {payload['device']!r} "
                         f"≠ topic device {topic.device!r}", station_id)
    key = keys.key(station_id, payload["kid"])
    if key is None:
        return Rejection("unknown_kid", f"no key {payload['kid']!r} for station {station_id}",
                         station_id)
    if not signing.verify(key, msg.topic, payload, canonical):
        return Rejection("bad_signature", f"HMAC does not match key {payload['kid']!r}",
                         station_id)
    return Verified(topic, payload, hashlib.sha256(canonical).hexdigest())


def expected_key(station_id: str, device: str, kind: str, record: Mapping[str, Any]) -> str:
    """The idempotency key a record of this kind must carry (docs/uplink.md §3)."""
    return (f"{station_id}/{device}/{STREAM_OF_KIND[kind]}/{record['seq']}/"
            f"{record[KEY_TIME_FIELD[kind]]}")


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 over the record's fields except collected_at, in sorted field order: equal
    for a true resend of a record. Values are schema-checked integers and pattern-checked
    strings, so joining their text with a unit separator is unambiguous."""
    text = "\x1f".join(f"{k}={record[k]}" for k in sorted(record) if k != "collected_at")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
