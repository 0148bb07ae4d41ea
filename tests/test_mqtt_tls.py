"""TLS on the MQTT uplink (issue 10 §1): the throw-away CA and broker certificate, a Mosquitto
that speaks TLS only, the reference collector and platform over mqtts:// with --mqtt-ca, the
clear refusal of a CA file that cannot be used, and the chain's wiring of --mqtt-tls.

Failures are shown by what the peer answered (a failed handshake, a closed socket), never by
waiting a while for something that does not come."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion
from test_central_support import api_get, ready_line, start_platform_process
from test_collector_support import (
    Station,
    ThreadedStation,
    connect_failures,
    expected_transaction,
    transaction,
)
from waiting import HANG_S, wait_for

from acceptance.broker import Mosquitto, mosquitto_installed
from acceptance.chain import Chain, ChainSettings
from acceptance.cli import main as forecourt_main
from acceptance.processes import ManagedBroker
from acceptance.tls import TlsFiles, make_tls
from central.cli import main as platform_main
from collector.cli import main_collector
from collector.keys import generate_key_file, load_key_file, station_keys
from collector.spool import Spool
from collector.uplink import Uplink, UplinkSettings

WAIT_S = 30.0
REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scenarios" / "smoke.yaml"


# ---- certificates ---------------------------------------------------------------------------

def test_ca_signs_a_broker_certificate_for_loopback_and_given_hosts(tmp_path):
    files = make_tls(tmp_path / "tls", hosts=["Broker.Example", "10.1.2.3", "localhost"])
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "broker.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1",
                                                                         "10.1.2.3"]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 30 <= days <= 31, days  # short-lived: throw-away
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    # the key is the certificate's: a TLS server can be made from the pair
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(files.cert, files.key)
    again = make_tls(tmp_path / "tls")  # a second CA: nothing in common with the first
    assert again.ca.read_bytes() != ca.public_bytes(serialization.Encoding.PEM)


def test_forecourt_keys_tls_writes_the_files_and_refuses_bad_names(tmp_path, capsys):
    assert forecourt_main(["keys", "--tls", str(tmp_path / "t"), "--host", "mqtt.local"]) == 0
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["broker.key", "broker.pem",
                                                                  "ca.pem"]
    assert "mqtt.local" in capsys.readouterr().out
    assert forecourt_main(["keys", "--tls", str(tmp_path / "u"), "--host", "not a host"]) == 2
    assert "--host 'not a host': expected a DNS name or an IP address" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()  # refused before anything was written
    # the HMAC keys as before, and their options are not mixed up with --tls
    assert forecourt_main(["keys", "--scenario", str(SMOKE), "--host", "x",
                           "--out", str(tmp_path / "k.json")]) == 2
    assert "--host: only with --tls DIR" in capsys.readouterr().err
    assert forecourt_main(["keys", "--scenario", str(SMOKE),
                           "--out", str(tmp_path / "k.json")]) == 0
    assert json.loads((tmp_path / "k.json").read_text())["format"] == "forecourt-keys/1"


# ---- a Mosquitto that speaks TLS ------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> Iterator[tuple[Mosquitto, TlsFiles]]:
    if not mosquitto_installed():
        pytest.skip("mosquitto is not installed")
    files = make_tls(tmp_path_factory.mktemp("tls"))
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto"), tls=files) as b:
        yield b, files


class Peer:
    """A paho client over TLS whose CONNACK and messages can be waited on."""

    def __init__(self, port: int, context: ssl.SSLContext, client_id: str) -> None:
        self.connack = threading.Event()
        self.arrived = threading.Condition()
        self.messages: list[bytes] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        c.tls_set_context(context)
        c.on_connect = lambda *_: self.connack.set()
        c.on_message = self._on_message
        self.client = c
        c.connect("127.0.0.1", port, keepalive=30)  # the handshake happens here
        c.loop_start()
        assert self.connack.wait(WAIT_S), f"{client_id}: no CONNACK"

    def _on_message(self, _c, _u, msg) -> None:
        with self.arrived:
            self.messages.append(bytes(msg.payload))
            self.arrived.notify_all()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mosquitto
def test_a_client_with_the_ca_connects_and_publishes(tls_broker):
    broker, files = tls_broker
    assert broker.url.startswith("mqtts://127.0.0.1:")
    conf = (broker.dir / "mosquitto.conf").read_text()
    assert conf.count("listener ") == 1 and "tls_version tlsv1.2" in conf  # no plaintext port
    ctx = ssl.create_default_context(cafile=str(files.ca))
    sub, pub = Peer(broker.port, ctx, "tls-sub"), Peer(broker.port, ctx, "tls-pub")
    try:
        done = threading.Event()
        # the callback first: on a loaded machine the SUBACK can beat the next line
        sub.client.on_subscribe = lambda *_: done.set()
        sub.client.subscribe("fsx/v1/T/#", qos=1)
        assert done.wait(WAIT_S)
        pub.client.publish("fsx/v1/T/status/heartbeat", b"over TLS", qos=1).wait_for_publish(
            WAIT_S)
        with sub.arrived:
            assert sub.arrived.wait_for(lambda: b"over TLS" in sub.messages, WAIT_S)
        sock = pub.client.socket()
        assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        sub.close()
        pub.close()


@pytest.mark.mosquitto
def test_a_client_that_cannot_verify_the_broker_fails_the_handshake(tls_broker, tmp_path):
    broker, _files = tls_broker
    other = make_tls(tmp_path / "other")  # another throw-away CA
    for ctx in (ssl.create_default_context(cafile=str(other.ca)),
                ssl.create_default_context()):  # the system trust store does not know it
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="untrusting",
                        reconnect_on_failure=False)
        c.tls_set_context(ctx)
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            c.connect("127.0.0.1", broker.port, keepalive=30)


@pytest.mark.mosquitto
def test_the_host_name_is_checked(tls_broker):
    broker, files = tls_broker
    ctx = ssl.create_default_context(cafile=str(files.ca))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT_S) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        ctx.wrap_socket(raw, server_hostname="elsewhere.example")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT_S) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version()


# MQTT 3.1.1 CONNECT: clean session, keepalive 60, empty client id
_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"


@pytest.mark.mosquitto
def test_plain_mqtt_to_the_tls_port_gets_no_connack(tls_broker):
    broker, _files = tls_broker
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT_S) as s:
        s.sendall(_CONNECT)
        answer = b""
        try:
            while chunk := s.recv(4096):  # until the broker closes (timeout: a hang)
                answer += chunk
        except ConnectionResetError:
            pass  # closed hard, after a TLS alert or none: no CONNACK either way
    assert not answer.startswith(b"\x20"), answer  # 0x20: CONNACK
    assert answer == b"" or answer[0] == 0x15, answer  # nothing, or a TLS alert record


@pytest.mark.mosquitto
def test_a_collector_that_distrusts_the_broker_says_why_and_retries(tls_broker, tmp_path,
                                                                    caplog):
    broker, _files = tls_broker
    other = make_tls(tmp_path / "other")
    keys = station_keys(load_key_file(generate_key_file(["A"], tmp_path / "keys.json")), "A",
                        "keys.json")
    spool = Spool(tmp_path / "spool", "A")

    async def run() -> int:
        uplink = Uplink("A", "127.0.0.1", broker.port, keys, spool, spool.boot_id,
                        UplinkSettings(reconnect_min=0.1, reconnect_max=0.2),
                        tls=ssl.create_default_context(cafile=str(other.ca)))
        return await connect_failures(uplink, 2, WAIT_S)

    with caplog.at_level(logging.WARNING, logger="collector.uplink"):
        try:
            assert asyncio.run(run()) >= 2
        finally:
            spool.close()
    assert any(f"cannot reach broker mqtts://127.0.0.1:{broker.port}" in r.message
               and "certificate verify failed" in r.message for r in caplog.records), caplog.text


# ---- the reference platform and collector over mqtts ---------------------------------------

def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT_S)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.mosquitto
def test_collector_and_platform_get_a_record_through_over_mqtts(tls_broker, tmp_path):
    broker, files = tls_broker
    sid = "UMB01"  # a station of the test registry
    station = Station(sid)
    t = transaction(1, 1, station=sid)
    station.d1.accept("transactions", t)
    key = expected_transaction(t, sid)["key"]
    keys = generate_key_file([sid], tmp_path / "keys.json")
    served = ThreadedStation(station)
    platform = collector = None
    try:
        served.call(station.start_tcp)
        (tmp_path / "endpoints.json").write_text(json.dumps(station.endpoints_doc()))
        platform = start_platform_process(tmp_path, broker.url, keys, "--mqtt-ca",
                                          str(files.ca), "--client-id", "fc-platform-tls")
        ready = ready_line(platform, HANG_S)

        def get(path: str) -> Any:
            return api_get(ready, path)

        # subscribed means the platform's TLS handshake and verification succeeded
        wait_for(lambda: get("/healthz")["mqtt_subscribed"], HANG_S, "platform subscribed")
        collector = subprocess.Popen(
            [sys.executable, "-c", "import sys; from collector.cli import main_collector; "
                                   "sys.exit(main_collector())",
             "--station", sid, "--endpoints", str(tmp_path / "endpoints.json"),
             "--broker", broker.url, "--mqtt-ca", str(files.ca), "--keys", str(keys),
             "--spool", str(tmp_path / "spool"), "--heartbeat", "0.5", "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def stored() -> list[str]:
            assert collector is not None and collector.poll() is None, \
                collector.stderr.read()[-3000:] if collector and collector.stderr else ""
            return [i["key"] for i in get(f"/api/v1/transactions?station_id={sid}")["items"]]

        assert wait_for(stored, HANG_S, "the transaction at the platform") == [key]
        # acknowledged end to end: the platform's ack came back over TLS too
        wait_for(lambda: served.call(lambda: station.pending()["D1/transactions"]) == 0,
                 HANG_S, "the device FIFO acknowledged")
    finally:
        _stop(collector)
        _stop(platform)
        served.stop()


# ---- bad arguments ---------------------------------------------------------------------------

def _collector_argv(tmp_path: Path, *extra: str) -> list[str]:
    station = Station("S1")
    station.port = 1502  # never connected to: refused before
    (tmp_path / "endpoints.json").write_text(json.dumps(station.endpoints_doc()))
    generate_key_file(["S1"], tmp_path / "keys.json")
    return ["--station", "S1", "--spool", str(tmp_path / "s"), "--endpoints",
            str(tmp_path / "endpoints.json"), "--keys", str(tmp_path / "keys.json"), *extra]


@pytest.mark.parametrize("ca, broker, message", [
    ("missing.pem", "mqtts://127.0.0.1:1", "--mqtt-ca {ca}: no such file"),
    ("junk.pem", "mqtts://127.0.0.1:1", "--mqtt-ca {ca}: not a PEM CA bundle"),
    ("", "mqtts://127.0.0.1:1", "--mqtt-ca {ca}: cannot read"),  # a directory
    ("ca.pem", "mqtt://127.0.0.1:1", "--mqtt-ca {ca}: given for a plain mqtt:// broker"),
])
def test_a_ca_file_that_cannot_be_used_exits_2_naming_it(tmp_path, capsys, ca, broker,
                                                          message):
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    make_tls(tmp_path)
    path = tmp_path / ca
    code = main_collector(_collector_argv(tmp_path, "--broker", broker, "--mqtt-ca", str(path)))
    assert code == 2
    err = capsys.readouterr().err
    assert message.format(ca=path) in err, err
    assert not (tmp_path / "s").exists()  # refused before anything started
    db = tmp_path / "p.db"
    code = platform_main(["--db", f"sqlite:///{db}", "--broker", broker, "--keys", "k.json",
                          "--registry", "r.csv", "--mqtt-ca", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("forecourt platform: ") and message.format(ca=path) in err, err
    assert not db.exists()


def test_mqtts_urls_default_to_port_8883():
    from central.ingest import parse_broker_url
    from collector.cli import parse_broker

    assert (parse_broker("mqtts://h").port, parse_broker("mqtts://h").tls) == (8883, True)
    assert (parse_broker("mqtt://h").port, parse_broker("mqtt://h").tls) == (1883, False)
    assert parse_broker_url("mqtts://u:p@h:1").url == "mqtts://h:1"  # no password in logs
    with pytest.raises(ValueError, match="or mqtts:// for TLS"):
        parse_broker("https://h")


# ---- the chain's wiring ---------------------------------------------------------------------

@pytest.mark.mosquitto
@pytest.mark.skipif(not mosquitto_installed(), reason="mosquitto is not installed")
def test_chain_with_mqtt_tls_gives_the_parts_the_ca(tmp_path):
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run", broker="mosquitto", mqtt_tls=True,
                                collector_command=("vendor", "{broker}", "{mqtt_ca}")))
    ca = str(tmp_path / "run" / "tls" / "ca.pem")
    argv = chain.platform.argv
    assert argv[argv.index("--mqtt-ca") + 1] == ca
    assert argv[argv.index("--broker") + 1].startswith("mqtts://127.0.0.1:")
    sid = chain.station_ids[0]
    assert chain._collector_argv(sid, "mqtts://127.0.0.1:1") == ["vendor", "mqtts://127.0.0.1:1",
                                                                 ca]
    plain = Chain(ChainSettings(SMOKE, tmp_path / "plain", broker="mosquitto",
                                collector_command=("vendor", "{mqtt_ca}")))
    assert "--mqtt-ca" not in plain.platform.argv
    assert plain._collector_argv(sid, "mqtt://127.0.0.1:1") == ["vendor", ""]


def test_mqtt_tls_needs_the_managed_mosquitto(tmp_path):
    for kind in ("embedded", "mqtt://127.0.0.1:1883"):
        with pytest.raises(ValueError, match=r"mqtt_tls \(--mqtt-tls\): needs the managed "):
            ManagedBroker(kind, tmp_path, sys.executable, ["S1"], tls=True)


@pytest.mark.mosquitto
@pytest.mark.skipif(not mosquitto_installed(), reason="mosquitto is not installed")
def test_managed_broker_makes_its_certificate_once(tmp_path):
    broker = ManagedBroker("mosquitto", tmp_path, sys.executable, ["S1"], tls=True)
    assert broker.url.startswith("mqtts://")
    broker.start(WAIT_S)
    try:
        assert broker.tls is not None
        first = broker.tls.ca.read_bytes()
        broker.stop()
        broker.start(WAIT_S)  # a broker_restart keeps the certificate the parts trust
        assert broker.tls.ca.read_bytes() == first
    finally:
        broker.stop()


# ---- forecourt run --mqtt-tls -----------------------------------------------------------------

def _forecourt(*args: str, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acceptance.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_run_with_mqtt_tls_refuses_the_embedded_broker(tmp_path):
    res = _forecourt("run", str(SMOKE), "--out", str(tmp_path / "run"), "--broker", "embedded",
                     "--mqtt-tls")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--mqtt-tls): needs the managed Mosquitto" in res.stderr, res.stderr


@pytest.mark.e2e
@pytest.mark.mosquitto
@pytest.mark.skipif(not mosquitto_installed(), reason="mosquitto is not installed")
def test_smoke_run_over_tls_is_accepted(tmp_path):
    """The smoke scenario, shortened as in test_acceptance_run.py, with both stations over
    Modbus TCP (TLS is about the uplink; RTU needs socat) and the uplink over TLS: accepted,
    and every SEC-1 attempt made and refused over TLS."""
    import yaml

    doc = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    doc["fleet"] = str((SMOKE.parent / doc["fleet"]).resolve())
    doc["rtu_stations"] = []
    scenario = tmp_path / "smoke-tcp.yaml"
    scenario.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    run = tmp_path / "run"
    res = _forecourt("run", str(scenario), "--out", str(run), "--days", "0.6", "--mqtt-tls",
                     "--lang", "en", timeout=1200)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ACCEPTED"), res.stdout
    info = json.loads((run / "run.json").read_text())
    assert info["mqtt_tls"] is True and info["broker"] == "mosquitto (auto)"
    conf = (run / "mosquitto" / "mosquitto.conf").read_text()
    assert conf.count("listener ") == 1 and f"cafile {run / 'tls' / 'ca.pem'}" in conf
    platform_log = (run / "logs" / "platform.log").read_text()
    assert "--broker mqtts://127.0.0.1:" in platform_log and "--mqtt-ca" in platform_log
    security = json.loads((run / "security.json").read_text(encoding="utf-8"))
    assert security["monitor"] == "fc-harness"
    assert len(security["attempts"]) >= 15 and all(a["passed"] for a in security["attempts"])
