"""MQTT brokers the harness runs: the embedded amqtt broker (default) and a managed Mosquitto.

The embedded broker needs no service on a fresh machine; Mosquitto is the real broker used
behind `--broker` and in CI. Both listen on loopback only and are stopped by the harness.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from acceptance.broker_accounts import BrokerAccounts
from acceptance.guard import guarded
from acceptance.tls import TlsFiles

if TYPE_CHECKING:
    from amqtt.broker import Broker

log = logging.getLogger(__name__)


def parse_broker_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` → (host, port); raises ValueError naming the URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise ValueError(f"broker URL {url!r}: expected mqtt://host:port")
    return parsed.hostname, parsed.port or 1883


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _amqtt_config(host: str, port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class EmbeddedBroker:
    """amqtt broker on its own thread and event loop, so sync code can start and stop it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"embedded broker did not start within {timeout} s")
        if self._error:
            raise RuntimeError(f"embedded broker failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker

        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def boot() -> None:
            self._broker = Broker(_amqtt_config(self.host, self.port), loop=self._loop)
            await self._broker.start()

        try:
            self._loop.run_until_complete(boot())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._loop or not self._broker:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(timeout)
        except Exception as exc:  # shutting down anyway; say why it was not clean
            log.warning("embedded broker shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout)
        self._broker = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mosquitto_installed() -> bool:
    return bool(shutil.which("mosquitto")) or Path("/usr/sbin/mosquitto").exists()


MOSQUITTO_CONF = """\
listener {port} {host}
{tls}{access}
# A subscriber far behind must not lose QoS 1 messages silently (protocols.md §7).
max_queued_messages 0
max_inflight_messages 100
set_tcp_nodelay true
persistence {persistence}
persistence_location {dir}/
log_dest file {dir}/mosquitto.log
{user}"""

# With accounts: nobody anonymous, each account its topics (acceptance/broker_accounts.py),
# and the client id is the username, so no account can take over another's session.
MOSQUITTO_ACCOUNTS = """\
allow_anonymous false
password_file {passwd}
acl_file {acl}
use_username_as_clientid true"""


# With TLS the one listener speaks TLS only: no plaintext port is left for a client that
# skips verification. TLS 1.2 is the floor (Mosquitto 2.0 also offers 1.3 with this setting).
MOSQUITTO_TLS = """\
cafile {ca}
certfile {cert}
keyfile {key}
tls_version tlsv1.2
"""


class Mosquitto:
    """A real Mosquitto broker as a child process, stopped by its pid."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 persistence: bool = True, workdir: Path | None = None,
                 guard: bool = False, accounts: BrokerAccounts | None = None,
                 tls: TlsFiles | None = None) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise FileNotFoundError("mosquitto is not installed (Debian package `mosquitto`)")
        self.binary = binary
        self.host, self.port = host, port or free_port(host)
        self.persistence = persistence
        self.accounts = accounts  # None: anonymous clients may do anything
        self.tls = tls  # None: plain TCP; else the listener speaks TLS only (acceptance/tls.py)
        # guard: dies with this process (acceptance/guard.py); only when started and stopped
        # from the main thread, since the kernel ties it to the starting thread
        self.guard = guard
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="fc-mosquitto-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        if self.accounts is None:
            access = "allow_anonymous true"
        else:
            passwd, acl = self.accounts.write_mosquitto_files(self.dir)
            access = MOSQUITTO_ACCOUNTS.format(passwd=passwd, acl=acl)
        # Started as root, Mosquitto switches to user `mosquitto`, which can read neither
        # these private files nor this directory (no log, no persistence): stay root.
        user = "user root\n" if os.geteuid() == 0 else ""
        tls = "" if self.tls is None else MOSQUITTO_TLS.format(
            ca=self.tls.ca.resolve(), cert=self.tls.cert.resolve(), key=self.tls.key.resolve())
        conf.write_text(MOSQUITTO_CONF.format(host=self.host, port=self.port, dir=self.dir,
                                              access=access, user=user, tls=tls,
                                              persistence="true" if self.persistence else "false"))
        argv = [self.binary, "-c", str(conf)]
        self.proc = subprocess.Popen(guarded(argv) if self.guard else argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(self.host, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def serve_embedded(url: str) -> None:
    """`forecourt broker`: run the embedded broker until SIGINT/SIGTERM."""
    host, port = parse_broker_url(url)
    stop = threading.Event()
    # set from another thread: the handler runs in the main thread, which may hold the
    # event's lock inside stop.wait() at that instant (Event.set there would deadlock)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop.set).start())
    with EmbeddedBroker(host, port):
        print(f"embedded MQTT broker (amqtt) listening on mqtt://{host}:{port}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
