"""Attacks on the platform's admission (报文伪造、篡改、重放): messages a station's account may
publish under its own topics, which the platform must refuse — without a valid signature,
tampered after signing, replayed, or not even JSON. Each forged fill is a record that never
happened (acceptance/attacks/base.py `forged_transaction`): SEC-1 fails if any of them is
ever served as data.
"""

from __future__ import annotations

import json
import secrets
import time

from acceptance.attacks.base import (
    DELIVERED,
    Attempt,
    Context,
    attack,
    data_topic,
    forged_transaction,
    sha256,
    signed,
)

REJECTED = ["rejected"]  # any documented reason but internal_error (phase.py)
REPLAY_HANDLED = ["redelivered", "rejected:replay"]


def _fill(ctx: Context, station: str, msg_seq: int = 0) -> tuple[dict, str]:
    seq, t = ctx.next_marker()
    msg = forged_transaction(station, seq, t, msg_seq or 10**12 + seq, time.time())
    return msg, msg["records"][0]["key"]


def _publish(ctx: Context, attempts: list[Attempt], payloads: list[bytes],
             station: str) -> list[Attempt]:
    """Publish each payload on its attempt's topic as `station`'s collector."""
    s = ctx.session(station)
    try:
        if not s.connect():
            for a in attempts:
                a.note = f"the station's account was refused (CONNACK {s.connack})"
            return attempts
        for a, payload in zip(attempts, payloads, strict=True):
            a.payload_sha256 = sha256(payload)
            if s.publish(a.target, payload):
                a.outcome = DELIVERED
            else:
                a.note = "the broker did not acknowledge it"
    finally:
        s.close()
    return attempts


def _attempt(ident: str, action: str, topic: str, station: str, expected: list[str],
             marker: str | None = None) -> Attempt:
    return Attempt(ident, "dishonest_station", action, topic, "platform", expected,
                   marker_keys=[marker] if marker else [], station_id=station)


@attack
def forged_signatures(ctx: Context) -> list[Attempt]:
    """Fills without a signature, with a wrong key, tampered after signing, and signed under
    a key id the platform never issued."""
    topic, (kid, key) = data_topic(ctx.a), ctx.keys[ctx.a]
    attempts, payloads = [], []

    msg, marker = _fill(ctx, ctx.a)
    attempts.append(_attempt("unsigned", "a fill without kid and sig", topic, ctx.a, REJECTED,
                             marker))
    payloads.append(json.dumps(msg).encode())

    msg, marker = _fill(ctx, ctx.a)
    attempts.append(_attempt("wrong-key", "a fill signed with a key that is not the "
                             "station's", topic, ctx.a, REJECTED, marker))
    payloads.append(signed(topic, msg, kid, secrets.token_bytes(32)))

    msg, marker = _fill(ctx, ctx.a)
    body = json.loads(signed(topic, msg, kid, key))
    body["records"][0]["volume_ml"] += 10_000  # 10 L more after signing
    attempts.append(_attempt("tampered", "a correctly signed fill whose volume was raised "
                             "after signing", topic, ctx.a, REJECTED, marker))
    payloads.append(json.dumps(body, separators=(",", ":")).encode())

    msg, marker = _fill(ctx, ctx.a)
    attempts.append(_attempt("unknown-key-id", "a fill signed under a key id never issued",
                             topic, ctx.a, REJECTED, marker))
    payloads.append(signed(topic, msg, "forged-kid", secrets.token_bytes(32)))

    big = b'{"v":1,"pad":"' + b"x" * (2 << 20) + b'"}'
    attempts.append(_attempt("oversized", "a 2 MiB payload", topic, ctx.a, REJECTED))
    payloads.append(big)
    return _publish(ctx, attempts, payloads, ctx.a)


@attack
def replays(ctx: Context) -> list[Attempt]:
    """An honest message captured on the wire sent again unchanged, and a key holder's new
    content under a message number the platform has already processed."""
    captured = [(t, p) for t, p in ctx.captured.items() if f"/{ctx.a}/" in t]
    identical = _attempt("replay-identical", "an honest message captured on the wire, sent "
                         "again unchanged", captured[0][0] if captured else "-", ctx.a,
                         REPLAY_HANDLED)
    topic, (kid, key) = data_topic(ctx.a), ctx.keys[ctx.a]
    reused = _attempt("replay-reused-msg-seq", "a signed fill under a msg_seq the platform "
                      "already processed", topic, ctx.a, ["rejected:replay"])
    if not captured:
        for a in (identical, reused):
            a.note = "the harness captured no honest message of the station to replay"
        return [identical, reused]
    honest = json.loads(captured[0][1])
    msg, marker = _fill(ctx, ctx.a, msg_seq=int(honest["msg_seq"]))
    reused.marker_keys = [marker]
    return _publish(ctx, [identical, reused], [captured[0][1], signed(topic, msg, kid, key)],
                    ctx.a)


@attack
def other_station_message(ctx: Context) -> list[Attempt]:
    """Station B's account publishes station A's correctly signed fill under B's own topic
    (the broker allows B's topic; only the signature and the station check stop it)."""
    topic = data_topic(ctx.b)
    kid, key = ctx.keys[ctx.a]
    msg, marker = _fill(ctx, ctx.a)
    a = _attempt("other-station-message", f"{ctx.a}'s signed fill published by {ctx.b} under "
                 f"{ctx.b}'s topic", topic, ctx.b, REJECTED, marker)
    if ctx.a == ctx.b:
        a.note = "the run has one station"
        return [a]
    return _publish(ctx, [a], [signed(data_topic(ctx.a), msg, kid, key)], ctx.b)
