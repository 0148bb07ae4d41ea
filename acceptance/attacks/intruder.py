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
                       client_id or f"fc-intruder-{secrets.token_hex(4)}", ctx.tls)


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


def _forbidden_then_sentinel(ctx: Context, station: str, forbidden: Attempt, payload: bytes,
                             sentinel: Attempt, sentinel_payload: bytes) -> None:
    """Publish where the ACL forbids, then the sentinel on a new connection (Mosquitto 2
    closes a connection after a denied publish): the broker has dealt with the first before
    the second connection exists."""
    s = ctx.session(station)
    try:
        if not s.connect():
            forbidden.note = sentinel.note = (f"the station's account was refused "
                                              f"(CONNACK {s.connack})")
            return
        s.publish(forbidden.target, payload)
    finally:
        s.close()
    s = ctx.session(station)
    try:
        if s.connect() and s.publish(sentinel.target, sentinel_payload):
            sentinel.outcome = DELIVERED
    finally:
        s.close()
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
    _forbidden_then_sentinel(ctx, ctx.a, forbidden, payload, sentinel, garbage)
    return [forbidden, sentinel]


@attack
def forged_ack(ctx: Context) -> list[Attempt]:
    """Station B's account publishes an acknowledgement to station A's collector (which
    would delete records the platform never stored)."""
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
    if ctx.a == ctx.b:
        forbidden.note = "the run has one station"
        return [forbidden]
    _forbidden_then_sentinel(ctx, ctx.b, forbidden, payload, sentinel, nested)
    return [forbidden, sentinel]


@attack
def read_other_station(ctx: Context) -> list[Attempt]:
    """Station B's account subscribes to everything of station A. Mosquitto grants a
    subscription its ACL denies and then delivers nothing through it, so the attempt is
    judged by delivery: once the harness's monitor has received two of A's messages sent
    after B subscribed, B must have received none."""
    topic = f"fsx/v1/{ctx.a}/#"
    a = Attempt("read-other-station", "dishonest_station", f"{ctx.b}'s account subscribes to "
                f"{ctx.a}'s messages and acknowledgements", topic, "broker", BROKER_REFUSES,
                station_id=ctx.a)
    if ctx.a == ctx.b:
        a.note = "the run has one station"
        return [a]
    monitor = ctx.monitor
    s = ctx.session(ctx.b)
    try:
        if not s.connect():
            a.note = f"the station's account was refused (CONNACK {s.connack})"
            return [a]
        code = s.subscribe(topic)
        if code is None or code >= 0x80:
            a.outcome, a.note = REFUSED, f"SUBACK {code}"
            return [a]
        if monitor is None:
            a.note = f"SUBACK {code}; the harness has no subscriber to compare with"
            return [a]
        mark = monitor.count()
        prefix = f"fsx/v1/{ctx.a}/"
        if not monitor.wait_until(lambda got: sum(t.startswith(prefix)
                                                   for t, _ in got[mark:]) >= 2):
            a.note = f"SUBACK {code}; the monitor saw no message of {ctx.a} to compare with"
            return [a]
        seen = sum(t.startswith(prefix) for t, _ in s.messages())
        a.outcome = DELIVERED if seen else NOT_DELIVERED
        a.note = f"SUBACK {code}; received {seen} of {ctx.a}'s messages"
    finally:
        s.close()
    return [a]


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
