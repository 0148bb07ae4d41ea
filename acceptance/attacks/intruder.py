"""Attacks of an intruder on the station network (站端网络入侵者) and of a station acting
outside its own namespace, at the broker: what the broker's accounts and ACL must refuse.

A refused PUBLISH is silent in MQTT 3.1.1 (the broker acknowledges and drops it), so a
forbidden publish is followed, on the same connection, by an allowed *sentinel*; MQTT keeps
one publisher's messages in order, so once the harness's monitor (subscribed to fsx/v1/#)
has the sentinel, the forbidden message would have arrived before it had the broker passed
it on. Each sentinel is itself a garbage message the platform must refuse.
"""

from __future__ import annotations

import json
import secrets
import time

from acceptance.attacks.base import (
    ALLOWED,
    DELIVERED,
    NOT_ATTEMPTED,
    NOT_DELIVERED,
    REFUSED,
    Attempt,
    Context,
    MqttSession,
    attack,
    data_topic,
    forged_transaction,
    sha256,
    signed,
)

BROKER_REFUSES = [REFUSED, NOT_DELIVERED]
ANY_REJECTION = ["rejected"]  # any documented reason but internal_error (phase.py)


def _anonymous(ctx: Context, client_id: str = "") -> MqttSession:
    return MqttSession(ctx.broker_host, ctx.broker_port, None,
                       client_id or f"fc-intruder-{secrets.token_hex(4)}")


@attack
def anonymous_subscribe(ctx: Context) -> list[Attempt]:
    a = Attempt("anonymous-subscribe-all", "intruder", "subscribe to every station's messages "
                "without an account", "fsx/v1/#", "broker", [REFUSED])
    s = _anonymous(ctx)
    try:
        if not s.connect():
            a.outcome, a.note = REFUSED, f"connection refused (CONNACK {s.connack})"
        else:
            code = s.subscribe("fsx/v1/#")
            a.outcome = REFUSED if code is None or code >= 0x80 else ALLOWED
            a.note = f"connected anonymously; SUBACK {code}"
    finally:
        s.close()
    return [a]


@attack
def anonymous_publish(ctx: Context) -> list[Attempt]:
    seq, t = ctx.next_marker()
    topic = data_topic(ctx.a)
    payload = json.dumps(forged_transaction(ctx.a, seq, t, 1, time.time())).encode()
    a = Attempt("anonymous-publish", "intruder", "publish a fill without an account", topic,
                "broker", [REFUSED], payload_sha256=sha256(payload),
                marker_keys=[f"{ctx.a}/D1/transactions/{seq}/{int(t)}"], station_id=ctx.a)
    s = _anonymous(ctx)
    try:
        if not s.connect():
            a.outcome, a.note = REFUSED, f"connection refused (CONNACK {s.connack})"
        else:
            a.outcome = ALLOWED if s.publish(topic, payload) else REFUSED
            a.note = "connected anonymously and published"
    finally:
        s.close()
    return [a]


def _forbidden_then_sentinel(ctx: Context, s: MqttSession, forbidden: Attempt, payload: bytes,
                             sentinel: Attempt, sentinel_payload: bytes) -> None:
    if not s.connect():
        forbidden.note = sentinel.note = f"{s.connack}: the station's account was refused"
        return
    if not s.publish(forbidden.target, payload):
        forbidden.outcome, forbidden.note = REFUSED, "the broker did not acknowledge it"
    sentinel.outcome = DELIVERED if s.publish(sentinel.target, sentinel_payload) \
        else NOT_ATTEMPTED
    if forbidden.outcome == REFUSED:
        return
    if ctx.monitor is None:
        forbidden.note = "the harness has no subscriber on this broker to see what it passes on"
    elif not ctx.monitor.wait_for(sentinel_payload):
        forbidden.note = "the harness's monitor did not receive the sentinel"
    else:
        forbidden.outcome = DELIVERED if ctx.monitor.saw(payload) else NOT_DELIVERED


@attack
def cross_station_publish(ctx: Context) -> list[Attempt]:
    """Station A's account publishes A's signed fill under station B's topic."""
    seq, t = ctx.next_marker()
    topic = data_topic(ctx.b)
    kid, key = ctx.keys[ctx.a]
    payload = signed(topic, forged_transaction(ctx.a, seq, t, 1, time.time()), kid, key)
    forbidden = Attempt("publish-as-other-station", "dishonest_station",
                        f"{ctx.a}'s account publishes under {ctx.b}'s topic", topic, "broker",
                        BROKER_REFUSES, payload_sha256=sha256(payload),
                        marker_keys=[f"{ctx.a}/D1/transactions/{seq}/{int(t)}"],
                        station_id=ctx.b)
    garbage = b"\xff\xfe not UTF-8 " + secrets.token_hex(8).encode()
    sentinel = Attempt("non-utf8", "dishonest_station", "a payload that is not UTF-8",
                       data_topic(ctx.a), "platform", ANY_REJECTION,
                       payload_sha256=sha256(garbage), station_id=ctx.a)
    if ctx.a == ctx.b:
        forbidden.note = "the run has one station"
        return [forbidden]
    s = ctx.session(ctx.a)
    try:
        _forbidden_then_sentinel(ctx, s, forbidden, payload, sentinel, garbage)
    finally:
        s.close()
    return [forbidden, sentinel]


@attack
def forged_ack(ctx: Context) -> list[Attempt]:
    """Station B's account publishes an acknowledgement to station A's collector (which
    would delete records the platform never stored) and reads A's acknowledgements."""
    topic = f"fsx/v1/{ctx.a}/ack"
    ack = {"v": 1, "type": "ack", "station_id": ctx.a, "msg_seq": 1, "sent_at": time.time(),
           "acked_msg_seq": 1, "accepted": [], "duplicates": [], "rejected": []}
    payload = signed(topic, ack, ctx.keys[ctx.a][0], secrets.token_bytes(32))
    forbidden = Attempt("forge-ack", "dishonest_station", f"{ctx.b}'s account publishes an "
                        f"acknowledgement to {ctx.a}'s collector", topic, "broker",
                        BROKER_REFUSES, payload_sha256=sha256(payload), station_id=ctx.a)
    nested = b'{"v":1,"records":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    sentinel = Attempt("deeply-nested", "dishonest_station", "a payload nested 50,000 deep",
                       data_topic(ctx.b), "platform", ANY_REJECTION,
                       payload_sha256=sha256(nested), station_id=ctx.b)
    read = Attempt("read-other-station-acks", "dishonest_station", f"{ctx.b}'s account "
                   f"subscribes to {ctx.a}'s acknowledgements", topic, "broker", [REFUSED],
                   station_id=ctx.a)
    if ctx.a == ctx.b:
        forbidden.note = read.note = "the run has one station"
        return [forbidden, read]
    s = ctx.session(ctx.b)
    try:
        _forbidden_then_sentinel(ctx, s, forbidden, payload, sentinel, nested)
        if s.connack == 0:
            code = s.subscribe(topic)
            read.outcome = REFUSED if code is None or code >= 0x80 else ALLOWED
            read.note = f"SUBACK {code}"
    finally:
        s.close()
    return [forbidden, sentinel, read]


@attack
def anonymous_platform_session(ctx: Context) -> list[Attempt]:
    """Last: where the broker allows it, it takes the platform's session and ingest stops
    (which the honest-ingest check of phase.py then shows)."""
    a = Attempt("take-over-platform-session", "intruder", "connect with the platform's client "
                "id, which would take over its session", "client id fc-platform", "broker",
                [REFUSED])
    s = _anonymous(ctx, client_id="fc-platform")
    try:
        if s.connect():
            a.outcome, a.note = ALLOWED, "connected anonymously as fc-platform"
        else:
            a.outcome, a.note = REFUSED, f"connection refused (CONNACK {s.connack})"
    finally:
        s.close()
    return [a]
