"""Faults `rtu_line_noise` and `modbus_garbled`: reply frames corrupted on the wire
(devices/silence.py `garble`, applied where the bytes go out by devices/server.py), and the
reference collector reading through them without taking a corrupted frame for data."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse
from test_collector_poller import fill, make_poller, running, spooled
from test_collector_support import Station, until

from collector.codec import record_crc_ok
from collector.endpoints import StationEndpoint
from collector.modbus_link import LinkError, ModbusLink
from collector.poller import PollSettings
from collector.profile import load_profiles
from collector.spool import Spool
from devices.silence import Silence, SilenceWindows, garble, windows_for

UNIT = 11  # dispenser D1 of test_collector_support.Station
TID = 0x1234
NEEDS_SOCAT = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
TRANSACTIONS = load_profiles()["dispenser"].fifos["transactions"]
# a corrupted reply costs the client its timeout: keep it short, the machine is local
SETTINGS = PollSettings(poll_interval=0.05, live_interval=0.2, timeout=0.3, offline_after=50,
                        backoff_base=0.02, backoff_max=0.1, crc_retries=3)


def reply_frame(mode: str, registers: list[int]) -> bytes:
    """A read reply of unit 11 as the server writes it (RTU: CRC; TCP: MBAP, tid TID)."""
    pdu = ReadHoldingRegistersResponse(registers=registers, dev_id=UNIT, transaction_id=TID)
    framer = FramerRTU if mode == "noise" else FramerSocket
    return framer(DecodePDU(is_server=True)).buildFrame(pdu)


def window(mode: str, rate: float, seed: int = 7, start: float = 0.0) -> Silence:
    return Silence("S01", "D1", start, start + 3600.0, mode, rate=rate, seed=seed)


def client_accepts(mode: str, frame: bytes) -> bool:
    """Would the pymodbus client take `frame` as the reply to its request (unit 11, TID)?"""
    framer = (FramerRTU if mode == "noise" else FramerSocket)(DecodePDU(is_server=False))
    try:
        _, pdu = framer.handleFrame(frame, UNIT, 0 if mode == "noise" else TID)
    except ModbusIOException:  # an incomplete PDU: the client drops the connection
        return False
    return pdu is not None


# -- the corruption itself ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["noise", "garbled"])
@pytest.mark.parametrize("rate", [0.1, 0.3, 1.0])
def test_corruption_is_deterministic_and_respects_the_rate(mode, rate):
    frame = reply_frame(mode, list(range(100, 160)))
    w = window(mode, rate)
    outs = [garble(frame, w, "D1", n) for n in range(3000)]
    assert outs == [garble(frame, w, "D1", n) for n in range(3000)]  # same scenario, same pattern
    hit = [n for n, out in enumerate(outs) if out != frame]
    assert abs(len(hit) / len(outs) - rate) < 0.03, len(hit)
    # another seed, another device: another pattern
    other = [n for n in range(3000) if garble(frame, window(mode, rate, seed=8), "D1", n) != frame]
    assert other != hit or rate == 1.0
    assert [n for n in range(3000) if garble(frame, w, "G", n) != frame] != hit or rate == 1.0


def test_rtu_noise_always_breaks_the_crc_or_cuts_the_frame():
    frame = reply_frame("noise", list(range(100, 160)))
    w = window("noise", 1.0)
    cut = flipped = 0
    for n in range(3000):
        out = garble(frame, w, "D1", n)
        if len(out) < len(frame):
            cut += 1
        else:
            assert len(out) == len(frame)
            assert not FramerRTU.check_CRC(out[:-2], int.from_bytes(out[-2:], "big")), n
            assert 1 <= sum(bin(a ^ b).count("1") for a, b in zip(out, frame, strict=True)) <= 3
            flipped += 1
    assert 0.15 < cut / 3000 < 0.25 and flipped > 2000


@pytest.mark.parametrize("mode", ["noise", "garbled"])
def test_the_pymodbus_client_refuses_every_corrupted_frame(mode):
    frame = reply_frame(mode, list(range(100, 160)))
    assert client_accepts(mode, frame)
    w = window(mode, 1.0)
    accepted = [n for n in range(3000) if client_accepts(mode, garble(frame, w, "D1", n))]
    assert accepted == []


def test_tcp_garbling_leaves_the_registers_alone():
    """TCP has no CRC of its own: a changed register value could not be told, so the gateway
    fault only touches the header or cuts the PDU."""
    regs = list(range(100, 160))
    frame = reply_frame("garbled", regs)
    w = window("garbled", 1.0)
    for n in range(500):
        out = garble(frame, w, "D1", n)
        assert out[7:] == frame[7:len(out)], n  # the PDU as sent, or a prefix of it


def test_wire_windows_validation():
    with pytest.raises(ValueError, match="mode noise needs 0 < rate <= 1, found 0"):
        Silence("S01", "D1", 0.0, 1.0, "noise")
    with pytest.raises(ValueError, match="mode garbled needs 0 < rate <= 1, found 1.5"):
        Silence("S01", None, 0.0, 1.0, "garbled", rate=1.5)
    noise = Silence("S01", None, 10.0, 20.0, "noise", rate=0.5)
    ws = windows_for([noise, Silence("S01", "D1", 0.0, 30.0, "busy")], "S01", "D1")
    assert ws.mode_at(15.0) == ("busy", 0.0)  # a wire window does not hide a busy one
    assert [ws.wire_at(t) for t in (9.9, 10.0, 19.9, 20.0)] == [None, noise, noise, None]
    assert windows_for([noise], "S01", "G").wire == (noise,)
    assert not windows_for([noise], "S02", "G") and not SilenceWindows()


@pytest.mark.parametrize("transport, mode", [("tcp", "noise"), ("rtu", "garbled")])
def test_a_wire_fault_that_does_not_fit_the_line_is_refused(tmp_path, transport, mode):
    station = Station()
    station.d1.silence = windows_for([Silence("S01", "D1", 0.0, 1e12, mode, rate=0.5)],
                                     "S01", "D1")

    async def scenario():
        with pytest.raises(ValueError, match=f"mode {mode} of S01/D1 needs Modbus"):
            if transport == "tcp":
                await station.start_tcp()
            else:
                await station.start_rtu(str(tmp_path / "no-such-pty"))
        await station.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fuzz_draws_each_wire_fault_at_a_station_of_its_transport(data):
    from acceptance.fuzz import conflict_free, schedules

    schedule = data.draw(schedules(["UMB25", "UMB44"], 864, ["rtu_line_noise", "modbus_garbled",
                                                            "network_cut"], rtu_ids=["UMB44"]))
    assert conflict_free(schedule)
    for f in schedule:
        if f["kind"] != "network_cut":
            assert f["station"] == ("UMB44" if f["kind"] == "rtu_line_noise" else "UMB25"), f


# -- the real devices server and the reference collector ----------------------------------------

async def _serve(station: Station, transport: str, pty) -> StationEndpoint:
    if transport == "tcp":
        return await station.start_tcp()
    await station.start_rtu(pty.device_path)
    return StationEndpoint("S01", "rtu", station.dialect, station.devices(),
                           serial_port=pty.collector_path)


def _with_line(tmp_path, transport: str, scenario) -> None:
    """Run `scenario(pty)`: a socat pty pair for RTU, None for TCP."""
    if transport == "tcp":
        asyncio.run(asyncio.wait_for(scenario(None), 120))
        return
    from devices.rtu import PtyPair

    with PtyPair(tmp_path, "S01") as pty:
        asyncio.run(asyncio.wait_for(scenario(pty), 120))


@pytest.mark.parametrize("transport", ["tcp", pytest.param("rtu", marks=NEEDS_SOCAT)])
def test_reads_through_the_fault_are_exact_or_refused_never_corrupted(tmp_path, transport):
    """Before, during and after a window corrupting half of every device's replies: each read
    of the collector's Modbus link returns the device's registers exactly or fails, and it
    fails exactly for the replies the server corrupted."""
    mode = "noise" if transport == "rtu" else "garbled"
    station = Station()
    t0 = station.clock.now
    fault = Silence("S01", None, t0 + 100, t0 + 200, mode, rate=0.5, seed=3)
    for dev in (station.d1, station.g):
        dev.silence = windows_for([fault], "S01", dev.device)

    async def reads(link: ModbusLink, n: int) -> tuple[int, int]:
        ok = failed = 0
        for i in range(n):
            dev = (station.d1, station.g)[i % 2]
            try:
                regs = await link.read(dev.unit_id, 0, 40)
            except LinkError:
                failed += 1
                continue
            assert regs == dev.image.read(0, 40)
            ok += 1
        return ok, failed

    def garbled() -> list[int]:
        return [station.d1.garbled_replies, station.g.garbled_replies]

    async def scenario(pty):
        endpoint = await _serve(station, transport, pty)
        link = ModbusLink(endpoint, timeout=0.3)
        try:
            assert await reads(link, 10) == (10, 0) and garbled() == [0, 0]  # before
            station.clock.now = t0 + 150  # inside the window
            ok, failed = await reads(link, 40)
            assert failed == sum(garbled()) and min(garbled()) > 0
            assert 10 <= failed <= 30 and ok == 40 - failed
            station.clock.now = t0 + 200  # after
            assert await reads(link, 10) == (10, 0)
            assert sum(garbled()) == failed
        finally:
            link.close()
            await station.stop()

    _with_line(tmp_path, transport, scenario)


@pytest.mark.parametrize("transport", ["tcp", pytest.param("rtu", marks=NEEDS_SOCAT)])
def test_the_reference_poller_drains_everything_exactly_once_through_the_fault(tmp_path,
                                                                               transport):
    """The reference collector's poller under a window corrupting 30 % of the replies: every
    record spooled once with the device's values, none quarantined (no corrupted frame ever
    reached the record CRC check), and every FIFO acknowledged to empty."""
    mode = "noise" if transport == "rtu" else "garbled"
    station = Station(dialect="f32_le" if transport == "rtu" else "int_be")
    expected = fill(station)
    fault = Silence("S01", None, station.clock.now - 1, station.clock.now + 1e6, mode, rate=0.3,
                    seed=11)
    for dev in (station.d1, station.g):
        dev.silence = windows_for([fault], "S01", dev.device)

    async def scenario(pty):
        endpoint = await _serve(station, transport, pty)
        spool = Spool(tmp_path / "spool", "S01")
        try:
            poller = make_poller(endpoint, spool, SETTINGS)
            async with running(poller):
                assert await until(lambda: len(spooled(spool)) >= len(expected)
                                   and not any(station.pending().values()), 90), \
                    (len(spooled(spool)), station.pending())
            assert spooled(spool) == expected
            assert [d.quarantined for d in poller.devices] == [0, 0]
            assert station.d1.garbled_replies + station.g.garbled_replies >= 5
        finally:
            spool.close()
            await station.stop()

    _with_line(tmp_path, transport, scenario)


# -- evidence: a reader that skips the frame check --------------------------------------------

def test_a_reader_without_the_frame_crc_takes_noise_for_data():
    """What the CRC check is for: a reader that takes the registers of an RTU reply without
    checking its CRC reads noise as data — and in some of those frames every record in the
    window still passes its own CRC, because the bits hit the FIFO's status registers
    (pending, head_seq: what the collector acknowledges by). pymodbus refuses them all."""
    station = Station()
    fill(station)
    regs = station.d1.image.read(TRANSACTIONS.base, TRANSACTIONS.read_count)
    frame = reply_frame("noise", regs)
    crc = TRANSACTIONS.record["crc"]
    w = window("noise", 1.0)
    wrong = unnoticed = status_hit = 0
    for n in range(2000):
        out = garble(frame, w, "D1", n)
        if len(out) != len(frame):
            continue  # a cut frame: even a naive reader sees it is short
        naive = [int.from_bytes(out[i:i + 2], "big") for i in range(3, len(out) - 2, 2)]
        if naive == regs:
            continue  # the bits hit the byte count or the CRC itself
        wrong += 1
        assert not client_accepts("noise", out)
        records = [naive[TRANSACTIONS.window_offset + k * TRANSACTIONS.record_size:][
            :TRANSACTIONS.record_size] for k in range(TRANSACTIONS.window_records)]
        if all(record_crc_ok(r, crc) for r in records):
            unnoticed += 1
            status_hit += naive[:2] != regs[:2]  # pending, head_seq
    assert wrong > 1000 and unnoticed > 0 and status_hit > 0, (wrong, unnoticed, status_hit)
