"""A real Modbus TCP station server read with the pymodbus async client (both dialects)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from pymodbus.client import AsyncModbusTcpClient

from devices.codec import Codec
from devices.crc import crc_registers
from devices.device import FieldDevice
from devices.image import CivilTime
from devices.profile import load_profile
from devices.server import StationServer
from sim.records import DeliveryRecord, DeviceEvent, GaugeReading, Transaction

DISPENSER = load_profile("dispenser")
GAUGE = load_profile("tank_gauge")
T0 = 1767225600.0  # 2026-01-01T00:00:00Z = 08:00 in Asia/Shanghai


@dataclass
class Nozzle:
    nozzle: int
    grade: str
    tank: int
    state: int = 4
    unit_price_fen: int = 712
    live_volume_ml: int = 23_450
    live_amount_fen: int = 16_696
    volume_total_ml: int = 98_765_432_100  # ~98.8 million litres: beyond int32 centilitres
    amount_total_fen: int = 701_234_567
    last_seq: int = 65535


@dataclass
class Dispenser:
    station_id: str
    dispenser: int
    serial_number: str = "TQ-2019-00731"
    software_id: str = "V3.2.1"
    mainboard_id: str = "MB-88123"
    encoder_id: str = "ENC-4411"
    seal_state: int = 0b010
    device_status: int = 0
    offline: bool = False
    nozzles: list = field(default_factory=list)


@dataclass
class Tank:
    tank: int
    grade: str
    status: int = 0b1
    alarms: int = 0x1004
    capacity_l: float = 30_123.4
    reading: GaugeReading = GaugeReading(
        level_mm=1834.5, water_level_mm=12.3, temperature_c=-7.25, gross_l=18_321.7,
        volume_20c_l=18_540.2, ullage_l=11_700.1, water_l=101.6)

    def live_reading(self) -> GaugeReading:
        return self.reading


@dataclass
class Gauge:
    station_id: str
    serial_number: str = "ATG-0042"
    software_id: str = "TLS-4.1"
    inventory_interval_s: int = 900
    tanks: list = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 0.75
        self.generation = 0


def build_station(dialect: str, depth: int = 500):
    clock = Clock()
    civil = CivilTime("Asia/Shanghai")
    d1 = Dispenser("S01", 1, nozzles=[Nozzle(1, "92", 1), Nozzle(2, "0", 3, state=0, unit_price_fen=698)])
    g = Gauge("S01", tanks=[Tank(1, "92"), Tank(2, "95", status=0, alarms=0), Tank(3, "0")])
    devices = [
        FieldDevice(station_id="S01", device="D1", view=d1, profile=DISPENSER, dialect=dialect,
                    clock=clock, civil=civil, depth=depth),
        FieldDevice(station_id="S01", device="G", view=g, profile=GAUGE, dialect=dialect,
                    clock=clock, civil=civil, depth=depth),
    ]
    return devices, d1, g, clock


def run(coro_fn, *args, timeout: float = 30.0):
    async def main():
        return await asyncio.wait_for(coro_fn(*args), timeout)
    return asyncio.run(main())


async def serve(devices):
    server = StationServer("S01", devices)
    port = await server.start_tcp("127.0.0.1", 0)
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert await client.connect()
    return server, client


async def read(client, address, count, unit, fc=3):
    fn = client.read_holding_registers if fc == 3 else client.read_input_registers
    r = await fn(address, count=count, device_id=unit)
    assert not r.isError(), r
    return r.registers


def decode(codec: Codec, fields, regs, base=0):
    return codec.decode_fields(fields, regs, base)


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_live_blocks_equal_the_views(dialect):
    devices, d1, g, _ = build_station(dialect)
    codec = Codec(DISPENSER.dialects[dialect])

    async def scenario():
        server, client = await serve(devices)
        try:
            # dispenser header at protocol address 0 (0-based: no +1 offset), FC03 and FC04 agree
            head = await read(client, 0, 60, 11)
            assert head == await read(client, 0, 60, 11, fc=4)
            h = decode(codec, DISPENSER.block("header").fields, head)
            assert (h["profile_id"], h["profile_version"], h["nozzle_count"]) == (1, 2, 2)
            assert h["dialect_code"] == DISPENSER.dialects[dialect].code
            assert h["rtc_epoch"] == int(T0)
            assert (h["rtc_year"], h["rtc_month"], h["rtc_day"], h["rtc_hour"], h["rtc_minute"],
                    h["rtc_second"]) == (2026, 1, 1, 8, 0, 0)
            assert (h["seal_state"], h["serial_number"], h["software_id"], h["mainboard_id"],
                    h["encoder_id"]) == (0b010, d1.serial_number, d1.software_id, d1.mainboard_id,
                                         d1.encoder_id)
            for n, noz in enumerate(d1.nozzles, start=1):
                regs = await read(client, 100 * n, 20, 11)
                v = decode(codec, DISPENSER.block("nozzle").fields, regs)
                assert (v["state"], v["grade"], v["tank"], v["last_transaction_seq"]) == (
                    noz.state, int(noz.grade), noz.tank, noz.last_seq)
                assert v["unit_price"] == pytest.approx(noz.unit_price_fen / 100, abs=1e-6)
                assert v["live_volume"] == pytest.approx(noz.live_volume_ml / 1000, abs=1e-5)
                assert v["live_amount"] == pytest.approx(noz.live_amount_fen / 100, abs=1e-5)
                assert v["volume_totalizer"] == pytest.approx(noz.volume_total_ml / 1000, abs=1e-6)
                assert v["amount_totalizer"] == pytest.approx(noz.amount_total_fen / 100, abs=1e-6)
                if dialect == "int_be":  # exact integers in the published units
                    assert codec.decode_counter_raw(regs[10:14]) == noz.volume_total_ml // 10
                    assert codec.decode_measure_raw(regs[4:6]) == noz.unit_price_fen * 10
            # tank gauge: unit id 1
            gh = decode(codec, GAUGE.block("header").fields, await read(client, 0, 60, 1))
            assert (gh["profile_id"], gh["profile_version"], gh["tank_count"],
                    gh["inventory_interval"], gh["serial_number"]) == (2, 2, 3, 900,
                                                                       g.serial_number)
            for n, tank in enumerate(g.tanks, start=1):
                v = decode(codec, GAUGE.block("tank").fields, await read(client, 100 * n, 30, 1, fc=4))
                r = tank.reading
                assert (v["status"], v["alarms"], v["grade"]) == (tank.status, tank.alarms, int(tank.grade))
                tol = 0.006 if dialect == "int_be" else 2e-3  # scale resolution / float32 precision
                for name, want in [("product_level", r.level_mm), ("water_level", r.water_level_mm),
                                   ("temperature", r.temperature_c), ("gross_volume", r.gross_l),
                                   ("volume_20c", r.volume_20c_l), ("ullage", r.ullage_l),
                                   ("water_volume", r.water_l), ("capacity", tank.capacity_l)]:
                    assert v[name] == pytest.approx(want, abs=tol), name
            if dialect == "int_be":
                t = await read(client, 110, 2, 1)
                assert codec.decode_measure_raw(t) == -725  # -7.25 degC at 0.01
        finally:
            client.close()
            await server.stop()

    run(scenario)


def make_txn(seq: int, i: int) -> Transaction:
    return Transaction(
        station_id="S01", dispenser=1, nozzle=1 + i % 2, grade="92", tank=1, seq=seq, txn_no=i,
        start_time=T0 + 60 * i, end_time=T0 + 60 * i + 40, true_volume_l=40.0,
        true_volume_20c_l=39.9, displayed_volume_ml=40_010 + 10 * i, amount_fen=28_487 + i,
        unit_price_fen=712, volume_total_before_ml=10**9, volume_total_after_ml=10**9 + 40_010 * i,
        amount_total_before_fen=10**7, amount_total_after_fen=10**7 + 28_487 * i,
        vehicle="car", fill_type="full")


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_fifo_drain_and_ack_over_the_wire(dialect):
    devices, _, _, _ = build_station(dialect)
    disp = devices[0]
    seqs = [(65530 + i) & 0xFFFF for i in range(11)]  # wraps 65535 -> 0
    for i, s in enumerate(seqs):
        disp.accept("transactions", make_txn(s, i))
    codec = disp.codec
    spec = DISPENSER.fifo("transactions")

    async def scenario():
        server, client = await serve(devices)
        got: list[int] = []
        try:
            for _ in range(20):  # bounded drain loop, as a collector would do it
                regs = await read(client, spec.base, spec.size, 11)
                assert regs == await read(client, spec.base, spec.size, 11)  # idempotent
                pending, head = regs[0], regs[1]
                if pending == 0:
                    assert head == 0xFFFF
                    break
                n = min(pending, spec.window_records)
                last = None
                for k in range(n):
                    rec = regs[10 + 28 * k: 10 + 28 * (k + 1)]
                    assert rec[27] == crc_registers(rec[:27])
                    v = codec.decode_fields(spec.record, rec)
                    i = len(got)
                    assert v["seq"] == seqs[i]
                    assert v["volume"] == pytest.approx((40_010 + 10 * i) / 1000, abs=1e-5)
                    assert v["end_epoch"] == int(T0) + 60 * i + 40
                    got.append(v["seq"])
                    last = v["seq"]
                for k in range(n, spec.window_records):
                    assert regs[10 + 28 * k: 10 + 28 * (k + 1)] == [0xFFFF] * 28
                w = await client.write_register(spec.ack_address, last, device_id=11)
                assert not w.isError(), w
                assert w.registers == [last]  # FC06 echo: the ack register reads the last ack
            assert got == seqs
            status = await read(client, spec.base, 5, 11)
            assert status[0] == 0 and status[4] == seqs[-1]
        finally:
            client.close()
            await server.stop()

    run(scenario)


def test_exceptions_wrong_ack_unknown_address_and_unit():
    devices, _, _, _ = build_station("int_be")
    disp, gauge = devices
    for s in (10, 11, 12):
        disp.accept("transactions", make_txn(s, s))
    gauge.accept("events", DeviceEvent("S01", "G", 500, T0, 1, "power_up", 0))

    async def scenario():
        server, client = await serve(devices)
        try:
            # wrong ack (not pending) -> 03, and nothing changed
            for bad in (9, 13, 0xFFFF):
                r = await client.write_register(1004, bad, device_id=11)
                assert r.isError() and r.exception_code == 3
            assert (await read(client, 1000, 2, 11)) == [3, 10]
            # FC23: the ack is written before the read, so the read shows what is left
            r = await client.readwrite_registers(read_address=1000, read_count=2,
                                                 write_address=1004, values=[10], device_id=11)
            assert not r.isError() and r.registers == [2, 11]
            r = await client.readwrite_registers(read_address=1000, read_count=2,
                                                 write_address=1004, values=[10], device_id=11)
            assert r.isError() and r.exception_code == 3  # 10 is gone: refused, no read
            r = await client.readwrite_registers(read_address=1000, read_count=2,
                                                 write_address=1003, values=[11], device_id=11)
            assert r.isError() and r.exception_code == 2  # only an ack register is writable
            # FC16 on the ack register works too (releases 11; 10 went by FC23 above)
            r = await client.write_registers(1004, [11], device_id=11)
            assert not r.isError()
            assert (await read(client, 1000, 2, 11)) == [1, 12]
            # gauge events FIFO at 3000
            assert (await read(client, 3000, 2, 1)) == [1, 500]
            r = await client.write_register(3004, 500, device_id=1)
            assert not r.isError()
            # addresses outside every block -> 02 (gap after the header, past a nozzle, past a FIFO)
            for address, count in [(60, 1), (59, 2), (120, 1), (300, 1), (1122, 1), (1000, 123),
                                   (2074, 1), (65535, 1), (900, 1)]:
                r = await client.read_holding_registers(address, count=count, device_id=11)
                assert r.isError() and r.exception_code == 2, (address, count)
            r = await client.read_holding_registers(400, count=1, device_id=1)  # tank 4 absent
            assert r.isError() and r.exception_code == 2
            # writes anywhere but an ack register -> 02
            for address in (0, 1000, 1003, 1005, 110):
                r = await client.write_register(address, 1, device_id=11)
                assert r.isError() and r.exception_code == 2, address
            r = await client.write_registers(1003, [1, 12], device_id=11)  # spans a read-only one
            assert r.isError() and r.exception_code == 2
            assert (await read(client, 1000, 2, 11)) == [1, 12]
            # coils are not served -> 01
            r = await client.read_coils(0, count=1, device_id=11)
            assert r.isError() and r.exception_code == 1
            # no such unit at the station -> 0x0B (gateway target failed to respond)
            r = await client.read_holding_registers(0, count=1, device_id=12)
            assert r.isError() and r.exception_code == 0x0B
        finally:
            client.close()
            await server.stop()

    run(scenario)


def make_delivery(seq: int, bol_l: float) -> DeliveryRecord:
    start = GaugeReading(800.0, 0.0, 12.5, 8000.0, 8050.0, 22000.0, 0.0)
    end = GaugeReading(1900.25, 0.0, 14.25, 19999.9, 20100.3, 10000.1, 0.0)
    return DeliveryRecord("S01", 2, seq, "95", T0 - 9000, T0 - 3600.5, T0 - 1800.5, 12000.0,
                          11980.0, 12020.0, 16.0, start, end, bol_l)


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_delivery_record_v2_carries_the_bill_of_lading(dialect):
    """Register map v2: deliveries offsets 22-23 hold bol_volume_20c (0.1 L, 0 = none keyed
    in); the CRC still covers offsets 0-24; a v1 reader sees the same bytes at 0-21."""
    devices, _, _, _ = build_station(dialect)
    gauge = devices[1]
    gauge.accept("deliveries", make_delivery(7, 11975.4))
    gauge.accept("deliveries", make_delivery(8, 0.0))  # a drop with no bill keyed in
    spec = GAUGE.fifo("deliveries")
    field_ = next(f for f in spec.record if f.name == "bol_volume_20c")
    assert (field_.offset, field_.type, field_.scale) == (22, "measure", 0.1)
    codec = gauge.codec

    async def scenario():
        server, client = await serve(devices)
        try:
            regs = await read(client, spec.base, spec.size, 1)
            assert regs[0] == 2
            recs = [regs[10 + 26 * k: 10 + 26 * (k + 1)] for k in range(2)]
            for rec in recs:
                assert rec[25] == crc_registers(rec[:25]) and rec[24] == 0  # 24 reserved
            first, second = (codec.decode_fields(spec.record, r) for r in recs)
            assert first["bol_volume_20c"] == pytest.approx(11975.4, abs=1e-3)
            assert second["bol_volume_20c"] == 0.0
            if dialect == "int_be":
                assert codec.decode_measure_raw(recs[0][22:24]) == 119754
            assert first["end_volume_20c"] == pytest.approx(20100.3, abs=2e-3)
        finally:
            client.close()
            await server.stop()

    run(scenario)


def test_a_dispenser_taken_off_line_answers_nothing():
    """DispenserView.offline (a cheat): no reply at all, like device_silent; the gauge still
    answers; back on line the dispenser answers and its FIFO holds what it logged meanwhile."""
    devices, d1, _, _ = build_station("int_be")
    disp = devices[0]

    async def scenario():
        server = StationServer("S01", devices)
        port = await server.start_tcp("127.0.0.1", 0)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        try:
            assert await client.connect()
            assert not (await client.read_holding_registers(0, count=4, device_id=11)).isError()
            d1.offline = True
            disp.accept("transactions", make_txn(41, 1))  # sold while off line
            with pytest.raises(Exception, match="(?i)no response|timed? ?out"):
                r = await client.read_holding_registers(1000, count=2, device_id=11)
                raise AssertionError(f"an off-line dispenser answered: {r}")
            if not client.connected:
                assert await client.connect()
            assert not (await client.read_holding_registers(0, count=4, device_id=1)).isError()
            d1.offline = False
            r = await client.read_holding_registers(1000, count=2, device_id=11)
            assert not r.isError() and r.registers == [1, 41]
        finally:
            client.close()
            await server.stop()
        return disp.ignored_requests

    assert run(scenario) == 1


def test_live_values_follow_the_world_step():
    devices, d1, _, clock = build_station("int_be")

    async def scenario():
        server, client = await serve(devices)
        try:
            before = await read(client, 100, 20, 11)
            d1.nozzles[0].live_volume_ml = 31_000
            clock.now += 61
            # same world step: the image is cached
            assert await read(client, 100, 20, 11) == before
            clock.generation += 1
            after = await read(client, 100, 20, 11)
            assert Codec(DISPENSER.dialects["int_be"]).decode_measure_raw(after[6:8]) == 3100
            h = await read(client, 4, 8, 11)
            assert h[2:8] == [2026, 1, 1, 8, 1, 1]
        finally:
            client.close()
            await server.stop()

    run(scenario)


# ---- the runner: world + servers + ground truth ------------------------------------------

START = 1774972800.0  # 2026-04-01T00:00:00+08:00


def small_world(days: float, dialect: str = "int_be", seed: int = 3):
    from sim.config import DispenserConfig, PriceChange, StationConfig, TankConfig, WorldConfig
    from sim.world import World

    station = StationConfig(
        station_id="S01", name="runner test", town="Haliut", ownership="private", dialect=dialect,
        transport="tcp", tanks=(TankConfig(1, "92", 30), TankConfig(2, "0", 30)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (1,))),
        throughput_l_per_day={"92": 6000.0, "0": 4000.0})
    prices = (PriceChange(START - 86400, "92", 703), PriceChange(START - 86400, "0", 671),
              PriceChange(START + 86400, "92", 719))
    return World(WorldConfig(seed=seed, start=START, days=days, timezone="Asia/Shanghai",
                             stations=(station,), prices=prices))


async def wait_for(predicate, timeout: float = 20.0, step: float = 0.01):
    """Bounded wait on the serving loop (no timing assertions: only a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(step)


async def drain_once(client, unit: int, profile, codec: Codec, seen: dict) -> int:
    """One collector pass over every FIFO of a unit; returns records acknowledged."""
    n_acked = 0
    for spec in profile.fifos:
        regs = await read(client, spec.base, spec.size, unit)
        n = min(regs[0], spec.window_records)
        last = None
        for k in range(n):
            rec = regs[spec.window_offset + k * spec.record_size:
                       spec.window_offset + (k + 1) * spec.record_size]
            assert rec[-1] == crc_registers(rec[:-1])
            seen.setdefault((unit, spec.name), []).append(codec.decode_fields(spec.record, rec))
            last = rec[0]
        if last is not None:
            w = await client.write_register(spec.ack_address, last, device_id=unit)
            assert not w.isError(), w
            n_acked += n
    return n_acked


@pytest.mark.parametrize("exempt", [(), ("S01",)])
def test_a_pace_window_holds_at_high_water_unless_the_station_is_exempt(tmp_path, exempt):
    """A window's compression is a ceiling: nobody drains, so the world holds at a FIFO's
    high-water mark inside the window too — unless a fault took the station away from its
    collector (exempt): then its FIFOs fill and overflow, and the world goes on to the end."""
    import threading

    from devices.pace import PaceWindow
    from devices.runner import DeviceRun

    world = small_world(days=1.0)
    stop = threading.Event()
    run = DeviceRun(world, compression=None, out_dir=tmp_path, fifo_depth=60, high_water=40,
                    pace=[PaceWindow(world.now, world.end, 1e7, exempt=exempt)],
                    stop_event=stop, ledger=None, echo=False)

    async def scenario():
        task = asyncio.create_task(run.run())
        if exempt:
            await asyncio.wait_for(task, 60)
            return
        await wait_for(lambda: run.paused or task.done(), timeout=60)
        t_paused = world.now
        for _ in range(20):  # the world stays put while nobody drains
            await asyncio.sleep(0.01)
            assert world.now == t_paused < world.end
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert run.result is not None
    if exempt:
        assert world.finished and run.result.drops > 0
    else:
        assert not world.finished and run.result.drops == 0


def test_runner_max_pauses_at_high_water_then_drains_to_the_end(tmp_path):
    import json
    import threading

    import pyarrow.parquet as pq

    from devices.runner import serve_async

    world = small_world(days=2.0)
    stop = threading.Event()
    codec = Codec(DISPENSER.dialects["int_be"])

    async def scenario():
        task = asyncio.create_task(serve_async(
            world, compression=None, out_dir=tmp_path, fifo_depth=60, high_water=40,
            scenario_name="runner-test", stop_event=stop, linger=True, echo=False))
        await wait_for(lambda: (tmp_path / "endpoints.json").exists() or task.done())
        ep = json.loads((tmp_path / "endpoints.json").read_text())
        st = ep["stations"]["S01"]
        assert (ep["format"], ep["scenario"], ep["compression"], ep["timezone"]) == (
            "forecourt-endpoints/1", "runner-test", "max", "Asia/Shanghai")
        assert (st["transport"], st["host"], st["dialect"]) == ("tcp", "127.0.0.1", "int_be")
        assert st["devices"] == [
            {"device": "G", "kind": "tank_gauge", "unit_id": 1, "profile": "tank_gauge", "tanks": [1, 2]},
            {"device": "D1", "kind": "dispenser", "unit_id": 11, "profile": "dispenser", "nozzles": [1, 2]},
            {"device": "D2", "kind": "dispenser", "unit_id": 12, "profile": "dispenser", "nozzles": [1]},
        ]
        client = AsyncModbusTcpClient("127.0.0.1", port=st["port"], timeout=5, retries=0)
        assert await client.connect()
        try:
            # no collector yet: the world stops once a FIFO reaches high water, before the end
            async def fullest() -> int:
                return max([(await read(client, f.base, 1, unit))[0]
                            for unit, prof in ((1, GAUGE), (11, DISPENSER), (12, DISPENSER))
                            for f in prof.fifos])

            deadline = asyncio.get_running_loop().time() + 30
            while await fullest() < 40:
                assert asyncio.get_running_loop().time() < deadline, "no FIFO reached high water"
                await asyncio.sleep(0.005)
            assert await fullest() < 60, "a FIFO went past the high-water mark"
            t_paused = world.now
            for _ in range(20):  # the world stays put while nobody drains
                await asyncio.sleep(0.01)
                assert world.now == t_paused < world.end
            # now drain like a collector until the world has finished and nothing is pending
            seen: dict = {}
            for _ in range(100_000):
                finished_before = world.finished  # the last step may land during a pass
                acked = 0
                for unit, prof in ((1, GAUGE), (11, DISPENSER), (12, DISPENSER)):
                    acked += await drain_once(client, unit, prof, codec, seen)
                if finished_before and acked == 0:
                    break
                if acked == 0:
                    await asyncio.sleep(0.005)
            assert world.finished
        finally:
            client.close()
            stop.set()
        return await asyncio.wait_for(task, 30), seen

    result, seen = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert result.stop_reason == "stopped" and result.drops == 0 and result.backlog == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["counts"]["fifo_drops"] == 0
    # every ground-truth transaction was served once, with its values
    txns = pq.read_table(tmp_path / "transactions.parquet").to_pylist()
    served = seen[(11, "transactions")] + seen[(12, "transactions")]
    assert len(served) == len(txns) > 100
    by_key = {(r["seq"], r["end_epoch"]): r for r in served}
    for t in txns:
        r = by_key[(t["seq"], int(t["end_time"] // 1))]
        assert round(r["volume"] / 0.01) == t["displayed_volume_ml"] // 10
        assert round(r["amount"] / 0.01) == t["amount_fen"]
        assert round(r["volume_totalizer_end"] / 0.01) == t["volume_total_after_ml"] // 10
    inventory = pq.read_table(tmp_path / "tank_states.parquet").to_pylist()
    assert len(seen[(1, "inventory")]) == sum(1 for s in inventory if s["kind"] == "interval")
    devices = json.loads((tmp_path / "devices.json").read_text())
    assert devices["devices"]["S01"]["D1"]["streams"]["transactions"]["dropped"] == 0
    # the world waited for S01's collector at least while the test watched it stand still
    assert devices["held_s"]["S01"] >= 0.15
    # serving (stepping, reading live views) left the ground truth exactly as `simulate` makes it
    from sim.runner import simulate

    plain = simulate(small_world(days=2.0).config, tmp_path / "simulate", workers=1,
                     scenario_name="runner-test")
    for name in ("transactions", "events", "tank_states", "deliveries", "nozzles", "tanks"):
        assert manifest["files"][f"{name}.parquet"]["sha256"] == \
            plain["files"][f"{name}.parquet"]["sha256"], name


def test_runner_overflow_is_recorded_and_logged(tmp_path):
    import json
    from collections import Counter

    import pyarrow.parquet as pq

    from devices.runner import serve

    world = small_world(days=1.0, dialect="f32_le")
    # far faster than real time, nobody draining: the FIFOs overflow
    result = serve(world, compression=86400 * 20, out_dir=tmp_path, fifo_depth=5, echo=False)
    assert result.stop_reason == "finished"
    drops = pq.read_table(tmp_path / "fifo_drops.parquet").to_pylist()
    assert len(drops) == result.drops > 0
    per_fifo = Counter((d["device"], d["stream"]) for d in drops)
    for (device, stream), n in per_fifo.items():
        assert result.summary["S01"][device]["streams"][stream]["dropped"] == n
        # dropped_total counts up 1, 2, ... per FIFO
        totals = [d["dropped_total"] for d in drops if (d["device"], d["stream"]) == (device, stream)]
        assert totals == list(range(1, n + 1))
    # each overflow of a non-event FIFO logged one fifo_overflow event in the ground truth
    events = pq.read_table(tmp_path / "events.parquet").to_pylist()
    overflow = Counter(e["device"] for e in events if e["code"] == 30)
    expected = Counter(d["device"] for d in drops if d["stream"] != "events")
    assert overflow == expected
    txn_drops = [d for d in drops if d["stream"] == "transactions"]
    txns = {(t["dispenser"], t["seq"]) for t in pq.read_table(tmp_path / "transactions.parquet").to_pylist()}
    assert all((int(d["device"][1:]), d["seq"]) in txns for d in txn_drops)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["fifo_drops"] == len(drops) and manifest["complete"] is True
    # the devices kept the newest records
    for dev in result.summary["S01"].values():
        for s in dev["streams"].values():
            assert s["pending"] == min(5, s["pushed"])


def test_runner_writes_verification_records_to_inputs_jsonl_as_they_happen(tmp_path):
    """A document another party makes while the world runs (a signed verification record)
    goes to inputs.jsonl at once, so a harness can post it in step with the world; other
    ground-truth records do not."""
    import json
    from types import SimpleNamespace

    from devices.runner import INPUTS_FILE, DeviceRun

    world = small_world(days=0.1)
    run_ = DeviceRun(world, out_dir=tmp_path, echo=False, ledger=None)
    tmp_path.mkdir(exist_ok=True)
    body = json.dumps({"station_id": "S01", "device": "D1", "kind": "verification"})
    record = SimpleNamespace(station_id="S01", cheat=0, device="D1", nozzle=2,
                             performed_at=START + 3600.0, kind="verification", body=body)
    run_._note_input("S01", "cheat", SimpleNamespace())  # not a document: ignored
    run_._note_input("S01", "verification_record", record)
    lines = (tmp_path / INPUTS_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{
        "kind": "verification_record", "sim_time": world.now, "station_id": "S01",
        "device": "D1", "nozzle": 2, "performed_at": START + 3600.0, "body": body}]
