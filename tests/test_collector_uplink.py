"""The collector end to end over a real Mosquitto broker: devices → spool → MQTT → acks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import time

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_collector_poller import fill
from test_collector_support import (
    FakePlatform,
    Station,
    expected_transaction,
    fifo_backlog,
    hmac_hex,
    strip,
    transaction,
    until,
)

from acceptance.broker import Mosquitto
from collector.keys import StationKeys
from collector.poller import PollSettings
from collector.profile import load_profiles
from collector.spool import Spool, SpoolRecord
from collector.station import CollectorSettings, StationCollector
from collector.uplink import MAX_ACK_BYTES, UplinkSettings
from contracts import UPLINK_SCHEMAS

HAVE_MOSQUITTO = shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")
pytestmark = [pytest.mark.mosquitto,
              pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")]

PROFILES = load_profiles()
SCHEMAS = UPLINK_SCHEMAS
KEY = bytes(range(32))
KEYS = StationKeys("S01", "k1", {"k1": KEY})
SETTINGS = CollectorSettings(
    heartbeat_interval=0.5,
    poll=PollSettings(poll_interval=0.05, live_interval=0.2, timeout=0.5),
    uplink=UplinkSettings(window=4, ack_timeout=1.5, keepalive=5, reconnect_min=0.1,
                          reconnect_max=0.5))


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(workdir=tmp_path / "mosquitto") as b:
        yield b


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def collecting(station: Station, broker: Mosquitto, spool_dir,
                     settings: CollectorSettings = SETTINGS):
    endpoint = await station.start_tcp()
    collector = StationCollector(endpoint, PROFILES, KEYS, (broker.host, broker.port), spool_dir,
                                 settings)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await station.stop()


def retained(broker: Mosquitto, topic: str, timeout: float = 5.0) -> dict | None:
    got: list[dict] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="retained-reader")
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    client.connect(broker.host, broker.port, 10)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1] if got else None


def test_every_record_reaches_the_platform_exactly_as_read(tmp_path, broker):
    station = Station(dialect="f32_le")
    expected = fill(station)
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool") as collector:
            assert await until(lambda: len(platform.data) == len(expected)
                               and collector.spool.backlog == 0
                               and len(platform.of_type("heartbeat")) >= 2
                               and not any(station.pending().values()), 20)
            # everything acknowledged: the next heartbeat says the devices are drained
            # through the RTC of a header read
            t = int(station.clock.now)
            assert await until(lambda: {d["device"]: d["drained_through"] for d in
                                        platform.of_type("heartbeat")[-1]["devices"]}
                               == {"G": t, "D1": t}, 10)
            return collector

    collector = run(scenario())
    try:
        assert {k: strip(v) for k, v in platform.data.items()} == expected
        assert sorted(platform.states) == [f"S01/{d}/states/0/{int(station.clock.now)}"
                                           for d in ("D1", "G")]
        assert platform.bad_signatures == 0
        # Every message conforms to the platform's published JSON Schemas (read as files).
        for _, p in platform.messages:
            schema = json.loads((SCHEMAS / f"{p['type']}.schema.json").read_text())
            jsonschema.Draft202012Validator(schema).validate(p)
        data = [p for t, p in platform.messages if "/evt/" in t]
        seqs = [p["msg_seq"] for _, p in platform.messages]
        assert len(seqs) == len(set(seqs)) and all(1 <= len(p["records"]) <= 100 for p in data)
        for topic, p in platform.messages:
            if "/evt/" in topic:  # one kind and one device per message, as the topic says
                assert topic == f"fsx/v1/S01/{p['device']}/evt/{p['type']}"
                assert len({r["key"].split("/")[2] for r in p["records"]}) == 1
        beat = platform.of_type("heartbeat")[-1]
        assert beat["backlog"] == 0 and beat["boot_id"] == collector.spool.boot_id
        devices = {d["device"]: d for d in beat["devices"]}
        assert devices["D1"]["online"] and devices["G"]["online"]
        assert devices["D1"]["device_time"] == int(station.clock.now)
        online = platform.of_type("online")
        assert online[0]["online"] is True and online[-1]["online"] is False
        final = retained(broker, "fsx/v1/S01/status/online")
        assert final["online"] is False
        assert final["sig"] == hmac_hex(KEY, "fsx/v1/S01/status/online", final)
    finally:
        platform.close()


def test_forged_acks_are_ignored_and_counted(tmp_path, broker, caplog):
    station = Station()
    txns = [transaction(seq, i) for i, seq in enumerate([10, 11, 12])]
    for t in txns:
        station.d1.accept("transactions", t)
    keys = [expected_transaction(t)["key"] for t in txns]
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    platform.ack_enabled = False
    slow = CollectorSettings(heartbeat_interval=5, poll=SETTINGS.poll,
                             uplink=UplinkSettings(ack_timeout=30, reconnect_min=0.1))

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool", slow) as collector:
            assert await until(lambda: any(t.endswith("/evt/transaction")
                                           for t, _ in platform.messages)
                               and fifo_backlog(collector.spool) == 3, 10)
            msg_seq = next(p for t, p in platform.messages
                           if t.endswith("/evt/transaction"))["msg_seq"]
            base = {"v": 1, "type": "ack", "station_id": "S01", "msg_seq": 1,
                    "sent_at": time.time(), "kid": "k1", "acked_msg_seq": msg_seq,
                    "accepted": keys, "duplicates": [], "rejected": []}
            platform.send_ack(dict(base), key=b"\x99" * 32)  # wrong key
            platform.send_ack(dict(base, station_id="S02"))  # another station's ack
            tampered = dict(base)
            platform.send_ack(tampered)
            tampered["accepted"] = keys[:1]  # altered after signing
            platform.client.publish("fsx/v1/S01/ack", json.dumps(tampered), qos=1)
            # The one genuine ack (all three keys) empties the spool; the forgeries do not.
            assert await until(lambda: collector.uplink.stats.forged_acks == 3
                               and collector.uplink.stats.acks == 1
                               and fifo_backlog(collector.spool) == 0, 10)
            # Send a forged ack for records that are still pending: they stay.
            station.d1.accept("transactions", transaction(13, 3))
            assert await until(lambda: fifo_backlog(collector.spool) == 1, 10)
            pending = collector.spool.pending_keys()
            platform.send_ack(dict(base, accepted=pending, msg_seq=2), key=b"\x98" * 32)
            assert await until(lambda: collector.uplink.stats.forged_acks == 4, 10)
            assert collector.spool.pending_keys() == pending
            # A huge "ack" is dropped unparsed, before it reaches the shared event loop.
            platform.client.publish("fsx/v1/S01/ack", b"[" * (MAX_ACK_BYTES + 1), qos=1)
            assert await until(lambda: collector.uplink.stats.forged_acks == 5, 10)
            assert collector.spool.pending_keys() == pending
            assert f"bytes (more than {MAX_ACK_BYTES})" in caplog.text

    try:
        run(scenario())
    finally:
        platform.close()


def test_unacknowledged_records_travel_again_in_a_new_message(tmp_path, broker):
    station = Station()
    t = transaction(7, 0)
    station.d1.accept("transactions", t)
    key = expected_transaction(t)["key"]
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    platform.ack_enabled = False

    def carrying() -> list[int]:
        return [p["msg_seq"] for tp, p in platform.messages
                if "/evt/" in tp and any(r["key"] == key for r in p["records"])]

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool") as collector:
            assert await until(lambda: len(carrying()) >= 2, 10)
            # No answer: the ack timeout backs off (the platform may be down for a while).
            assert collector.uplink._ack_timeout >= 2 * SETTINGS.uplink.ack_timeout
            platform.ack_enabled = True
            assert await until(lambda: collector.spool.backlog == 0, 10)
            assert collector.uplink.stats.records_resent >= 1
            assert collector.uplink._ack_timeout == SETTINGS.uplink.ack_timeout

    try:
        run(scenario())
        seqs = carrying()
        assert len(seqs) == len(set(seqs)) >= 2  # each resend is a new message
        assert list(platform.data) == [key]
    finally:
        platform.close()


def test_records_an_older_collector_spooled_are_sent_signed_canonically(tmp_path, broker):
    """Collectors before the spool's `canonical_from` kept payloads in key order; those rows
    are re-encoded when sent (spliced as they are, their signature would not verify)."""
    old = Spool(tmp_path / "spool", "S01")
    old.add([SpoolRecord("S01/D1/transactions/9/1767225600", "transaction", "D1",
                         {"seq": 9, "key": "S01/D1/transactions/9/1767225600", "油": 1})])
    old.close()
    db = sqlite3.connect(old.path)
    db.execute("UPDATE pending SET payload = '{\"seq\":9,\"key\":\"S01/D1/transactions/9/"
               "1767225600\",\"\\u6cb9\":1}'")  # as json.dumps wrote it before
    db.execute("DELETE FROM meta WHERE name = 'canonical_from'")
    db.commit()
    db.close()
    station = Station()
    expected = fill(station)
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool") as collector:
            assert collector.spool.canonical_from == 2  # row 1 is the older collector's
            assert await until(lambda: collector.spool.backlog == 0
                               and len(platform.data) == len(expected) + 1, 20)

    try:
        run(scenario())
        assert platform.bad_signatures == 0
        assert platform.data["S01/D1/transactions/9/1767225600"]["油"] == 1
    finally:
        platform.close()


def test_broker_restart_loses_nothing(tmp_path, broker):
    station = Station()
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    expected = set()

    def push(first: int, n: int) -> None:
        for i in range(first, first + n):
            t = transaction(i, i)
            station.d1.accept("transactions", t)
            expected.add(expected_transaction(t)["key"])

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool") as collector:
            push(0, 20)
            assert await until(lambda: len(platform.data) == 20
                               and collector.spool.backlog == 0, 10)
            await asyncio.to_thread(broker.stop)
            assert await until(lambda: not collector.uplink.connected.is_set(), 10)
            push(20, 30)  # collected while the broker is down: held in the spool
            # the FIFO tail moves after the spool commit: wait for both
            assert await until(lambda: fifo_backlog(collector.spool) == 30
                               and not any(station.pending().values()), 10)
            await asyncio.to_thread(broker.start)
            assert await until(lambda: len(platform.data) == 50
                               and collector.spool.backlog == 0, 60)
            assert collector.uplink.stats.connects >= 2

    try:
        run(scenario(), timeout=150)
        assert set(platform.data) == expected
    finally:
        platform.close()


def test_drained_through_waits_for_the_platforms_acks(tmp_path, broker):
    """A platform that withholds its acks: the FIFOs are drained into the spool, yet the
    heartbeats say drained_through null; once it acknowledges, they say the RTC of a header
    read."""
    station = Station()
    expected = fill(station)
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    platform.ack_enabled = False

    def through() -> dict[str, int | None]:
        beats = platform.of_type("heartbeat")
        return {d["device"]: d.get("drained_through") for d in beats[-1]["devices"]} \
            if beats else {}

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool") as collector:
            assert await until(lambda: fifo_backlog(collector.spool) == len(expected)
                               and not any(station.pending().values()), 10)
            n = len(platform.of_type("heartbeat"))
            assert await until(lambda: len(platform.of_type("heartbeat")) >= n + 2, 10)
            assert through() == {"G": None, "D1": None}
            assert any("/evt/" in t for t, _ in platform.messages)  # sent, never acknowledged
            platform.ack_enabled = True
            t = int(station.clock.now)
            assert await until(lambda: through() == {"G": t, "D1": t}, 20)
            assert collector.spool.backlog == 0

    try:
        run(scenario())
    finally:
        platform.close()


def test_records_that_come_while_the_uplink_lingers_share_a_message(tmp_path, broker):
    """What the spool holds goes at once; what comes in the linger after it waits in the spool
    (and survives a stop there) and then travels in one message, not one per poll round."""
    station = Station()
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    lingering = dataclasses.replace(SETTINGS, uplink=dataclasses.replace(SETTINGS.uplink,
                                                                          linger=600.0))
    fills = [transaction(i, i) for i in range(4)]
    keys = [expected_transaction(t)["key"] for t in fills]

    def data() -> list[list[str]]:
        return [[r["key"] for r in p["records"]] for tp, p in platform.messages
                if "/evt/transaction" in tp]

    async def scenario():
        # read in the first poll round with the state reports: the linger starts after them
        station.d1.accept("transactions", fills[0])
        async with collecting(station, broker, tmp_path / "spool", lingering) as collector:
            assert await until(lambda: keys[0] in platform.data, 10)
            for t in fills[1:]:  # one poll round each: read, spooled, acknowledged
                station.d1.accept("transactions", t)
                assert await until(lambda: not any(station.pending().values()), 10)
            assert fifo_backlog(collector.spool) == 3
            assert data() == [keys[:1]]  # lingering (600 s), not sent one by one
        async with collecting(station, broker, tmp_path / "spool") as collector:
            assert await until(lambda: collector.spool.backlog == 0, 10)

    try:
        run(scenario())
        assert data() == [keys[:1], keys[1:]]
        assert sorted(platform.data) == sorted(keys)
    finally:
        platform.close()


def test_a_device_going_off_or_on_line_is_reported_at_once(tmp_path, broker):
    """With an hour between heartbeats, the platform still hears at once (after the
    off-line rule's failures) that D1 stopped answering and, later, that it is back: the
    status goes with the change, not a heartbeat period later (DAT-6)."""
    station = Station()
    platform = FakePlatform(broker.host, broker.port, "S01", KEY)
    hourly = dataclasses.replace(SETTINGS, heartbeat_interval=3600.0)

    def d1_online() -> list[bool]:
        return [next(d["online"] for d in p["devices"] if d["device"] == "D1")
                for p in platform.of_type("heartbeat")]

    async def scenario():
        async with collecting(station, broker, tmp_path / "spool", hourly) as collector:
            assert await until(lambda: d1_online()[-1:] == [True], 10)
            station.d1.view.offline = True  # D1 answers nothing from now on
            assert await until(lambda: d1_online()[-1:] == [False], 20)
            assert not collector.poller.devices[1].online
            station.d1.view.offline = False
            assert await until(lambda: d1_online()[-1:] == [True], 20)

    try:
        run(scenario())
        online = d1_online()
        # one heartbeat per change (and the first): the hourly period sent none of them
        assert online == [True, False, True] or online == [False, True, False, True], online
    finally:
        platform.close()
