"""The harness's own infrastructure: embedded and Mosquitto brokers, the network-cut proxy."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from acceptance.broker import EmbeddedBroker, Mosquitto, free_port, parse_broker_url
from acceptance.netproxy import TcpProxy


def _roundtrip(url: str, n: int = 50, timeout: float = 10.0) -> list[bytes]:
    host, port = parse_broker_url(url)
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        got.append(msg.payload)
        if len(got) >= n:
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{port}")
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect(host, port)
    c.subscribe("t/#", qos=1)
    c.loop_start()
    try:
        assert subscribed.wait(timeout)
        for i in range(n):
            c.publish("t/x", f"m{i}", qos=1)
        done.wait(timeout)
    finally:
        c.loop_stop()
        c.disconnect()
    return got


@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
def test_broker_delivers_qos1(kind):
    broker = EmbeddedBroker("127.0.0.1", free_port()) if kind == "embedded" else Mosquitto()
    with broker:
        got = _roundtrip(broker.url)
    assert got == [f"m{i}".encode() for i in range(50)]


def test_broker_url_errors_name_the_url():
    with pytest.raises(ValueError, match="http://x"):
        parse_broker_url("http://x")


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def echo(c=conn):
                with c:
                    while data := c.recv(4096):
                        c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _echo(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        return s.recv(4096)


def test_proxy_forwards_cuts_and_restores():
    srv, port = _echo_server()
    with TcpProxy("127.0.0.1", port) as proxy:
        assert _echo(proxy.listen_port, b"hello") == b"hello"

        held = socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=2)
        held.sendall(b"x")
        assert held.recv(10) == b"x"
        proxy.cut("reset")
        # The open connection is closed, and a new one gets nothing through.
        held.settimeout(2)
        assert held.recv(10) == b""
        held.close()
        with pytest.raises((ConnectionError, OSError, AssertionError)):
            assert _echo(proxy.listen_port, b"lost") == b"lost"

        proxy.restore()
        assert _echo(proxy.listen_port, b"back") == b"back"

        proxy.cut("blackhole")
        with socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=1) as s:
            s.sendall(b"void")
            with pytest.raises(socket.timeout):
                s.recv(10)
        proxy.restore()
        time.sleep(0.05)
        assert _echo(proxy.listen_port, b"again") == b"again"
    srv.close()
