"""The embedded amqtt broker's defects seen in use, each with the behaviour of the reference
platform and collector that survives it (issue 10 §2). The embedded broker is the fallback
where Mosquitto cannot be had; run.json says so (acceptance/run.py EMBEDDED_BROKER_NOTE)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from test_central_ingest import Platform, Station
from test_central_support import T0, data_message, txn, write_key_file
from waiting import wait_for

from acceptance.broker import EmbeddedBroker, free_port
from acceptance.run import EMBEDDED_BROKER_NOTE


@pytest.fixture
def embedded() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        yield broker
    finally:
        broker.stop()


def _thief(broker: EmbeddedBroker, client_id: str) -> None:
    """Connect once with `client_id` and a clean session, then leave."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.connect(broker.host, broker.port)
    c.loop_start()
    wait_for(c.is_connected, what="the thief connected")
    c.disconnect()
    c.loop_stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_platform_whose_session_was_taken_without_a_disconnect_connects_again(
        embedded: EmbeddedBroker, db_url: str, tmp_path: Path) -> None:
    """amqtt 0.12 gives the session to a clean-session client with the same id and leaves the
    old connection open and deaf: the platform stays 'connected' and would never receive
    again. After `quiet_reconnect_s` without a message it connects again."""
    client_id = f"fc-platform-{uuid.uuid4().hex[:6]}"
    platform = Platform(db_url, embedded, write_key_file(tmp_path / "keys.json"), client_id,
                        quiet_reconnect_s=1.0)
    col = Station(embedded)
    try:
        now = time.time()
        first = txn("UMB01", "D1", 1, T0)
        col.publish(data_message("UMB01", "D1", "transaction", [first], 1, now))
        assert col.ack_for("UMB01", 1)["accepted"] == [first["key"]]
        _thief(embedded, client_id)
        assert platform.service.quiet_reconnects == 0
        # Published until one gets through: those sent to the lost session are gone with it
        # (the defect), the collector's resend is what carries them in the end.
        later = txn("UMB01", "D1", 2, T0 + 600, total_before=40_000)
        msg_seq = 2

        def stored() -> bool:
            nonlocal msg_seq
            if platform.scalar("SELECT COUNT(*) FROM transactions") == 2:
                return True
            msg_seq += 1
            col.publish(data_message("UMB01", "D1", "transaction", [later], msg_seq,
                                     time.time()))
            return False

        wait_for(stored, timeout=120, step=0.5, what="a record after the take-over stored")
        assert platform.service.quiet_reconnects >= 1
        assert platform.service.connected
    finally:
        col.close()
        platform.stop()


def test_nothing_is_queued_for_a_disconnected_session_and_the_run_record_says_so(
        embedded: EmbeddedBroker) -> None:
    """A persistent (clean_session=False) subscriber that is away gets nothing of what was
    published meanwhile. Data survives it through the collectors' resends (unacknowledged
    records are sent again); status messages of that time are lost. If amqtt ever queues,
    this test fails and the note in run.json (EMBEDDED_BROKER_NOTE) must change with it."""
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="away", clean_session=False)
    sub.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    subscribed: list[bool] = []
    sub.on_subscribe = lambda *_a: subscribed.append(True)
    sub.on_connect = lambda c, *_a: c.subscribe("fsx/v1/#", 1)
    sub.connect(embedded.host, embedded.port)
    sub.loop_start()
    wait_for(lambda: subscribed, what="subscribed")
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    pub.connect(embedded.host, embedded.port)
    pub.loop_start()
    try:
        for i in range(3):
            pub.publish("fsx/v1/UMB01/status/heartbeat", b"away %d" % i,
                        qos=1).wait_for_publish(10)
        subscribed.clear()
        sub.reconnect()
        sub.loop_start()
        wait_for(lambda: subscribed, what="subscribed again")
        pub.publish("fsx/v1/UMB01/status/heartbeat", b"back", qos=1).wait_for_publish(10)
        wait_for(lambda: b"back" in got, what="the message published after the return")
        assert got == [b"back"]  # the three published while away: never delivered
    finally:
        sub.disconnect()
        sub.loop_stop()
        pub.disconnect()
        pub.loop_stop()
    assert "queues nothing" in EMBEDDED_BROKER_NOTE
