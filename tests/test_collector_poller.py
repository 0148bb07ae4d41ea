"""The collector's poller against the harness's real Modbus devices (TCP and RTU)."""

from __future__ import annotations

import asyncio
import contextlib
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
from collector.poller import PollSettings, StationPoller, backoff_delay
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


def spooled(spool: Spool) -> dict[str, dict]:
    import json

    return {r.key: strip(json.loads(r.payload)) for r in spool.pending_after(0, 100000)}


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
    async with running(poller):
        assert await until(lambda: spool.backlog >= want, timeout), spool.backlog


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


def test_nothing_is_acknowledged_before_it_is_in_the_spool(tmp_path):
    station = Station()
    expected = fill(station)
    before = station.pending()

    class FailingOnce(Spool):
        failures = 1

        def add(self, records, now=None):
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return super().add(records, now)

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

    async def read(self, unit_id, address, count):
        regs = await super().read(unit_id, address, count)
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
            assert await until(lambda: spool.backlog == 1 and all(
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
                assert await until(lambda: spool.backlog == len(expected)
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
