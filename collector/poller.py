"""Polling of one station's devices (站端数据采集): drain every FIFO, read live state.

A poll *round* reads the FIFOs that may hold records (at each sweep, every `poll_interval`,
those due; in between only those that had more pending than one window shows),
decodes and CRC-checks the records, commits them to the spool in one transaction, and only
then writes each FIFO's newest spooled sequence number to its `ack` register (cumulative)
with the FIFO's next read (FC23: write, then read, in one request): at once for a FIFO that
holds more than its window showed, at the next sweep for the others. The link then carries
one request per window instead of two. A round polls the station's devices side by side
(over TCP each device has a connection of its own; on an RTU line they take turns), each
device's FIFOs one after another. A device that answers
FC23 with exception 01 gets FC06 and FC03 from then on; a clean stop writes what is still
due with FC06, so a restart does not read it again.
The header (RTC, profile and dialect check) and the nozzle/tank blocks are read every
`live_interval`. A FIFO found empty is due again at the next sweep, then, while it stays
empty, at sweeps twice, four times … as far apart, at most `idle_poll_max`: on a busy
device the link then goes to the FIFOs that hold records instead of to empty ones
(issue 11). A device that is failing is swept every time (its off-line rule is
unchanged).

Comms failures (timeouts, exception replies, no connection) are counted per device; the
device is retried after an exponential back-off (bounded by `backoff_max`) and reported off
line after `offline_after` consecutive failures, then back on line at its next good reply.
A record failing its CRC is not acknowledged and is read again; after `crc_retries` bad reads
of the same record it is quarantined in the spool's dead-letter table with its raw registers,
reported as the device's error, logged, and acknowledged so the stream can go on.
A round the spool cannot store (disk full, I/O error) acknowledges nothing: the records stay
in the devices, every device reports the failure as its error, and polling pauses with
back-off (at most `spool_retry_max`) before reading them again.

Each header read also feeds the device's state reports (collector/states.py: identity and
status, spooled with the round's records when they changed) and its `drained_through`
(collector/drained.py: how far its data is complete at the platform).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from collector.aio import sleep_or_stop
from collector.codec import DecodeError, decode_fields, is_empty_slot, record_crc_ok
from collector.drained import DrainTracker
from collector.endpoints import DeviceEndpoint, StationEndpoint
from collector.modbus_link import (
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    LinkError,
    ModbusExceptionReply,
    ModbusLink,
)
from collector.profile import Dialect, Fifo, Profile
from collector.spool import Spool, SpoolRecord
from collector.states import PendingState, StateReporter
from collector.uplink_records import RecordBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollSettings:
    poll_interval: float = 0.5  # s between sweeps over every FIFO
    live_interval: float = 5.0  # s between reads of header (RTC) and nozzle/tank blocks
    timeout: float = 1.0  # s per Modbus request
    offline_after: int = 5  # consecutive failures before a device is reported off line
    backoff_base: float = 0.25  # s, first retry delay; doubles per consecutive failure
    backoff_max: float = 10.0  # s, cap of the retry delay
    crc_retries: int = 5  # bad-CRC reads of one record before it is quarantined
    spool_retry_max: float = 5.0  # s, cap of the pause after a failed spool write
    idle_poll_max: float = 2.0  # s, cap of the sweep interval of a FIFO that stays empty


def backoff_delay(failures: int, settings: PollSettings) -> float:
    """Retry delay after `failures` consecutive failures: base·2^(n−1), at most backoff_max."""
    return min(settings.backoff_base * 2 ** (failures - 1), settings.backoff_max)


def idle_delay(empty_reads: int, settings: PollSettings) -> float:
    """Sweep interval of a FIFO after `empty_reads` consecutive empty reads:
    poll_interval·2^(n−1), at most idle_poll_max (never below poll_interval)."""
    cap = max(settings.idle_poll_max, settings.poll_interval)
    return min(settings.poll_interval * 2 ** min(empty_reads - 1, 30), cap)


@dataclass
class FifoCursor:
    more: bool = True  # pending beyond the window last read: read again without waiting
    bad_seq: int | None = None  # sequence of the record that failed its CRC
    bad_reads: int = 0
    dropped: int | None = None  # device overflow counter last seen
    empty_reads: int = 0  # consecutive reads with pending = 0
    due: float = 0.0  # monotonic: not swept before (idle back-off)
    ack_due: int | None = None  # spooled, acknowledged with the next read of this FIFO (FC23)


@dataclass
class DeviceState:
    """Comms state of one device, as reported in heartbeats."""

    endpoint: DeviceEndpoint
    profile: Profile
    dialect: Dialect
    fifos: dict[str, FifoCursor] = field(default_factory=dict)
    failures: int = 0  # consecutive
    online: bool = False  # becomes True at the first good reply
    last_ok_at: float | None = None  # collector wall clock
    device_time: int | None = None  # RTC epoch at the last header read
    version: int | None = None  # profile_version of the last good header read
    error: str | None = None  # last problem; kept until a heartbeat has reported it
    error_reported: bool = False
    blocked: str | None = None  # header contradicts the endpoint map: FIFOs are not drained
    next_try: float = 0.0  # monotonic time before which the device is left alone
    next_live: float = 0.0
    live: dict = field(default_factory=dict)  # last header and nozzle/tank values
    quarantined: int = 0
    fc23: bool = True  # until the device answers FC23 with exception 01
    drain: DrainTracker = field(init=False)  # how far its data is complete (drained_through)

    def __post_init__(self) -> None:
        self.drain = DrainTracker(tuple(self.profile.fifos))

    @property
    def device(self) -> str:
        return self.endpoint.device

    def snapshot(self, oldest_pending_id: int | None = None) -> dict:
        """Heartbeat entry (docs/uplink.md §4); an error is shown at least once.
        `oldest_pending_id`: the device's oldest unacknowledged spool row (None: none)."""
        entry = {"device": self.device, "online": self.online, "device_time": self.device_time,
                 "last_ok_at": None if self.last_ok_at is None else round(self.last_ok_at, 3),
                 "failures": self.failures, "error": self.error,
                 "drained_through": self.drain.promote(oldest_pending_id)}
        if self.error is not None:
            self.error_reported = True  # cleared by the next good reply
        return entry

    def set_error(self, message: str) -> None:
        # Bounded: the heartbeat schema caps `error` at 1000 characters.
        self.error, self.error_reported = message[:500], False


class _DeviceFailed(Exception):
    """Abandon the rest of this device's work in the current round."""


@dataclass
class _Drained:
    device: DeviceState
    fifo: Fifo
    ack_seq: int


class StationPoller:
    def __init__(self, endpoint: StationEndpoint, profiles: dict[str, Profile],
                 builder: RecordBuilder, spool: Spool, settings: PollSettings | None = None,
                 on_spooled=None, link: ModbusLink | None = None, mutate=None,
                 on_device_change=None) -> None:
        self.endpoint = endpoint
        # a hook that may replace each record before it is spooled (None in the reference;
        # QA's broken variants set it: mutants/collector.py)
        self.mutate = mutate
        self.settings = settings or PollSettings()
        self.builder = builder
        self.spool = spool
        self.on_spooled = on_spooled or (lambda n: None)
        # called when a device goes on or off line: the station sends its status at once
        self.on_device_change = on_device_change or (lambda: None)
        self.link = link or ModbusLink(endpoint, self.settings.timeout)
        self.devices: list[DeviceState] = []
        for dev in endpoint.devices:
            profile = profiles.get(dev.profile)
            if profile is None:
                raise ValueError(f"station {endpoint.station_id} device {dev.device}: profile "
                                 f"{dev.profile!r} not among the loaded profiles {sorted(profiles)}")
            dialect = profile.dialects.get(endpoint.dialect)
            if dialect is None:
                raise ValueError(f"station {endpoint.station_id}: dialect {endpoint.dialect!r} "
                                 f"is not in profile {profile.name!r} ({sorted(profile.dialects)})")
            self.devices.append(DeviceState(dev, profile, dialect,
                                            {name: FifoCursor() for name in profile.fifos}))
        self.states = StateReporter(endpoint.station_id, spool)
        self._states: list[PendingState] = []  # state reports of the round in progress
        self._order = {dev.device: i for i, dev in enumerate(self.devices)}
        self.records_spooled = 0
        self.rounds = 0
        self.spool_failures = 0  # consecutive failed spool writes (disk full, I/O error)
        self.spool_failures_total = 0
        self._spool_retry_at = 0.0  # monotonic: no poll round before (back-off)

    # -- public -----------------------------------------------------------------------------

    def heartbeat_devices(self) -> list[dict]:
        return [d.snapshot(self.spool.oldest_pending_id(d.device)) for d in self.devices]

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        next_sweep = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now < self._spool_retry_at:
                    # The spool refused the last round: what the devices hold stays there;
                    # reading it again at once would only spin against a full disk.
                    await sleep_or_stop(stop, self._spool_retry_at - now)
                    continue
                sweep = now >= next_sweep
                if sweep:
                    next_sweep = now + s.poll_interval
                work = self._plan(now, sweep)
                if not any(work.values()) and not self._live_due(now):
                    wake = min([next_sweep] + [d.next_try for d in self.devices
                                               if d.next_try > now])
                    await sleep_or_stop(stop, wake - now)
                    continue
                await self.poll_round(work, now)
            await self.flush_acks()
        finally:
            self.link.close()

    async def poll_round(self, work: dict[str, list[Fifo]] | None = None,
                         now: float | None = None) -> int:
        """One round over `work` (device → FIFOs; default: everything). Returns records spooled."""
        now = time.monotonic() if now is None else now
        if work is None:
            work = {d.device: list(d.profile.fifos.values()) for d in self.devices}
        self.rounds += 1
        self._states = []
        # the devices side by side (over TCP each has its own connection); each one's
        # records and acks kept apart, then joined in device order, so the spool's order
        # does not depend on which reply came first
        due = [dev for dev in self.devices if now >= dev.next_try
               and (work.get(dev.device) or now >= dev.next_live)]
        polls = [self._poll_device(dev, work.get(dev.device, ()), now) for dev in due]
        # one device alone needs no task (a task costs more than most of its requests)
        parts = [await polls[0]] if len(polls) == 1 else await asyncio.gather(*polls)
        batch = [r for records, _ in parts for r in records]
        drained = [d for _, ds in parts for d in ds]
        self._states.sort(key=lambda p: self._order[p.device])
        states = self._states
        batch.extend(p.record for p in states)
        try:
            added = await self.spool.add_async(batch, StateReporter.meta(states)) \
                if batch else 0
        except sqlite3.Error as exc:
            # Disk full, I/O error…: acknowledge nothing; the records stay in the devices.
            self._spool_failed(exc, len(batch))
            return 0
        if self.spool_failures:
            log.warning("%s: spool writable again after %d failed writes",
                        self.endpoint.station_id, self.spool_failures)
            self.spool_failures = 0
        self.states.committed(states)
        for dev in self.devices:
            dev.drain.end_round(self.spool.last_id)
        if added:
            self.on_spooled(added)
        self.records_spooled += added
        # Acknowledge only what is now durable in the spool (cumulative per FIFO), with the
        # FIFO's next read (FC23): at once for one that holds more, at the next sweep for the
        # others. That halves the requests on the link.
        for item in drained:
            cursor = item.device.fifos[item.fifo.name]
            if item.device.fc23:
                cursor.ack_due = item.ack_seq
            else:
                cursor.ack_due = None
                await self._ack(item)
        return added

    async def _poll_device(self, dev: DeviceState, fifos: Sequence[Fifo],
                           now: float) -> tuple[list[SpoolRecord], list[_Drained]]:
        """One device's part of a round: its live blocks when due, then its FIFOs."""
        records: list[SpoolRecord] = []
        drained: list[_Drained] = []
        try:
            if now >= dev.next_live:
                await self._read_live(dev)
                dev.next_live = now + self.settings.live_interval
            if not dev.blocked:
                for fifo in fifos:
                    got = await self._read_fifo(dev, fifo, records)
                    if got is not None:
                        drained.append(got)
        except _DeviceFailed:
            pass
        return records, drained

    async def flush_acks(self) -> None:
        """Write every deferred ack alone (FC06): on a clean stop, so a restart does not read
        again what is spooled already. Best effort: a failure leaves the records in the device,
        read again later (the spool and the platform ignore repeats)."""
        for dev in self.devices:
            for fifo in dev.profile.fifos.values():
                cursor = dev.fifos[fifo.name]
                if cursor.ack_due is not None and not dev.failures:
                    ack, cursor.ack_due = cursor.ack_due, None
                    await self._ack(_Drained(dev, fifo, ack))

    def _spool_failed(self, exc: sqlite3.Error, records: int) -> None:
        """A round's records could not be stored: none is acknowledged (the devices keep them
        and serve them again), every device reports it, and polling pauses with back-off."""
        self.spool_failures += 1
        self.spool_failures_total += 1
        delay = min(self.settings.backoff_base * 2 ** (self.spool_failures - 1),
                    self.settings.spool_retry_max)
        self._spool_retry_at = time.monotonic() + delay
        message = f"spool write failed ({exc}); records left unacknowledged in the device"
        for dev in self.devices:
            for cursor in dev.fifos.values():
                cursor.more = True
            dev.drain.end_round(None)
            # the heartbeat's only place for it (docs/uplink.md §4): each device's error
            dev.set_error(message)
        log.error("%s: %s (%d records; failure %d, next try in %.2f s)",
                  self.endpoint.station_id, message, records, self.spool_failures, delay)

    # -- planning -----------------------------------------------------------------------------

    def _plan(self, now: float, sweep: bool) -> dict[str, list[Fifo]]:
        plan: dict[str, list[Fifo]] = {}
        for dev in self.devices:
            if now < dev.next_try or dev.blocked:
                continue
            plan[dev.device] = [f for f in dev.profile.fifos.values()
                                if dev.fifos[f.name].more
                                or (sweep and (dev.failures or now >= dev.fifos[f.name].due))]
        return plan

    def _live_due(self, now: float) -> bool:
        return any(now >= d.next_live and now >= d.next_try for d in self.devices)

    # -- comms bookkeeping ------------------------------------------------------------------

    def _ok(self, dev: DeviceState) -> None:
        if not dev.online:
            if dev.last_ok_at is not None:
                log.info("%s %s back on line", self.endpoint.station_id, dev.device)
            dev.online = True
            self.on_device_change()
        dev.failures = 0
        dev.next_try = 0.0
        dev.last_ok_at = time.time()
        if dev.error is not None and dev.error_reported and not dev.blocked:
            dev.error = None

    def _fail(self, dev: DeviceState, exc: Exception) -> _DeviceFailed:
        s = self.settings
        dev.failures += 1
        dev.set_error(str(exc))
        delay = backoff_delay(dev.failures, s)
        dev.next_try = time.monotonic() + delay
        if (not isinstance(exc, ModbusExceptionReply)
                and all(d.failures >= 2 for d in self.devices)):
            # No unit answers at all: the connection itself may be stale (a hung gateway,
            # a half-open socket). Drop it; the next request opens a fresh one.
            log.info("%s: no device answers; reopening %s", self.endpoint.station_id,
                     self.endpoint.describe())
            self.link.close()
        if dev.failures >= s.offline_after and dev.online:
            dev.online = False
            self.on_device_change()
        if dev.failures == s.offline_after:
            log.warning("%s %s off line after %d consecutive failures: %s",
                        self.endpoint.station_id, dev.device, dev.failures, exc)
        else:
            log.debug("%s %s failure %d (retry in %.2f s): %s", self.endpoint.station_id,
                      dev.device, dev.failures, delay, exc)
        return _DeviceFailed()

    async def _read(self, dev: DeviceState, address: int, count: int) -> list[int]:
        try:
            regs = await self.link.read(dev.endpoint.unit_id, address, count)
        except LinkError as exc:
            raise self._fail(dev, exc) from exc
        self._ok(dev)
        return regs

    # -- live state -------------------------------------------------------------------------

    async def _read_live(self, dev: DeviceState) -> None:
        profile, dialect = dev.profile, dev.dialect
        header = profile.blocks["header"]
        regs = await self._read(dev, header.base, header.read_size)
        try:
            values = decode_fields(regs, 0, header.fields, dialect)
        except DecodeError as exc:
            raise self._fail(dev, exc) from exc
        problem = None
        version = values.get("profile_version")
        if values.get("profile_id") != profile.profile_id:
            problem = (f"header profile_id {values.get('profile_id')} is not "
                       f"{profile.profile_id} ({profile.name})")
        elif not isinstance(version, int) or not 1 <= version <= profile.version:
            # Versions are backward compatible (a later one only gives reserved registers
            # a meaning); a version newer than the profile file may have moved something.
            problem = (f"header profile_version {version} is not one this collector knows "
                       f"(1 to {profile.version} of {profile.name}); update the profiles")
        elif values.get("dialect_code") != dialect.code:
            problem = (f"header dialect_code {values.get('dialect_code')} is not {dialect.code} "
                       f"({dialect.name} in the endpoint map)")
        if problem:
            if dev.blocked != problem:
                log.error("%s %s: %s; its FIFOs are not read until this is fixed",
                          self.endpoint.station_id, dev.device, problem)
            dev.blocked = problem
            dev.set_error(problem)
            return
        if dev.blocked:
            log.info("%s %s: header agrees with the endpoint map again",
                     self.endpoint.station_id, dev.device)
            dev.blocked = None
            dev.error = None
        dev.device_time = int(values["rtc_epoch"])
        dev.version = cast(int, version)  # an int in 1..profile.version: checked above
        dev.drain.header(dev.device_time)
        report = self.states.check(dev.device, values, dev.device_time, time.time())
        if report is not None:
            self._states.append(report)
        live: dict = {"header": values}
        for bname, block in profile.blocks.items():
            if bname == "header" or not block.instances:
                continue
            items = {}
            for unit in dev.endpoint.units:
                try:
                    regs = await self.link.read(dev.endpoint.unit_id, block.address(unit),
                                                block.read_size)
                    items[unit] = decode_fields(regs, 0, block.fields, dialect)
                except ModbusExceptionReply as exc:
                    # The device answered: a block the endpoint map promised is missing.
                    # Say so, but keep draining its FIFOs (the data that matters).
                    dev.set_error(f"{bname} {unit}: {exc}")
                    continue
                except LinkError as exc:
                    raise self._fail(dev, exc) from exc
                except DecodeError as exc:
                    dev.set_error(f"{bname} {unit}: {exc}")
                    continue
                self._ok(dev)
            live[bname] = items
        dev.live = live

    # -- FIFOs ------------------------------------------------------------------------------

    async def _read_fifo(self, dev: DeviceState, fifo: Fifo,
                         batch: list[SpoolRecord]) -> _Drained | None:
        cursor = dev.fifos[fifo.name]
        regs = await self._read_window(dev, fifo, cursor)
        collected_at = time.time()
        try:
            status = decode_fields(regs, 0, fifo.status, dev.dialect)
        except DecodeError as exc:
            raise self._fail(dev, exc) from exc
        pending, head = int(status["pending"]), int(status["head_seq"])
        self._note_dropped(dev, fifo, cursor, status.get("dropped"))
        if pending == 0:
            dev.drain.fifo_empty(fifo.name)
            cursor.empty_reads += 1
            # half a sweep early: due again at the sweep that falls after the delay
            cursor.due = time.monotonic() + idle_delay(cursor.empty_reads, self.settings) \
                - self.settings.poll_interval / 2
        else:
            cursor.empty_reads, cursor.due = 0, 0.0
        shown = min(pending, fifo.window_records)
        crc_field = fifo.record["crc"]
        kind = self.builder.kind(dev.profile.name, fifo.name)
        ack_seq: int | None = None
        good = 0
        prev_seq = (head - 1) & 0xFFFF
        for i in range(shown):
            start = fifo.window_offset + i * fifo.record_size
            raw = regs[start:start + fifo.record_size]
            expected_seq = (prev_seq + 1) & 0xFFFF
            if is_empty_slot(raw):
                if i == 0:  # pending > 0 yet nothing shown: a garbled read, not a record
                    raise self._fail(dev, LinkError(
                        f"{fifo.name}: pending {pending} but the window is empty"))
                break
            if not record_crc_ok(raw, crc_field):
                if i == 0:
                    ack_seq = await self._bad_record(dev, fifo, cursor, head, raw, collected_at)
                break
            try:
                fields = decode_fields(raw, 0, fifo.record, dev.dialect)
            except DecodeError as exc:
                # CRC-valid but undecodable (a float NaN or too large for its scale): a device
                # fault; same treatment.
                if i == 0:
                    ack_seq = await self._bad_record(dev, fifo, cursor, head, raw, collected_at,
                                                     reason=f"undecodable ({exc})")
                break
            seq = int(fields["seq"])
            if seq != expected_seq:
                if i == 0:
                    # Window and status disagree: treat the read as garbled, spool nothing.
                    raise self._fail(dev, LinkError(
                        f"{fifo.name}: first record seq {seq} != head_seq {head}"))
                log.warning("%s %s %s: sequence gap %d → %d inside the window",
                            self.endpoint.station_id, dev.device, fifo.name, prev_seq, seq)
            if cursor.bad_seq == seq:
                cursor.bad_seq, cursor.bad_reads = None, 0  # a retry read it cleanly
            payload = self.builder.build(dev.device, dev.profile.name, fifo.name, fields,
                                         collected_at, dev.version)
            record = SpoolRecord(payload["key"], kind, dev.device, payload)
            batch.extend(self.mutate(record) if self.mutate else (record,))
            ack_seq = prev_seq = seq
            good += 1
        cursor.more = pending > good
        if ack_seq is None:
            return None
        return _Drained(dev, fifo, ack_seq)

    async def _read_window(self, dev: DeviceState, fifo: Fifo, cursor: FifoCursor) -> list[int]:
        """Status and window of a FIFO, with its deferred ack written first (FC23) if any."""
        ack, cursor.ack_due = cursor.ack_due, None
        if ack is not None and not dev.fc23:  # deferred before the device refused FC23
            await self._ack(_Drained(dev, fifo, ack))
            ack = None
        if ack is None:
            return await self._read(dev, fifo.base, fifo.read_count)
        try:
            regs = await self.link.read(dev.endpoint.unit_id, fifo.base, fifo.read_count,
                                        write=(fifo.ack_address, ack))
        except ModbusExceptionReply as exc:
            if exc.code == ILLEGAL_FUNCTION:  # a device without FC23: FC06, then FC03
                log.info("%s %s: no FC23 (exception 01); acknowledging with FC06 from now on",
                         self.endpoint.station_id, dev.device)
                dev.fc23 = False
                await self._ack(_Drained(dev, fifo, ack))
            elif exc.code == ILLEGAL_DATA_VALUE:  # not pending: the ack went through before
                log.warning("%s %s %s: ack %d refused (not pending)", self.endpoint.station_id,
                            dev.device, fifo.name, ack)
            else:
                raise self._fail(dev, exc) from exc
            return await self._read(dev, fifo.base, fifo.read_count)
        except LinkError as exc:
            cursor.ack_due = ack  # it may or may not have arrived: again with the next read
            raise self._fail(dev, exc) from exc
        self._ok(dev)
        return regs

    def _note_dropped(self, dev: DeviceState, fifo: Fifo, cursor: FifoCursor,
                      dropped: int | str | None) -> None:
        if dropped is None:
            return
        if cursor.dropped is not None and int(dropped) > cursor.dropped:
            log.warning("%s %s %s: device FIFO overflow dropped %d records (total %d)",
                        self.endpoint.station_id, dev.device, fifo.name,
                        int(dropped) - cursor.dropped, int(dropped))
        cursor.dropped = int(dropped)

    async def _bad_record(self, dev: DeviceState, fifo: Fifo, cursor: FifoCursor, seq: int,
                 raw: list[int], collected_at: float, reason: str = "bad CRC") -> int | None:
        """Count a bad read of the head record; quarantine it after `crc_retries` reads."""
        if cursor.bad_seq != seq:
            cursor.bad_seq, cursor.bad_reads = seq, 0
        cursor.bad_reads += 1
        cursor.more = True
        where = f"{self.endpoint.station_id} {dev.device} {fifo.name} seq {seq}"
        if cursor.bad_reads < self.settings.crc_retries:
            log.warning("%s: %s (read %d of %d), reading again", where, reason,
                        cursor.bad_reads, self.settings.crc_retries)
            return None
        message = (f"{fifo.name} seq {seq}: {reason} in {cursor.bad_reads} reads; "
                   f"quarantined in the spool's dead letters")
        log.error("%s: %s", where, message)
        key = f"{self.endpoint.station_id}/{dev.device}/{fifo.name}/{seq}/quarantined"
        try:
            await self.spool.quarantine_async(
                key, self.builder.kind(dev.profile.name, fifo.name), dev.device, reason,
                {"seq": seq, "registers": raw, "collected_at": round(collected_at, 3)})
        except sqlite3.Error as exc:
            log.error("%s: cannot keep the bad record (%s); not acknowledged", where, exc)
            return None
        dev.quarantined += 1
        dev.set_error(message)
        cursor.bad_seq, cursor.bad_reads = None, 0
        return seq

    async def _ack(self, item: _Drained) -> None:
        dev, fifo = item.device, item.fifo
        try:
            await self.link.write(dev.endpoint.unit_id, fifo.ack_address, item.ack_seq)
        except ModbusExceptionReply as exc:
            if exc.code == ILLEGAL_DATA_VALUE:
                # Not pending any more (released meanwhile): harmless, re-read the FIFO.
                log.warning("%s %s %s: ack %d refused (not pending)", self.endpoint.station_id,
                            dev.device, fifo.name, item.ack_seq)
                dev.fifos[fifo.name].more = True
                return
            self._fail(dev, exc)
        except LinkError as exc:
            # The records stay in the device and are read again (the spool ignores repeats).
            self._fail(dev, exc)
        else:
            self._ok(dev)

