"""Broker access control (issue 10 §1): the managed Mosquitto refuses anonymous clients and
wrong passwords, each account reaches only its topics, a client id is bound to its account,
and the last will and the platform's persistent session still work under the ACL. Then the
reference collector's and platform's credential options, and the chain's wiring.

Negatives are shown by order, never by waiting a while: MQTT keeps one publisher's messages in
order, so when an allowed message published after a forbidden one arrives, the forbidden one
would already have arrived had the broker let it through."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_collector_support import Station, connect_failures, wait_until

from acceptance.broker import Mosquitto, mosquitto_installed
from acceptance.broker_accounts import (
    HARNESS,
    PLATFORM,
    BrokerAccounts,
    collector_account,
    load_credentials,
)
from acceptance.chain import Chain, ChainSettings
from acceptance.processes import ManagedBroker
from central.cli import main as platform_main
from central.credentials import load_mqtt_password as platform_password
from collector.cli import _plan, collector_parser, collectors_parser, main_collector, parse_broker
from collector.keys import generate_key_file, load_key_file, station_keys
from collector.spool import Spool
from collector.uplink import Uplink, UplinkSettings

pytestmark = [pytest.mark.mosquitto,
              pytest.mark.skipif(not mosquitto_installed(), reason="mosquitto is not installed")]

WAIT_S = 30.0
REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scenarios" / "smoke.yaml"


class Peer:
    """A paho client whose connection, subscriptions and messages can be waited on."""

    def __init__(self, port: int, client_id: str, account: tuple[str, str] | None = None,
                 clean: bool = True, will: str | None = None) -> None:
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.arrived = threading.Condition()
        self.reason: mqtt.ReasonCode | None = None
        self.session_present = False
        self.messages: list[tuple[str, bytes]] = []
        self.user = account[0] if account else None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                        protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        if account:
            c.username_pw_set(*account)
        if will:
            c.will_set(will, b"will", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *_: self.disconnected.set()
        c.on_subscribe = lambda *_: self.subscribed.set()
        c.on_message = self._on_message
        self.client = c
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        assert self.connack.wait(WAIT_S), f"{client_id}: no CONNACK"

    def _on_connect(self, _c, _u, flags, reason, _p) -> None:
        self.reason, self.session_present = reason, flags.session_present
        self.connack.set()

    def _on_message(self, _c, _u, msg) -> None:
        with self.arrived:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.arrived.notify_all()

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, *topics: str) -> None:
        self.subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(WAIT_S)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)  # PUBACK: Mosquitto sends it for a denied publish too

    def wait_message(self, payload: bytes) -> list[tuple[str, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(p == payload for _, p in self.messages),
                                         WAIT_S), f"{payload!r} never arrived: {self.messages}"
            return list(self.messages)

    def close(self, clean: bool = True) -> None:
        if clean:
            self.client.disconnect()
        self.client.loop_stop()
        if not clean and self.client.socket():
            self.client.socket().close()  # no DISCONNECT: the broker publishes the will


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    accounts = BrokerAccounts.generate(["A", "B"])
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto"), accounts=accounts) as b:
        b.passwords = accounts.passwords  # type: ignore[attr-defined]
        yield b


def login(broker, user: str, client_id: str | None = None, **kw) -> Peer:
    return Peer(broker.port, client_id or user, (user, broker.passwords[user]), **kw)


def test_anonymous_clients_and_wrong_passwords_are_refused(broker):
    anonymous = Peer(broker.port, "fc-platform")
    wrong = Peer(broker.port, "fc-col-A", ("fc-col-A", "not-the-password"))
    stranger = Peer(broker.port, "someone", ("someone", "x"))
    for peer in (anonymous, wrong, stranger):
        assert str(peer.reason) == "Not authorized", peer.reason  # CONNACK 5
        assert peer.disconnected.wait(WAIT_S)  # nothing can be subscribed nor published
        peer.close()


def forbidden(broker, peer: Peer, topic: str, payload: bytes) -> Peer:
    """Publish what the ACL forbids and return a connection of the same account for what
    follows. Mosquitto 2.0.11 answers a denied QoS 1 PUBLISH with a PUBACK and then closes
    the connection, so the next message goes on a new one; the order still holds, since the
    broker had handled the denied message (PUBACK) before that connection existed."""
    info = peer.client.publish(topic, payload, qos=1)
    assert wait_until(lambda: info.is_published() or peer.disconnected.is_set(), WAIT_S)
    peer.close()
    assert peer.user is not None
    return login(broker, peer.user)


def test_a_station_reaches_only_its_own_topics(broker):
    monitor = login(broker, HARNESS)
    platform = login(broker, PLATFORM)
    a = login(broker, collector_account("A"))
    try:
        monitor.subscribe("fsx/v1/#")
        # Mosquitto 2.0 grants a subscription it may not serve (SUBACK QoS 1) and then
        # delivers nothing from it
        a.subscribe("fsx/v1/A/ack", "fsx/v1/B/ack", "fsx/v1/#")
        a.publish("fsx/v1/A/G/evt/transaction", b"A's own")
        monitor.wait_message(b"A's own")
        for topic in ("fsx/v1/B/G/evt/transaction", "fsx/v1/B/status/online", "fsx/v1/A/ack",
                      "fsx/v1/A/G/transaction"):
            a = forbidden(broker, a, topic, b"forged")
        a.publish("fsx/v1/A/status/heartbeat", b"A's heartbeat")
        seen = monitor.wait_message(b"A's heartbeat")
        assert [p for _, p in seen] == [b"A's own", b"A's heartbeat"], seen
        a.subscribe("fsx/v1/A/ack", "fsx/v1/B/ack", "fsx/v1/#")
        platform.publish("fsx/v1/B/ack", b"ack for B")
        platform.publish("fsx/v1/A/ack", b"ack for A")
        got = a.wait_message(b"ack for A")
        assert [p for _, p in got] == [b"ack for A"], got
        # nor may the platform write in a station's name
        platform = forbidden(broker, platform, "fsx/v1/A/G/evt/transaction", b"by the platform")
        a.publish("fsx/v1/A/status/heartbeat", b"A's second heartbeat")
        seen = monitor.wait_message(b"A's second heartbeat")
        assert b"by the platform" not in [p for _, p in seen], seen
    finally:
        for peer in (monitor, platform, a):
            peer.close()


def test_a_station_account_cannot_take_over_the_platforms_session(broker):
    platform = login(broker, PLATFORM, clean=False)
    try:
        platform.subscribe("fsx/v1/+/+/evt/+", "fsx/v1/+/status/#")
        impostor = login(broker, collector_account("A"), client_id="fc-platform")
        assert impostor.accepted  # as fc-col-A: use_username_as_clientid
        impostor.publish("fsx/v1/A/G/evt/transaction", b"after the impostor")
        platform.wait_message(b"after the impostor")
        assert not platform.disconnected.is_set()
        impostor.close()
    finally:
        platform.close()


def test_last_will_and_persistent_session_work_under_the_acl(broker):
    monitor = login(broker, HARNESS)
    platform = login(broker, PLATFORM, clean=False)
    try:
        monitor.subscribe("fsx/v1/#")
        platform.subscribe("fsx/v1/+/+/evt/+", "fsx/v1/+/status/#")
        platform.close()
        b = login(broker, collector_account("B"), clean=False, will="fsx/v1/B/status/online")
        b.publish("fsx/v1/B/D1/evt/event", b"while the platform is away")
        b.close(clean=False)
        monitor.wait_message(b"will")  # published on B's behalf: B's topic, B may write it
        platform = login(broker, PLATFORM, clean=False)
        assert platform.session_present
        platform.wait_message(b"while the platform is away")
        platform.wait_message(b"will")
    finally:
        monitor.close()
        platform.close()


def test_credentials_file_is_private_and_mosquitto_files_are_hashed(tmp_path):
    accounts = BrokerAccounts.generate(["UMB01"])
    path = accounts.write_credentials(tmp_path / "mqtt-credentials.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(load_credentials(path)) == {"fc-col-UMB01", "fc-platform", "fc-harness"}
    passwd, acl = accounts.write_mosquitto_files(tmp_path)
    lines = passwd.read_text().splitlines()
    assert len(lines) == 3 and all(line.split(":", 1)[1].startswith("$7$") for line in lines)
    assert accounts.passwords["fc-platform"] not in passwd.read_text()
    assert "topic write fsx/v1/UMB01/+/evt/+" in acl.read_text()


# ---- the reference collector and platform ------------------------------------------------

def _inputs(tmp_path: Path, stations: list[str]) -> list[str]:
    doc: dict = {"stations": {}}
    for sid in stations:
        st = Station(sid)
        st.port = 1502  # never connected to: only the plan is made
        doc = {**st.endpoints_doc(), "stations": {**doc["stations"],
                                                  **st.endpoints_doc()["stations"]}}
    (tmp_path / "endpoints.json").write_text(json.dumps(doc))
    generate_key_file(stations, tmp_path / "keys.json")
    return ["--endpoints", str(tmp_path / "endpoints.json"), "--keys", str(tmp_path / "keys.json")]


def test_collector_takes_credentials_from_the_broker_url_or_the_file(tmp_path):
    assert parse_broker("mqtt://fc-col-S%3A1:p%40ss%3Aword@h:1884") == \
        parse_broker("mqtt://h:1884").__class__("h", 1884, "fc-col-S:1", "p@ss:word")
    common = _inputs(tmp_path, ["S1", "S2"])
    plan = _plan(collector_parser().parse_args(
        ["--station", "S1", "--spool", str(tmp_path / "s"), "--broker",
         "mqtt://fc-col-S1:secret@127.0.0.1:1884", *common]), ["S1"])
    assert (plan.broker.host, plan.broker.port) == ("127.0.0.1", 1884)
    assert plan.accounts == {"S1": ("fc-col-S1", "secret")}
    assert "secret" not in repr(plan.broker)
    accounts = BrokerAccounts.generate(["S1", "S2"])
    creds = accounts.write_credentials(tmp_path / "creds.json")
    args = collectors_parser().parse_args(["--spool-dir", str(tmp_path / "s"),
                                           "--mqtt-credentials", str(creds), *common])
    plan = _plan(args, None)
    assert plan.accounts == {s: (f"fc-col-{s}", accounts.passwords[f"fc-col-{s}"])
                             for s in ("S1", "S2")}
    anonymous = _plan(collector_parser().parse_args(
        ["--station", "S2", "--spool", str(tmp_path / "s"), *common]), ["S2"])
    assert anonymous.accounts == {"S2": None}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other/1", "accounts": {}}', "format: expected 'forecourt-mqtt-credentials/1'"),
    ('{"format": "forecourt-mqtt-credentials/1", "accounts": []}', "accounts: expected an object"),
    ('{"format": "forecourt-mqtt-credentials/1", "accounts": {"fc-col-S2": "x"}}',
     "accounts.fc-col-S1: expected the password of MQTT account 'fc-col-S1'"),
])
def test_collector_refuses_a_bad_credentials_file_naming_it(tmp_path, capsys, content, message):
    common = _inputs(tmp_path, ["S1"])
    (tmp_path / "creds.json").write_text(content)
    code = main_collector(["--station", "S1", "--spool", str(tmp_path / "s"),
                           "--mqtt-credentials", str(tmp_path / "creds.json"), *common])
    assert code == 2
    err = capsys.readouterr().err
    assert "creds.json" in err and message in err, err
    assert not (tmp_path / "s").exists()  # refused before anything started


def test_platform_reads_its_account_from_the_credentials_file(tmp_path, capsys):
    accounts = BrokerAccounts.generate(["S1"])
    path = accounts.write_credentials(tmp_path / "creds.json")
    assert platform_password(path, "fc-platform") == accounts.passwords["fc-platform"]
    with pytest.raises(ValueError, match=r"creds.json: accounts.fc-other: expected"):
        platform_password(path, "fc-other")
    with pytest.raises(ValueError, match=r"--mqtt-credentials .*missing.json: cannot read"):
        platform_password(tmp_path / "missing.json", "fc-platform")
    # refused at start-up, before the database is touched
    argv = ["--db", f"sqlite:///{tmp_path / 'p.db'}", "--broker", "mqtt://127.0.0.1:1",
            "--keys", "k.json", "--registry", "r.csv", "--mqtt-credentials", str(path)]
    assert platform_main([*argv, "--client-id", "fc-other"]) == 2
    assert "creds.json: accounts.fc-other: expected the password" in capsys.readouterr().err
    assert not (tmp_path / "p.db").exists()


def test_a_refused_collector_says_why_and_retries(broker, tmp_path, caplog):
    keys = station_keys(load_key_file(generate_key_file(["A"], tmp_path / "keys.json")), "A",
                        "keys.json")
    spool = Spool(tmp_path / "spool", "A")

    async def run() -> int:
        uplink = Uplink("A", broker.host, broker.port, keys, spool, spool.boot_id,
                        UplinkSettings(reconnect_min=0.1, reconnect_max=0.2),
                        account=("fc-col-A", "wrong"))
        return await connect_failures(uplink, 3, WAIT_S)

    with caplog.at_level(logging.ERROR, logger="collector.uplink"):
        try:
            assert asyncio.run(run()) >= 3
        finally:
            spool.close()
    assert any("refused the connection as account 'fc-col-A': Not authorized" in r.message
               for r in caplog.records), caplog.text


# ---- the chain's wiring --------------------------------------------------------------------

def test_chain_gives_the_parts_a_credentials_file_not_passwords(tmp_path):
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run", broker="mosquitto",
                                collector_command=("vendor", "{broker}", "{mqtt_credentials}")))
    assert chain.mqtt_accounts is not None
    assert set(chain.mqtt_accounts) == {collector_account(s) for s in chain.station_ids} | {
        PLATFORM, HARNESS}
    creds = str(tmp_path / "run" / "mqtt-credentials.json")
    argv = chain.platform.argv
    assert argv[argv.index("--mqtt-credentials") + 1] == creds
    assert not set(chain.mqtt_accounts.values()) & set(argv)
    sid = chain.station_ids[0]
    assert chain._collector_argv(sid, "mqtt://127.0.0.1:1") == ["vendor", "mqtt://127.0.0.1:1",
                                                                creds]
    plain = Chain(ChainSettings(SMOKE, tmp_path / "plain", collector_command=(
        "vendor", "{mqtt_credentials}")))
    assert plain.mqtt_accounts is None and "--mqtt-credentials" not in plain.platform.argv
    assert plain._collector_argv(sid, "mqtt://127.0.0.1:1") == ["vendor", ""]


def test_auto_broker_is_mosquitto_with_accounts_when_installed(tmp_path):
    auto = ManagedBroker("auto", tmp_path, sys.executable, ["S1"])
    assert (auto.kind, auto.describe()) == ("mosquitto", "mosquitto (auto)")
    assert auto.accounts is not None and auto.mosquitto is not None
    external = ManagedBroker("mqtt://127.0.0.1:1883", tmp_path, sys.executable, ["S1"])
    assert external.accounts is None and external.describe() == "mqtt://127.0.0.1:1883"
