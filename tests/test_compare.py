"""acceptance.compare on hand-made ground truth and platform records: the expected values
are worked out by hand, and every class (received once, lost, duplicated, altered,
unexpected) is shown to be detected on deliberately broken platform data."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from acceptance.compare import (
    CompareError,
    Truth,
    compare,
    expected_records,
    register_counts,
)
from acceptance.observe import records_frame
from devices.codec import Codec, CodecError
from devices.profile import load_profile

DIALECTS = {"S1": "int_be", "S2": "f32_le"}


def truth(drops: list[dict] | None = None) -> Truth:
    transactions = pd.DataFrame([
        dict(station_id="S1", dispenser=1, nozzle=2, grade="0", tank=2, seq=7,
             start_time=1000.9, end_time=1061.2, displayed_volume_ml=42670, amount_fen=28631,
             unit_price_fen=671, volume_total_after_ml=2010674680,
             amount_total_after_fen=1451246152),
        dict(station_id="S2", dispenser=3, nozzle=1, grade="92", tank=1, seq=65535,
             start_time=2000.0, end_time=2030.5, displayed_volume_ml=10, amount_fen=7,
             unit_price_fen=703, volume_total_after_ml=123456789010,
             amount_total_after_fen=86790123457),
    ])
    tank_states = pd.DataFrame([
        dict(station_id="S1", tank=1, time=1800.0, kind="interval", inventory_seq=5.0,
             gauge_level_mm=1270.3, gauge_water_level_mm=0.0, gauge_temperature_c=-7.25,
             gauge_gross_l=12002.048541, gauge_volume_20c_l=12247.793956,
             gauge_ullage_l=7999.267607, gauge_water_l=101.64),
        dict(station_id="S1", tank=1, time=1900.0, kind="delivery_start",
             inventory_seq=float("nan"), gauge_level_mm=1.0, gauge_water_level_mm=0.0,
             gauge_temperature_c=1.0, gauge_gross_l=1.0, gauge_volume_20c_l=1.0,
             gauge_ullage_l=1.0, gauge_water_l=0.0),  # not an inventory record
        dict(station_id="S2", tank=2, time=1800.0, kind="interval", inventory_seq=5.0,
             gauge_level_mm=2345.67, gauge_water_level_mm=12.34, gauge_temperature_c=18.06,
             gauge_gross_l=45678.9, gauge_volume_20c_l=45600.04, gauge_ullage_l=4321.1,
             gauge_water_l=0.0),
    ])
    deliveries = pd.DataFrame([
        dict(station_id="S1", tank=2, seq=3, start_time=5000.2, end_time=6200.7,
             start_gross_l=9000.04, start_volume_20c_l=9100.06, end_gross_l=19000.0,
             end_volume_20c_l=19150.55, start_temperature_c=4.444, end_temperature_c=9.995,
             start_level_mm=901.005, end_level_mm=1700.0),
    ])
    events = pd.DataFrame([
        dict(station_id="S1", device="D1", seq=40, time=86400.0, code=20, unit=1,
             value_old=7.03, value_new=3000.1234),
        dict(station_id="S2", device="G", seq=40, time=86400.0, code=20, unit=0,
             value_old=7.03, value_new=3000.1234),
    ])
    fifo_drops = pd.DataFrame(drops or [], columns=["station_id", "device", "stream", "seq",
                                                    "time", "dropped_total"])
    return Truth(transactions, tank_states, deliveries, events, fifo_drops)


def platform_copy(t: Truth) -> dict[str, pd.DataFrame]:
    """A faithful platform: the expected records, with keys and delivery metadata."""
    out = {}
    for stream, exp in expected_records(t, DIALECTS).items():
        rows = exp.drop(columns=["time"]).to_dict("records")
        for r in rows:
            r["key"] = f"{r['station_id']}/{r['device']}/{stream}/{r['seq']}/{r['device_time']}"
            r.update(collected_at=1.5e9, received_at=1.5e9, msg_seq=1)
            if stream in ("transactions", "deliveries"):
                del r["device_time"]  # not a field of these kinds (the key uses start_time)
        out[stream] = records_frame(stream, rows)
    return out


def only(comparison, stream: str) -> pd.DataFrame:
    return comparison.records[comparison.records["stream"] == stream].reset_index(drop=True)


# ---- expected values, worked out by hand -------------------------------------------------

def test_expected_values_in_platform_units():
    exp = expected_records(truth(), DIALECTS)
    t = exp["transactions"].drop(columns=["time"]).to_dict("records")
    assert t[0] == dict(station_id="S1", device="D1", seq=7, device_time=1000, nozzle=2,
                        grade="0", tank=2, start_time=1000, end_time=1061, volume_ml=42670,
                        amount_fen=28631, unit_price_fen=671, volume_total_ml=2010674680,
                        amount_total_fen=1451246152)
    # float dialect: float32 volume/amount, float64 totalizers, each back at 0.01 L / yuan
    assert t[1]["volume_ml"] == 10 and t[1]["amount_fen"] == 7
    assert t[1]["volume_total_ml"] == 123456789010
    assert t[1]["amount_total_fen"] == 86790123457
    inv = exp["inventory"].set_index("station_id")
    assert len(inv) == 2  # the delivery_start row is no inventory record
    s1 = inv.loc["S1"]
    # 0.01 mm → µm ×10; 0.01 °C → m°C ×10; 0.1 L → mL ×100
    assert (s1.device, s1.seq, s1.device_time, s1.tank) == ("G", 5, 1800, 1)
    assert (s1.product_level_um, s1.water_level_um, s1.temperature_mc) == (1270300, 0, -7250)
    assert (s1.gross_volume_ml, s1.volume_20c_ml, s1.ullage_ml, s1.water_volume_ml) == (
        12002000, 12247800, 7999300, 101600)
    s2 = inv.loc["S2"]
    assert (s2.product_level_um, s2.water_level_um, s2.temperature_mc) == (2345670, 12340,
                                                                           18060)
    assert (s2.gross_volume_ml, s2.volume_20c_ml, s2.ullage_ml) == (45678900, 45600000,
                                                                    4321100)
    d = exp["deliveries"].iloc[0]
    assert (d.device, d.device_time, d.start_time, d.end_time) == ("G", 5000, 5000, 6200)
    assert (d.start_gross_volume_ml, d.start_volume_20c_ml, d.end_gross_volume_ml,
            d.end_volume_20c_ml) == (9000000, 9100100, 19000000, 19150500)
    # as the device computes round(value / scale) in binary floating point:
    # 19150.55 / 0.1 = 191505.4999…, 9.995 / 0.01 = 999.4999…, 901.005 / 0.01 = 90100.5 (even)
    assert (d.start_temperature_mc, d.end_temperature_mc) == (4440, 9990)
    assert (d.start_level_um, d.end_level_um) == (901000, 1700000)
    e = exp["events"].set_index("station_id")
    assert e.loc["S1", "value_old_e4"] == e.loc["S2", "value_old_e4"] == 70300
    # 3000.1234 fits an int32 of 0.0001 exactly; as float32 it is 3000.123291015625
    assert e.loc["S1", "value_new_e4"] == 30001234
    assert e.loc["S2", "value_new_e4"] == 30001233


@settings(max_examples=300, deadline=None)
@given(value=st.floats(-2e5, 2e5, allow_nan=False), scale=st.sampled_from(
    [0.01, 0.1, 0.001, 0.0001]), dialect=st.sampled_from(["int_be", "f32_le"]),
    kind=st.sampled_from(["measure", "counter"]))
def test_register_counts_match_the_device_encoder(value, scale, dialect, kind):
    """The model of what a collector decodes equals the devices' own encoder, decoded by
    the uplink rule (float dialects: round the decoded value to the resolution)."""
    if kind == "counter":
        value = abs(value)
    prof = load_profile("dispenser")
    codec = Codec(prof.dialects[dialect])
    try:
        regs = codec.measure(value, scale) if kind == "measure" else codec.counter(value, scale)
    except CodecError:
        assume(False)
    raw = codec.decode_measure_raw(regs) if kind == "measure" else codec.decode_counter_raw(regs)
    want = raw if dialect == "int_be" else round(raw / scale)
    assume(math.isfinite(want))
    got = register_counts([value], scale, kind, prof.dialects[dialect].numeric)[0]
    assert got == want


# ---- each class is detected ---------------------------------------------------------------

def test_a_faithful_platform_is_received_once_everywhere():
    c = compare(truth(), platform_copy(truth()), DIALECTS)
    assert c.ok
    assert c.summary() == {"received_once": 7, "lost": 0, "duplicated": 0, "altered": 0,
                           "unexpected": 0}
    table = c.counts(("station_id", "stream"))
    assert table.loc[("S1", "inventory"), "received_once"] == 1
    assert table.loc[("S2", "transactions"), "received_once"] == 1
    assert list(table.columns) == ["received_once", "lost", "duplicated", "altered",
                                   "unexpected"]
    assert c.problems() == []


def test_altered_values_are_named_field_by_field():
    t = truth()
    plat = platform_copy(t)
    plat["transactions"].loc[0, "volume_ml"] += 10  # rounded at the wrong place
    plat["transactions"].loc[1, "grade"] = "95"
    plat["inventory"].loc[1, "temperature_mc"] = None  # a field the platform left out
    plat["events"].loc[1, "value_new_e4"] = 30001234  # decoded without float32 rounding
    c = compare(t, plat, DIALECTS)
    assert not c.ok
    tx = only(c, "transactions")
    assert list(tx["status"]) == ["altered", "altered"]
    assert list(tx["altered"]) == ["volume_ml", "grade"]
    assert tx.loc[0, "detail"] == "volume_ml: truth 42670, platform 42680"
    inv = only(c, "inventory")
    assert list(inv["altered"]) == ["", "temperature_mc"]
    ev = only(c, "events")
    assert list(ev["status"]) == ["received_once", "altered"]
    assert ev.loc[1, "detail"] == "value_new_e4: truth 30001233, platform 30001234"
    assert c.summary()["altered"] == 4
    assert any("altered (volume_ml" in line for line in c.problems())


def test_lost_records_and_those_a_fifo_overflow_dropped():
    drops = [dict(station_id="S1", device="G", stream="inventory", seq=5, time=1850.0,
                  dropped_total=1)]
    t = truth(drops)
    plat = platform_copy(t)
    plat["transactions"] = plat["transactions"].iloc[[1]]
    plat["inventory"] = plat["inventory"][plat["inventory"]["station_id"] == "S2"]
    c = compare(t, plat, DIALECTS)
    tx, inv = only(c, "transactions"), only(c, "inventory")
    assert list(tx["status"]) == ["lost", "received_once"]
    assert list(tx["dropped_at_device"]) == [False, False]
    assert list(inv["status"]) == ["lost", "received_once"]
    assert list(inv["dropped_at_device"]) == [True, False]
    assert c.summary()["lost"] == 2 and not c.ok


def test_a_drop_is_attributed_to_the_right_record_across_the_sequence_wrap():
    t = truth()
    later = t.tank_states.iloc[[0]].assign(time=1800.0 + 86400 * 700)  # same seq, wrapped
    t = Truth(t.transactions, pd.concat([t.tank_states, later], ignore_index=True),
              t.deliveries, t.events, pd.DataFrame([
                  dict(station_id="S1", device="G", stream="inventory", seq=5,
                       time=1800.0 + 86400 * 700 + 900, dropped_total=9)]))
    plat = platform_copy(t)
    plat["inventory"] = plat["inventory"][plat["inventory"]["station_id"] == "S2"]
    inv = only(compare(t, plat, DIALECTS), "inventory")
    s1 = inv[inv["station_id"] == "S1"].sort_values("time")
    assert list(s1["status"]) == ["lost", "lost"]
    assert list(s1["dropped_at_device"]) == [False, True]


def test_duplicates_are_counted_even_under_another_key():
    t = truth()
    plat = platform_copy(t)
    twice = plat["deliveries"].iloc[[0]].assign(key="another-key", msg_seq=9)
    altered_copy = plat["events"].iloc[[0]].assign(code=21)
    plat["deliveries"] = pd.concat([plat["deliveries"], twice], ignore_index=True)
    plat["events"] = pd.concat([plat["events"], altered_copy], ignore_index=True)
    c = compare(t, plat, DIALECTS)
    d, ev = only(c, "deliveries"), only(c, "events")
    assert list(d["status"]) == ["duplicated"] and list(d["copies"]) == [2]
    assert d.loc[0, "detail"] == "2 copies" and d.loc[0, "altered"] == ""
    assert list(ev["status"]) == ["duplicated", "received_once"]
    assert ev.loc[0, "altered"] == "code" and ev.loc[0, "detail"].startswith("2 copies; code")
    assert c.summary()["duplicated"] == 2 and c.summary()["unexpected"] == 0


def test_unexpected_records_and_a_shifted_key():
    t = truth()
    plat = platform_copy(t)
    ghost = plat["transactions"].iloc[[0]].assign(seq=8, key="S1/D1/transactions/8/1000")
    plat["transactions"] = pd.concat([plat["transactions"], ghost], ignore_index=True)
    plat["inventory"].loc[0, "device_time"] += 3600  # a clock-shifted reading
    c = compare(t, plat, DIALECTS)
    tx, inv = only(c, "transactions"), only(c, "inventory")
    assert list(tx["status"]) == ["received_once", "received_once", "unexpected"]
    assert tx.loc[2, "seq"] == 8 and pd.isna(tx.loc[2, "time"])
    assert sorted(inv["status"]) == ["lost", "received_once", "unexpected"]
    assert c.summary()["unexpected"] == 2 and not c.ok


def test_an_empty_platform_loses_everything():
    t = truth()
    empty = {s: records_frame(s, []) for s in ("transactions", "inventory", "deliveries",
                                               "events")}
    c = compare(t, empty, DIALECTS)
    assert c.summary() == {"received_once": 0, "lost": 7, "duplicated": 0, "altered": 0,
                           "unexpected": 0}


def test_inputs_that_cannot_be_compared_are_refused():
    t = truth()
    plat = platform_copy(t)
    with pytest.raises(CompareError, match=r"no register dialect for station\(s\) \['S2'\]"):
        compare(t, plat, {"S1": "int_be"})
    with pytest.raises(CompareError, match=r"no frame for \['events'\]"):
        compare(t, {k: v for k, v in plat.items() if k != "events"}, DIALECTS)
    with pytest.raises(CompareError, match="platform deliveries: no column 'start_time'"):
        compare(t, {**plat, "deliveries": plat["deliveries"].drop(columns=["start_time"])},
                DIALECTS)
    with pytest.raises(CompareError, match="unknown dialect 'f64_xx'"):
        compare(t, plat, {"S1": "int_be", "S2": "f64_xx"})
    twice = Truth(pd.concat([t.transactions, t.transactions.iloc[[0]]], ignore_index=True),
                  t.tank_states, t.deliveries, t.events, t.fifo_drops)
    with pytest.raises(CompareError, match="two records share S1/D1/7/1000"):
        compare(twice, plat, DIALECTS)
    with pytest.raises(CompareError, match="missing column"):
        compare(Truth(t.transactions.drop(columns=["amount_fen"]), t.tank_states,
                      t.deliveries, t.events, t.fifo_drops), plat, DIALECTS)
