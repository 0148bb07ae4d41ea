"""Cursor FIFO semantics: idempotent reads, cumulative ack, wrong ack, wrap, overflow."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codec import Codec
from devices.crc import crc_registers
from devices.device import FieldDevice
from devices.fifo import NO_SEQ, AckError, CursorFifo, FifoDrop, RecordLayout
from devices.image import CivilTime
from devices.profile import load_profile
from sim.records import DeviceEvent, GaugeReading, InventoryRecord, TankTruth, Transaction

DISPENSER = load_profile("dispenser")
GAUGE = load_profile("tank_gauge")


def rec(seq: int) -> tuple[int, ...]:
    return (seq, seq ^ 0x5A5A, 7)


# ---- CursorFifo ---------------------------------------------------------------------------

def test_reads_are_idempotent():
    f = CursorFifo("t", depth=10)
    for s in (5, 6, 7):
        f.push(s, rec(s), 0.0)
    before = (f.pending, f.head_seq, f.window(4), f.version)
    for _ in range(3):
        assert (f.pending, f.head_seq, f.window(4), f.version) == before
    assert f.window(2) == [rec(5), rec(6)]


def test_cumulative_ack_releases_older_records():
    f = CursorFifo("t", depth=10)
    for s in range(100, 106):
        f.push(s, rec(s), 0.0)
    assert f.ack(102) == 3
    assert (f.pending, f.head_seq, f.last_ack) == (3, 103, 102)
    assert f.ack(103) == 1
    assert f.ack(105) == 2
    assert (f.pending, f.head_seq) == (0, NO_SEQ)


@pytest.mark.parametrize("bad", [99, 102, 106, 0xFFFF, 40000])
def test_wrong_ack_changes_nothing(bad):
    f = CursorFifo("t", depth=10)
    for s in range(103, 106):
        f.push(s, rec(s), 0.0)
    state = (f.pending, f.head_seq, f.window(10), f.version, f.last_ack)
    with pytest.raises(AckError, match=f"sequence {bad} is not pending"):
        f.ack(bad)
    assert (f.pending, f.head_seq, f.window(10), f.version, f.last_ack) == state


def test_ack_of_already_released_sequence_is_rejected():
    f = CursorFifo("t", depth=10)
    f.push(1, rec(1), 0.0)
    f.ack(1)
    with pytest.raises(AckError):
        f.ack(1)


def test_wrap_65535_to_0():
    f = CursorFifo("t", depth=10)
    seqs = [65533, 65534, 65535, 0, 1, 2]
    for s in seqs:
        f.push(s, rec(s), 0.0)
    assert f.head_seq == 65533 and f.seqs() == seqs
    assert f.ack(0) == 4  # releases 65533..65535 and 0: older by position, not by value
    assert (f.head_seq, f.pending) == (1, 2)
    with pytest.raises(AckError):
        f.ack(65535)


def test_overflow_drops_oldest_counts_and_reports():
    drops: list[FifoDrop] = []
    f = CursorFifo("t", depth=3, on_drop=drops.append)
    for s in range(10, 15):
        f.push(s, rec(s), float(s))
    assert f.seqs() == [12, 13, 14]
    assert f.dropped == 2
    assert drops == [FifoDrop("t", 10, 13.0, 1), FifoDrop("t", 11, 14.0, 2)]
    assert f.window(5) == [rec(12), rec(13), rec(14)]


class FifoModel:
    """Reference model: a plain list of (seq, record), depth-bounded."""

    def __init__(self, depth: int) -> None:
        self.depth, self.items, self.dropped = depth, [], 0


@settings(max_examples=200, deadline=None)
@given(
    depth=st.integers(1, 8),
    start=st.integers(0, 0xFFFF),
    ops=st.lists(st.one_of(st.just(("push",)), st.tuples(st.just("ack"), st.integers(-2, 10))),
                 max_size=60),
)
def test_fifo_matches_model(depth, start, ops):
    f = CursorFifo("t", depth=depth)
    m = FifoModel(depth)
    nxt = start
    for op in ops:
        if op[0] == "push":
            f.push(nxt, rec(nxt), 0.0)
            m.items.append(nxt)
            if len(m.items) > depth:
                m.items.pop(0)
                m.dropped += 1
            nxt = (nxt + 1) & 0xFFFF
        else:
            # ack the k-th pending (or a sequence that is not pending for k < 0 / past the end)
            k = op[1]
            seq = m.items[k] if 0 <= k < len(m.items) else (nxt + 7 + k) & 0xFFFF
            if seq in m.items:
                assert f.ack(seq) == m.items.index(seq) + 1
                del m.items[: m.items.index(seq) + 1]
            else:
                with pytest.raises(AckError):
                    f.ack(seq)
        assert f.seqs() == m.items
        assert f.dropped == m.dropped
        assert f.head_seq == (m.items[0] if m.items else NO_SEQ)
        assert f.window(3) == [rec(s) for s in m.items[:3]]


# ---- records ------------------------------------------------------------------------------

def txn(seq: int, t: float = 1767225600.0) -> Transaction:
    return Transaction(
        station_id="S01", dispenser=1, nozzle=2, grade="0", tank=3, seq=seq, txn_no=seq,
        start_time=t - 95.4, end_time=t, true_volume_l=412.3, true_volume_20c_l=410.0,
        displayed_volume_ml=412_340, amount_fen=298_949, unit_price_fen=725,
        volume_total_before_ml=9_000_000_000, volume_total_after_ml=9_000_412_340,
        amount_total_before_fen=650_000_000, amount_total_after_fen=650_298_949,
        vehicle="truck", fill_type="full")


@pytest.mark.parametrize("dialect", ["int_be", "f32_le"])
def test_transaction_record_encoding_and_crc(dialect):
    codec = Codec(DISPENSER.dialects[dialect])
    spec = DISPENSER.fifo("transactions")
    layout = RecordLayout(spec, codec)
    from devices.streams import transaction_values

    regs = layout.encode(transaction_values(txn(65535)))
    assert len(regs) == 28
    assert regs[27] == crc_registers(regs[:27])
    d = codec.decode_fields(spec.record, regs)
    assert (d["seq"], d["nozzle"], d["grade"], d["tank"]) == (65535, 2, 0, 3)
    assert (d["start_epoch"], d["end_epoch"]) == (1767225504, 1767225600)  # floor of the time
    assert d["volume"] == pytest.approx(412.34, abs=1e-4)
    assert d["amount"] == pytest.approx(2989.49, abs=1e-4)
    assert d["unit_price"] == pytest.approx(7.25, abs=1e-6)
    assert d["volume_totalizer_end"] == pytest.approx(9_000_412.34, abs=1e-6)
    assert d["amount_totalizer_end"] == pytest.approx(6_502_989.49, abs=1e-6)
    assert regs[22:27] == (0, 0, 0, 0, 0)  # reserved


# ---- device-level overflow: event + ground truth ----------------------------------------

@dataclass
class Nozzle:
    nozzle: int
    grade: str = "92"
    tank: int = 1
    state: int = 0
    unit_price_fen: int = 712
    live_volume_ml: int = 0
    live_amount_fen: int = 0
    volume_total_ml: int = 0
    amount_total_fen: int = 0
    last_seq: int = 0


@dataclass
class Dispenser:
    station_id: str = "S01"
    dispenser: int = 1
    serial_number: str = "D1"
    software_id: str = "sw"
    mainboard_id: str = "mb"
    encoder_id: str = "enc"
    seal_state: int = 0
    device_status: int = 0
    nozzles: list = field(default_factory=lambda: [Nozzle(1)])


@dataclass
class Tank:
    tank: int
    grade: str = "95"
    status: int = 0
    alarms: int = 0
    capacity_l: float = 30000.0

    def live_reading(self) -> GaugeReading:
        return GaugeReading(1000.0, 0.0, 10.0, 12000.0, 11900.0, 18000.0, 0.0)


@dataclass
class Gauge:
    station_id: str = "S01"
    serial_number: str = "G"
    software_id: str = "sw"
    inventory_interval_s: int = 900
    tanks: list = field(default_factory=lambda: [Tank(1), Tank(2)])


class Clock:
    now = 1767225600.0
    generation = 0


class EventLog:
    """Stands in for the world: numbers device events in the device's event stream."""

    def __init__(self) -> None:
        self.devices: dict[str, FieldDevice] = {}
        self.next_seq = 0
        self.calls: list[tuple] = []

    def __call__(self, station, device, code, name, unit, old, new, time):
        self.calls.append((station, device, code, name, unit, old, new, time))
        ev = DeviceEvent(station, device, self.next_seq, time, code, name, unit, old, new)
        self.next_seq += 1
        self.devices[device].accept("events", ev)


def make(kind: str, depth: int):
    drops: list = []
    log = EventLog()
    view, profile, key = (Dispenser(), DISPENSER, "D1") if kind == "d" else (Gauge(), GAUGE, "G")
    dev = FieldDevice(station_id="S01", device=key, view=view, profile=profile, dialect="int_be",
                      clock=Clock(), civil=CivilTime("Asia/Shanghai"), depth=depth,
                      drop_sink=lambda s, d, drop: drops.append((s, d, drop)), event_sink=log)
    log.devices[key] = dev
    return dev, drops, log


def test_transaction_overflow_logs_event_and_records_drop():
    dev, drops, log = make("d", depth=3)
    for s in range(65534, 65534 + 5):
        dev.accept("transactions", txn(s & 0xFFFF, 1767225600.0 + s))
    t = dev.fifo("transactions")
    assert t.seqs() == [0, 1, 2] and t.dropped == 2
    assert [(d[0], d[1], d[2].stream, d[2].seq) for d in drops] == [
        ("S01", "D1", "transactions", 65534), ("S01", "D1", "transactions", 65535)]
    # two fifo_overflow events (code 30), value_old = FIFO base, value_new = dropped so far
    assert [(c[2], c[3], c[4], c[5], c[6]) for c in log.calls] == [
        (30, "fifo_overflow", 0, 1000.0, 1.0), (30, "fifo_overflow", 0, 1000.0, 2.0)]
    ev = dev.fifo("events")
    assert ev.pending == 2
    regs = dev.image.read(2000, 10 + 16)
    codec = dev.codec
    assert regs[0:2] == [2, 0]  # pending, head_seq
    rec0 = codec.decode_fields(DISPENSER.fifo("events").record, regs, base=10)
    assert (rec0["code"], rec0["nozzle"], rec0["value_old"], rec0["value_new"]) == (30, 0, 1000.0, 1.0)
    # status of the transactions FIFO shows the drop count
    status = dev.image.read(1000, 5)
    assert status[:2] == [3, 0] and codec.decode_u32(status[2:4]) == 2


def test_event_fifo_overflow_only_counts():
    dev, drops, log = make("d", depth=2)
    for s in range(4):
        dev.accept("events", DeviceEvent("S01", "D1", s, 1767225600.0 + s, 1, "power_up", 0))
    assert dev.fifo("events").seqs() == [2, 3] and dev.fifo("events").dropped == 2
    assert log.calls == []
    assert [d[2].seq for d in drops] == [0, 1]


def test_gauge_inventory_overflow_logs_event_with_fifo_base():
    dev, drops, log = make("g", depth=1)
    reading = Tank(1).live_reading()
    truth = TankTruth(1000.0, 0.0, 10.0, 12000.0, 11900.0, 0.0)
    for s in range(3):
        dev.accept("inventory", InventoryRecord("S01", 1, s, 1767225600.0 + 900 * s, reading, truth))
    assert [c[5] for c in log.calls] == [1000.0, 1000.0]
    assert dev.fifo("inventory").dropped == 2
    # the event FIFO has depth 1 too: the second overflow event pushed out the first
    assert dev.fifo("events").dropped == 1 and [d[2].stream for d in drops].count("events") == 1


def test_window_past_pending_reads_ffff_and_empty_head():
    dev, _, _ = make("d", depth=10)
    regs = dev.image.read(1000, 122)
    assert regs[0] == 0 and regs[1] == NO_SEQ and regs[4] == NO_SEQ  # ack register: none yet
    assert regs[10:] == [0xFFFF] * 112
    dev.accept("transactions", txn(7))
    regs = dev.image.read(1000, 122)
    assert regs[0:2] == [1, 7] and regs[10] == 7 and regs[38:] == [0xFFFF] * 84


def test_wrong_stream_is_rejected():
    dev, _, _ = make("g", depth=10)
    with pytest.raises(ValueError, match="no FIFO for stream 'transactions'"):
        dev.accept("transactions", txn(1))


def test_unencodable_record_fails_loudly_with_its_place():
    from devices.codec import CodecError

    dev, _, _ = make("d", depth=10)
    with pytest.raises(CodecError, match=r"S01/D1 \(dispenser\): events record seq 9: value_new"):
        dev.accept("events", DeviceEvent("S01", "D1", 9, 1767225600.0, 10, "price_change", 1,
                                         7.12, 3e6))
    assert dev.fifo("events").pending == 0


@pytest.mark.parametrize(("dialect", "words"), [
    ("int_be", "FFFF 0002 005C 0001 6956 2278 6956 22B5 0000 0FA1 0000 6F47 0000 1BD0 "
               "0000 0000 00BC 614E 0000 0000 053D 3FDB 0000 0000 0000 0000 0000 0A17"),
    ("f32_le", "FFFF 0002 005C 0001 2278 6956 22B5 6956 0A3D 4220 6F5C 438E D70A 40E3 "
               "47AE 7AE1 240C 40FE 8F5C 75C2 D332 412A 0000 0000 0000 0000 0000 8FFD"),
])
def test_register_map_worked_example(dialect, words):
    """The transaction record printed in docs/register-map.md §7."""
    from devices.streams import transaction_values

    t = Transaction(
        station_id="S01", dispenser=1, nozzle=2, grade="92", tank=1, seq=65535, txn_no=1,
        start_time=1767252600.3, end_time=1767252661.9, true_volume_l=40.0,
        true_volume_20c_l=40.0, displayed_volume_ml=40_010, amount_fen=28_487,
        unit_price_fen=712, volume_total_before_ml=123_416_770, volume_total_after_ml=123_456_780,
        amount_total_before_fen=87_871_636, amount_total_after_fen=87_900_123,
        vehicle="car", fill_type="full")
    layout = RecordLayout(DISPENSER.fifo("transactions"), Codec(DISPENSER.dialects[dialect]))
    assert " ".join(f"{r:04X}" for r in layout.encode(transaction_values(t))) == words
