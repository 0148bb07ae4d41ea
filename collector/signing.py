"""Canonical form and HMAC-SHA256 signature of uplink messages (docs/uplink.md §2).

canonical = json.dumps(payload without "sig", sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False).encode("utf-8")
sig       = hex(HMAC-SHA256(key, topic_utf8 + b"\\n" + canonical))

The topic is inside the MAC so a message cannot be replayed under another station's topic.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from collector.keys import StationKeys


def canonical_text(value: object) -> str:
    """The canonical JSON text of a value (sorted keys at every level, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(payload: dict) -> bytes:
    return canonical_text({k: v for k, v in payload.items() if k != "sig"}).encode("utf-8")


def signature(topic: str, payload: dict, key: bytes) -> str:
    return hmac.new(key, topic.encode("utf-8") + b"\n" + canonical_bytes(payload),
                    hashlib.sha256).hexdigest()


def sign(topic: str, payload: dict, keys: StationKeys) -> bytes:
    """Add `kid` and `sig` to `payload` (in place) and return the bytes to publish."""
    payload["kid"] = keys.active
    payload.pop("sig", None)
    return _signed(topic, canonical_bytes(payload), payload, keys)


def sign_records(topic: str, payload: dict, records: list[str], keys: StationKeys) -> bytes:
    """sign() of `payload` with `records` as its "records": each already its canonical
    text (the spool keeps them so), spliced in rather than parsed and encoded again. The
    bytes are those sign() gives with the parsed records; `payload` gets no "records"."""
    payload["kid"] = keys.active
    payload.pop("sig", None)
    payload.pop("records", None)
    # canonical order: the keys sorting before "records", "records", the keys after it
    before = canonical_text({k: v for k, v in payload.items() if k < "records"})[1:-1]
    after = canonical_text({k: v for k, v in payload.items() if k > "records"})[1:-1]
    parts = [before, '"records":[' + ",".join(records) + "]", after]
    body = ("{" + ",".join(p for p in parts if p) + "}").encode("utf-8")
    return _signed(topic, body, payload, keys)


def _signed(topic: str, body: bytes, payload: dict, keys: StationKeys) -> bytes:
    payload["sig"] = hmac.new(keys.active_key, topic.encode("utf-8") + b"\n" + body,
                              hashlib.sha256).hexdigest()
    # Publish the canonical form plus sig: compact, and byte-identical on every resend.
    return body[:-1] + b',"sig":"' + payload["sig"].encode("ascii") + b'"}'


def verify(topic: str, payload: object, keys: StationKeys) -> bool:
    """True when `payload` carries a valid signature by one of the station's keys."""
    if not isinstance(payload, dict):
        return False
    kid, sig = payload.get("kid"), payload.get("sig")
    if not isinstance(kid, str) or not isinstance(sig, str) or kid not in keys.keys:
        return False
    expected = signature(topic, payload, keys.keys[kid])
    return hmac.compare_digest(expected, sig)
