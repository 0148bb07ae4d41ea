"""Record-level detectors on synthetic stations: continuity (totalizer and sequence gaps,
off-line sales), monotonicity (totalizer reset), price (posted price, amount) and identity
(components, seals, parameters vs signed records) — each fires on its cheat and stays
quiet on the honest look-alike."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from detectors_synth import DAY, M0, NozzleSpec, Spec, Synth, TankSpec, add_rows, generate

from central.detectors.base import AlertProposal, Context, Settings
from central.detectors.continuity import ContinuityDetector
from central.detectors.data import StationData
from central.detectors.identity import IdentityDetector
from central.detectors.monotonicity import MonotonicityDetector
from central.detectors.price import PriceDetector
from mutants.platform import settings as mutant_settings

NOZZLES = (NozzleSpec("D1", 1, 1), NozzleSpec("D1", 2, 2), NozzleSpec("D2", 1, 1),
           NozzleSpec("D2", 2, 2))
TANKS = {1: TankSpec("92"), 2: TankSpec("0", 50000.0, 30000.0, 23.0)}


@cache
def station(days: int = 20, seed: int = 5, **kw: object) -> Synth:
    spec = {k: (dict(v) if isinstance(v, tuple) and k != "posted" else v)  # type: ignore
            for k, v in kw.items()}
    if "posted" in spec:
        spec["posted"] = list(spec["posted"])  # type: ignore[arg-type]
    return generate(Spec(days=days, seed=seed, tanks=TANKS, nozzles=NOZZLES,
                         **spec))  # type: ignore[arg-type]


def run(detector: object, data: StationData, ctx: Context | None = None) -> list[AlertProposal]:
    return detector.evaluate(data, ctx or Context())  # type: ignore[attr-defined]


def fresh(s: Synth) -> StationData:
    """A private copy of the station's data (tests that add rows must not share them)."""
    return s.data.cut(s.end)


@pytest.mark.parametrize("detector", [ContinuityDetector(), MonotonicityDetector(),
                                      PriceDetector(), IdentityDetector()],
                         ids=lambda d: d.name)
def test_honest_station_raises_nothing(detector: object) -> None:
    assert run(detector, station().data) == []
    assert run(detector, station().data, Context(settings=mutant_settings("jumpy"))) == []


# -- continuity -----------------------------------------------------------------------------------
def test_filtered_fills_leave_totalizer_gaps_one_alert_per_nozzle_and_day() -> None:
    s = station(filter_every=((("D1", 1), 10),))
    props = run(ContinuityDetector(), s.data)
    assert {p.kind for p in props} == {"totalizer_gap"}
    assert {(p.device, p.nozzle) for p in props} == {("D1", 1)}
    days = [p.evidence["day"] for p in props]
    assert len(days) == len(set(days)) and len(days) >= 15
    tx = s.data.transactions
    first = props[0]
    i = int(np.flatnonzero((tx.device == "D1") & (tx.end_time == first.as_of))[0])
    assert first.evidence["first_key"] == s.data.tx_key(i)
    assert first.evidence["missing_volume_ml"] > 0


def test_sequence_gap_but_not_for_a_logged_fifo_overflow() -> None:
    s = station(drop_seq_every=(("D2", 50),))
    props = run(ContinuityDetector(), s.data)
    assert {(p.kind, p.device) for p in props} == {("sequence_gap", "D2")}
    assert all(p.evidence["stream"] == "transactions" for p in props)
    # the same gaps with an overflow event logged by the device: the collector's loss
    data = fresh(s)
    gaps = [(p.evidence["first_after_time"], p.evidence["first_time"]) for p in props]
    add_rows(data, "events", [{"device": "D2", "seq": 0, "code": 30, "unit": 0,
                               "device_time": t1, "value_old_e4": 1000 * 10_000,
                               "value_new_e4": 1} for _, t1 in gaps])
    again = run(ContinuityDetector(), data)
    assert not [p for p in again if p.kind == "sequence_gap"
                and (p.evidence["first_after_time"], p.evidence["first_time"]) in gaps]


def test_sequence_wrap_inside_one_instant_is_not_a_gap() -> None:
    s = station()
    data = fresh(s)
    inv = data.inventory
    # renumber the gauge's records so that the wrap falls between two tanks of one reading
    first_multi = int(np.flatnonzero(inv.device_time[1:] == inv.device_time[:-1])[0])
    inv.columns["seq"] = (np.arange(len(inv)) - first_multi - 1) % 65536
    assert run(ContinuityDetector(), data) == []


def test_dispenser_off_line_while_selling() -> None:
    off = (M0 + 12 * DAY + 9 * 3600, M0 + 12 * DAY + 17 * 3600)
    s = station(offline=(("D2", off),))
    props = run(ContinuityDetector(), s.data)
    offline = [p for p in props if p.kind == "device_offline_sales"]
    assert len(offline) == 1 and offline[0].device == "D2"
    assert off[1] < offline[0].as_of < off[1] + 6 * 3600
    assert offline[0].evidence["missing_volume_ml"] > 100_000
    assert offline[0].evidence["offline_stretches"]
    assert {(p.device, p.nozzle) for p in props if p.kind == "totalizer_gap"} == {
        ("D2", 1), ("D2", 2)}
    # without the collector's off-line reports, the long silence and big jump still tell
    data = fresh(s)
    data.streams["availability"] = data.availability.select(np.zeros(0, dtype=int))
    again = [p for p in run(ContinuityDetector(), data) if p.kind == "device_offline_sales"]
    assert len(again) == 1 and "long stretch" in again[0].evidence["reason"]


def test_incomplete_device_data_is_not_compared_yet() -> None:
    s = station(drop_seq_every=(("D2", 50),))
    data = fresh(s)
    data.device_through["D2"] = M0 + 3 * DAY  # D2 drained only to day 3
    props = run(ContinuityDetector(), data, Context(settings=Settings(max_defer_s=30 * DAY)))
    assert props and all(p.as_of <= M0 + 3 * DAY for p in props)


# -- monotonicity ---------------------------------------------------------------------------------
def test_totalizer_reset_with_its_power_events() -> None:
    when = M0 + 8 * DAY + 5 * 3600
    s = station(reset_at=((("D1", 2), when),))
    data = fresh(s)
    add_rows(data, "events", [
        {"device": "D1", "code": 2, "device_time": when - 30},
        {"device": "D1", "code": 1, "device_time": when - 10}])
    props = run(MonotonicityDetector(), data)
    assert len(props) == 1
    p = props[0]
    assert (p.kind, p.device, p.nozzle, p.tank) == ("totalizer_reset", "D1", 2, 2)
    assert p.as_of > when and p.evidence["drop_ml"] > 1_000_000
    assert [e["name"] for e in p.evidence["power_events"]] == ["power_down", "power_up"]


# -- price ----------------------------------------------------------------------------------------
def test_price_tamper_once_per_nozzle_and_day() -> None:
    s = station(price_tamper=((("D2", 1), (M0 + 10 * DAY, 730)),))
    props = run(PriceDetector(), s.data)
    assert {(p.kind, p.device, p.nozzle) for p in props} == {("price_mismatch", "D2", 1)}
    days = [p.evidence["day"] for p in props]
    assert len(days) == len(set(days)) == 10
    assert props[0].evidence["charged_price_fen"] == [730]
    assert props[0].evidence["posted_price_fen"] == [712]
    assert props[0].as_of >= M0 + 10 * DAY


def test_posted_price_change_has_a_grace_period() -> None:
    change = M0 + 5 * DAY
    # the pumps switch 5 minutes after the posted change: inside the 600 s grace
    posted = (("92", 712, float(M0 - DAY)), ("92", 730, float(change - 300)),
              ("0", 690, float(M0 - DAY)))
    s = station(posted=posted, price_tamper=((("D1", 1), (change, 730)),
                                             (("D2", 1), (change, 730))))
    assert run(PriceDetector(), s.data) == []
    late = (("92", 712, float(M0 - DAY)), ("92", 730, float(change - 4 * 3600)),
            ("0", 690, float(M0 - DAY)))
    s2 = station(posted=late, price_tamper=((("D1", 1), (change, 730)),
                                            (("D2", 1), (change, 730))))
    props = run(PriceDetector(), s2.data)
    assert props and all(p.as_of < change for p in props)


def test_no_posted_price_is_said_not_alerted() -> None:
    s = station(posted=(("0", 690, float(M0 - DAY)),))
    ctx = Context()
    assert run(PriceDetector(), s.data, ctx) == []
    assert any(n["grade"] == "92" and "no posted price" in n["message"] for n in ctx.notes)


def test_amount_mismatch_beyond_register_rounding() -> None:
    s = station(amount_tamper=((("D1", 1), (M0 + 4 * DAY, 5)),))
    props = run(PriceDetector(), s.data)
    assert {(p.kind, p.device, p.nozzle) for p in props} == {("amount_mismatch", "D1", 1)}
    # prepaid rounding (volume from amount, 0.01 L) is not a mismatch
    data = fresh(station())
    tx = data.transactions
    tx.columns["amount_fen"] = tx.amount_fen + (tx.unit_price_fen * 5) // 1000  # +0.005 L
    assert run(PriceDetector(), data) == []


# -- identity -------------------------------------------------------------------------------------
def _state(t: int, device: str = "D1", mainboard: str = "MB-1", seal: int = 0,
           status: int = 0) -> dict:
    return {"device": device, "seq": t % 1000, "device_time": t, "serial_number": "SN-1",
            "software_id": "SW-1", "mainboard_id": mainboard, "encoder_id": "EN-1",
            "seal_state": seal, "device_status": status}


def _record(t: float, signed: bool, device: str = "D1", nozzle: int = 0) -> dict:
    return {"id": f"rec-{int(t)}", "device": device, "nozzle": nozzle, "kind": "maintenance",
            "performed_at": t, "fully_signed": int(signed)}


def test_component_and_seal_changes_without_a_signed_record() -> None:
    data = fresh(station())
    swap, seal = M0 + 5 * DAY, M0 + 9 * DAY
    add_rows(data, "states", [_state(M0 + 60), _state(swap, mainboard="MB-X"),
                              _state(seal, mainboard="MB-X", seal=4)])
    add_rows(data, "records", [_record(swap + 3600, signed=False)])
    props = run(IdentityDetector(), data)
    by = {p.kind: p for p in props}
    assert set(by) == {"component_change", "seal_broken"}
    assert by["component_change"].as_of == swap + 86400  # decided once no record can come
    assert by["component_change"].evidence["changes"][0]["new"] == "MB-X"
    assert by["component_change"].evidence["records_nearby"][0]["fully_signed"] is False
    assert by["seal_broken"].evidence["changes"][0]["new"] == 4


def test_signed_record_covers_the_change() -> None:
    data = fresh(station())
    swap = M0 + 5 * DAY
    add_rows(data, "states", [_state(M0 + 60), _state(swap, mainboard="MB-2")])
    add_rows(data, "events", [{"device": "D1", "code": 11, "unit": 1, "device_time": swap,
                               "value_old_e4": 10000, "value_new_e4": 10300}])
    add_rows(data, "records", [_record(swap + 7200, signed=True)])
    assert run(IdentityDetector(), data) == []


def test_parameter_event_needs_a_record_of_its_nozzle() -> None:
    data = fresh(station())
    t = M0 + 6 * DAY
    add_rows(data, "events", [{"device": "D2", "code": 11, "unit": 2, "device_time": t,
                               "value_old_e4": 10000, "value_new_e4": 10394}])
    add_rows(data, "records", [_record(t - 1800, signed=True, device="D2", nozzle=1)])
    props = run(IdentityDetector(), data)
    assert [(p.kind, p.device, p.nozzle) for p in props] == [("parameter_change", "D2", 2)]
    assert props[0].evidence["changes"][0]["what"] == "pulse_factor_change"
    assert props[0].evidence["changes"][0]["new"] == pytest.approx(1.0394)
    # not yet decided while a record could still arrive
    assert run(IdentityDetector(), data.cut(t + 3600)) == []
