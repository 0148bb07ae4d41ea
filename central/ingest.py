"""MQTT ingest service: a persistent-session paho subscriber and one batch worker.

The paho network thread only queues messages. The worker takes what has arrived (up to
`max_batch` messages), processes it in one database transaction (`central.store`), and
only after the commit publishes the signed platform acks and then sends the broker's
PUBACKs (paho `manual_ack=True`). A crash at any point therefore loses nothing: an
uncommitted message is redelivered by the broker (persistent session, QoS 1), a
committed one whose ack was lost is resent by the collector and acknowledged as duplicate.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

from central.checks import Inbound
from central.db import Conn, Database, operational_errors, unavailable_errors
from central.keys import KeyFile
from central.registry import Station
from central.store import Ingestor, Outcome
from central.topics import SUBSCRIPTIONS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False  # mqtts://

    @property
    def url(self) -> str:
        """Without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt[s]://[user[:password]@]host[:port]` (default port 1883, 8883 with mqtts)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp", "mqtts") or not parsed.hostname:
        raise ValueError(f"--broker {url!r}: expected mqtt://host:port (or mqtts:// for TLS)")
    tls = parsed.scheme == "mqtts"
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"--broker {url!r}: the port must be a number 1..65535") from None
    return BrokerAddress(parsed.hostname, port,
                         unquote(parsed.username) if parsed.username else None,
                         unquote(parsed.password) if parsed.password else None, tls)


@dataclass(frozen=True)
class _Received:
    inbound: Inbound
    mid: int
    qos: int
    epoch: int  # session epoch at receipt (see IngestService._on_connect)


MAX_QUEUE = 10_000  # messages received and not yet stored (≈ 2 s of ingest)


class IngestService:
    def __init__(self, db: Database, broker_url: str, stations: Mapping[str, Station],
                 keyfile: KeyFile, *, client_id: str = "fc-platform",
                 account: tuple[str, str] | None = None,
                 tls: ssl.SSLContext | None = None,
                 replay_window_s: float = 600.0, max_batch: int = 500,
                 max_queue: int = MAX_QUEUE, quiet_reconnect_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.address = parse_broker_url(broker_url)
        self.stations = stations
        self.keyfile = keyfile
        self.replay_window_s = replay_window_s
        self.max_batch = max_batch
        self.clock = clock
        # Bounded: when the worker falls behind (a flood, a slow database) paho's network
        # thread waits in on_message, so the broker holds the rest (backpressure over TCP)
        # instead of this process's memory growing with every message it is sent.
        self._queue: queue.Queue[_Received] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._epoch = 0
        self._connect_failed = False  # logged since the last connection
        self.batches = 0
        self.messages = 0
        self.last_error: str | None = None
        # monotonic times, for health: ingest that silently stopped must not look healthy
        self._last_message: float | None = None  # the broker delivered something
        self._last_progress = time.monotonic()  # a batch was done, or the queue was empty
        # A broker that hands our session to another client without disconnecting us (amqtt
        # 0.12 with a clean-session thief) leaves a connection that receives nothing: after
        # this long without a message, connect again (None: never).
        self.quiet_reconnect_s = quiet_reconnect_s
        self._last_reconnect = time.monotonic()
        self.quiet_reconnects = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False, protocol=mqtt.MQTTv311,
                                  manual_ack=True)
        # `account` (username, password from a credentials file) or the URL's userinfo
        username, password = account or (self.address.username, self.address.password)
        self.username = username
        if username:
            self.client.username_pw_set(username, password)
        if self.address.tls:
            if tls is None:
                raise ValueError(f"{self.address.url}: TLS needs an SSL context (--mqtt-ca)")
            # paho verifies the certificate and host name during the (re)connects
            self.client.tls_set_context(tls)
        elif tls is not None:
            raise ValueError(f"{self.address.url}: an SSL context given for plain MQTT")
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> IngestService:
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._worker.start()
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def problems(self, quiet_s: float, stall_s: float = 60.0) -> list[str]:
        """Why ingest is not making progress, if it is not (empty: healthy). `quiet_s`: how
        long the broker may deliver nothing at all once it has delivered something (a stolen
        session or a dead subscription looks exactly like that)."""
        now = time.monotonic()
        out = []
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            out.append("the ingest worker has stopped")
        if not self.connected:
            out.append("not connected to the broker")
        elif not self.subscribed:
            out.append("not subscribed to the uplink topics")
        if self.backlog and now - self._last_progress > stall_s:
            out.append(f"{self.backlog} message(s) waiting, no batch stored for "
                       f"{now - self._last_progress:.0f} s")
        if self._last_message is not None and now - self._last_message > quiet_s:
            out.append(f"no uplink message for {now - self._last_message:.0f} s")
        return out

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect; queued messages stay at the broker."""
        self._stop.set()
        if self._worker:
            self._worker.join(timeout)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: object, flags: mqtt.ConnectFlags,
                    reason: object, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker %s refused the connection as %s: %s; retrying",
                      self.address.url,
                      f"account {self.username!r}" if self.username else "anonymous", reason)
            return
        if not flags.session_present:
            # Packet ids of messages received before belong to a session the broker no
            # longer has: never PUBACK them on this connection.
            self._epoch += 1
        self._connected.set()
        self._connect_failed = False
        log.info("connected to %s (session present: %s)", self.address.url,
                 flags.session_present)
        client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS])

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, reasons: list,
                      _props: object) -> None:
        failed = [r for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("subscription refused by the broker: %s", failed)
            return
        self._subscribed.set()

    def _on_connect_fail(self, _c: mqtt.Client, _ud: object) -> None:
        # paho says no more than this; once per outage, since it retries every few seconds
        if not self._connect_failed:
            self._connect_failed = True
            log.warning("cannot connect to the broker %s (unreachable%s); retrying",
                        self.address.url, ", or the TLS handshake failed: is the broker's "
                        "certificate signed by --mqtt-ca and for this host?"
                        if self.address.tls else "")

    def _on_disconnect(self, _c: mqtt.Client, _ud: object, _flags: object, reason: object,
                       _props: object) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _ud: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")  # rejected as bad_topic
        self._last_message = time.monotonic()
        item = _Received(Inbound(topic, bytes(message.payload), self.clock(),
                                 bool(message.retain)), message.mid, message.qos, self._epoch)
        while not self._stop.is_set():  # stopping: not acked, so the broker keeps it
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        conn: Conn | None = None
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._last_progress = time.monotonic()  # nothing to do is not a stall
                self._reconnect_if_deaf()
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                conn, outcomes = self._process(conn, batch)
                if outcomes is None:  # stopping while the database is unavailable
                    break
                self._publish(batch, outcomes)
                self._last_progress = time.monotonic()
            except Exception:  # a platform bug must not kill ingest; unacked = redelivered
                log.exception("ingest worker: batch of %d dropped without PUBACK", len(batch))
                self.last_error = "internal error in the ingest worker; see the log"
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()

    def _reconnect_if_deaf(self) -> None:
        """Connect again when the broker, having delivered before, has delivered nothing for
        `quiet_reconnect_s` on a connection it still keeps open. A fleet that is really
        silent costs one reconnect per period (the session is persistent: nothing queued
        for us is lost by it)."""
        now = time.monotonic()
        if (self.quiet_reconnect_s is None or not self.connected or self._last_message is None
                or now - max(self._last_message, self._last_reconnect)
                <= self.quiet_reconnect_s):
            return
        self._last_reconnect = now
        self.quiet_reconnects += 1
        log.warning("no uplink message for %.0f s on an open connection (session taken over "
                    "or subscription lost?): connecting again", self.quiet_reconnect_s)
        self.client.disconnect()  # ends paho's loop thread
        self.client.loop_stop()
        if not self._stop.is_set():
            self.client.connect_async(self.address.host, self.address.port, keepalive=30)
            self.client.loop_start()

    def _process(self, conn: Conn | None,
                 batch: list[_Received]) -> tuple[Conn | None, list[Outcome] | None]:
        inbound = [r.inbound for r in batch]
        delay = 0.1
        while True:
            try:
                if conn is None:
                    conn = self.db.connect()
                ingestor = Ingestor(conn, self.stations, self.keyfile.current,
                                    self.replay_window_s, self.clock)
                try:
                    outcomes = ingestor.process(inbound)
                except operational_errors():
                    raise
                except Exception as exc:  # isolate the message that breaks the batch
                    log.exception("batch of %d failed (%s); processing one by one",
                                  len(inbound), exc)
                    outcomes = [self._one(ingestor, m) for m in inbound]
                self.batches += 1
                self.messages += len(inbound)
                self.last_error = None
                return conn, outcomes
            except unavailable_errors() as exc:
                # Locked, busy, gone or refusing connections (a failed reconnect too): no
                # ack before a commit, and the same batch is tried again, not dropped.
                self.last_error = f"database unavailable: {exc}"
                log.error("%s; retrying in %.1f s", self.last_error, delay)
                if conn is not None:
                    conn.close()
                    conn = None
                if self._stop.wait(delay):
                    return None, None
                delay = min(delay * 2, 5.0)

    @staticmethod
    def _one(ingestor: Ingestor, msg: Inbound) -> Outcome:
        try:
            return ingestor.process([msg])[0]
        except operational_errors():
            raise
        except Exception as exc:
            ingestor.conn.rollback_quietly()
            return ingestor.reject_internal(msg, f"{type(exc).__name__}: {exc}")

    def _publish(self, batch: list[_Received], outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.ack is not None:
                topic, payload = outcome.ack
                info = self.client.publish(topic, payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:  # the collector resends; we re-ack
                    log.warning("ack on %s not queued: %s", topic, mqtt.error_string(info.rc))
        epoch = self._epoch
        for r in batch:
            if r.qos > 0 and r.epoch == epoch:
                self.client.ack(r.mid, r.qos)
