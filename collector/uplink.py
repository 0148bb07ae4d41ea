"""MQTT uplink of one station (docs/uplink.md): signed data messages from the spool, acks back.

The paho-mqtt 2.x client is driven by the asyncio loop (collector/mqtt_loop.py): no network
thread per station; only `connect()` runs in a worker thread, and paho's callbacks hand events
over with `call_soon_threadsafe` (harmless on the loop's own thread). The connection is supervised here rather than by paho's own
reconnect, so that a fresh, signed last will (`online: false`, new msg_seq) is registered
before every CONNECT.

Forwarding: records are sent oldest first in messages of ≤ `batch_max` records of one kind
and device, at most `window` messages awaiting the platform's ack (bounds paho's queue, see
protocols.md §7). Once a fill has sent all the spool held, the uplink lingers (`linger`, 0.5 s)
before the next: records that arrive meanwhile share messages (issue 11: 3.9 → 10.9 records
per message in the banner fleet, throughput +40 %); a lone record still goes at once. A
message not acknowledged within the ack timeout is dropped from the window and its records
travel again in a new message (new msg_seq). The timeout doubles at each
expiry (up to `ack_timeout_max`) and returns to `ack_timeout` at the next valid ack, so a
platform that is down for a while is not buried in resends queued at the broker. Acks must carry a valid
signature by the station's key; anything else is counted as forged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import ssl
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.aio import sleep_or_stop, wait_any
from collector.keys import StationKeys
from collector.mqtt_loop import LoopDriver
from collector.signing import canonical_text, sign, sign_records, verify
from collector.spool import PendingRow, Spool

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
_NO_FLOOR = 1 << 62


def data_topic(station_id: str, device: str, kind: str) -> str:
    return f"fsx/v1/{station_id}/{device}/evt/{kind}"


def status_topic(station_id: str, what: str) -> str:
    return f"fsx/v1/{station_id}/status/{what}"


def ack_topic(station_id: str) -> str:
    return f"fsx/v1/{station_id}/ack"


@dataclass(frozen=True)
class UplinkSettings:
    window: int = 16  # data messages awaiting the platform's ack
    batch_max: int = 100  # records per message (contract maximum)
    ack_timeout: float = 30.0  # s before unacknowledged records are sent again
    ack_timeout_max: float = 600.0  # s, cap of the timeout while no ack comes back
    keepalive: int = 15  # s, MQTT keepalive (a silent broker is noticed in ~1.5×)
    reconnect_min: float = 0.5  # s, first reconnect delay; doubles up to reconnect_max
    reconnect_max: float = 30.0
    connect_timeout: float = 5.0
    linger: float = 0.5  # s to wait after publishing all the spool held (see _forward_loop)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_max <= 100:
            raise ValueError(f"batch_max {self.batch_max}: the contract allows 1..100")
        if self.window < 1:
            raise ValueError(f"window {self.window}: must be at least 1")
        if self.linger < 0:
            raise ValueError(f"linger {self.linger}: must not be negative")


# An ack lists at most a message's keys (100 records, keys ≤ 128 characters): far below this.
MAX_ACK_BYTES = 256 * 1024


@dataclass
class UplinkStats:
    connects: int = 0
    connect_failures: int = 0
    messages: int = 0  # data messages published
    records_sent: int = 0  # including resends
    records_resent: int = 0
    acks: int = 0
    records_acked: int = 0
    records_rejected: int = 0
    forged_acks: int = 0
    publish_errors: int = 0
    heartbeats: int = 0


@dataclass
class _InFlight:
    ids: list[int]
    keys: list[str]
    deadline: float  # monotonic


@dataclass
class _Batch:
    device: str
    kind: str
    rows: list[PendingRow] = field(default_factory=list)


class Uplink:
    def __init__(self, station_id: str, host: str, port: int, keys: StationKeys, spool: Spool,
                 boot_id: str, settings: UplinkSettings | None = None,
                 account: tuple[str, str | None] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.station_id = station_id
        self.url = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"  # for the log
        self.username = account[0] if account else None
        self.host, self.port = host, port
        self.keys = keys
        self.spool = spool
        self.boot_id = boot_id
        self.settings = settings or UplinkSettings()
        self.stats = UplinkStats()
        self.ack_topic = ack_topic(station_id)
        self.online_topic = status_topic(station_id, "online")
        self.connected = asyncio.Event()
        self.wake = asyncio.Event()  # set when records were spooled or acks freed the window
        self._session_ended = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: LoopDriver | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._inflight_ids: set[int] = set()
        self._cursor = 0  # spool id below which every row is in flight or acknowledged
        self._floor = _NO_FLOOR  # lowest cursor a rewind asked for while reading the spool
        self._dry = False  # the last fill took everything the spool held
        self._ack_timeout = self.settings.ack_timeout
        self._closed = False
        self._ack_tasks: set[asyncio.Task] = set()
        self._settle_queue: list[tuple[list[str], list[tuple[str, str]], asyncio.Future]] = []
        self._settling = False
        self._refused: str | None = None  # why the broker refused the last CONNECT
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fc-col-{station_id}",
                             clean_session=False, reconnect_on_failure=False)
        # The window bounds what we hand paho; status messages ride on top of it.
        client.max_inflight_messages_set(self.settings.window + 8)
        client.connect_timeout = self.settings.connect_timeout
        if account is not None:
            client.username_pw_set(*account)
        if tls is not None:  # the handshake (and its verification) happens in connect()
            client.tls_set_context(tls)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        self.client = client

    # -- paho thread → event loop -------------------------------------------------------------

    def _hand_over(self, fn, *args) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                self._loop.call_soon_threadsafe(fn, *args)

    def _paho_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:  # e.g. bad credentials (CONNACK 5 Not authorized)
            self._hand_over(self._on_refused, str(reason_code))
            return  # paho closes the connection: the connection loop retries with back-off
        client.subscribe(self.ack_topic, qos=1)
        self._hand_over(self._on_connected, bool(flags.session_present))

    def _paho_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._hand_over(self._on_disconnected, str(reason_code))

    def _paho_message(self, client, userdata, message) -> None:
        # Judge size on paho's thread: a huge payload must never be parsed on the event loop
        # that every station of a fleet process shares (the platform's acks are small).
        if len(message.payload) > MAX_ACK_BYTES:
            self._hand_over(self._ignore_ack, f"of {len(message.payload)} bytes (more than "
                                              f"{MAX_ACK_BYTES})")
            return
        self._hand_over(self._ack_arrived, message.topic, bytes(message.payload))

    def _ignore_ack(self, why: str) -> None:
        self.stats.forged_acks += 1
        log.warning("%s: ignored an acknowledgement %s (%d so far)", self.station_id, why,
                    self.stats.forged_acks)

    # -- connection -----------------------------------------------------------------------------

    def _envelope(self, kind: str) -> dict:
        return {"v": CONTRACT_VERSION, "type": kind, "station_id": self.station_id,
                "msg_seq": self.spool.next_msg_seq(), "sent_at": round(time.time(), 3)}

    def _set_will(self) -> None:
        will = self._envelope("online")
        will.update(online=False, boot_id=self.boot_id)
        self.client.will_set(self.online_topic, sign(self.online_topic, will, self.keys), qos=1,
                             retain=True)

    def _on_connected(self, session_present: bool) -> None:
        self.stats.connects += 1
        log.info("%s: connected to %s (session %s)", self.station_id, self.url,
                 "resumed" if session_present else "new")
        self.connected.set()
        if not session_present:
            # The broker kept nothing for us: what was in flight may be lost with it.
            self._rewind_all("broker session is new")
        self.publish_status("online", {"online": True, "boot_id": self.boot_id}, retain=True)
        self.wake.set()

    def _on_refused(self, reason: str) -> None:
        self.stats.connect_failures += 1
        self._refused = reason

    def _on_disconnected(self, reason: str) -> None:
        if self.connected.is_set() and not self._closed:
            log.warning("%s: disconnected from the broker: %s", self.station_id, reason)
        self.connected.clear()
        self._session_ended.set()

    async def _connection_loop(self, stop: asyncio.Event) -> None:
        s = self.settings
        delay = s.reconnect_min
        while not stop.is_set():
            try:
                self._set_will()
            except sqlite3.Error as exc:  # no durable msg_seq for the will (disk full)
                log.error("%s: cannot sign a last will (spool: %s); retry in %.1f s",
                          self.station_id, exc, delay)
                if await sleep_or_stop(stop, delay):
                    return
                delay = min(delay * 2, s.reconnect_max)
                continue
            self._session_ended.clear()
            self._refused = None
            try:
                await asyncio.to_thread(self.client.connect, self.host, self.port, s.keepalive)
            except (OSError, ValueError) as exc:
                self.stats.connect_failures += 1
                # a failed TLS handshake (untrusted certificate, wrong host) lands here too
                log.warning("%s: cannot reach broker %s (%s); retry in %.1f s",
                            self.station_id, self.url, exc, delay)
                if await sleep_or_stop(stop, delay):
                    return
                delay = min(delay * 2, s.reconnect_max)
                continue
            started = time.monotonic()
            await wait_any([self._session_ended, stop], float("inf"))
            if stop.is_set():
                return  # close() ends the session cleanly
            self._detach()
            if self._refused is not None:
                log.error("%s: broker %s refused the connection as %s: %s; retry "
                          "in %.1f s", self.station_id, self.url,
                          f"account {self.username!r}" if self.username else "anonymous",
                          self._refused, delay)
            elif time.monotonic() - started > 10 * s.reconnect_min + s.keepalive:
                delay = s.reconnect_min  # the last session was healthy: start over
            if await sleep_or_stop(stop, delay):
                return
            delay = min(delay * 2, s.reconnect_max)

    # -- forwarding -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._driver = LoopDriver(self.client, self._loop)
        await asyncio.gather(self._connection_loop(stop), self._forward_loop(stop))

    async def _forward_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.connected.is_set():
                await wait_any([self.connected, stop], 1.0)
                continue
            now = time.monotonic()
            self._expire(now)
            self.wake.clear()
            if await self._fill_window():
                if self._dry and self.settings.linger:
                    # The spool ran dry: what the devices give meanwhile travels in fuller
                    # messages, fewer of them (each costs the collector, broker and platform
                    # far more than a record does). The first record after a quiet spell
                    # still goes at once, and a backlog in full messages without a pause.
                    await sleep_or_stop(stop, self.settings.linger)
                else:
                    await asyncio.sleep(0)  # let acks and polling in
                continue
            deadlines = [m.deadline for m in self._inflight.values()]
            timeout = min([1.0] + [d - now for d in deadlines])
            await wait_any([self.wake, stop], timeout)

    async def _fill_window(self) -> int:
        """Publish as many new messages as the window allows; returns how many."""
        free = self.settings.window - len(self._inflight)
        batch_max = self.settings.batch_max
        sent = 0
        while sent < free:
            # A rewind (ack timeout, new broker session) while the spool is read must win.
            self._floor = _NO_FLOOR
            wanted = batch_max * (free - sent)
            rows = await self.spool.pending_after_async(self._cursor, wanted)
            self._dry = len(rows) < wanted
            if not rows or not self.connected.is_set():
                break
            batches: list[_Batch] = []
            open_batch: dict[tuple[str, str], _Batch] = {}
            for row in rows:
                if row.id in self._inflight_ids:
                    continue
                b = open_batch.get((row.device, row.kind))
                if b is None or len(b.rows) >= batch_max:
                    b = open_batch[(row.device, row.kind)] = _Batch(row.device, row.kind)
                    batches.append(b)
                b.rows.append(row)
            new_cursor = rows[-1].id
            halted = False
            for b in batches:
                if not halted and sent < free:
                    if self._publish_batch(b):
                        sent += 1
                        continue
                    halted = True  # paho refused it (disconnected): stop for now
                # Not sent: keep the cursor below its first row to find it again.
                new_cursor = min(new_cursor, b.rows[0].id - 1)
            self._cursor = min(new_cursor, self._floor)
            if halted:
                break
        return sent

    def _publish_batch(self, b: _Batch) -> bool:
        topic = data_topic(self.station_id, b.device, b.kind)
        try:
            payload = self._envelope(b.kind)
        except sqlite3.Error as exc:
            # msg_seq blocks are reserved durably; without one nothing may be sent (a reused
            # msg_seq would be a replay). The records wait in the spool.
            log.error("%s: no msg_seq (spool: %s); sending later", self.station_id, exc)
            return False
        payload["device"] = b.device
        canonical_from = self.spool.canonical_from
        records = [r.payload if r.id >= canonical_from else canonical_text(json.loads(r.payload))
                   for r in b.rows]
        data = sign_records(topic, payload, records, self.keys)
        info = self.client.publish(topic, data, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.stats.publish_errors += 1
            log.warning("%s: publish on %s failed: %s", self.station_id, topic,
                        mqtt.error_string(info.rc))
            return False
        ids = [r.id for r in b.rows]
        self._inflight[payload["msg_seq"]] = _InFlight(
            ids, [r.key for r in b.rows], time.monotonic() + self._ack_timeout)
        self._inflight_ids.update(ids)
        self.stats.messages += 1
        self.stats.records_sent += len(ids)
        return True

    def _forget(self, msg_seq: int) -> _InFlight | None:
        msg = self._inflight.pop(msg_seq, None)
        if msg is not None:
            self._inflight_ids.difference_update(msg.ids)
        return msg

    def _resend_later(self, ids: list[int]) -> None:
        if ids:
            self._cursor = min(self._cursor, min(ids) - 1)
            self._floor = min(self._floor, self._cursor)
            self.stats.records_resent += len(ids)

    def _expire(self, now: float) -> None:
        expired = [s for s, m in self._inflight.items() if m.deadline <= now]
        for msg_seq in expired:
            msg = self._forget(msg_seq)
            if msg is None:  # no longer in flight: nothing to send again
                continue
            log.info("%s: no ack for msg_seq %d within %.0f s; its %d records go again",
                     self.station_id, msg_seq, self._ack_timeout, len(msg.ids))
            self._resend_later(msg.ids)
        if expired:
            self._ack_timeout = min(self._ack_timeout * 2, self.settings.ack_timeout_max)

    def _rewind_all(self, why: str) -> None:
        if self._inflight:
            log.info("%s: %s; resending %d messages' records", self.station_id, why,
                     len(self._inflight))
        for msg_seq in list(self._inflight):
            msg = self._forget(msg_seq)
            if msg is not None:
                self._resend_later(msg.ids)

    # -- acknowledgements -----------------------------------------------------------------------

    def _ack_arrived(self, topic: str, raw: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._on_ack_message(topic, raw))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_done)

    def _ack_done(self, task: asyncio.Task) -> None:
        self._ack_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: handling an ack failed", self.station_id, exc_info=task.exception())

    async def _on_ack_message(self, topic: str, raw: bytes) -> None:
        try:
            ack = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            ack = None
        if (not isinstance(ack, dict) or topic != self.ack_topic or ack.get("type") != "ack"
                or ack.get("station_id") != self.station_id
                or not verify(topic, ack, self.keys)):
            self._ignore_ack("without a valid signature")
            return
        try:
            done = _str_list(ack.get("accepted", [])) + _str_list(ack.get("duplicates", []))
            rejected = [(str(r["key"]), str(r.get("reason", ""))) for r in ack.get("rejected", [])]
        except (TypeError, KeyError, AttributeError):
            log.error("%s: signed ack with malformed key lists ignored: %.200s", self.station_id,
                      raw)
            return
        self._ack_timeout = self.settings.ack_timeout  # the platform answers again
        # Delete first, then free the window: a record leaves flight only once it is gone.
        deleted, moved = await self._settle(done, rejected)
        self.stats.acks += 1  # counted once applied, so a reader of the counter sees the spool
        self.stats.records_acked += deleted
        if rejected:
            self.stats.records_rejected += moved
            for key, reason in rejected:
                log.error("%s: platform rejected %s (%s); kept in the dead-letter table",
                          self.station_id, key, reason)
        acked = ack.get("acked_msg_seq")
        msg = self._forget(acked) if isinstance(acked, int) else None
        if msg is not None:
            answered = set(done) | {k for k, _ in rejected}
            self._resend_later([i for i, k in zip(msg.ids, msg.keys, strict=True)
                                if k not in answered])
        self.wake.set()

    async def _settle(self, done: list[str], rejected: list[tuple[str, str]]) -> tuple[int, int]:
        """Group commit: acks arriving while a commit runs are applied together in the next."""
        future = asyncio.get_running_loop().create_future()
        self._settle_queue.append((done, rejected, future))
        if not self._settling:
            self._settling = True
            task = asyncio.get_running_loop().create_task(self._settle_all())
            self._ack_tasks.add(task)
            task.add_done_callback(self._ack_done)
        return await future

    async def _settle_all(self) -> None:
        failures = 0
        try:
            while self._settle_queue:
                batch, self._settle_queue = self._settle_queue, []
                done = [k for d, _, _ in batch for k in d]
                rejected = [r for _, rj, _ in batch for r in rj]
                try:
                    deleted, moved = await self.spool.settle_async(done, rejected)
                except sqlite3.Error as exc:
                    if self._closed:
                        for _, _, fut in batch:
                            if not fut.done():
                                fut.set_exception(exc)
                        continue
                    # The spool cannot delete now (disk full): the acked records stay in it,
                    # in flight, and the deletes are tried again (they are idempotent).
                    failures += 1
                    retry = min(0.25 * 2 ** (failures - 1), 5.0)
                    log.error("%s: cannot apply a platform ack to the spool (%s); retry in "
                              "%.2f s", self.station_id, exc, retry)
                    self._settle_queue = batch + self._settle_queue
                    await asyncio.sleep(retry)
                    continue
                except Exception as exc:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                failures = 0
                # Figures are per commit; attribute them to the first ack of the batch.
                for i, (_, _, fut) in enumerate(batch):
                    if not fut.done():
                        fut.set_result((deleted, moved) if i == 0 else (0, 0))
        finally:
            self._settling = False

    # -- status messages ------------------------------------------------------------------------

    def publish_status(self, kind: str, fields: dict, retain: bool = False):
        """Publish a heartbeat/online message if connected; returns paho's info or None."""
        if not self.connected.is_set():
            return None
        try:
            payload = self._envelope(kind)
        except sqlite3.Error as exc:  # no durable msg_seq (disk full): skip this one
            log.error("%s: %s not sent: no msg_seq (spool: %s)", self.station_id, kind, exc)
            return None
        payload.update(fields)
        topic = status_topic(self.station_id, kind)
        info = self.client.publish(topic, sign(topic, payload, self.keys), qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.stats.publish_errors += 1
            return None
        if kind == "heartbeat":
            self.stats.heartbeats += 1
        return info

    def _detach(self) -> None:
        if self._driver is not None:
            self._driver.detach()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def close(self, drain_timeout: float = 3.0) -> None:
        """Wait briefly for outstanding acks, publish `online: false`, disconnect."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + drain_timeout
        while self._inflight and self.connected.is_set() and time.monotonic() < deadline:
            self.wake.clear()
            await wait_any([self.wake], deadline - time.monotonic())
        info = self.publish_status("online", {"online": False, "boot_id": self.boot_id},
                                   retain=True)
        if info is not None:
            try:
                await asyncio.to_thread(info.wait_for_publish, 2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("%s: online=false not confirmed: %s", self.station_id, exc)
        if self.client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
            await wait_any([self._session_ended], 2.0)  # DISCONNECT written, socket closed
        self._detach()
        if self._ack_tasks:  # deletes in progress finish before the spool closes
            await asyncio.gather(*self._ack_tasks, return_exceptions=True)


def _str_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value
