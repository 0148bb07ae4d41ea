"""What every attack of the SEC-1 phase shares: the attempt record, the attacker's view of
the run (broker, accounts, keys, platform API), an MQTT connection that reports what the
broker answered, and forged uplink messages.

An attack is a function `f(ctx) -> list[Attempt]` registered with `@attack`; it says what it
tried and what it saw on its side (the broker's answers, what the harness's monitor
received). What the platform made of a message is judged afterwards from the platform's own
evidence (acceptance/attacks/phase.py): its rejection sample, its ingest counters and the
data it serves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from acceptance.observe import PlatformClient

# Outcomes an attempt can have on the attacker's side.
REFUSED = "refused"  # the broker or API said no (CONNACK/SUBACK failure, 401/403)
NOT_DELIVERED = "not_delivered"  # the broker accepted the PUBLISH but let nobody receive it
DELIVERED = "delivered"  # the broker passed it on: up to the platform to refuse it
ALLOWED = "allowed"  # the broker or API did what the attacker asked: a finding
NOT_ATTEMPTED = "not_attempted"  # the harness lacks what the attempt needs (said in `note`)

TIMEOUT_S = 30.0  # a broker answer; generous, for a loaded machine (conditions, not speed)


@dataclass
class Attempt:
    """One thing the attacker tried and what came of it (security.json `attempts`)."""

    id: str
    actor: str  # intruder (station network), dishonest_station, api_client
    action: str  # what was tried, in one line
    target: str  # topic or API path
    layer: str  # broker | platform | api
    expected: list[str]  # what a correct SUT does (REFUSED, or the platform's reasons)
    outcome: str = NOT_ATTEMPTED
    payload_sha256: str | None = None  # for the platform's rejection sample
    marker_keys: list[str] = field(default_factory=list)  # forged records it carried
    station_id: str | None = None  # the station whose topic it went to
    note: str = ""
    # filled when judged at the platform (phase.py)
    platform_outcome: str | None = None  # rejected:<reason> | redelivered | stored | unseen
    passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """The attacker's means in this run."""

    broker_host: str
    broker_port: int
    accounts: dict[str, str] | None  # MQTT username → password; None: the broker has none
    keys: dict[str, tuple[str, bytes]]  # station → (active kid, key): a key holder's means
    station_ids: list[str]
    api: PlatformClient  # the harness's observing client
    marker_time: float  # device time for forged records: before the world began
    read_api: PlatformClient | None = None  # with a read-only token, if the harness has one
    tax_api: PlatformClient | None = None  # with a tax bureau's token, if the harness has one
    captured: dict[str, bytes] = field(default_factory=dict)  # topic → an honest message
    # the harness's own subscriber to fsx/v1/# (None: it could not subscribe): what it
    # receives is what the broker let through
    monitor: MqttSession | None = None
    marker_seq: int = 65000
    # the broker speaks TLS (--mqtt-tls): every connection of the attacker verifies it too,
    # since the attacks are about accounts and signatures, not about the transport
    tls: ssl.SSLContext | None = None  # FIFO sequence numbers of forged records, counted up

    def next_marker(self) -> tuple[int, float]:
        """(seq, device time) of a new forged record, unique in the run."""
        self.marker_seq += 1
        return self.marker_seq, self.marker_time - 120.0 * (self.marker_seq - 65000)

    @property
    def a(self) -> str:
        return self.station_ids[0]

    @property
    def b(self) -> str:
        return self.station_ids[1] if len(self.station_ids) > 1 else self.station_ids[0]

    def credentials(self, station: str | None) -> tuple[str, str] | None:
        """A station collector's account (None: the station's; anonymous when no accounts)."""
        if self.accounts is None or station is None:
            return None
        user = f"fc-col-{station}"
        return (user, self.accounts[user]) if user in self.accounts else None

    def session(self, station: str | None = None, client_id: str = "") -> MqttSession:
        """A connection as `station`'s collector (anonymous when the broker has no accounts
        or station is None)."""
        return MqttSession(self.broker_host, self.broker_port, self.credentials(station),
                           client_id or f"fc-attacker-{secrets.token_hex(4)}", self.tls)


AttackFn = Callable[[Context], list[Attempt]]
ATTACKS: list[AttackFn] = []


def attack(fn: AttackFn) -> AttackFn:
    """Register an attack of the phase (run in registration order)."""
    ATTACKS.append(fn)
    return fn


class MqttSession:
    """One MQTT 3.1.1 connection of the attacker, reporting what the broker answered."""

    def __init__(self, host: str, port: int, credentials: tuple[str, str] | None,
                 client_id: str, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=True, reconnect_on_failure=False)
        if credentials:
            self.client.username_pw_set(*credentials)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.connack: int | None = None  # 0 = accepted
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._subacks: dict[int, tuple[threading.Event, list[int]]] = {}
        self._lock = threading.Lock()
        self.received: list[tuple[str, bytes]] = []
        self._arrived = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self._closed.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = int(reason.value)
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list, _p: Any) -> None:
        with self._lock:
            event, codes = self._subacks.setdefault(mid, (threading.Event(), []))
        codes.extend(int(r.value) for r in reasons)
        event.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._arrived:
            self.received.append((msg.topic, bytes(msg.payload)))
            self._arrived.notify_all()

    def connect(self) -> bool:
        """True when the broker accepted the connection; `connack` says what it answered
        (None: it closed the socket without a CONNACK)."""
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError:
            return False
        self.client.loop_start()
        deadline = time.monotonic() + TIMEOUT_S
        while not (self._connected.is_set() or self._closed.is_set()) \
                and time.monotonic() < deadline:
            self._connected.wait(0.1)
        return self.connack == 0

    def subscribe(self, topic: str) -> int | None:
        """The SUBACK code (0–2 granted QoS, 0x80 refused; None: no answer)."""
        result, mid = self.client.subscribe(topic, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            return None
        with self._lock:
            event, codes = self._subacks.setdefault(mid, (threading.Event(), []))
        return codes[0] if event.wait(TIMEOUT_S) and codes else None

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """QoS 1 publish; True when the broker acknowledged it (which, in MQTT 3.1.1, it
        does for a publish its ACL drops too)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(TIMEOUT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def wait_for(self, payload: bytes, timeout: float = TIMEOUT_S) -> bool:
        """Wait until a message with exactly this payload has arrived."""
        return self.wait_until(lambda got: any(p == payload for _, p in got), timeout)

    def saw(self, payload: bytes) -> bool:
        with self._arrived:
            return any(p == payload for _, p in self.received)

    def count(self) -> int:
        with self._arrived:
            return len(self.received)

    def messages(self) -> list[tuple[str, bytes]]:
        with self._arrived:
            return list(self.received)

    def wait_until(self, predicate: Callable[[list[tuple[str, bytes]]], bool],
                   timeout: float = TIMEOUT_S) -> bool:
        """Wait until `predicate(messages received so far)` holds."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate(self.received), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- forged uplink messages (docs/uplink.md §2, §3) ----------------------------------------

def canonical(payload: dict[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def signed(topic: str, payload: dict[str, Any], kid: str, key: bytes) -> bytes:
    """The payload with `kid` and an HMAC-SHA256 `sig`, as published bytes."""
    body = {**payload, "kid": kid}
    body["sig"] = hmac.new(key, topic.encode() + b"\n" + canonical(body),
                           hashlib.sha256).hexdigest()
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def data_topic(station: str, device: str = "D1", kind: str = "transaction") -> str:
    return f"fsx/v1/{station}/{device}/evt/{kind}"


def forged_transaction(station: str, seq: int, device_time: float, msg_seq: int,
                       sent_at: float) -> dict[str, Any]:
    """An unsigned transaction message with one plausible fill that never happened (its
    device time lies before the world began, so it cannot be an honest record)."""
    t = int(device_time)
    record = {"key": f"{station}/D1/transactions/{seq}/{t}", "seq": seq,
              "collected_at": round(sent_at, 3), "nozzle": 1, "grade": "92", "tank": 1,
              "start_time": t, "end_time": t + 60, "volume_ml": 40_000,
              "amount_fen": 31_200, "unit_price_fen": 780, "volume_total_ml": 40_000,
              "amount_total_fen": 31_200}
    return {"v": 1, "type": "transaction", "station_id": station, "msg_seq": msg_seq,
            "sent_at": round(sent_at, 3), "device": "D1", "records": [record]}


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
