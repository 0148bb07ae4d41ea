"""The collector's poller against the harness's real Modbus devices (TCP and RTU)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import sqlite3

import pytest
from test_collector_support import (
    Station,
    delivery,
    event,
    expected_delivery,
    expected_event,
    expected_inventory,
    expected_transaction,
    inventory,
    strip,
    transaction,
    until,
)

from collector.endpoints import DeviceEndpoint, StationEndpoint
from collector.modbus_link import ModbusLink
from collector.poller import PollSettings, StationPoller, backoff_delay, idle_delay
from collector.profile import load_profiles
from collector.spool import Spool
from collector.uplink_records import RecordBuilder

PROFILES = load_profiles()
FAST = PollSettings(poll_interval=0.05, live_interval=0.2, timeout=0.3, offline_after=3,
                    backoff_base=0.02, backoff_max=0.1, crc_retries=3)


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def make_poller(endpoint: StationEndpoint, spool: Spool, settings: PollSettings = FAST,
                link: ModbusLink | None = None) -> StationPoller:
    return StationPoller(endpoint, PROFILES, RecordBuilder(endpoint.station_id, PROFILES), spool,
                         settings, link=link)


def spooled(spool: Spool, kind: str | None = None) -> dict[str, dict]:
    """Spooled FIFO records (state reports only with kind="state")."""
    import json

    return {r.key: strip(json.loads(r.payload)) for r in spool.pending_after(0, 100000)
            if (r.kind == "state") == (kind == "state")}


def fill(station: Station) -> dict[str, dict]:
    """Records in every FIFO, transactions and inventory across the 16-bit wrap."""
    expected = {}
    for i, seq in enumerate([65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3]):
        t = transaction(seq, i, nozzle=1 + i % 2)
        station.d1.accept("transactions", t)
        expected[expected_transaction(t)["key"]] = expected_transaction(t)
    for i in range(6):
        e = event(100 + i, i)
        station.d1.accept("events", e)
        expected[expected_event(e)["key"]] = expected_event(e)
    for i, seq in enumerate([65534, 65535, 0, 1, 2, 3, 4]):
        r = inventory(seq, i, tank=1 + i % 2)
        station.g.accept("inventory", r)
        expected[expected_inventory(r)["key"]] = expected_inventory(r)
    for i in range(2):
        d = delivery(40 + i, i)
        station.g.accept("deliveries", d)
        expected[expected_delivery(d)["key"]] = expected_delivery(d)
    for i in range(3):
        e = event(7 + i, i, device="G")
        station.g.accept("events", e)
        expected[expected_event(e)["key"]] = expected_event(e)
    return expected


@contextlib.asynccontextmanager
async def running(poller: StationPoller):
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def drain(poller: StationPoller, spool: Spool, want: int, timeout: float = 10.0) -> None:
    """Run the poller until `want` FIFO records are spooled (state reports not counted)."""
    async with running(poller):
        assert await until(lambda: len(spooled(spool)) >= want, timeout), spool.backlog


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_drains_every_fifo_across_the_wrap_with_exact_values(tmp_path, dialect):
    station = Station(dialect=dialect)
    expected = fill(station)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            await drain(poller, spool, len(expected))
            # Acks are written after the commit of the round: give the last one a moment.
            assert await until(lambda: not any(station.pending().values()), 5)
            assert spooled(spool) == expected
            # one state report per device after start: the baseline of its identity/status
            t = int(station.clock.now)
            assert spooled(spool, "state") == {
                f"S01/D1/states/0/{t}": {
                    "key": f"S01/D1/states/0/{t}", "seq": 0, "device_time": t,
                    "serial_number": "TQ-0001", "software_id": "V3.2.1", "mainboard_id": "MB-1",
                    "encoder_id": "ENC-1", "seal_state": 0, "device_status": 0},
                f"S01/G/states/0/{t}": {
                    "key": f"S01/G/states/0/{t}", "seq": 0, "device_time": t,
                    "serial_number": "ATG-1", "software_id": "TLS-4", "mainboard_id": "",
                    "encoder_id": "", "seal_state": 0, "device_status": 0}}
            beat = {d["device"]: d for d in poller.heartbeat_devices()}
            assert beat["D1"]["online"] and beat["G"]["online"]
            assert beat["D1"]["device_time"] == int(station.clock.now)
            assert beat["D1"]["failures"] == 0 and beat["D1"]["error"] is None
            live = poller.devices[1].live
            assert live["header"]["serial_number"] == "TQ-0001"
            assert live["nozzle"][2]["grade"] == 95
        finally:
            spool.close()
            await station.stop()

    run(scenario())


class CountingLink(ModbusLink):
    """Counts acks written alone (FC06) and acks that rode on a read (FC23)."""

    def __init__(self, endpoint, timeout) -> None:
        super().__init__(endpoint, timeout)
        self.alone = self.riding = 0

    async def read(self, unit_id, address, count, write=None):
        self.riding += write is not None
        return await super().read(unit_id, address, count, write)

    async def write(self, unit_id, address, value):
        self.alone += 1
        await super().write(unit_id, address, value)


@contextlib.asynccontextmanager
async def counting_poller(station: Station, tmp_path, settings: PollSettings = FAST):
    """A poller of `station` over a CountingLink, with its spool; stops both after."""
    endpoint = await station.start_tcp()
    spool = Spool(tmp_path, "S01")
    link = CountingLink(endpoint, settings.timeout)
    try:
        yield make_poller(endpoint, spool, settings, link), spool, link
    finally:
        spool.close()
        await station.stop()


class WaitingLink(ModbusLink):
    """Holds every read of the first device until a read of another device has started:
    a poller that reads the devices one after another never gets past the first."""

    def __init__(self, endpoint, timeout, first: int) -> None:
        super().__init__(endpoint, timeout)
        self.first = first
        self.other_started = asyncio.Event()

    async def read(self, unit_id, address, count, write=None):
        if unit_id == self.first:
            await self.other_started.wait()
        else:
            self.other_started.set()
        return await super().read(unit_id, address, count, write)


def test_a_round_reads_the_devices_side_by_side_over_tcp(tmp_path):
    """Each device over its own connection: the gauge's reads go on while the dispenser's
    wait (here: until the gauge's first read has started), and everything is spooled."""
    station = Station()
    expected = fill(station)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        first = endpoint.devices[0].unit_id
        link = WaitingLink(endpoint, FAST.timeout, first)
        try:
            await drain(make_poller(endpoint, spool, link=link), spool, len(expected))
            assert spooled(spool) == expected
            assert len(link._lines) == len(endpoint.devices)  # a connection per device
        finally:
            spool.close()
            await station.stop()

    run(scenario())


@pytest.mark.parametrize("fc23", [True, False])
def test_every_ack_rides_on_the_fifos_next_read_or_goes_alone_without_fc23(
        tmp_path, monkeypatch, fc23):
    """A FIFO holding more than its window is read again at once, the others at the next
    sweep; either read carries the ack of the last (FC23). A device that answers FC23 with
    exception 01 gets FC06 from then on."""
    if not fc23:  # a device of an older release: 03/04 reads, 06/16 writes only
        import devices.pdu

        monkeypatch.setattr(devices.pdu, "SERVED_FCS", frozenset((3, 4, 6, 16)))
    station = Station()
    expected = fill(station)

    async def scenario():
        async with counting_poller(station, tmp_path) as (poller, spool, link), \
                running(poller):
            assert await until(lambda: len(spooled(spool)) == len(expected)
                               and not any(station.pending().values()), 10)
            assert spooled(spool) == expected
            # 9 acks: fills 4+4+1, events 4+2 (D1), readings 5+2, drops 2, events 3 (G)
            if fc23:
                assert link.riding == 9 and link.alone == 0
                assert all(d.fc23 for d in poller.devices)
            else:  # refused once per device (D1 and G), then alone
                assert link.riding == 2 and link.alone == 9
                assert not any(d.fc23 for d in poller.devices)

    run(scenario())


def test_a_clean_stop_writes_the_deferred_acks(tmp_path):
    """Stopped before the next sweep, the poller acknowledges alone (FC06) what its last
    round spooled, so a restart does not read it again. (The sweep is an hour away, so the
    acks cannot ride on a read first however fast the machine.)"""
    station = Station()
    expected = fill(station)
    once = dataclasses.replace(FAST, poll_interval=3600.0, idle_poll_max=3600.0)

    async def scenario():
        async with counting_poller(station, tmp_path, once) as (poller, spool, link):
            await drain(poller, spool, len(expected))  # stops as soon as all is spooled
            assert link.alone >= 1
            assert not any(station.pending().values())

    run(scenario())


class FailingOnce(Spool):
    """A spool whose first write fails as a full disk would."""

    failures = 1

    def add(self, records, now=None, meta=None):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super().add(records, now, meta)


def test_nothing_is_acknowledged_before_it_is_in_the_spool(tmp_path):
    station = Station()
    expected = fill(station)
    before = station.pending()

    async def scenario():
        endpoint = await station.start_tcp()
        spool = FailingOnce(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            assert await poller.poll_round() == 0
            assert station.pending() == before  # the failed commit acknowledged nothing
            await drain(poller, spool, len(expected))
            assert spooled(spool) == expected
        finally:
            spool.close()
            await station.stop()

    run(scenario())


class CorruptingLink(ModbusLink):
    """Flips a bit in transaction record 65534 while it heads the window, `bad_reads` times."""

    def __init__(self, endpoint, timeout, bad_reads: int) -> None:
        super().__init__(endpoint, timeout)
        self.bad_reads = bad_reads

    async def read(self, unit_id, address, count, write=None):
        regs = await super().read(unit_id, address, count, write)
        if unit_id == 11 and address == 1000 and self.bad_reads > 0 and regs[0] > 0 \
                and regs[1] == 65534:
            self.bad_reads -= 1
            regs[10 + 8] ^= 0x0004  # volume of the head record, as line noise would
        return regs


@pytest.mark.parametrize(("bad_reads", "quarantined"), [(2, 0), (50, 1)])
def test_bad_crc_is_read_again_then_quarantined(tmp_path, bad_reads, quarantined):
    station = Station()
    txns = [transaction(seq, i) for i, seq in enumerate([65534, 65535, 0])]
    for t in txns:
        station.d1.accept("transactions", t)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            link = CorruptingLink(endpoint, FAST.timeout, bad_reads)
            poller = make_poller(endpoint, spool, link=link)
            await drain(poller, spool, len(txns) - quarantined)
            assert await until(lambda: station.d1.fifo("transactions").pending == 0, 5)
            keys = set(spooled(spool))
            good = {expected_transaction(t)["key"] for t in txns[quarantined:]}
            assert keys == good  # never a corrupted value in the spool
            dead = spool.dead_letters()
            assert len(dead) == quarantined
            if quarantined:
                assert dead[0]["reason"] == "bad CRC"
                assert dead[0]["payload"]["seq"] == 65534
                assert len(dead[0]["payload"]["registers"]) == 28
                d1 = poller.devices[1]
                assert "quarantined" in d1.snapshot()["error"]
        finally:
            spool.close()
            await station.stop()

    run(scenario())


def test_backoff_delay_is_exponential_and_bounded():
    s = PollSettings(backoff_base=0.25, backoff_max=10.0)
    assert [backoff_delay(n, s) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]


def test_idle_delay_doubles_from_the_poll_interval_up_to_its_cap():
    s = PollSettings(poll_interval=0.5, idle_poll_max=2.0)
    assert [idle_delay(n, s) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    # a cap below the poll interval never makes a FIFO read more often than the sweeps
    assert idle_delay(3, PollSettings(poll_interval=0.5, idle_poll_max=0.1)) == 0.5


def test_empty_fifos_are_swept_less_often_and_at_once_again_when_they_hold_records(tmp_path):
    """Idle back-off (issue 11): sweeps skip FIFOs that stayed empty until they are due; a FIFO
    that shows a record is due at every sweep again; a failing device is always swept."""
    station = Station()
    settings = PollSettings(poll_interval=1.0, idle_poll_max=4.0, live_interval=1e9,
                            timeout=0.3)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool, settings)
            d1 = poller.devices[1]
            clock = asyncio.get_running_loop().time  # time.monotonic, as the poller's

            async def sweep_round() -> tuple[float, float]:
                """A sweep once every FIFO is due (planned as if then; read now)."""
                due = max(c.due for c in d1.fifos.values())
                before = clock()
                await poller.poll_round(poller._plan(max(due, before), True), now=0.0)
                return before, clock()

            def swept(now: float) -> list[str]:
                return [f.name for f in poller._plan(now, sweep=True).get("D1", [])]

            # due again one sweep later (less half a sweep of slack), then 2, 4, 4 sweeps apart
            for n, delay in enumerate((1.0, 2.0, 4.0, 4.0), start=1):
                before, after = await sweep_round()
                dues = [c.due for c in d1.fifos.values()]
                assert [c.empty_reads for c in d1.fifos.values()] == [n, n]
                assert all(before + delay - 0.5 <= due <= after + delay - 0.5 for due in dues)
                assert swept(min(dues) - 0.01) == []
                assert swept(max(dues)) == ["transactions", "events"]
            # a record arrives: the FIFO is read at once when it shows more than a window,
            # and after one read holding records it is due at every sweep again
            station.d1.accept("transactions", transaction(1, 0))
            await poller.poll_round(None, now=0.0)
            assert d1.fifos["transactions"].empty_reads == 0
            assert "transactions" in swept(clock())
            # a failing device: every sweep reads all its FIFOs (the off-line rule is unchanged)
            d1.failures = 1
            assert swept(clock()) == ["transactions", "events"]
        finally:
            spool.close()
            await station.stop()

    run(scenario())


async def _black_hole() -> tuple[asyncio.AbstractServer, int]:
    """A TCP server that accepts and reads but never answers (a hung gateway)."""

    async def swallow(reader, writer):
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_offline_after_n_failures_then_back_on_line(tmp_path):
    station = Station()
    station.d1.accept("transactions", transaction(5, 0))

    async def scenario():
        hole, port = await _black_hole()
        spool = Spool(tmp_path, "S01")
        stop = asyncio.Event()
        poller = make_poller(station.endpoint(port=port), spool)
        task = asyncio.create_task(poller.run(stop))
        try:
            assert await until(lambda: all(not d.online and d.failures >= 3
                                           for d in poller.devices), 15)
            beat = poller.heartbeat_devices()
            assert all(d["online"] is False and d["error"] for d in beat)
            assert spool.backlog == 0
            hole.close()
            await hole.wait_closed()
            await station.start_tcp(port)  # the gateway answers again on the same port
            assert await until(lambda: len(spooled(spool)) == 1 and all(
                d.online and d.failures == 0 for d in poller.devices), 15)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            spool.close()
            hole.close()
            await station.stop()

    run(scenario(), timeout=60)


def test_a_silent_unit_goes_off_line_alone(tmp_path):
    """Unit 13 is not at the station (gateway exception 0x0B): D1 and G keep draining."""
    station = Station()
    expected = fill(station)

    async def scenario():
        await station.start_tcp()
        ghost = DeviceEndpoint("D3", "dispenser", 13, "dispenser", (1,))
        endpoint = station.endpoint(extra=(ghost,))
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            async with running(poller):
                assert await until(lambda: len(spooled(spool)) == len(expected)
                                   and poller.devices[2].failures >= 3, 10)
            beat = {d["device"]: d for d in poller.heartbeat_devices()}
            assert beat["D3"]["online"] is False and "exception 11" in beat["D3"]["error"]
            assert beat["D1"]["online"] and beat["G"]["online"]
            assert spooled(spool) == expected
        finally:
            spool.close()
            await station.stop()

    run(scenario())


def test_dialect_mismatch_blocks_the_device(tmp_path):
    """The endpoint map says int_be, the devices speak f32_le: decode nothing, say why."""
    station = Station(dialect="f32_le")
    fill(station)
    before = station.pending()

    async def scenario():
        await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(station.endpoint(dialect="int_be"), spool)
            for _ in range(3):
                await poller.poll_round()
            assert spool.backlog == 0 and station.pending() == before
            beat = poller.heartbeat_devices()
            assert all("dialect_code 2 is not 1" in d["error"] for d in beat)
        finally:
            spool.close()
            await station.stop()

    run(scenario())


def test_rtu_over_a_pty(tmp_path):
    from devices.rtu import PtyPair

    station = Station(dialect="f32_le")
    expected = fill(station)

    async def scenario(pty: PtyPair):
        await station.start_rtu(pty.device_path)
        endpoint = StationEndpoint("S01", "rtu", "f32_le", station.devices(),
                                   serial_port=pty.collector_path)
        spool = Spool(tmp_path / "spool", "S01")
        try:
            poller = make_poller(endpoint, spool, PollSettings(
                poll_interval=0.05, live_interval=1.0, timeout=1.0))
            await drain(poller, spool, len(expected), timeout=20)
            assert spooled(spool) == expected
        finally:
            spool.close()
            await station.stop()

    with PtyPair(tmp_path, "S01") as pty:
        run(scenario(pty), timeout=60)


# -- state reports (uplink 1.1 `state`) ---------------------------------------------------------
def test_a_header_change_gives_exactly_one_state_report_and_a_restart_a_baseline(tmp_path):
    station = Station()

    async def rounds(poller: StationPoller, n: int) -> None:
        for _ in range(n):
            await poller.poll_round(now=float("inf"))  # header due at every round

    def reports() -> list[tuple[str, int, int]]:
        return sorted((r["key"].split("/")[1], r["seq"], r["seal_state"])
                      for r in spooled(spool, "state").values())

    async def scenario():
        endpoint = await station.start_tcp()
        try:
            poller = make_poller(endpoint, spool)
            await rounds(poller, 3)
            assert reports() == [("D1", 0, 0), ("G", 0, 0)]  # the baseline, once
            station.d1.view.seal_state = 0b001  # the transducer seal breaks
            station.clock.now += 30
            station.clock.generation += 1
            await rounds(poller, 3)
            assert reports() == [("D1", 0, 0), ("D1", 1, 1), ("G", 0, 0)]
            new = spooled(spool, "state")[f"S01/D1/states/1/{int(station.clock.now)}"]
            assert (new["device_time"], new["mainboard_id"]) == (int(station.clock.now), "MB-1")
            station.clock.now += 30  # time goes on, nothing else changes: no report
            station.clock.generation += 1
            await rounds(poller, 3)
            assert len(reports()) == 3
            # a collector restart on the same spool: a baseline again, numbering carried on
            restarted = make_poller(endpoint, spool)
            await rounds(restarted, 2)
            assert reports() == [("D1", 0, 0), ("D1", 1, 1), ("D1", 2, 1), ("G", 0, 0),
                                 ("G", 1, 0)]
        finally:
            await station.stop()

    spool = Spool(tmp_path, "S01")
    try:
        run(scenario())
    finally:
        spool.close()
    reopened = Spool(tmp_path, "S01")  # the counters are in the spool file
    try:
        assert reopened.meta_int("state_seq/D1", -1) == 3
        assert reopened.meta_int("state_seq/G", -1) == 2
    finally:
        reopened.close()


def test_a_state_report_is_not_lost_when_the_spool_write_fails(tmp_path):
    station = Station()

    async def scenario():
        endpoint = await station.start_tcp()
        spool = FailingOnce(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            assert await poller.poll_round(now=float("inf")) == 0
            assert spooled(spool, "state") == {}
            await poller.poll_round(now=float("inf"))  # reported now, with the first seq
            assert sorted(spooled(spool, "state")) == [
                f"S01/{d}/states/0/{int(station.clock.now)}" for d in ("D1", "G")]
        finally:
            spool.close()
            await station.stop()

    run(scenario())


# -- drained_through ---------------------------------------------------------------------------------
def test_drain_tracker_needs_a_header_read_before_every_fifo_reads_empty():
    from collector.drained import DrainTracker

    d = DrainTracker(("transactions", "events"))
    d.fifo_empty("transactions")
    d.header(1000)  # candidate 1000
    d.fifo_empty("events")  # transactions' empty read was before the header: not enough
    d.end_round(10)
    assert d.promote(None) is None
    d.fifo_empty("transactions")
    d.end_round(12)  # reached, with every spool row up to id 12
    assert d.promote(12) is None  # a row of the device up to the mark is unacknowledged
    assert d.promote(13) == 1000  # only newer rows are pending: promoted
    d.header(1000)  # the clock did not move: nothing new
    d.header(1060)
    d.header(1120)
    d.fifo_empty("events")
    d.fifo_empty("transactions")
    d.end_round(None)  # the round's commit failed: kept for the next one
    assert d.promote(None) == 1000
    d.end_round(20)
    assert d.promote(None) == 1120  # the newest candidate both reads came after


def not_ahead(spool: Spool, devices: list[dict]) -> list[str]:
    """Records in the spool (not yet acknowledged by the platform) stamped before the device's
    drained_through: what drained_through must never claim."""
    import json

    times = {"transaction": "end_time", "delivery": "end_time"}
    through = {d["device"]: d["drained_through"] for d in devices}
    bad = []
    for row in spool.pending_after(0, 100000):
        rec = json.loads(row.payload)
        t = rec[times.get(row.kind, "device_time")]
        limit = through.get(row.device)
        if limit is not None and t < limit:
            bad.append(f"{row.key} at {t} < drained_through {limit}")
    return bad


def test_drained_through_never_runs_ahead_of_unacknowledged_records(tmp_path):
    """The platform acknowledges nothing at first: drained_through stays null though every
    FIFO is empty; once the spool rows are acknowledged it is the RTC of a header read before
    the empty reads; new records, spooled but not acknowledged, hold it there. A tracker
    that ignored the spool (the defect) would claim them."""
    station = Station()
    fill(station)

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            for _ in range(6):
                await poller.poll_round(now=float("inf"))
            assert not any(station.pending().values())
            beat = poller.heartbeat_devices()
            assert [d["drained_through"] for d in beat] == [None, None]
            assert not_ahead(spool, beat) == []
            spool.settle(spool.pending_keys())  # the platform acknowledges everything
            t1 = int(station.clock.now)
            beat = poller.heartbeat_devices()
            assert {d["device"]: d["drained_through"] for d in beat} == {"G": t1, "D1": t1}
            # later: a fill and a reading are spooled but the platform stays silent
            station.clock.now += 3600
            station.clock.generation += 1
            station.d1.accept("transactions", transaction(10, 100))
            station.g.accept("inventory", inventory(20, 5))
            for _ in range(6):
                await poller.poll_round(now=float("inf"))
            assert not any(station.pending().values()) and spool.backlog == 2
            beat = poller.heartbeat_devices()
            assert {d["device"]: d["drained_through"] for d in beat} == {"G": t1, "D1": t1}
            assert not_ahead(spool, beat) == []
            naive = [dict(d, drained_through=copy.deepcopy(dev.drain).promote(None))
                     for d, dev in zip(beat, poller.devices, strict=True)]
            assert len(not_ahead(spool, naive)) == 2  # what the check is there to catch
            spool.settle(spool.pending_keys())
            t2 = int(station.clock.now)
            assert {d["device"]: d["drained_through"] for d in poller.heartbeat_devices()} \
                == {"G": t2, "D1": t2}
        finally:
            spool.close()
            await station.stop()

    run(scenario())


@pytest.mark.parametrize(("version", "drains"), [(1, True), (2, True), (3, False), (0, False)])
def test_header_check_accepts_profile_versions_1_to_the_profiles(tmp_path, version, drains):
    """Register map versions are backward compatible: a v1 device is drained as before, and
    its deliveries carry no bill of lading (offsets 22-23 are reserved there: 0 would mean
    "none keyed in", which a v1 gauge cannot say); an unknown newer version is blocked."""
    from dataclasses import replace

    from devices.device import FieldDevice

    station = Station()
    for attr in ("d1", "g"):
        dev = getattr(station, attr)
        setattr(station, attr, FieldDevice(
            station_id="S01", device=dev.device, view=dev.view,
            profile=replace(dev.profile, version=version), dialect="int_be",
            clock=station.clock, civil=dev.civil))
    expected = fill(station)
    if version == 1:
        expected = {k: {f: v for f, v in r.items() if f != "bol_volume_20c_ml"}
                    for k, r in expected.items()}

    async def scenario():
        endpoint = await station.start_tcp()
        spool = Spool(tmp_path, "S01")
        try:
            poller = make_poller(endpoint, spool)
            for _ in range(4):
                await poller.poll_round(now=float("inf"))
            got = spooled(spool)
            assert sum("bol_volume_20c_ml" in r for r in got.values()) == (
                2 if version == 2 else 0)
            if drains:
                assert got == expected
            else:
                assert got == {} and all(
                    f"profile_version {version} is not one this collector knows (1 to 2"
                    in d["error"] for d in poller.heartbeat_devices())
        finally:
            spool.close()
            await station.stop()

    run(scenario())
