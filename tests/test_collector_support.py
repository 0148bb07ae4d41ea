"""Helpers for the collector tests (no tests here): real simulated devices on real sockets,
a Mosquitto broker, and a small stand-in platform that acknowledges uplink messages.

The collector itself never imports devices/ or sim/; its tests do, to drive it with the real
Modbus devices of the harness.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.endpoints import DeviceEndpoint, StationEndpoint
from devices.device import FieldDevice
from devices.image import CivilTime
from devices.profile import load_profile
from devices.server import StationServer
from sim.records import DeliveryRecord, DeviceEvent, GaugeReading, InventoryRecord, Transaction

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
DEV_DISPENSER = load_profile("dispenser")
DEV_GAUGE = load_profile("tank_gauge")


# -- device views (what the simulated world would show) --------------------------------------

@dataclass
class Nozzle:
    nozzle: int
    grade: str
    tank: int
    state: int = 0
    unit_price_fen: int = 712
    live_volume_ml: int = 0
    live_amount_fen: int = 0
    volume_total_ml: int = 1_000_000
    amount_total_fen: int = 712_000
    last_seq: int = 0


@dataclass
class Dispenser:
    station_id: str
    dispenser: int
    serial_number: str = "TQ-0001"
    software_id: str = "V3.2.1"
    mainboard_id: str = "MB-1"
    encoder_id: str = "ENC-1"
    seal_state: int = 0
    device_status: int = 0
    nozzles: list = field(default_factory=list)


READING = GaugeReading(level_mm=1834.5, water_level_mm=12.3, temperature_c=-7.25,
                       gross_l=18_321.7, volume_20c_l=18_540.2, ullage_l=11_700.1, water_l=101.6)


@dataclass
class Tank:
    tank: int
    grade: str
    status: int = 0
    alarms: int = 0
    capacity_l: float = 30_000.0
    reading: GaugeReading = READING

    def live_reading(self) -> GaugeReading:
        return self.reading


@dataclass
class Gauge:
    station_id: str
    serial_number: str = "ATG-1"
    software_id: str = "TLS-4"
    inventory_interval_s: int = 900
    tanks: list = field(default_factory=list)


class Clock:
    def __init__(self, now: float = T0 + 3600.4) -> None:
        self.now = now
        self.generation = 0


# -- records -----------------------------------------------------------------------------------

def transaction(seq: int, i: int, station: str = "S01", nozzle: int = 1) -> Transaction:
    start = T0 + 60 * i + 0.7
    volume_ml = 10_000 + 10 * i  # displayed volume is a multiple of 10 mL
    amount = round(volume_ml * 712 / 1000)
    total_before = 1_000_000 + 20_000 * i
    return Transaction(station, 1, nozzle, "92", 1, seq, i, start, start + 45.2, volume_ml / 1000,
                       volume_ml / 1000, volume_ml, amount, 712, total_before,
                       total_before + volume_ml, 500_000 + 15_000 * i,
                       500_000 + 15_000 * i + amount, "car", "full")


def expected_transaction(t: Transaction, station: str = "S01", device: str = "D1") -> dict:
    start = math.floor(t.start_time)
    return {"key": f"{station}/{device}/transactions/{t.seq}/{start}", "seq": t.seq,
            "nozzle": t.nozzle, "grade": t.grade, "tank": t.tank, "start_time": start,
            "end_time": math.floor(t.end_time), "volume_ml": t.displayed_volume_ml,
            "amount_fen": t.amount_fen, "unit_price_fen": t.unit_price_fen,
            "volume_total_ml": t.volume_total_after_ml, "amount_total_fen": t.amount_total_after_fen}


def event(seq: int, i: int, device: str = "D1", station: str = "S01") -> DeviceEvent:
    return DeviceEvent(station, device, seq, T0 + 30 * i + 0.2, 10, "price_change", 1,
                       7.12, 7.35)


def expected_event(e: DeviceEvent, station: str = "S01") -> dict:
    t = math.floor(e.time)
    return {"key": f"{station}/{e.device}/events/{e.seq}/{t}", "seq": e.seq, "code": e.code,
            "unit": e.unit, "device_time": t, "value_old_e4": round(e.value_old * 1e4),
            "value_new_e4": round(e.value_new * 1e4)}


def inventory(seq: int, i: int, tank: int = 1, station: str = "S01") -> InventoryRecord:
    reading = GaugeReading(level_mm=1500 + i * 0.01, water_level_mm=0.0,
                           temperature_c=-3.5 + i * 0.01, gross_l=15000.0 - i * 0.1,
                           volume_20c_l=15100.0 - i * 0.1, ullage_l=14000.0 + i * 0.1,
                           water_l=0.0)
    return InventoryRecord(station, tank, seq, T0 + 900 * i, reading, None)  # type: ignore[arg-type]


def expected_inventory(r: InventoryRecord, station: str = "S01") -> dict:
    g = r.reading
    t = math.floor(r.time)
    return {"key": f"{station}/G/inventory/{r.seq}/{t}", "seq": r.seq, "tank": r.tank,
            "device_time": t, "product_level_um": round(g.level_mm * 1000),
            "water_level_um": round(g.water_level_mm * 1000),
            "temperature_mc": round(g.temperature_c * 1000),
            "gross_volume_ml": round(g.gross_l * 1000), "volume_20c_ml": round(g.volume_20c_l * 1000),
            "ullage_ml": round(g.ullage_l * 1000), "water_volume_ml": round(g.water_l * 1000)}


def delivery(seq: int, i: int, station: str = "S01") -> DeliveryRecord:
    start = GaugeReading(800.0, 0.0, 12.5, 8000.0, 8050.0, 22000.0, 0.0)
    end = GaugeReading(1900.25, 0.0, 14.25, 19999.9, 20100.3, 10000.1, 0.0)
    return DeliveryRecord(station, 2, seq, "95", T0, T0 + 7200 * i + 0.5, T0 + 7200 * i + 1800.5,
                          12000.0, 11980.0, 12000.0, 16.0, start, end, 12000.0)


def expected_delivery(d: DeliveryRecord, station: str = "S01") -> dict:
    s, e = d.start_reading, d.end_reading
    t = math.floor(d.start_time)
    return {"key": f"{station}/G/deliveries/{d.seq}/{t}", "seq": d.seq, "tank": d.tank,
            "start_time": t, "end_time": math.floor(d.end_time),
            "start_gross_volume_ml": round(s.gross_l * 1000),
            "start_volume_20c_ml": round(s.volume_20c_l * 1000),
            "end_gross_volume_ml": round(e.gross_l * 1000),
            "end_volume_20c_ml": round(e.volume_20c_l * 1000),
            "start_temperature_mc": round(s.temperature_c * 1000),
            "end_temperature_mc": round(e.temperature_c * 1000),
            "start_level_um": round(s.level_mm * 1000), "end_level_um": round(e.level_mm * 1000),
            "bol_volume_20c_ml": round(d.bol_keyed_20c_l * 1000)}


def fifo_backlog(spool) -> int:
    """Records of the device FIFOs in a collector spool (state reports left out)."""
    return sum(1 for k in spool.pending_keys() if "/states/" not in k)


def strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "collected_at"}


# -- a station of real devices ---------------------------------------------------------------

class Station:
    """A dispenser D1 (2 nozzles) and a gauge G (2 tanks) of the harness's real devices."""

    def __init__(self, station_id: str = "S01", dialect: str = "int_be", depth: int = 500) -> None:
        self.station_id, self.dialect = station_id, dialect
        self.clock = Clock()
        civil = CivilTime("Asia/Shanghai")
        d1 = Dispenser(station_id, 1, nozzles=[Nozzle(1, "92", 1), Nozzle(2, "95", 2)])
        g = Gauge(station_id, tanks=[Tank(1, "92"), Tank(2, "95")])
        self.d1 = FieldDevice(station_id=station_id, device="D1", view=d1,
                              profile=DEV_DISPENSER, dialect=dialect, clock=self.clock,
                              civil=civil, depth=depth)
        self.g = FieldDevice(station_id=station_id, device="G", view=g, profile=DEV_GAUGE,
                             dialect=dialect, clock=self.clock, civil=civil, depth=depth)
        self.server: StationServer | None = None
        self.port = 0

    async def start_tcp(self, port: int = 0) -> StationEndpoint:
        self.server = StationServer(self.station_id, [self.g, self.d1])
        self.port = await self.server.start_tcp("127.0.0.1", port)
        return self.endpoint()

    async def start_rtu(self, device_path: str) -> None:
        self.server = StationServer(self.station_id, [self.g, self.d1])
        await self.server.start_rtu(device_path)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def devices(self, extra: tuple[DeviceEndpoint, ...] = ()) -> tuple[DeviceEndpoint, ...]:
        return (DeviceEndpoint("G", "tank_gauge", 1, "tank_gauge", (1, 2)),
                DeviceEndpoint("D1", "dispenser", 11, "dispenser", (1, 2)), *extra)

    def endpoint(self, dialect: str | None = None, port: int | None = None,
                 extra: tuple[DeviceEndpoint, ...] = ()) -> StationEndpoint:
        return StationEndpoint(self.station_id, "tcp", dialect or self.dialect,
                               self.devices(extra), host="127.0.0.1",
                               port=self.port if port is None else port)

    def endpoints_doc(self) -> dict:
        return {"format": "forecourt-endpoints/1", "scenario": "test", "compression": 1,
                "timezone": "Asia/Shanghai",
                "stations": {self.station_id: {
                    "transport": "tcp", "host": "127.0.0.1", "port": self.port,
                    "dialect": self.dialect,
                    "devices": [{"device": "G", "kind": "tank_gauge", "unit_id": 1,
                                 "profile": "tank_gauge", "tanks": [1, 2]},
                                {"device": "D1", "kind": "dispenser", "unit_id": 11,
                                 "profile": "dispenser", "nozzles": [1, 2]}]}}}

    def pending(self) -> dict[str, int]:
        return {f"{dev.device}/{name}": dev.fifo(name).pending
                for dev in (self.d1, self.g) for name in dev.channels}


class ThreadedStation:
    """A Station served from its own event loop thread (the devices are not thread-safe:
    everything touching them runs on that loop)."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn, timeout: float = 10.0):
        async def wrapper():
            result = fn()
            return await result if asyncio.iscoroutine(result) else result
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.station.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


async def connect_failures(uplink, at_least: int, timeout: float) -> int:
    """Run `uplink` (collector.uplink.Uplink) until it has failed to connect `at_least`
    times (or `timeout`), stop it and return how often it failed: a refused collector
    must keep trying, not crash."""
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    await until(lambda: uplink.stats.connect_failures >= at_least or task.done(), timeout,
                0.05)
    stop.set()
    await task
    await uplink.close()
    return uplink.stats.connect_failures


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- a stand-in platform ---------------------------------------------------------------------

def _canonical(payload: dict) -> bytes:
    body = {k: v for k, v in payload.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hmac_hex(key: bytes, topic: str, payload: dict) -> str:
    return hmac.new(key, topic.encode() + b"\n" + _canonical(payload), hashlib.sha256).hexdigest()


class FakePlatform:
    """Subscribes to a station's uplink, checks signatures, stores records by key, acks.

    Written separately from the collector's signing code so the two check each other.
    `ack_enabled` off makes it swallow data silently (to exercise resends).
    """

    def __init__(self, host: str, port: int, station_id: str, key: bytes, kid: str = "k1") -> None:
        self.station_id, self.key, self.kid = station_id, key, kid
        self.lock = threading.Lock()
        self.records: dict[str, dict] = {}
        self.messages: list[tuple[str, dict]] = []
        self.bad_signatures = 0
        self.ack_enabled = True
        self.msg_seq = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-platform-{station_id}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"fsx/v1/{station_id}/#", qos=1)
        # reconnect promptly after a broker restart (paho backs off up to 120 s by default)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect(host, port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/ack"):
            return
        payload = json.loads(msg.payload)
        with self.lock:
            self.messages.append((msg.topic, payload))
            if payload.get("sig") != hmac_hex(self.key, msg.topic, payload):
                self.bad_signatures += 1
                return
            if "/evt/" not in msg.topic or not self.ack_enabled:
                return
            accepted, duplicates = [], []
            for r in payload["records"]:
                (duplicates if r["key"] in self.records else accepted).append(r["key"])
                self.records.setdefault(r["key"], r)
            self.msg_seq += 1
            ack = {"v": 1, "type": "ack", "station_id": self.station_id,
                   "msg_seq": self.msg_seq, "sent_at": time.time(), "kid": self.kid,
                   "acked_msg_seq": payload["msg_seq"], "accepted": accepted,
                   "duplicates": duplicates, "rejected": []}
        self.send_ack(ack)

    def send_ack(self, ack: dict, key: bytes | None = None) -> None:
        topic = f"fsx/v1/{self.station_id}/ack"
        ack["sig"] = hmac_hex(key or self.key, topic, ack)
        self.client.publish(topic, json.dumps(ack), qos=1)

    @property
    def data(self) -> dict[str, dict]:
        """Records of the device FIFOs (state reports left out)."""
        with self.lock:
            return {k: r for k, r in self.records.items() if "/states/" not in k}

    @property
    def states(self) -> dict[str, dict]:
        with self.lock:
            return {k: r for k, r in self.records.items() if "/states/" in k}

    def of_type(self, kind: str) -> list[dict]:
        with self.lock:
            return [p for _, p in self.messages if p.get("type") == kind]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
