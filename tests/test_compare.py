"""acceptance.compare on hand-made ground truth and platform records: the expected values
are worked out by hand, and every class (received once, lost, duplicated, altered,
unexpected) is shown to be detected on deliberately broken platform data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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


def platform_copy(t: Truth, dialects: dict[str, str] = DIALECTS) -> dict[str, pd.DataFrame]:
    """A faithful platform: the expected records, with keys and delivery metadata."""
    out = {}
    for stream, exp in expected_records(t, dialects).items():
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


def test_bill_of_lading_is_compared_at_register_resolution():
    """deliveries.bol_volume_20c_ml (register map v2 offsets 22-23, 0.1 L): the truth's
    bol_keyed_20c_l at the register resolution through each dialect; a platform (or a 1.0
    collector) that leaves it out, or reports 0 for a keyed-in bill, is altered."""
    t = truth()
    assert "bol_volume_20c_ml" not in expected_records(t, DIALECTS)["deliveries"]  # older truth
    second = t.deliveries.iloc[[0]].assign(station_id="S2", seq=4, start_time=7000.0,
                                           end_time=8000.0)
    deliveries = pd.concat([t.deliveries, second], ignore_index=True).assign(
        bol_keyed_20c_l=[11975.44, 12345.67])
    t = Truth(t.transactions, t.tank_states, deliveries, t.events, t.fifo_drops)
    exp = expected_records(t, DIALECTS)["deliveries"].set_index("station_id")
    assert exp.loc["S1", "bol_volume_20c_ml"] == 11_975_400  # int32 of 0.1 L
    assert exp.loc["S2", "bol_volume_20c_ml"] == 12_345_700  # float32, back at 0.1 L
    plat = platform_copy(t)
    assert compare(t, plat, DIALECTS).ok
    for wrong, shown in ((None, "platform None"), (0, "platform 0"),
                         (11_975_440, "platform 11975440")):
        bad = {**plat, "deliveries": plat["deliveries"].copy()}
        bad["deliveries"]["bol_volume_20c_ml"] = bad["deliveries"]["bol_volume_20c_ml"].astype(
            object)
        bad["deliveries"].loc[0, "bol_volume_20c_ml"] = wrong
        d = only(compare(t, bad, DIALECTS), "deliveries")
        assert list(d["status"]) == ["altered", "received_once"], wrong
        assert d.loc[0, "detail"] == f"bol_volume_20c_ml: truth 11975400, {shown}"


# ---- what the alarm oracle reads: alerts, states, and the inputs the harness posts ----------

class _Items:
    """A stand-in for PlatformClient.items over fixed answers per resource."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        self.answers = answers

    def items(self, resource: str, **filters):
        from acceptance.observe import ApiError

        if resource not in self.answers:
            raise ApiError(f"/api/v1/{resource}", 404, "not_found")
        return [i for i in self.answers[resource]
                if filters.get("station_id") in (None, i.get("station_id"))]


def test_alerts_and_states_are_observed_into_the_run_directory(tmp_path):
    import json

    from acceptance.observe import (
        ALERT_COLUMNS,
        STATE_COLUMNS,
        detection_status,
        observe_alerts,
        observe_states,
    )
    from acceptance.rundir import ALERT_FIELDS, RunData, RunDataError

    alert = {"id": "a1", "station_id": "S1", "kind": "seal_broken", "severity": "warning",
             "raised_at": 1.8e9, "as_of": 1775001600.0, "device": "D1", "nozzle": None,
             "tank": None, "title": "铅封破坏", "detail": "", "evidence": {"seal": [0, 1]},
             "status": "open", "created_at": 1.8e9, "detector": "identity"}
    vendor = {k: v for k, v in alert.items() if k not in ("as_of", "detector")}
    client = _Items({"alerts": [alert, dict(vendor, id="a2", station_id="S2")]})
    df = observe_alerts(client, ["S1", "S2"])
    assert list(df.columns[:len(ALERT_COLUMNS)]) == list(ALERT_COLUMNS)
    assert json.loads(df.loc[0, "evidence"]) == {"seal": [0, 1]}
    assert pd.isna(df.loc[1, "as_of"])  # a platform without the field: null, not a KeyError
    (tmp_path / "observed").mkdir()
    run = RunData(tmp_path)
    with pytest.raises(RunDataError, match=r"missing observed/alerts\.parquet \(written by the "
                                           r"observer"):
        _ = run.alerts
    df.to_parquet(tmp_path / "observed" / "alerts.parquet", index=False)
    alerts = RunData(tmp_path).alerts
    assert set(ALERT_FIELDS) <= set(alerts.columns)
    assert list(alerts["as_of"].isna()) == [False, True] and alerts["as_of"].iloc[0] == 1775001600
    df.drop(columns=["as_of"]).to_parquet(tmp_path / "observed" / "alerts.parquet", index=False)
    with pytest.raises(RunDataError, match=r"alerts\.parquet: missing column\(s\) \['as_of'\]"):
        _ = RunData(tmp_path).alerts
    # states: observed (not compared record by record); a platform without them: empty
    rep = {"key": "S1/D1/states/0/100", "station_id": "S1", "device": "D1", "seq": 0,
           "device_time": 100, "serial_number": "SN", "software_id": "V1", "mainboard_id": "M",
           "encoder_id": "E", "seal_state": 0, "device_status": 0, "collected_at": 1.0,
           "received_at": 2.0, "msg_seq": 3}
    states = observe_states(_Items({"states": [rep]}), ["S1"])
    assert states.to_dict("records") == [rep]
    empty = observe_states(_Items({}), ["S1"])
    assert list(empty.columns) == list(STATE_COLUMNS) and len(empty) == 0
    empty.to_parquet(tmp_path / "observed" / "states.parquet", index=False)
    assert len(RunData(tmp_path).states) == 0
    assert detection_status(_Items({})) is None  # the endpoint is optional
    assert RunData(tmp_path).detection_status is None


def test_the_harness_posts_prices_and_verification_records_and_records_it(tmp_path):
    """InputPoster against the reference platform API: the scenario's prices for every
    station, verification records from the devices' inputs.jsonl (a line still being
    written waits) and from the final ground-truth table, each once; 409 = already there."""
    import json
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from acceptance.inputs import InputPoster, scenario_prices
    from acceptance.observe import PlatformClient
    from central.auth import TokenStore
    from central.db import Database
    from central.http_api import Api, ApiServer
    from central.migrate import migrate
    from central.registry import import_registry, load_registry
    from central.resources import Context
    from central.vcf import Vcf
    from scenarios.loader import load_scenario

    smoke = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "smoke.yaml")
    bodies = scenario_prices(smoke)
    assert bodies[3] == {"grade": "92", "price_fen": 719,
                         "valid_from": "2026-04-02T00:00:00+08:00", "authority": "scenario",
                         "reference": "smoke prices[3]"}
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    migrate(db)
    with db.borrow() as conn:
        import_registry(conn, load_registry(smoke.fleet_path))
    admin, read = "admin-token-0123456789", "read-token-01234567890"
    server = ApiServer(Api(db, TokenStore([(admin, "admin", "harness"), (read, "read", "r")]),
                           Context(ZoneInfo("Asia/Shanghai"), Vcf(), 90.0, lambda: 0.0)),
                       "127.0.0.1", 0).start()
    try:
        sim: list[float | None] = [None]  # the world has not started
        poster = InputPoster(PlatformClient(server.url, admin), lambda: sim[0])
        poster.post_prices(smoke)
        poster.post_prices(smoke)  # a second time: the platform has them (409)
        sim[0] = 5.0
        record = {"station_id": "UMB25", "device": "D1", "nozzle": 2, "kind": "verification",
                  "performed_at": "2026-04-02T10:00:00+08:00", "organisation": "计量所",
                  "signatures": {"maintainer": "甲", "verifier": "乙", "station": "丙"}}
        other = dict(record, nozzle=1, performed_at="2026-04-02T11:00:00+08:00")
        line = {"kind": "verification_record", "sim_time": 1775095200.0, "station_id": "UMB25",
                "device": "D1", "nozzle": 2, "performed_at": 1775095200.0,
                "body": json.dumps(record, ensure_ascii=False)}
        partial = json.dumps(dict(line, body=json.dumps(other)))
        path = tmp_path / "inputs.jsonl"
        path.write_text(json.dumps(line) + "\n" + partial[:40])
        assert poster.poll(tmp_path) == 1
        assert poster.poll(tmp_path) == 0  # the partial line waits
        path.write_text(json.dumps(line) + "\n" + partial + "\n")
        assert poster.poll(tmp_path) == 1
        pd.DataFrame([{"station_id": "UMB25", "cheat": 0, "device": "D1", "nozzle": 2,
                       "performed_at": 1775095200.0, "kind": "verification",
                       "body": line["body"]},
                      {"station_id": "UMB44", "cheat": 1, "device": "D1", "nozzle": 1,
                       "performed_at": 1775098800.0, "kind": "maintenance",
                       "body": json.dumps(dict(record, station_id="UMB44",
                                               kind="maintenance"))}]
                     ).to_parquet(tmp_path / "verification_records.parquet")
        assert poster.post_truth_table(tmp_path) == 1  # only the one not posted yet
        assert poster.post_truth_table(tmp_path / "nowhere") == 0
        summary = poster.summary()
        assert summary["counts"] == {
            "posted_price": {"posted": 6, "already_there": 6, "failed": 0},
            "verification_record": {"posted": 3, "already_there": 0, "failed": 0}}
        items = summary["items"]
        assert [i["source"] for i in items[12:]] == ["devices", "devices", "truth"]
        assert items[0]["sim_time"] is None and items[12]["sim_time"] == 5.0
        assert items[12]["produced_at"] == 1775095200.0
        listed = PlatformClient(server.url, read).get("/api/v1/posted-prices", {"limit": 100})
        assert sorted(p["price_fen"] for p in listed["items"]) == [671, 689, 703, 719, 752,
                                                                   768]
        assert all(p["station_id"] is None for p in listed["items"])
        got = PlatformClient(server.url, read).get("/api/v1/verification-records")["items"]
        assert sorted((r["station_id"], r["nozzle"], r["created_by"]) for r in got) == [
            ("UMB25", 1, "harness"), ("UMB25", 2, "harness"), ("UMB44", 2, "harness")]
        # a read-only token: every post fails, the failure is recorded, nothing raises
        denied = InputPoster(PlatformClient(server.url, read))
        denied.post_prices(smoke)
        assert denied.summary()["counts"]["posted_price"]["failed"] == 6
        assert denied.posted[0].status == 403 and "forbidden" in denied.posted[0].error
    finally:
        server.stop()
        db.close()


def test_a_wrong_device_clock_gives_the_device_times_it_showed():
    """A clock fault in the manifest (sim/device_clock.py): the records of that device are
    expected with the times its clock showed, the others' and `time` stay true."""
    from sim.config import ClockFault

    y2000 = 946656000.0
    reset = ClockFault("S1", "D1", 1000.0, 100000.0, reset_to=y2000)
    t = truth()
    t = Truth(t.transactions, t.tank_states, t.deliveries, t.events, t.fifo_drops,
              manifest={"clock_faults": [reset.__dict__]})
    exp = expected_records(t, DIALECTS)
    tx, ev = exp["transactions"], exp["events"]
    assert tx["device_time"].tolist() == [y2000, 2000]  # S1/D1 reset; S2/D3 right
    assert tx["end_time"].tolist() == [y2000 + 61, 2030]
    assert tx["time"].tolist() == [1061.2, 2030.5]  # the true instants
    assert ev["device_time"].tolist() == [y2000 + 85400, 86400]  # S2/G keeps its clock


# ---- station by station: the same records as the whole-frame comparison -------------------

def _plain(records: pd.DataFrame) -> pd.DataFrame:
    """Records with plain dtypes (labels as text, numbers as float), to compare the paths."""
    out = records.copy()
    for col in ("stream", "station_id", "device", "status", "altered", "detail"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    for col in ("seq", "device_time", "time", "copies"):
        out[col] = pd.to_numeric(out[col]).astype(np.float64)
    return out.astype({"dropped_at_device": bool}).reset_index(drop=True)


def assert_same_records(whole, by_station) -> None:
    """Same rows in the same order, same statuses, same altered/detail/dropped_at_device."""
    pd.testing.assert_frame_equal(_plain(by_station.records), _plain(whole.records))
    assert by_station.summary() == whole.summary()
    assert by_station.problems(100) == whole.problems(100)
    by = ("station_id", "stream")
    assert by_station.counts(by).to_dict("index") == whole.counts(by).to_dict("index")


THREE = {**DIALECTS, "S3": "int_be"}


def truth_of_three() -> Truth:
    """truth() with a FIFO overflow at S1's gauge and a third station S3 (one sale)."""
    t = truth([dict(station_id="S1", device="G", stream="inventory", seq=5, time=1850.0,
                    dropped_total=1)])
    s3 = t.transactions.iloc[[0]].assign(station_id="S3", seq=11)
    return Truth(pd.concat([t.transactions, s3], ignore_index=True), t.tank_states,
                 t.deliveries, t.events, t.fifo_drops,
                 manifest={"stations": ["S1", "S2", "S3"], "clock_faults": []})


def broken_platform(t: Truth) -> dict[str, pd.DataFrame]:
    """Every class at once: altered, duplicated, lost (one dropped at the device),
    unexpected — at a station of the truth, at S9, which is not in it, and at none — and
    nothing at all from S3."""
    plat = platform_copy(t, THREE)
    plat = {s: f[f["station_id"] != "S3"].reset_index(drop=True) for s, f in plat.items()}
    tx = plat["transactions"]
    tx.loc[0, "volume_ml"] += 10  # S1: altered
    twice = tx.iloc[[1]].assign(key="another-key", msg_seq=9)  # S2: duplicated
    plat["transactions"] = pd.concat([tx, twice], ignore_index=True)
    inv = plat["inventory"]
    inv.loc[inv["station_id"] == "S2", "temperature_mc"] = None  # S2: a field left out
    plat["inventory"] = inv[inv["station_id"] == "S2"]  # S1's reading lost (FIFO overflow)
    ev = plat["events"]
    ghost = ev.iloc[[1]].assign(seq=99, key="S2/G/events/99/86400")  # S2: unexpected
    stranger = ev.iloc[[0]].assign(station_id="S9", key="S9/D1/events/40/86400")
    nameless = ev.iloc[[0]].assign(station_id=None, key="?/D1/events/40/86400")
    ev.loc[0, "value_new_e4"] = 30001235  # S1: altered
    plat["events"] = pd.concat([ev, ghost, stranger, nameless], ignore_index=True)
    plat["deliveries"] = pd.concat([plat["deliveries"], plat["deliveries"].assign(
        key="again")], ignore_index=True)  # S1: duplicated
    return plat


def test_station_by_station_equals_the_whole_frames_on_a_faithful_platform():
    from acceptance.station_compare import FrameInputs, compare_by_station

    t = truth()
    whole = compare(t, platform_copy(t), DIALECTS)
    by_station = compare_by_station(FrameInputs(t, platform_copy(t)), DIALECTS)
    assert by_station.ok and by_station.summary()["received_once"] == 7
    assert_same_records(whole, by_station)


def test_station_by_station_equals_the_whole_frames_on_a_broken_platform():
    from acceptance.station_compare import FrameInputs, compare_by_station

    t = truth_of_three()
    plat = broken_platform(t)
    whole = compare(t, plat, THREE)
    by_station = compare_by_station(FrameInputs(t, plat), THREE)
    assert_same_records(whole, by_station)
    recs = by_station.records
    assert by_station.summary() == {"received_once": 1, "lost": 2, "duplicated": 2,
                                    "altered": 3, "unexpected": 3}
    assert [None if pd.isna(s) else s for s in recs.loc[
        recs["status"] == "unexpected", "station_id"]] == ["S2", "S9", None]
    assert list(recs.loc[recs["station_id"] == "S3", "status"]) == ["lost"]
    assert recs.loc[recs["dropped_at_device"], "stream"].tolist() == ["inventory"]
    # compact: labels are categories, seq and copies int32
    assert {str(recs[c].dtype) for c in ("stream", "station_id", "device", "status")} == {
        "category"}
    assert str(recs["seq"].dtype) == "int32" and str(recs["copies"].dtype) == "int32"


def test_station_by_station_refuses_what_the_whole_comparison_refuses():
    from acceptance.station_compare import FrameInputs, compare_by_station

    t = truth()
    plat = platform_copy(t)
    with pytest.raises(CompareError, match=r"no register dialect for station\(s\) \['S2'\]"):
        compare_by_station(FrameInputs(t, plat), {"S1": "int_be"})
    with pytest.raises(CompareError, match=r"no frame for \['events'\]"):
        FrameInputs(t, {k: v for k, v in plat.items() if k != "events"})
    with pytest.raises(CompareError, match="platform deliveries: no column 'start_time'"):
        compare_by_station(FrameInputs(t, {**plat, "deliveries": plat["deliveries"].drop(
            columns=["start_time"])}), DIALECTS)


# ---- from Parquet: a ground-truth directory (both layouts) and observed/<stream>.parquet ---

def _ledger_frame(table: str, df: pd.DataFrame) -> pa.Table:
    """`df` in the ledger's schema (sim/ledger.py); columns it lacks are zero / empty."""
    from sim.ledger import schema

    sch = schema(table)
    df = df.reindex(columns=sch.names)
    for f in sch:
        if pa.types.is_string(f.type):
            df[f.name] = df[f.name].astype(object).where(df[f.name].notna(), "")
        elif f.nullable:
            df[f.name] = df[f.name].astype("Int64")
        else:
            df[f.name] = df[f.name].fillna(0).astype(f.type.to_pandas_dtype())
    return pa.Table.from_pandas(df, schema=sch, preserve_index=False)


def write_truth_dir(t: Truth, out, layout: str) -> None:
    """The ground truth as the ledger writes it: "tables" (one file per table, a row group per
    station) or "segments" (two segment files per table, rows per station in the index)."""
    import json

    import pyarrow.parquet as pq

    from sim.ledger import TABLES, schema

    out.mkdir(parents=True)
    stations = t.manifest["stations"]
    manifest = {**t.manifest, "layout": layout, "segments": []}
    for table in TABLES:
        frame = t.table(table) if table in ("transactions", "tank_states", "deliveries",
                                            "events") else pd.DataFrame()
        per_station = {sid: _ledger_frame(table, frame[frame["station_id"] == sid]
                                          if len(frame) else frame) for sid in stations}
        if layout == "tables":
            with pq.ParquetWriter(out / f"{table}.parquet", schema(table)) as w:
                for rows in per_station.values():
                    w.write_table(rows, row_group_size=max(rows.num_rows, 1))
            continue
        for number in (1, 2):  # each station's rows split in two halves, one per segment
            parts = [(sid, rows.slice(0, rows.num_rows // 2) if number == 1
                      else rows.slice(rows.num_rows // 2)) for sid, rows in per_station.items()]
            parts = [(sid, rows) for sid, rows in parts if rows.num_rows]
            if not parts:
                continue
            rel = f"segments/{table}-{number:05d}.parquet"
            (out / "segments").mkdir(exist_ok=True)
            pq.write_table(pa.concat_tables([rows for _, rows in parts]), out / rel)
            manifest["segments"].append({"table": table, "file": rel, "stations": [
                [sid, rows.num_rows] for sid, rows in parts]})
    t.fifo_drops.to_parquet(out / "fifo_drops.parquet", index=False)
    (out / "manifest.json").write_text(json.dumps(manifest))


def write_observed(plat: dict[str, pd.DataFrame], out) -> dict[str, object]:
    out.mkdir(parents=True)
    for stream, frame in plat.items():
        frame.to_parquet(out / f"{stream}.parquet", index=False)
    return {s: out / f"{s}.parquet" for s in plat}


@pytest.mark.parametrize("layout", ["tables", "segments"])
def test_a_station_s_truth_is_read_alone_in_either_layout(tmp_path, layout):
    from sim.ledger import read_station_truth, read_truth

    t = truth_of_three()
    write_truth_dir(t, tmp_path / "truth", layout)
    for table in ("transactions", "tank_states", "deliveries", "events"):
        whole = read_truth(tmp_path / "truth", table)
        parts = [read_station_truth(tmp_path / "truth", table, sid) for sid in ("S1", "S2", "S3")]
        assert pa.concat_tables(parts).equals(whole), table
        assert all(set(p["station_id"].to_pylist()) <= {sid}
                   for p, sid in zip(parts, ("S1", "S2", "S3"), strict=True))
        assert read_station_truth(tmp_path / "truth", table, "S9").num_rows == 0


@pytest.mark.parametrize("layout", ["tables", "segments"])
def test_station_by_station_from_parquet_equals_the_whole_frames(tmp_path, layout):
    from acceptance.compare import load_truth
    from acceptance.station_compare import ParquetInputs, compare_by_station

    t = truth_of_three()
    write_truth_dir(t, tmp_path / "truth", layout)
    files = write_observed(broken_platform(t), tmp_path / "observed")
    whole = compare(load_truth(tmp_path / "truth"),
                    {s: pd.read_parquet(p) for s, p in files.items()}, THREE)
    by_station = compare_by_station(ParquetInputs(tmp_path / "truth", files), THREE)
    assert_same_records(whole, by_station)
    assert by_station.summary()["unexpected"] == 3 and by_station.summary()["lost"] == 2


def test_a_column_with_nulls_elsewhere_in_the_file_reads_as_in_the_whole_file(tmp_path):
    """A file written without pandas' metadata: inventory.temperature_mc is int64 with a null
    at S2; S1's slice alone would read as int64 and its altered value print without '.0'."""
    import pyarrow.parquet as pq

    from acceptance.compare import load_truth
    from acceptance.station_compare import ParquetInputs, compare_by_station

    t = truth_of_three()
    write_truth_dir(t, tmp_path / "truth", "tables")
    plat = platform_copy(t, THREE)
    files = write_observed(plat, tmp_path / "observed")
    inv = pa.Table.from_pandas(plat["inventory"], preserve_index=False).replace_schema_metadata()
    temps = [v + 1 if sid == "S1" else None
             for v, sid in zip(plat["inventory"]["temperature_mc"],
                               plat["inventory"]["station_id"], strict=True)]
    inv = inv.set_column(inv.schema.get_field_index("temperature_mc"), "temperature_mc",
                         pa.array(temps, pa.int64()))
    pq.write_table(inv, files["inventory"])
    whole = compare(load_truth(tmp_path / "truth"),
                    {s: pd.read_parquet(p) for s, p in files.items()}, THREE)
    by_station = compare_by_station(ParquetInputs(tmp_path / "truth", files), THREE)
    assert_same_records(whole, by_station)
    recs = by_station.records
    s1 = recs[(recs["stream"] == "inventory") & (recs["station_id"] == "S1")]
    assert s1["detail"].tolist() == ["temperature_mc: truth -7250, platform -7249.0"]


def test_run_data_compares_station_by_station(tmp_path):
    import json

    from acceptance.rundir import RunData, RunDataError

    t = truth_of_three()
    write_truth_dir(t, tmp_path / "truth", "tables")
    write_observed(broken_platform(t), tmp_path / "observed")
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "endpoints.json").write_text(json.dumps(
        {"stations": {sid: {"dialect": d} for sid, d in THREE.items()}}))
    run = RunData(tmp_path)
    assert_same_records(compare(run.truth, run.observed, run.dialects), run.comparison)
    (tmp_path / "observed" / "events.parquet").unlink()
    with pytest.raises(RunDataError, match=r"missing observed/events\.parquet \(written by "
                                           r"the observer"):
        _ = RunData(tmp_path).comparison
    pd.DataFrame({"seq": [1]}).to_parquet(tmp_path / "observed" / "events.parquet")
    with pytest.raises(RunDataError, match=r"events\.parquet: missing column\(s\) "
                                           r"\['station_id'\]"):
        _ = RunData(tmp_path).comparison


def test_station_by_station_on_the_checkers_run(tmp_path):
    """The checkers' two-station, two-day run directory (tests/test_checkers.py): the
    comparison RunData makes station by station has the whole-frame comparison's records.
    Its hand-made events are not grouped by station, so the rows are compared sorted."""
    from test_checkers import make_run

    from acceptance.rundir import RunData

    run = RunData(make_run().write(tmp_path / "run"))
    whole = compare(run.truth, run.observed, run.dialects)
    key = ["stream", "station_id", "device", "seq", "device_time", "status"]
    pd.testing.assert_frame_equal(
        _plain(run.comparison.records).sort_values(key).reset_index(drop=True),
        _plain(whole.records).sort_values(key).reset_index(drop=True))
    assert run.comparison.summary() == whole.summary() and whole.ok and len(whole.records)


def test_observed_records_are_written_station_by_station_as_the_whole_frame_would_be(tmp_path):
    """observed/<stream>.parquet one station at a time reads back as the whole frame: an
    int column with a null at one station is float everywhere, a field only one station
    gives is null at the others, a station without records adds nothing."""
    from acceptance.observe import RECORD_RESOURCES, records_frame
    from acceptance.observed_records import write_observed_records

    def tx(sid: str, seq: int, **extra) -> dict:
        return {"key": f"{sid}/D1/transactions/{seq}", "station_id": sid, "device": "D1",
                "seq": seq, "nozzle": 1, "grade": "92", "tank": 1, "start_time": 100 + seq,
                "end_time": 160 + seq, "volume_ml": 30_000 + seq, "amount_fen": 21_000,
                "unit_price_fen": 703, "volume_total_ml": 9_000_000 + seq,
                "amount_total_fen": 6_000_000, "collected_at": 1.5, "received_at": 2.5,
                "msg_seq": seq, **extra}

    answers = {r: [] for r in RECORD_RESOURCES}
    answers["transactions"] = [tx("S1", 1), tx("S1", 2), tx("S2", 1, amount_fen=None),
                               tx("S4", 7, vendor_note="late")]
    answers["events"] = [{"key": "S2/G/events/1", "station_id": "S2", "device": "G", "seq": 1,
                          "code": 50, "unit": 1, "device_time": 300}]
    written = write_observed_records(_Items(answers), ["S1", "S2", "S3", "S4"], tmp_path)
    assert written == {"transactions": 4, "inventory": 0, "deliveries": 0, "events": 1}
    for resource in RECORD_RESOURCES:
        whole = tmp_path / f"whole-{resource}.parquet"
        records_frame(resource, answers[resource]).to_parquet(whole, index=False)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{resource}.parquet"),
                                      pd.read_parquet(whole), check_dtype=bool(answers[resource]))
    assert pq.ParquetFile(tmp_path / "transactions.parquet").num_row_groups == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _expected_counts(expected):  # a picklable summary, for the worker processes
    return {s: len(f) for s, f in expected.items()}


def test_the_comparison_over_processes_equals_the_one_in_process(tmp_path):
    """compare_parquet deals the stations over spawned workers: the same records in the same
    order, the same summaries in the truth's order of stations, and a station's error still
    names the file."""
    from acceptance.station_compare import compare_parquet

    t = truth_of_three()
    write_truth_dir(t, tmp_path / "truth", "segments")
    files = write_observed(broken_platform(t), tmp_path / "observed")
    here, sums_here = compare_parquet(tmp_path / "truth", files, THREE, _expected_counts,
                                      workers=1)
    there, sums_there = compare_parquet(tmp_path / "truth", files, THREE, _expected_counts,
                                        workers=2)
    pd.testing.assert_frame_equal(here.records, there.records)
    assert sums_here == sums_there and len(sums_here) == 4  # three stations, then the rest
    assert [s["transactions"] for s in sums_here[:3]] == [
        int((t.transactions["station_id"] == sid).sum()) for sid in ("S1", "S2", "S3")]
    assert there.summary()["unexpected"] == 3 and there.summary()["lost"] == 2
    pd.DataFrame({"seq": [1]}).to_parquet(files["events"])
    with pytest.raises(CompareError, match=r"events\.parquet: no column 'station_id'"):
        compare_parquet(tmp_path / "truth", files, THREE, workers=2)
