"""The collector's own register codec against the hand-worked examples of docs/register-map.md."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.codec import (
    DecodeError,
    crc16_modbus,
    crc16_registers,
    decode_field,
    decode_fields,
    decode_value,
    is_empty_slot,
    record_crc_ok,
    registers_to_bytes,
)
from collector.profile import load_profiles
from collector.uplink_records import RecordBuilder

PROFILES = load_profiles()
DISPENSER = PROFILES["dispenser"]
GAUGE = PROFILES["tank_gauge"]
INT_BE = DISPENSER.dialects["int_be"]
F32_LE = DISPENSER.dialects["f32_le"]
TXN = DISPENSER.fifos["transactions"]


def regs(text: str) -> list[int]:
    return [int(word, 16) for word in text.split()]


# register-map.md §7: the same fill from an int_be and an f32_le dispenser.
TXN_INT_BE = regs("FFFF 0002 005C 0001 6956 2278 6956 22B5 0000 0FA1 0000 6F47 0000 1BD0 "
                  "0000 0000 00BC 614E 0000 0000 053D 3FDB 0000 0000 0000 0000 0000 0A17")
TXN_F32_LE = regs("FFFF 0002 005C 0001 2278 6956 22B5 6956 0A3D 4220 6F5C 438E D70A 40E3 "
                  "47AE 7AE1 240C 40FE 8F5C 75C2 D332 412A 0000 0000 0000 0000 0000 8FFD")


def field(profile, block: str, name: str):
    return profile.blocks[block].fields[name]


def test_crc_check_values():
    assert crc16_modbus(bytes.fromhex("01030000000A")) == 0xCDC5
    assert crc16_modbus(b"123456789") == 0x4B37


def test_registers_travel_high_byte_first():
    assert registers_to_bytes([0x005C, 0xB900]) == b"\x00\x5c\xb9\x00"


@pytest.mark.parametrize(("words", "dialect", "expected"), [
    ([0x6955, 0xB900], INT_BE, 1767225600),
    ([0xB900, 0x6955], F32_LE, 1767225600),
])
def test_u32_word_order(words, dialect, expected):
    assert decode_value(words, field(DISPENSER, "header", "rtc_epoch"), dialect) == expected


@pytest.mark.parametrize(("block", "name", "int_be", "f32_le", "count"), [
    ("tank", "temperature", "FFFF FD2B", "0000 C0E8", -725),  # −7.25 °C
    ("tank", "gross_volume", "0001 81CD", "5200 461A", 98765),  # 9876.5 L
    ("nozzle", "unit_price", "0000 1BD0", "D70A 40E3", 7120),  # ¥7.12/L
    ("nozzle", "volume_totalizer", "0000 0000 00BC 614E", "47AE 7AE1 240C 40FE", 12345678),
])
def test_measures_and_counters_both_dialects(block, name, int_be, f32_le, count):
    profile = GAUGE if block == "tank" else DISPENSER
    f = field(profile, block, name)
    assert decode_value(regs(int_be), f, INT_BE) == count
    assert decode_value(regs(f32_le), f, F32_LE) == count


def test_ascii_is_never_word_swapped():
    words = regs("534E 2D31 0000 0000 0000 0000 0000 0000")
    f = field(DISPENSER, "header", "serial_number")
    assert decode_value(words, f, INT_BE) == "SN-1"
    assert decode_value(words, f, F32_LE) == "SN-1"


@pytest.mark.parametrize("registers", [TXN_INT_BE, TXN_F32_LE], ids=["int_be", "f32_le"])
def test_worked_transaction_record(registers):
    dialect = INT_BE if registers is TXN_INT_BE else F32_LE
    assert record_crc_ok(registers, TXN.record["crc"])
    fields = decode_fields(registers, 0, TXN.record, dialect)
    record = RecordBuilder("UMB01", PROFILES).build("D1", "dispenser", "transactions", fields,
                                                     1767252700.0)
    assert record == {
        "key": "UMB01/D1/transactions/65535/1767252600", "seq": 65535,
        "collected_at": 1767252700.0, "nozzle": 2, "grade": "92", "tank": 1,
        "start_time": 1767252600, "end_time": 1767252661, "volume_ml": 40010,
        "amount_fen": 28487, "unit_price_fen": 712, "volume_total_ml": 123456780,
        "amount_total_fen": 87900123,
    }


@pytest.mark.parametrize("registers", [TXN_INT_BE, TXN_F32_LE], ids=["int_be", "f32_le"])
@pytest.mark.parametrize("position", [0, 9, 26, 27])
def test_a_corrupted_record_fails_its_crc(registers, position):
    corrupted = list(registers)
    corrupted[position] ^= 0x0100
    assert not record_crc_ok(corrupted, TXN.record["crc"])


def test_empty_window_slot():
    assert is_empty_slot([0xFFFF] * 28)
    assert not is_empty_slot(TXN_INT_BE)


def _encode_measure(count: int, scale: float, dialect) -> list[int]:
    """Test-side encoder straight from register-map.md §3 (struct, not the collector)."""
    raw = struct.pack(">f", count * scale) if dialect.floating else struct.pack(">i", count)
    words = list(struct.unpack(">2H", raw))
    return words[::-1] if dialect.low_word_first else words


@given(st.integers(min_value=-(2**23), max_value=2**23))
def test_float_dialect_recovers_the_scaled_integer(count):
    """A float32 of value = count × scale decodes to the same count as the int32 dialect."""
    f = field(GAUGE, "tank", "temperature")  # scale 0.01, signed
    for dialect in (INT_BE, F32_LE):
        assert decode_value(_encode_measure(count, 0.01, dialect), f, dialect) == count


@given(st.integers(min_value=0, max_value=10**13))
def test_counter_float64_recovers_large_totalizers(count):
    """Up to 10¹¹ L at 0.01 L — far beyond a 10-digit dispenser totalizer. (Near 2⁵² counts
    a float64 of count × 0.01 no longer pins the count down: the dialect's own limit.)"""
    f = field(DISPENSER, "nozzle", "volume_totalizer")
    raw = struct.pack(">d", count * 0.01)
    words = list(struct.unpack(">4H", raw))[::-1]
    assert decode_value(words, f, F32_LE) == count
    int_words = list(struct.unpack(">4H", struct.pack(">Q", count)))
    assert decode_value(int_words, f, INT_BE) == count


def test_nan_is_a_decode_error():
    nan = list(struct.unpack(">2H", struct.pack(">f", float("nan"))))[::-1]
    with pytest.raises(DecodeError, match="temperature"):
        decode_value(nan, field(GAUGE, "tank", "temperature"), F32_LE)


def test_a_float_too_large_for_its_scale_is_a_decode_error():
    """1e308 L is finite, but not in counts of 0.01 L (it used to escape as OverflowError)."""
    huge = list(struct.unpack(">4H", struct.pack(">d", 1e308)))[::-1]
    with pytest.raises(DecodeError, match="volume_totalizer"):
        decode_value(huge, field(DISPENSER, "nozzle", "volume_totalizer"), F32_LE)


def test_gauge_records_convert_to_uplink_units():
    inv = GAUGE.fifos["inventory"]
    # seq 7, tank 2, epoch 1767225600, level 1834.50 mm, water 12.30 mm, −7.25 °C,
    # gross 18321.7 L, 20 °C 18540.2 L, ullage 11700.1 L, water 101.6 L (int_be counts)
    values = [7, 2, 0x6955, 0xB900]
    for count in (183450, 1230, -725, 183217, 185402, 117001, 1016):
        values += list(struct.unpack(">2H", struct.pack(">i", count)))
    values += [0, 0, 0]
    values.append(crc16_modbus(registers_to_bytes(values)))
    assert record_crc_ok(values, inv.record["crc"])
    fields = decode_fields(values, 0, inv.record, GAUGE.dialects["int_be"])
    rec = RecordBuilder("UMB01", PROFILES).build("G", "tank_gauge", "inventory", fields, 5.0)
    assert rec == {"key": "UMB01/G/inventory/7/1767225600", "seq": 7, "collected_at": 5.0,
                   "tank": 2, "device_time": 1767225600, "product_level_um": 1834500,
                   "water_level_um": 12300, "temperature_mc": -7250,
                   "gross_volume_ml": 18321700, "volume_20c_ml": 18540200,
                   "ullage_ml": 11700100, "water_volume_ml": 101600}


def _layouts():
    """Every field group the collector decodes: (where, fields, dialect)."""
    for pname, prof in PROFILES.items():
        for dname, dialect in prof.dialects.items():
            groups = [(f"block {b.name}", b.fields) for b in prof.blocks.values()]
            for fifo in prof.fifos.values():
                groups += [(f"{fifo.name} status", fifo.status),
                           (f"{fifo.name} record", fifo.record)]
            for where, fields in groups:
                yield f"{pname} {dname} {where}", fields, dialect


LAYOUTS = list(_layouts())


def _one_by_one(registers, start, fields, dialect):
    try:
        return {name: decode_field(registers, start, f, dialect) for name, f in fields.items()}
    except DecodeError:
        return DecodeError


@pytest.mark.parametrize(("where", "fields", "dialect"), LAYOUTS,
                         ids=[w for w, _, _ in LAYOUTS])
@given(data=st.data())
def test_compiled_layout_decodes_as_field_by_field(where, fields, dialect, data):
    """decode_fields (one struct per layout) gives what decode_field gives field by field,
    for any registers: NaN floats and a too-short read included."""
    size = max(f.offset + f.size for f in fields.values())
    start = data.draw(st.integers(0, 3))
    word = st.one_of(st.sampled_from([0, 0xFFFF, 0x7FC0, 0x7F80, 0x8000]),
                     st.integers(0, 0xFFFF))
    registers = data.draw(st.lists(word, min_size=start + size - 1, max_size=start + size + 2))
    expected = _one_by_one(registers, start, fields, dialect)
    if expected is DecodeError:
        with pytest.raises(DecodeError):
            decode_fields(registers, start, fields, dialect)
    else:
        got = decode_fields(registers, start, fields, dialect)
        assert got == expected and list(got) == list(expected)


@given(st.lists(st.integers(0, 0xFFFF), max_size=64))
def test_record_crc_a_register_at_a_time(registers):
    assert crc16_registers(registers) == crc16_modbus(registers_to_bytes(registers))
