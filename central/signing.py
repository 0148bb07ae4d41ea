"""Canonical form and HMAC-SHA256 message signatures (docs/uplink.md §2).

    canonical = json.dumps(payload without "sig", sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    sig = HMAC-SHA256(key, topic.encode("utf-8") + b"\\n" + canonical).hexdigest()
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def signature(key: bytes, topic: str, payload: dict[str, Any]) -> str:
    return hmac.new(key, topic.encode("utf-8") + b"\n" + canonical_bytes(payload),
                    hashlib.sha256).hexdigest()


def verify(key: bytes, topic: str, payload: dict[str, Any],
           canonical: bytes | None = None) -> bool:
    """True if payload["sig"] is the signature of (topic, payload); constant-time compare.

    `canonical` may pass canonical_bytes(payload) when the caller has it already.
    """
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    body = canonical if canonical is not None else canonical_bytes(payload)
    want = hmac.new(key, topic.encode("utf-8") + b"\n" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, sig)


def sign(key: bytes, kid: str, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of payload with `kid` set and `sig` computed (used for the platform's acks)."""
    signed = {k: v for k, v in payload.items() if k != "sig"}
    signed["kid"] = kid
    signed["sig"] = signature(key, topic, signed)
    return signed
