"""Codecs of both dialects, CRC-16/MODBUS and profile validation."""

from __future__ import annotations

import copy
import struct

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from devices.codec import Codec, CodecError
from devices.crc import crc16_modbus, crc_registers
from devices.profile import PROFILE_DIR, ProfileError, load_profile, parse_profile

DISPENSER = load_profile("dispenser")
GAUGE = load_profile("tank_gauge")
INT_BE = Codec(DISPENSER.dialects["int_be"])
F32_LE = Codec(DISPENSER.dialects["f32_le"])
SCALES = st.sampled_from([0.0001, 0.001, 0.01, 0.1])


# ---- worked examples (the ones in docs/register-map.md) --------------------------------

def test_int_be_word_order_examples():
    # 9876.5 at scale 0.1 -> 98765 = 0x0001_81CD, high word first
    assert INT_BE.measure(9876.5, 0.1) == [0x0001, 0x81CD]
    # -12.34 degC at 0.01 -> -1234 = 0xFFFF_FB2E
    assert INT_BE.measure(-12.34, 0.01) == [0xFFFF, 0xFB2E]
    # 123456.78 L at 0.01 -> 12345678 = 0x0000_0000_00BC_614E
    assert INT_BE.counter(123456.78, 0.01) == [0x0000, 0x0000, 0x00BC, 0x614E]
    assert INT_BE.u32(1767225600) == [0x6955, 0xB900]
    # §5.4 (v2): a bill of lading of 11 975.4 L at 0.1 L -> 119754 = 0x0001_D3CA
    assert INT_BE.measure(11975.4, 0.1) == [0x0001, 0xD3CA]


def test_f32_le_word_order_examples():
    # 7.12 as float32 = 0x40E3D70A -> low word first
    assert F32_LE.measure(7.12, 0.001) == [0xD70A, 0x40E3]
    assert F32_LE.measure(-12.34, 0.01) == [0x70A4, 0xC145]
    # 123456.78 as float64 = 0x40FE240C7AE147AE -> least significant word first
    assert F32_LE.counter(123456.78, 0.01) == [0x47AE, 0x7AE1, 0x240C, 0x40FE]
    assert F32_LE.u32(1767225600) == [0xB900, 0x6955]
    assert F32_LE.measure(11975.4, 0.1) == [0x1D9A, 0x463B]  # §5.4: float32 0x463B1D9A


def test_ascii_is_never_swapped():
    for codec in (INT_BE, F32_LE):
        assert codec.ascii("SN-1", 4) == [0x534E, 0x2D31, 0, 0]
        assert codec.decode_ascii([0x534E, 0x2D31, 0, 0]) == "SN-1"


# ---- round trips ------------------------------------------------------------------------

@given(raw=st.integers(-(2**31), 2**31 - 1), scale=SCALES)
def test_int_be_measure_round_trip(raw, scale):
    regs = INT_BE.measure(raw * scale, scale)
    assert all(0 <= r <= 0xFFFF for r in regs) and len(regs) == 2
    assert INT_BE.decode_measure_raw(regs) == raw


@given(temp=st.integers(-5000, 6000))
def test_negative_temperatures_both_dialects(temp):
    value = temp / 100  # -50.00 .. 60.00 degC
    assert INT_BE.decode_measure_raw(INT_BE.measure(value, 0.01)) == temp
    decoded = F32_LE.decode_measure(F32_LE.measure(value, 0.01), 0.01)
    assert decoded == struct.unpack("<f", struct.pack("<f", value))[0]
    assert round(decoded / 0.01) == temp


@given(raw=st.integers(0, 2**53), scale=st.sampled_from([0.01, 0.1]))
def test_int_be_counter_round_trip_large(raw, scale):
    regs = INT_BE.counter(raw * scale, scale)
    assert len(regs) == 4
    # the codec rounds value/scale: exact for every counter a device can show
    assert abs(INT_BE.decode_counter_raw(regs) - raw) <= max(1, raw * 2**-50)


@given(ml=st.integers(0, 10**14))
def test_totalizer_from_millilitres_is_exact(ml):
    # what devices do: volume_total_ml / 1000 L at scale 0.01 -> centilitres, both dialects
    ml -= ml % 10
    assert INT_BE.decode_counter_raw(INT_BE.counter(ml / 1000, 0.01)) == ml // 10
    assert F32_LE.decode_counter(F32_LE.counter(ml / 1000, 0.01), 0.01) == ml / 1000


@given(raw=st.integers(-(2**22), 2**22), frac=st.floats(-0.49, 0.49), scale=SCALES)
def test_f32_measure_is_the_value_at_its_resolution(raw, frac, scale):
    # f32_le sends the value rounded to its resolution as float32; rounding the float back
    # gives exactly what int_be sends, as long as value/scale fits float32's 24-bit mantissa
    # with room to spare (|value/scale| <= 2**22, docs/register-map.md §3)
    value = (raw + frac) * scale
    f = F32_LE.decode_measure(F32_LE.measure(value, scale), scale)
    assert round(f / scale) == raw == INT_BE.decode_measure_raw(INT_BE.measure(value, scale))


@given(raw=st.integers(0, 2**50), scale=st.sampled_from([0.01, 0.1]))
def test_f64_counter_round_trip(raw, scale):
    f = F32_LE.decode_counter(F32_LE.counter(raw * scale, scale), scale)
    assert round(f / scale) == raw


@given(v=st.integers(0, 2**32 - 1))
def test_u32_round_trip_both_orders(v):
    assert INT_BE.decode_u32(INT_BE.u32(v)) == v
    assert F32_LE.decode_u32(F32_LE.u32(v)) == v
    assert INT_BE.u32(v) == F32_LE.u32(v)[::-1]


@given(text=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=16))
def test_ascii_round_trip(text):
    assert INT_BE.decode_ascii(INT_BE.ascii(text, 8)) == text


def test_field_round_trip_through_profile_fields():
    nozzle = DISPENSER.block("nozzle")
    values = {"state": 4, "grade": 95, "tank": 2, "unit_price": 7.12, "live_volume": 23.45,
              "live_amount": 166.96, "volume_totalizer": 98765432.1, "amount_totalizer": 7012345.67,
              "last_transaction_seq": 65535}
    for codec in (INT_BE, F32_LE):
        regs = [0] * nozzle.size
        for f in nozzle.fields:
            regs[f.offset:f.end] = codec.encode(f, values[f.name])
        decoded = codec.decode_fields(nozzle.fields, regs)
        for f in nozzle.fields:
            assert decoded[f.name] == pytest.approx(values[f.name], rel=1e-6, abs=f.scale or 0)


# ---- range errors name the field -------------------------------------------------------

def test_out_of_range_values_raise_naming_the_field():
    with pytest.raises(CodecError, match="live_volume"):
        INT_BE.measure(3e7, 0.01, "live_volume")
    with pytest.raises(CodecError, match="volume_totalizer"):
        INT_BE.counter(-1, 0.01, "volume_totalizer")
    with pytest.raises(CodecError, match="u16"):
        INT_BE.u16(70000)
    with pytest.raises(CodecError, match="longer"):
        INT_BE.ascii("x" * 17, 8)
    with pytest.raises(CodecError, match="ASCII"):
        INT_BE.ascii("加油机", 8)
    with pytest.raises(CodecError, match="float32"):
        F32_LE.measure(1e39, 0.01)
    for codec in (INT_BE, F32_LE):
        with pytest.raises(CodecError, match="temperature: nan is not a finite number"):
            codec.measure(float("nan"), 0.01, "temperature")
        with pytest.raises(CodecError, match="inf is not a finite number"):
            codec.counter(float("inf"), 0.01)
        with pytest.raises(CodecError, match="negative|uint64"):
            codec.counter(-0.5, 0.01)


# ---- CRC -------------------------------------------------------------------------------

def test_crc_known_vector():
    assert crc16_modbus(bytes.fromhex("01 03 00 00 00 0A")) == 0xCDC5
    assert crc_registers([0x0103, 0x0000, 0x000A]) == 0xCDC5
    assert crc16_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS check value


@given(regs=st.lists(st.integers(0, 0xFFFF), max_size=40))
def test_crc_registers_equals_bytes_big_endian(regs):
    crc = crc_registers(regs)
    data = struct.pack(f">{len(regs)}H", *regs)
    assert crc == crc16_modbus(data)
    # an RTU-style trailer (low byte first) gives residue 0
    assert crc16_modbus(data + struct.pack("<H", crc)) == 0


@given(regs=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=27), i=st.integers(0, 26),
       bit=st.integers(0, 15))
def test_crc_detects_single_bit_flips(regs, i, bit):
    i %= len(regs)
    flipped = list(regs)
    flipped[i] ^= 1 << bit
    assert crc_registers(flipped) != crc_registers(regs)


# ---- profiles ---------------------------------------------------------------------------

def test_profiles_load_with_expected_layout():
    assert DISPENSER.profile_id == 1 and GAUGE.profile_id == 2
    assert DISPENSER.fifo("transactions").size == 122 <= DISPENSER.max_read_registers
    assert GAUGE.fifo("inventory").size == 120 <= GAUGE.max_read_registers
    assert DISPENSER.fifo("transactions").ack_address == 1004
    assert GAUGE.fifo("events").ack_address == 3004
    assert DISPENSER.max_instances(DISPENSER.block("nozzle")) == 9
    assert DISPENSER.event_code("fifo_overflow") == 30 == GAUGE.event_code("fifo_overflow")


def _raw(name: str) -> dict:
    return yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["blocks"][1]["fields"].__setitem__(4, {**d["blocks"][1]["fields"][4], "offset": 5}),
         r"blocks\[1\] \(nozzle\)\.fields: fields 'unit_price' .* and 'live_volume' .* overlap"),
        (lambda d: d["fifos"][0].__setitem__("window_records", 5),
         r"fifos\[0\] \(transactions\): status \+ window is 150 registers, more than max_read_registers 125"),
        (lambda d: d["fifos"][1]["status"].pop(3),
         r"fifos\[1\] \(events\)\.status: missing the 'ack' register"),
        (lambda d: d["fifos"][1].__setitem__("base", 1100),
         r"fifos\[1\] \(events\): starts at 1100, inside fifos\[0\] \(transactions\)"),
        (lambda d: d["blocks"][0]["fields"][0].__setitem__("type", "u8"),
         r"blocks\[0\] \(header\)\.fields\[0\] \(profile_id\)\.type: expected one of"),
        (lambda d: d["blocks"][1]["fields"][3].pop("scale"),
         r"fields\[3\] \(unit_price\): missing key 'scale'"),
        (lambda d: d["fifos"][0]["record"].pop(),
         r"the last register \(offset 27\) must be crc"),
        (lambda d: d["blocks"][0]["fields"][13].__setitem__("access", "rw"),
         r"blocks\[0\] \(header\)\.fields \(serial_number\): only FIFO ack registers are writable"),
        (lambda d: d["blocks"][1].__setitem__("instances", "pump_count"),
         r"instances names 'pump_count'"),
    ],
)
def test_bad_profiles_are_rejected_with_the_path(mutate, message):
    data = copy.deepcopy(_raw("dispenser"))
    mutate(data)
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(data, "dispenser.yaml")
    assert str(info.value).startswith("dispenser.yaml: ")


def test_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.yaml")
