"""MQTT ingest through a real Mosquitto broker: stored exactly once, duplicates acked, bad
messages rejected with their reason while ingest goes on, the persistent session across a
platform restart, and the `forecourt platform` process end to end (SIGTERM stops it)."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_central_support import (
    KEYS,
    STATIONS,
    T0,
    api_get,
    data_message,
    fresh_database,
    heartbeat,
    inventory,
    online,
    ready_database,
    ready_line,
    start_platform_process,
    txn,
    verify_ack,
    write_key_file,
)
from waiting import wait_for

from acceptance.broker import EmbeddedBroker, Mosquitto
from central.db import Database
from central.ingest import IngestService
from central.keys import KeyFile

pytestmark = pytest.mark.mosquitto
TIMEOUT = 15.0





@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    try:
        b = Mosquitto().start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield b
    finally:
        b.stop()


class Station:
    """A stand-in collector: publishes signed messages (QoS 1) and collects the acks."""

    def __init__(self, broker: Mosquitto | EmbeddedBroker) -> None:
        self.acks: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-col-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("fsx/v1/+/ack", qos=1)
        assert subscribed.wait(TIMEOUT)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic_payload: tuple[str, bytes], retain: bool = False) -> None:
        info = self.client.publish(*topic_payload, qos=1, retain=retain)
        info.wait_for_publish(TIMEOUT)

    def ack_for(self, station: str, msg_seq: int) -> dict:
        def find() -> dict | None:
            with self._lock:
                for topic, raw in self.acks:
                    doc = json.loads(raw)
                    if doc["station_id"] == station and doc["acked_msg_seq"] == msg_seq:
                        return verify_ack(topic, raw, KEYS[station]["k1"])
            return None
        wait_for(lambda: find() is not None, what=f"ack of {station} msg {msg_seq}")
        return find()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Platform:
    def __init__(self, db_url: str, broker: Mosquitto | EmbeddedBroker, keys: Path,
                 client_id: str, replay_window_s: float = 600.0,
                 quiet_reconnect_s: float | None = None) -> None:
        self.db = Database(db_url)
        self.service = IngestService(self.db, broker.url,
                                     {s.station_id: s for s in STATIONS}, KeyFile(keys),
                                     client_id=client_id, replay_window_s=replay_window_s,
                                     quiet_reconnect_s=quiet_reconnect_s)
        self.service.start()
        assert self.service.wait_subscribed(TIMEOUT), "platform did not subscribe"

    def scalar(self, sql: str, params: tuple = ()) -> int:
        with self.db.borrow() as conn:
            return int(conn.query_one(sql, params)[0])

    def counter(self, name: str, station: str | None = None) -> int:
        if station is None:
            return self.scalar("SELECT COALESCE(SUM(value), 0) FROM ingest_counters "
                               "WHERE name = ?", (name,))
        return self.scalar("SELECT COALESCE(SUM(value), 0) FROM ingest_counters "
                           "WHERE name = ? AND station_id = ?", (name, station))

    def stop(self) -> None:
        self.service.stop()
        self.db.close()


@pytest.fixture
def setup(db_url: str, broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[Platform, Station]]:
    platform = Platform(db_url, broker, write_key_file(tmp_path / "keys.json"),
                        f"fc-platform-{uuid.uuid4().hex[:6]}")
    station = Station(broker)
    try:
        yield platform, station
    finally:
        station.close()
        platform.stop()


def test_valid_messages_are_stored_once_and_resends_acked(setup: tuple[Platform,
                                                                       Station]) -> None:
    platform, col = setup
    now = time.time()
    recs = [txn("UMB01", "D1", i, T0 + 300 * i, total_before=40_000 * i) for i in range(5)]
    col.publish(data_message("UMB01", "D1", "transaction", recs[:3], 1, now))
    col.publish(data_message("UMB01", "D1", "transaction", recs[3:], 2, now))
    col.publish(data_message("UMB01", "G", "inventory", [inventory("UMB01", 0, T0)], 3, now))
    assert col.ack_for("UMB01", 1)["accepted"] == [r["key"] for r in recs[:3]]
    assert col.ack_for("UMB01", 2)["accepted"] == [r["key"] for r in recs[3:]]
    assert col.ack_for("UMB01", 3)["accepted"] == [f"UMB01/G/inventory/0/{T0}"]
    # A resend in a new message, and the very same message again (broker redelivery).
    col.publish(data_message("UMB01", "D1", "transaction", recs[1:4], 4, now))
    again = data_message("UMB01", "D1", "transaction", recs[:3], 1, now)
    col.publish(again)
    ack4 = col.ack_for("UMB01", 4)
    assert ack4["duplicates"] == [r["key"] for r in recs[1:4]] and not ack4["accepted"]
    wait_for(lambda: platform.counter("messages:redelivered") == 1, what="redelivery")
    assert platform.scalar("SELECT COUNT(*) FROM transactions") == 5
    assert platform.scalar("SELECT COUNT(*) FROM inventory") == 1
    assert platform.counter("records:accepted") == 6
    assert platform.counter("records:duplicates") == 6
    # Status messages reach the registry.
    col.publish(online("UMB02", 1, now, True))
    col.publish(heartbeat("UMB02", 2, now, backlog=9))
    wait_for(lambda: platform.scalar("SELECT COUNT(*) FROM device_status "
                                     "WHERE station_id = 'UMB02'") == 3, what="heartbeat")
    assert platform.scalar("SELECT backlog FROM collector_status") == 9


def test_bad_messages_are_rejected_by_reason_and_ingest_goes_on(
        setup: tuple[Platform, Station]) -> None:
    platform, col = setup
    now = time.time()
    rec = inventory("UMB01", 1, T0)
    forged_topic, forged = data_message("UMB01", "G", "inventory", [rec], 1, now)
    doc = json.loads(forged)
    doc["records"][0]["volume_20c_ml"] += 1  # tampered after signing
    old = data_message("UMB01", "G", "inventory", [inventory("UMB01", 2, T0 + 900)], 2,
                       now - 1000)
    bad = {
        "bad_signature": (forged_topic, json.dumps(doc).encode()),
        "unknown_kid": data_message("UMB01", "G", "inventory", [rec], 3, now, kid="k7"),
        "station_mismatch": data_message("UMB01", "G", "inventory", [rec], 4, now,
                                         payload_station="UMB02", key_station="UMB02"),
        "schema": data_message("UMB01", "G", "inventory", [dict(rec, tank=0)], 5, now),
        "malformed_json": ("fsx/v1/UMB01/G/evt/inventory", b"\x00\x01 not json"),
        "unknown_station": data_message("UMB42", "G", "inventory", [rec], 1, now,
                                        key_station="UMB01"),
        "bad_topic": ("fsx/v1/UMB01/Z9/evt/inventory", b"{}"),
    }
    for msg in bad.values():
        col.publish(msg)
    # UMB02's key on UMB01's topic (same kid name "k1"): a bad signature as well.
    col.publish(data_message("UMB01", "G", "inventory", [rec], 6, now, key_station="UMB02"))
    col.publish(old)  # first time: accepted although sent long ago (never processed)
    assert col.ack_for("UMB01", 2)["accepted"]
    col.publish(old)  # the same message after the replay window: a replay
    col.publish(data_message("UMB01", "G", "inventory", [rec], 7, now))
    assert col.ack_for("UMB01", 7)["accepted"] == [rec["key"]]
    wait_for(lambda: platform.counter("rejected:replay") == 1, what="replay rejection")
    for reason in bad:
        assert platform.counter(f"rejected:{reason}") == 1 + (reason == "bad_signature"), reason
    assert platform.scalar("SELECT COUNT(*) FROM inventory") == 2
    acked = {json.loads(raw)["acked_msg_seq"] for _, raw in col.acks}
    assert acked == {2, 7}  # nothing rejected as a whole was acknowledged


def test_platform_restart_keeps_its_session(broker: Mosquitto, tmp_path: Path) -> None:
    gen = fresh_database("sqlite", tmp_path)
    url = next(gen)
    ready_database(url).close()
    keys = write_key_file(tmp_path / "keys.json")
    client_id = f"fc-platform-{uuid.uuid4().hex[:6]}"
    platform = Platform(url, broker, keys, client_id)
    platform.stop()  # down: the broker queues for the persistent session
    col = Station(broker)
    try:
        now = time.time()
        for i in range(20):
            col.publish(data_message("UMB03", "D1", "transaction",
                                     [txn("UMB03", "D1", i, T0 + 300 * i, grade="0")], i + 1,
                                     now))
        platform = Platform(url, broker, keys, client_id)
        try:
            wait_for(lambda: platform.scalar("SELECT COUNT(*) FROM transactions") == 20,
                     what="queued messages after restart")
            assert col.ack_for("UMB03", 20)["accepted"]
        finally:
            platform.stop()
    finally:
        col.close()


def test_broker_restart_resumes_ingest(tmp_path: Path) -> None:
    gen = fresh_database("sqlite", tmp_path)
    url = next(gen)
    ready_database(url).close()
    broker = Mosquitto(workdir=tmp_path / "broker").start()  # own broker: this test restarts it
    platform = col = None
    try:
        platform = Platform(url, broker, write_key_file(tmp_path / "keys.json"),
                            f"fc-platform-{uuid.uuid4().hex[:6]}")
        broker.restart()  # persistence on: the platform's session and subscriptions survive
        wait_for(lambda: platform.service.subscribed, what="platform back after restart")
        col = Station(broker)
        col.publish(data_message("UMB01", "G", "inventory", [inventory("UMB01", 1, T0)], 1,
                                 time.time()))
        assert col.ack_for("UMB01", 1)["accepted"] == [f"UMB01/G/inventory/1/{T0}"]
    finally:
        if col is not None:
            col.close()
        if platform is not None:
            platform.stop()
        broker.stop()


_topics = st.sampled_from(["fsx/v1/UMB01/D1/evt/transaction", "fsx/v1/UMB01/G/evt/inventory",
                           "fsx/v1/UMB02/G/evt/delivery", "fsx/v1/UMB02/D2/evt/event",
                           "fsx/v1/UMB03/status/heartbeat", "fsx/v1/UMB03/status/online",
                           "fsx/v1/UMB66/D1/evt/transaction", "fsx/v1/UMB01/D1/evt/x"])
_payloads = st.one_of(
    st.binary(max_size=200),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                 lambda c: st.one_of(st.lists(c, max_size=3),
                                     st.dictionaries(st.text(max_size=6), c, max_size=4)),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()))


def test_fuzzed_payloads_over_the_broker_are_rejected_with_a_reason(
        broker: Mosquitto, tmp_path: Path) -> None:
    gen = fresh_database("sqlite", tmp_path)
    url = next(gen)
    ready_database(url).close()
    platform = Platform(url, broker, write_key_file(tmp_path / "keys.json"),
                        f"fc-platform-{uuid.uuid4().hex[:6]}")
    col = Station(broker)
    sent = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(topic=_topics, payload=_payloads)
    def publish(topic: str, payload: bytes) -> None:
        col.publish((topic, payload))
        sent.append(topic)

    try:
        publish()
        wait_for(lambda: platform.scalar("SELECT COUNT(*) FROM ingest_rejections") == len(sent),
                 what=f"{len(sent)} rejections")
        col.publish(data_message("UMB01", "G", "inventory", [inventory("UMB01", 1, T0)], 1,
                                 time.time()))
        assert col.ack_for("UMB01", 1)["accepted"]  # ingest is alive
        with platform.db.borrow() as conn:
            reasons = {r for (r,) in conn.query("SELECT DISTINCT reason FROM ingest_rejections")}
        assert reasons <= {"bad_topic", "unknown_station", "malformed_json", "schema"}
        assert platform.scalar("SELECT COUNT(*) FROM transactions") == 0
    finally:
        col.close()
        platform.stop()


def test_platform_process_serves_and_stops_on_sigterm(broker: Mosquitto,
                                                     tmp_path: Path) -> None:
    proc = start_platform_process(tmp_path, broker.url, write_key_file(tmp_path / "keys.json"),
                                  "--client-id", f"fc-platform-{uuid.uuid4().hex[:6]}")
    col = None
    try:
        ready = ready_line(proc, TIMEOUT)
        assert ready["event"] == "ready" and ready["stations"] == 3

        def get(path: str) -> Any:
            return api_get(ready, path)

        # "ready" means the API listens; ingest connects to the broker after that
        assert get("/healthz")["database"] is True
        wait_for(lambda: get("/healthz")["status"] == "ok", what="platform healthy")
        assert get("/healthz")["mqtt_subscribed"] is True
        col = Station(broker)
        rec = txn("UMB02", "D2", 5, T0, nozzle=2, tank=2, grade="0")
        col.publish(data_message("UMB02", "D2", "transaction", [rec], 100, time.time()))
        assert col.ack_for("UMB02", 100)["accepted"] == [rec["key"]]
        items = get("/api/v1/transactions?station_id=UMB02")["items"]
        assert [i["key"] for i in items] == [rec["key"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if col is not None:
            col.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()


def test_health_says_when_ingest_makes_no_progress(tmp_path):
    """/healthz must not stay green while ingest has silently stopped (issue 10 §6)."""
    from types import SimpleNamespace

    from central.ingest import IngestService

    svc = IngestService(None, "mqtt://127.0.0.1:9", {}, None)  # type: ignore[arg-type]
    assert svc.problems(quiet_s=90) == ["not connected to the broker"]
    svc._connected.set()
    svc._subscribed.set()
    assert svc.problems(quiet_s=90) == []  # nothing ever arrived: no quiet to judge
    svc._on_message(svc.client, None, SimpleNamespace(
        topic="fsx/v1/S1/status/heartbeat", payload=b"{}", retain=False, mid=1, qos=1))
    assert svc.problems(quiet_s=90) == []
    # a message waits and no batch is stored (no worker here), and then nothing arrives
    got = svc.problems(quiet_s=-1, stall_s=-1)
    assert got[0].startswith("1 message(s) waiting, no batch stored for")
    assert got[1].startswith("no uplink message for")
