"""The cheat catalogue (sim/cheats/, docs/cheats.md): every kind leaves exactly its documented
trace and nothing else, effect_l matches what happened, schedules switch as documented,
bad configurations are refused naming the field, cheat worlds are deterministic, and every
scenarios/cheats/*.yaml validates and simulates."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cheat_schema
import numpy as np
import pyarrow.parquet as pq
import pytest

from acceptance.world_config import build_world_config
from scenarios.loader import load_scenario, validate_file
from sim.cheats import CHEAT_KINDS
from sim.cheats.schedule import Schedule, ScheduleContext, make_schedule
from sim.config import (
    CheatConfig,
    DispenserConfig,
    InspectionPolicy,
    PriceChange,
    StationConfig,
    TankConfig,
    TaxPolicy,
    WorldConfig,
)
from sim.runner import simulate
from sim.world import World

ROOT = Path(__file__).resolve().parents[1]
CHEAT_SCENARIOS = sorted((ROOT / "scenarios" / "cheats").glob("*.yaml"))
TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
START = datetime(2026, 4, 6, tzinfo=ZONE).timestamp()  # a Monday, local midnight
DAY = 86400.0
PRICES = (PriceChange(START - DAY, "92", 712), PriceChange(START - DAY, "95", 761),
          PriceChange(START - DAY, "0", 701), PriceChange(START + 2 * DAY, "92", 725))
POSTED = {"92": {712, 725}, "95": {761}, "0": {701}}
BASE_EVENTS = {1, 10, 50, 51}  # power_up, price_change, delivery start/end

DESIGN_KINDS = {
    "PULSE": {"pulse_factor", "remote_skim", "large_fill_skim", "keypad_edit_logged",
              "keypad_edit_unlogged"},
    "PART": {"mainboard_swap", "encoder_swap", "seal_breach", "self_lock_bypass"},
    "DATA": {"transaction_filter", "fake_totalizer", "totalizer_reset", "dispenser_offline"},
    "PRICE": {"price_tamper", "amount_mismatch"},
    "STOCK": {"blind_sales", "night_withdrawal", "gauge_frozen", "gauge_offset"},
    "DELIV": {"delivery_short_drop", "unbooked_delivery"},
    "TAX": {"tax_under_declaration"},
    "MET": {"verification_lapse", "unsigned_record", "seal_mismatch"},
    "LOOK": {"meter_drift", "hot_delivery", "leak", "verified_recalibration"},
}


def station(sid: str = "S1") -> StationConfig:
    return StationConfig(
        station_id=sid, name="test", town="test", ownership="private", dialect="int_be",
        transport="tcp",
        tanks=(TankConfig(1, "92", 20, initial_fill=0.5), TankConfig(2, "95", 20),
               TankConfig(3, "0", 30, initial_fill=0.4)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 3)),
                    DispenserConfig(3, (3,))),
        throughput_l_per_day={"92": 6000.0, "95": 1500.0, "0": 7000.0}, truck_share=0.3)


def config(*cheats: CheatConfig, days: float = 4.0, seed: int = 7, **kw) -> WorldConfig:
    kw.setdefault("tax", TaxPolicy(period_days=1.0, filing_lag_h=6))  # daily declarations
    return WorldConfig(seed=seed, start=START, days=days, timezone=TZ, stations=(station(),),
                       prices=PRICES, cheats=cheats, imperfections="ideal", **kw)


def cheat(kind: str, *, dispenser: int = 0, nozzle: int = 0, tank: int = 0,
          start: float = START + DAY, end: float | None = None, schedule: dict | None = None,
          **params) -> CheatConfig:
    return CheatConfig(kind, "S1", dispenser, nozzle, start, end, params, tank=tank,
                       schedule=schedule or {})


class Run:
    """A world run to its end, with every record and truth record collected."""

    def __init__(self, cfg: WorldConfig) -> None:
        self.config = cfg
        self.world = World(cfg)
        self.truth: dict[str, list] = defaultdict(list)
        self.rec: dict[str, list] = defaultdict(list)
        self.world.add_truth_listener(lambda sid, kind, r: self.truth[kind].append(r))
        self.world.add_listener(lambda sid, dev, stream, r: self.rec[stream].append(r))
        self.world.run_until(self.world.end)
        self.station = self.world.station("S1")

    @property
    def instance(self):
        (inst,) = self.truth["cheat_instance"]
        return inst

    def fills(self, dispenser: int, nozzle: int | None = None) -> list:
        return [t for t in self.rec["transactions"] if t.dispenser == dispenser
                and (nozzle is None or t.nozzle == nozzle)]

    def events(self, code: int) -> list:
        return [e for e in self.rec["events"] if e.code == code]


def run(*cheats: CheatConfig, **kw) -> Run:
    return Run(config(*cheats, **kw))


# The default case of every kind (docs/cheats.md magnitudes), acting from day 2 of 4.
N, D, T1, T3 = dict(dispenser=1, nozzle=1), dict(dispenser=1), dict(tank=1), dict(tank=3)
CASES: dict[str, tuple[dict, dict]] = {
    "pulse_factor": (N, {"factor": 1.03}),
    "remote_skim": (N, {"factor": 1.10}),
    "large_fill_skim": (dict(dispenser=2, nozzle=2), {"factor": 1.05, "min_fill_l": 100}),
    "keypad_edit_logged": (N, {"factor": 1.005}),
    "keypad_edit_unlogged": (N, {"factor": 1.005}),
    "mainboard_swap": (D, {"factor": 1.02}),
    "encoder_swap": (N, {"factor": 1.01, "log_events": True}),
    "seal_breach": (N, {"factor": 1.015}),
    "self_lock_bypass": (D, {"factor": 1.10, "log_events": True}),
    "transaction_filter": (D, {"every_n": 10}),
    "fake_totalizer": (D, {"every_n": 10}),
    "totalizer_reset": (D, {}),
    "dispenser_offline": (D, {}),
    "price_tamper": (D, {"markup": 0.02}),
    "amount_mismatch": (D, {"markup": 0.02}),
    "blind_sales": (T1, {"litres_per_day": 300}),
    "night_withdrawal": (T1, {"litres": 800}),
    "gauge_frozen": (T1, {}),
    "gauge_offset": (T1, {"offset_mm": 15}),
    "delivery_short_drop": (T3, {"short_fraction": 0.02}),
    "unbooked_delivery": (T3, {}),
    "meter_drift": (N, {"drift": 0.002}),
    "hot_delivery": (T3, {"delta_c": 8}),
    "leak": (T1, {"litres_per_hour": 0.76}),
    "tax_under_declaration": ({}, {"declared_share": 0.85}),
    "verified_recalibration": (N, {"adjust": -0.0015}),
    "verification_lapse": (D, {}),
    "unsigned_record": (N, {"adjust": 0.001}),
    "seal_mismatch": (D, {"record_after_h": 6, "log_events": True}),
}


def default_run(kind: str) -> Run:
    addr, params = CASES[kind]
    return run(cheat(kind, **addr, **params))


# ---------------------------------------------------------------- the catalogue


def test_the_registry_holds_the_kinds_of_the_design():
    by_class: dict[str, set[str]] = defaultdict(set)
    for kind, cls in CHEAT_KINDS.items():
        by_class[cls.cheat_class].add(kind)
        assert cls.kind == kind and cls.__module__ == f"sim.cheats.{kind}"  # one module each
    assert dict(by_class) == DESIGN_KINDS
    assert set(CASES) == set(CHEAT_KINDS)


CHEAT_ALERTS = {"tank_gain", "tank_loss", "meter_skim", "idle_loss", "sequence_gap",
                "totalizer_gap", "totalizer_reset", "price_mismatch", "amount_mismatch",
                "parameter_change", "component_change", "seal_broken", "device_offline_sales",
                "delivery_short", "delivery_unbooked", "gauge_frozen", "gauge_step",
                "tax_under_declaration"}
OPERATIONAL_ALERTS = {"leak_suspected", "water_high", "device_offline"}  # design §1.2
# the metrology audit's findings (docs/platform-api.md §5.3; MET-1)
METROLOGY_ALERTS = {"verification_expired", "record_unsigned", "seal_mismatch"}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_expected_alerts_use_the_published_vocabulary(kind: str):
    addr, params = CASES[kind]
    inst = run(cheat(kind, **addr, **params), days=1.5).instance
    alerts = set(json.loads(inst.expected_alerts))
    if inst.lookalike:
        assert alerts <= OPERATIONAL_ALERTS  # a look-alike must raise no cheat alert
    else:
        assert alerts and alerts <= CHEAT_ALERTS | METROLOGY_ALERTS


def test_the_scenario_schema_is_generated_from_the_registry():
    text = cheat_schema.SCHEMA.read_text(encoding="utf-8")
    assert cheat_schema.render(cheat_schema.generate(json.loads(text))) == text, \
        "run `python tests/cheat_schema.py --write`"


def test_every_kind_is_documented():
    doc = (ROOT / "docs" / "cheats.md").read_text(encoding="utf-8")
    for kind in CHEAT_KINDS:
        assert f"### {kind}\n" in doc and f"`{kind}`" in doc


# ---------------------------------------------------------------- exactly its trace


def _trace_violations(r: Run) -> dict[str, bool]:
    """Which documented trace words (and other departures from an honest world) the run's
    data shows (docs/cheats.md §1.3)."""
    seen: dict[str, bool] = {}
    codes = {e.code for e in r.rec["events"]} - BASE_EVENTS
    for code in codes:
        seen[f"event:{code}"] = True
    power_ups = [e for e in r.events(1) if e.time > START]
    if power_ups:
        seen["event:1"] = True
    states = r.truth["device_state"]
    first = {s.device: s for s in states if s.time == START}
    later = [s for s in states if s.time > START]
    seen["ids"] = any((s.software_id, s.mainboard_id, s.encoder_id) != (
        first[s.device].software_id, first[s.device].mainboard_id, first[s.device].encoder_id)
        for s in later)
    seen["seal"] = any(s.seal_state for s in states)
    seen["lock"] = any(s.device_status for s in states)
    seen["offline"] = any(s.offline for s in states)
    # totalizers: continuity per nozzle
    gap = reset = False
    last: dict[tuple[int, int], int] = {}
    for t in r.rec["transactions"]:
        key = (t.dispenser, t.nozzle)
        if key in last and t.volume_total_before_ml != last[key]:
            gap |= t.volume_total_before_ml > last[key]
            reset |= t.volume_total_before_ml < last[key]
        last[key] = t.volume_total_after_ml
    seen["totalizer_gap"], seen["totalizer_reset"] = gap, reset
    seen["price"] = any(t.unit_price_fen not in POSTED[t.grade] for t in r.rec["transactions"])
    seen["amount"] = any(
        t.amount_fen != (t.displayed_volume_ml * t.unit_price_fen + 500) // 1000
        if t.fill_type == "full"
        else abs(t.amount_fen - t.displayed_volume_ml * t.unit_price_fen / 1000)
        > 0.005 * t.unit_price_fen + 1e-9
        for t in r.rec["transactions"])
    errors = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}
    seen["ratio"] = any(abs(t.displayed_volume_ml / 1000 - t.true_volume_l
                            * (1 + errors[(t.dispenser, t.nozzle)])) > 0.0051
                        for t in r.rec["transactions"])
    seen["off_book"] = bool(r.truth["off_book_draw"])
    seen["delivery_unkeyed"] = any(d.bol_keyed_20c_l != d.bol_volume_20c_l
                                   for d in r.rec["deliveries"])
    seen["delivery_short"] = any(d.true_drop_20c_l < 0.99 * d.bol_volume_20c_l
                                 for d in r.rec["deliveries"])
    seen["gauge"] = any(abs(s.reading.level_mm - s.truth.level_mm) > 3.0
                        for s in r.truth["tank_state"])
    seen["leak"] = any(s.leaked_20c_l > 0 for s in r.truth["tank_state"])
    # records a cheat made (the world files every dispenser's periodic verification too)
    seen["verification_record"] = any(v.cheat >= 0 for v in r.truth["verification_record"])
    seen["tax_under_declared"] = any(d.under_declared for d in r.truth["tax_declaration"])
    return seen


# data signals each trace word (or kind) may produce; everything else must stay honest
_MAY = {
    "tank_gain": {"ratio"}, "drift": {"ratio"}, "verification_record": {"ratio"},
    "totalizer_gap": {"off_book"}, "offline": {"off_book"},
}
_OFF_BOOK_KINDS = {"transaction_filter", "fake_totalizer", "dispenser_offline", "blind_sales",
                   "night_withdrawal"}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_leaves_exactly_its_trace(kind: str):
    r = default_run(kind)
    inst = r.instance
    trace = json.loads(inst.trace)
    seen = _trace_violations(r)
    allowed = set(trace)
    for word in trace:
        allowed |= _MAY.get(word, set())
    if kind in _OFF_BOOK_KINDS:
        allowed.add("off_book")
    if kind in ("gauge_frozen", "gauge_offset"):
        allowed.add("gauge")
    for word, shown in seen.items():
        if word in allowed:
            continue
        assert not shown, f"{kind} left {word!r}, not in its trace {trace}"
    for word in trace:  # and everything its trace promises is there
        if word in seen:
            assert seen[word], f"{kind}: trace {word!r} not in the data"
    assert not math.isnan(inst.first_start) and inst.active_s > 0
    assert inst.cheat == 0 and inst.kind == kind and inst.station_id == "S1"
    assert inst.lookalike == (inst.cheat_class == "LOOK") == (kind in DESIGN_KINDS["LOOK"])
    assert inst.attribution in ("nozzle", "device", "tank", "station")
    assert isinstance(json.loads(inst.expected_alerts), list)
    # mass balance with off-book product: drawn = recorded sales + off-book draws
    for tank in (1, 2, 3):
        drawn = [s.drawn_20c_l for s in r.truth["tank_state"] if s.tank == tank][-1]
        sold = sum(t.true_volume_20c_l for t in r.rec["transactions"] if t.tank == tank)
        hidden = sum(d.true_volume_20c_l for d in r.truth["off_book_draw"] if d.tank == tank)
        assert drawn == pytest.approx(sold + hidden, abs=1e-6)
    # sequence numbers never gap, whatever the cheat
    for disp in (1, 2, 3):
        seqs = [t.seq for t in r.fills(disp)]
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))


def test_an_honest_world_has_no_cheat_rows_and_one_state_per_device():
    r = run()
    assert not r.truth["cheat"] and not r.truth["cheat_instance"]
    assert not r.truth["off_book_draw"] and not r.truth["verification_lapse"]
    # only the periodic verifications before the run, one per dispenser, fully signed
    assert sorted((v.device, v.cheat, v.performed_at < START, v.fully_signed)
                  for v in r.truth["verification_record"]) == [
        (d, -1, True, True) for d in ("D1", "D2", "D3")]
    assert sorted(s.device for s in r.truth["device_state"]) == ["D1", "D2", "D3", "G"]
    assert not [word for word, shown in _trace_violations(r).items() if shown]


# ---------------------------------------------------------------- PULSE


def test_a_skim_shows_its_factor_and_its_effect_is_the_skimmed_litres():
    on = START + DAY
    r = run(cheat("pulse_factor", dispenser=1, nozzle=1, start=on, factor=1.03))
    e = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}[(1, 1)]
    skimmed = [t for t in r.fills(1, 1) if t.start_time > on + 120]
    assert len(skimmed) > 50
    for t in skimmed:
        assert t.displayed_volume_ml / 1000 == pytest.approx(t.true_volume_l * (1 + e) * 1.03,
                                                             abs=0.0051)
    # effect = Σ (shown − honest shown) / honest gain over the fills authorised while on
    expected = sum((t.displayed_volume_ml / 1000 - t.true_volume_l * (1 + e)) / (1 + e)
                   for t in skimmed)
    assert r.instance.effect_l == pytest.approx(expected, rel=0.02)
    assert r.instance.effect_l_per_day == pytest.approx(r.instance.effect_l / 3.0)
    assert json.loads(r.instance.expected_alerts) == ["tank_gain", "meter_skim"]


def test_large_fill_skim_touches_only_large_fills():
    r = default_run("large_fill_skim")
    e = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}[(2, 2)]
    big = small = 0
    for t in r.fills(2, 2):
        if t.start_time < START + DAY + 300:
            continue
        ordered = t.true_volume_l if t.fill_type == "full" else t.amount_fen / t.unit_price_fen
        ratio = t.displayed_volume_ml / 1000 / (t.true_volume_l * (1 + e))
        if ordered >= 100 * 1.001:
            assert ratio == pytest.approx(1.05, abs=0.001)
            big += 1
        elif ordered < 100 * 0.99:
            assert ratio == pytest.approx(1.0, abs=0.001)
            small += 1
    assert big > 5 and small > 5


def test_a_keypad_edit_beyond_the_band_locks_the_dispenser_after_five_fills():
    on, off = START + DAY, START + 2 * DAY
    r = run(cheat("keypad_edit_unlogged", dispenser=1, nozzle=1, start=on, end=off,
                  factor=1.02))
    (lock,) = r.events(25)
    (unlock,) = r.events(26)
    assert (lock.device, lock.unit, lock.value_old, lock.value_new) == ("D1", 1, 0.0, 1.0)
    assert unlock.time == off and (unlock.value_old, unlock.value_new) == (1.0, 0.0)
    e = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}[(1, 1)]
    edited = [t for t in r.fills(1, 1) if t.end_time <= lock.time and abs(
        t.displayed_volume_ml / 1000 / (t.true_volume_l * (1 + e)) - 1.02) < 0.002]
    assert len(edited) == 5  # the 5th out-of-band fill trips it
    # no fill of the dispenser starts while it is locked (60 s: lifted before); then it sells
    assert not [t for t in r.fills(1) if lock.time + 60 < t.start_time < off]
    assert [t for t in r.fills(1) if t.start_time > off]
    status = [(s.time, s.device_status) for s in r.truth["device_state"] if s.device == "D1"]
    assert status[1:] == [(lock.time, 1), (off, 0)]
    assert {"lock", "event:25", "event:26"} <= set(json.loads(r.instance.trace))
    assert not r.events(11)  # unlogged: the edit itself left no event


def test_patched_firmware_skims_ten_percent_without_locking():
    r = default_run("self_lock_bypass")
    assert not r.events(25)
    assert [e.code for e in r.rec["events"] if e.code == 24] == [24]
    late = [t for t in r.fills(1) if t.start_time > START + DAY + 300]
    assert len(late) > 100  # sales go on
    software = {s.software_id for s in r.truth["device_state"] if s.device == "D1"}
    assert len(software) == 2


def test_a_keypad_edit_inside_the_band_never_locks_and_logs_event_11():
    r = default_run("keypad_edit_logged")
    assert not r.events(25)
    (ev,) = r.events(11)
    assert (ev.device, ev.unit, ev.value_old, ev.value_new) == ("D1", 1, 1.0, 1.005)


def test_part_swaps_change_ids_and_seals_and_log_only_when_told():
    quiet = default_run("mainboard_swap")
    assert not [e for e in quiet.rec["events"] if e.code not in BASE_EVENTS]
    before, after = [s for s in quiet.truth["device_state"] if s.device == "D1"]
    assert after.mainboard_id != before.mainboard_id and after.software_id != before.software_id
    assert after.encoder_id == before.encoder_id and after.seal_state == 4
    assert after.mainboard_id.startswith("MB") and len(after.mainboard_id) == 10
    loud = default_run("encoder_swap")
    assert [(e.code, e.value_old, e.value_new, e.unit) for e in loud.rec["events"]
            if e.code in (20, 22)] == [(20, 0.0, 2.0, 0), (22, 0.0, 0.0, 1)]
    ended = run(cheat("seal_breach", dispenser=1, nozzle=1, end=START + 2 * DAY,
                      factor=1.015, log_events=True))
    assert [(e.code, e.value_old, e.value_new) for e in ended.rec["events"]
            if e.code in (20, 23)] == [(20, 0.0, 1.0), (23, 1.0, 0.0)]


# ---------------------------------------------------------------- DATA


def test_transaction_filter_keeps_every_nth_fill_out_without_a_sequence_gap():
    r = default_run("transaction_filter")
    hidden = r.truth["off_book_draw"]
    after_on = [t for t in r.fills(1) if t.end_time > START + DAY]
    assert len(hidden) == (len(after_on) + len(hidden)) // 10
    assert all(h.totalized and h.dispenser == 1 for h in hidden)
    assert r.instance.effect_l == pytest.approx(sum(h.true_volume_l for h in hidden))
    # the totalizer counted each kept-out fill: the next recorded fill's `before` jumps by it
    for nozzle in (1, 2):
        fills = r.fills(1, nozzle)
        jumps = sum(b.volume_total_before_ml - a.volume_total_after_ml
                    for a, b in zip(fills, fills[1:], strict=False))
        kept = sum(h.displayed_volume_ml for h in hidden
                   if h.nozzle == nozzle and h.end_time < fills[-1].end_time)
        assert jumps == kept and (nozzle != 1 or kept > 0)


def test_fake_totalizer_leaves_records_and_totalizers_in_agreement():
    r = default_run("fake_totalizer")
    assert r.truth["off_book_draw"] and not any(h.totalized for h in r.truth["off_book_draw"])
    assert not _trace_violations(r)["totalizer_gap"]
    assert r.instance.attribution == "tank" or r.instance.tank == 0


def test_totalizer_reset_power_cycles_and_restarts_the_totalizers_from_zero():
    at = START + DAY + 13 * 3600
    r = run(cheat("totalizer_reset", dispenser=1, start=at, outage_min=10))
    (down,) = [e for e in r.events(2)]
    (up,) = [e for e in r.events(1) if e.time > START]
    assert down.time >= at and up.time == pytest.approx(down.time + 600)
    assert not [t for t in r.fills(1) if down.time - 1 < t.end_time < up.time]
    assert not [t for t in r.fills(1) if at + 60 < t.start_time < up.time]
    for nozzle in (1, 2):
        first_after = next(t for t in r.fills(1, nozzle) if t.start_time > up.time)
        assert first_after.volume_total_before_ml == 0 and first_after.amount_total_before_fen == 0
    offline = [(s.time, s.offline) for s in r.truth["device_state"] if s.device == "D1"]
    assert offline[1:] == [(down.time, True), (up.time, False)]


def test_dispenser_offline_at_night_keeps_the_night_fills_out_of_the_fifo():
    r = default_run("dispenser_offline")
    times = [a.time for a in r.truth["cheat"]] + [r.world.end]  # the last window stays open
    windows = list(zip(times[::2], times[1::2], strict=False))
    assert len(windows) == 4
    for on, off in windows:
        assert datetime.fromtimestamp(on, ZONE).hour in (0, 22)
        assert datetime.fromtimestamp(off, ZONE).hour in (0, 6)
        assert not [t for t in r.fills(1) if on < t.end_time < off]
    hidden = r.truth["off_book_draw"]
    assert hidden and all(any(on <= h.end_time < off for on, off in windows) for h in hidden)
    states = [s.offline for s in r.truth["device_state"] if s.device == "D1"]
    switched_on = [a for a in r.truth["cheat"] if a.action == "start"]
    assert states[0] is False and states.count(True) == len(switched_on)


# ---------------------------------------------------------------- PRICE


def test_price_tamper_charges_and_shows_the_tampered_price():
    r = default_run("price_tamper")
    change = START + 2 * DAY  # 92# goes from 7.12 to 7.25
    checked = 0
    for t in r.fills(1):
        if t.start_time < START + DAY + 120 or abs(t.start_time - change) < 120:
            continue
        posted = 725 if t.grade == "92" and t.start_time > change else \
            {"92": 712, "95": 761, "0": 701}[t.grade]
        assert t.unit_price_fen == int(posted * 1.02 + 0.5)
        assert t.amount_fen == (t.displayed_volume_ml * t.unit_price_fen + 500) // 1000 \
            or t.fill_type == "amount"
        checked += 1
    assert checked > 100
    assert all(t.unit_price_fen in POSTED[t.grade] for d in (2, 3) for t in r.fills(d))
    nozzle = r.station.nozzle_of(1, 2)
    if not nozzle.busy:
        assert nozzle.unit_price_fen == int(761 * 1.02 + 0.5)  # the live register too
    assert nozzle.posted_price_fen == 761


def test_amount_mismatch_overcharges_full_fills_and_shortens_prepaid_ones():
    r = default_run("amount_mismatch")
    e = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}
    full = prepaid = 0
    for t in r.fills(1):
        if t.start_time < START + DAY + 300:
            continue
        if t.fill_type == "full":
            assert t.amount_fen == int(t.displayed_volume_ml * t.unit_price_fen * 1.02 / 1000
                                       + 0.5)
            full += 1
        else:
            assert t.displayed_volume_ml / 1000 == pytest.approx(
                t.amount_fen / (t.unit_price_fen * 1.02), abs=0.0051)
            prepaid += 1
        assert t.displayed_volume_ml / 1000 == pytest.approx(
            t.true_volume_l * (1 + e[(1, t.nozzle)]), abs=0.0051)
    assert full > 10 and prepaid > 10


# ---------------------------------------------------------------- STOCK


def test_blind_sales_draw_about_the_daily_litres_in_trading_hours_only():
    r = run(cheat("blind_sales", tank=1, start=START, litres_per_day=400), days=10.0)
    draws = r.truth["off_book_draw"]
    for d in draws:
        assert 7 <= datetime.fromtimestamp(d.end_time, ZONE).hour < 22
        assert d.dispenser == 0 and 0.6 * 40 <= d.true_volume_l <= 1.4 * 40
    assert sum(d.true_volume_l for d in draws) == pytest.approx(4000, rel=0.2)
    assert r.instance.effect_l == pytest.approx(sum(d.true_volume_l for d in draws))


def test_night_withdrawal_pumps_its_litres_between_one_and_four():
    r = default_run("night_withdrawal")
    per_night: dict[str, float] = defaultdict(float)
    for d in r.truth["off_book_draw"]:
        local = datetime.fromtimestamp(d.end_time, ZONE)
        assert 1 <= local.hour < 4
        per_night[local.date().isoformat()] += d.true_volume_l
    assert len(per_night) == 3 and all(v == pytest.approx(800) for v in per_night.values())


def test_a_frozen_gauge_shows_its_reading_at_activation_everywhere():
    on = START + DAY
    r = default_run("gauge_frozen")
    rows = [s for s in r.truth["tank_state"] if s.tank == 1 and s.time >= on]
    assert len({s.reading for s in rows}) == 1
    assert max(s.truth.level_mm for s in rows) - min(s.truth.level_mm for s in rows) > 100
    assert r.station.unit_of(1).live_reading() == rows[0].reading
    assert r.instance.effect_l == pytest.approx(abs(rows[0].reading.gross_l
                                                    - rows[-1].truth.gross_l), rel=0.01)


def test_a_gauge_offset_adds_its_millimetres():
    r = default_run("gauge_offset")
    for s in r.truth["tank_state"]:
        if s.tank == 1:
            bias = 15.0 if s.time >= START + DAY else 0.0
            assert s.reading.level_mm - s.truth.level_mm == pytest.approx(bias, abs=1.5)


# ---------------------------------------------------------------- DELIV and look-alikes


def _honest_and_cheat(kind: str) -> tuple[Run, Run]:
    """The same world without and with the kind's default case."""
    return run(), default_run(kind)


def test_a_short_drop_is_short_by_its_fraction_and_keyed_in_full():
    honest, r = _honest_and_cheat("delivery_short_drop")
    after = [d for d in r.rec["deliveries"] if d.start_time > START + DAY and d.tank == 3]
    assert after
    for d in after:
        twin = next(h for h in honest.rec["deliveries"] if h.seq == d.seq)
        assert d.true_drop_20c_l == pytest.approx(twin.true_drop_20c_l * 0.98)
        assert d.bol_keyed_20c_l == d.bol_volume_20c_l
    assert r.instance.effect_l == pytest.approx(sum(d.true_drop_20c_l * 0.02 / 0.98
                                                    for d in after))


def test_unbooked_deliveries_next_and_extra():
    r = default_run("unbooked_delivery")
    keyed = [(d.start_time > START + DAY, d.bol_keyed_20c_l) for d in r.rec["deliveries"]
             if d.tank == 3]
    first_after = next(k for after, k in keyed if after)
    assert first_after == 0.0
    assert all(k > 0 for after, k in keyed if not after)
    # switched on a day in, it first acts when the next drop starts: detection is timed from it
    first_drop = min(d.start_time for d in r.rec["deliveries"]
                     if d.tank == 3 and d.start_time > START + DAY)
    assert first_drop > START + DAY + 3600
    assert r.instance.first_start == pytest.approx(first_drop)
    at = START + DAY + 3600
    extra = run(cheat("unbooked_delivery", tank=2, start=at, mode="extra", compartments=1))
    (drop,) = [d for d in extra.rec["deliveries"] if d.tank == 2]
    assert drop.start_time == pytest.approx(at) and drop.bol_keyed_20c_l == 0.0
    assert drop.bol_volume_20c_l == 5000.0
    assert extra.instance.effect_l == pytest.approx(drop.true_drop_20c_l)


def test_a_hot_delivery_is_warmer_by_delta_and_nothing_else_changes():
    honest, r = _honest_and_cheat("hot_delivery")
    pairs = [(h, d) for h, d in zip(honest.rec["deliveries"], r.rec["deliveries"], strict=True)]
    changed = [(h, d) for h, d in pairs if d.delivery_temperature_c != h.delivery_temperature_c]
    assert len(changed) == 1
    h, d = changed[0]
    assert d.delivery_temperature_c == pytest.approx(h.delivery_temperature_c + 8)
    assert d.true_drop_20c_l == h.true_drop_20c_l and d.bol_keyed_20c_l == d.bol_volume_20c_l
    assert d.true_drop_gross_l > h.true_drop_gross_l
    assert r.instance.effect_l > 0 and json.loads(r.instance.expected_alerts) == []


def test_meter_drift_reaches_its_drift_inside_the_mpe():
    r = default_run("meter_drift")
    e0 = {(n.dispenser, n.nozzle): n.meter_error for n in r.truth["nozzle"]}[(1, 1)]
    assert r.station.meter_of(1, 1).error == pytest.approx(min(e0 + 0.002, 0.003))
    assert r.instance.effect_l > 0 and r.instance.lookalike


def test_a_leak_leaks_its_rate():
    r = default_run("leak")
    leaked = [s.leaked_20c_l for s in r.truth["tank_state"] if s.tank == 1][-1]
    assert leaked == pytest.approx(0.76 * 72, rel=0.03)  # 20 °C litres of 0.76 gross L/h
    assert r.instance.effect_l == pytest.approx(leaked)
    assert json.loads(r.instance.expected_alerts) == ["leak_suspected"]


def test_a_verified_recalibration_logs_its_events_and_a_signed_record():
    at = START + DAY + 10 * 3600
    r = run(cheat("verified_recalibration", dispenser=1, nozzle=1, start=at, adjust=-0.0015))
    got = [(e.code, e.time, e.unit, e.value_old, e.value_new) for e in r.rec["events"]
           if e.code in (12, 20, 23)]
    assert got == [(20, at, 0, 0.0, 1.0), (12, at, 1, 1.0, pytest.approx(0.9985)),
                   (23, at + 1800, 0, 1.0, 0.0)]
    (record,) = [v for v in r.truth["verification_record"] if v.cheat == 0]
    body = json.loads(record.body)
    assert (record.device, record.nozzle, record.performed_at) == ("D1", 1, at)
    assert body["station_id"] == "S1" and body["device"] == "D1" and body["nozzle"] == 1
    assert body["performed_at"] == "2026-04-07T10:00:00+08:00"
    assert set(body["signatures"]) == {"maintainer", "verifier", "station"}
    assert all(body["signatures"].values())
    assert body["parameters"] == [{"name": "pulse_factor", "old_value": 1.0,
                                   "new_value": pytest.approx(0.9985)}]
    for field in ("kind", "organisation", "valid_until", "certificate_no", "result"):
        assert body[field]
    assert r.station.meter_of(1, 1).factor == pytest.approx(0.9985)


# ---------------------------------------------------------------- schedules


def _ctx(seed: int = 1, inspections=()) -> ScheduleContext:
    return ScheduleContext(START + 30 * DAY, ZONE, np.random.default_rng(seed), inspections)


def test_constant_schedule_is_one_window():
    s = Schedule("constant", {})
    assert list(s.windows(START, None, _ctx())) == [(START, None)]
    assert list(s.windows(START, START + 5, _ctx())) == [(START, START + 5)]


def test_remote_schedule_alternates_inside_its_span():
    s = make_schedule("x", {"kind": "remote", "mean_on_h": 2, "mean_off_h": 4}, {}, ["remote"])
    windows = list(s.windows(START + DAY, START + 20 * DAY, _ctx()))
    assert windows[0][0] == START + DAY and len(windows) > 20
    for (a, b), (c, _) in zip(windows, windows[1:], strict=False):
        assert a < b < c
    assert windows[-1][1] <= START + 20 * DAY
    on = sum(b - a for a, b in windows) / (19 * DAY)
    assert 0.2 < on < 0.5  # ~ 2 / (2 + 4)


def test_nights_schedule_uses_local_nights_and_its_share():
    s = make_schedule("x", {"kind": "nights", "from_h": 22, "to_h": 6, "share": 0.5}, {},
                      ["nights"])
    windows = list(s.windows(START, None, _ctx()))
    assert 8 < len(windows) < 22  # about half of 30 nights
    for a, b in windows:
        assert datetime.fromtimestamp(a, ZONE).hour == 22 or a == START
        assert datetime.fromtimestamp(b, ZONE).hour == 6 and b - a <= 8 * 3600


def test_off_during_inspections_switches_off_around_each_inspection():
    visits = [(START + 2 * DAY + 36000, START + 2 * DAY + 41400),
              (START + 9 * DAY + 50000, START + 9 * DAY + 54000)]
    s = make_schedule("x", {"kind": "off_during_inspections"}, {},
                      ["off_during_inspections"])
    windows = list(s.windows(START, None, _ctx(inspections=visits)))
    assert windows == [(START, visits[0][0] - 1800), (visits[0][1] + 3600, visits[1][0] - 1800),
                       (visits[1][1] + 3600, None)]


def test_inspections_are_drawn_for_every_station_in_the_day():
    r = run(days=60.0, inspections=InspectionPolicy(mean_interval_days=10.0))
    visits = r.truth["inspection"]
    assert 2 <= len(visits) <= 15
    for v in visits:
        assert 9 <= datetime.fromtimestamp(v.start, ZONE).hour < 16
        assert 3600 <= v.end - v.start <= 7200


def test_a_cheat_off_during_inspections_is_off_while_inspected():
    r = run(cheat("pulse_factor", dispenser=1, nozzle=1, start=START, factor=1.03,
                  schedule={"kind": "off_during_inspections", "off_before_min": 60}),
            days=20.0, inspections=InspectionPolicy(mean_interval_days=3.0))
    visits = [(v.start, v.end) for v in r.truth["inspection"]]
    assert visits
    ends = [a.time for a in r.truth["cheat"] if a.action == "end"]
    starts = [a.time for a in r.truth["cheat"] if a.action == "start"]
    assert starts[0] == START and len(ends) >= 1
    for s, e in visits:
        assert any(x == pytest.approx(s - 3600) for x in ends)
        assert any(x == pytest.approx(e + 3600) for x in starts)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(("cc", "message"), [
    (cheat("tax_zone", dispenser=1, nozzle=1), "unknown cheat kind 'tax_zone'"),
    (cheat("pulse_factor", dispenser=1, nozzle=1), "needs params.factor"),
    (cheat("pulse_factor", dispenser=1, nozzle=1, factor=True), "params.factor must be"),
    (cheat("pulse_factor", dispenser=1, nozzle=1, factor=1.1, every_n=3),
     "unknown params ['every_n']"),
    (cheat("blind_sales", tank=9, litres_per_day=100), "station S1 has no tank 9"),
    (cheat("blind_sales", dispenser=1, tank=1, litres_per_day=100), "takes no dispenser"),
    (cheat("gauge_offset", tank=1, offset_mm=0), "params.offset_mm must be"),
    (cheat("transaction_filter", every_n=10), "needs dispenser >= 1"),
    (cheat("transaction_filter", dispenser=4, every_n=10), "station S1 has no dispenser 4"),
    (cheat("dispenser_offline", dispenser=1, nozzle=1), "nozzle must be 0"),
    (cheat("keypad_edit_logged", dispenser=1, nozzle=1, factor=1.01,
           schedule={"kind": "remote"}), "schedule.kind 'remote' is not allowed"),
    (cheat("remote_skim", dispenser=1, nozzle=1, factor=1.1,
           schedule={"kind": "remote", "share": 0.5}), "unknown schedule ['share']"),
])
def test_a_bad_cheat_is_refused_naming_it(cc: CheatConfig, message: str):
    with pytest.raises(ValueError, match=r"cheats\[0\]: .*" + _escape(message)):
        World(config(cc))


def _escape(text: str) -> str:
    return "".join("\\" + c if c in "[]().*+?" else c for c in text)


def test_cheats_that_would_undo_each_other_may_not_overlap():
    a = cheat("pulse_factor", dispenser=1, nozzle=1, factor=1.02)
    b = cheat("keypad_edit_logged", dispenser=1, nozzle=1, start=START + 2 * DAY, factor=1.005)
    with pytest.raises(ValueError, match=r"cheats\[1\]: overlaps cheats\[0\] \(both change the "
                                         r"display \(pulse-equivalent\) factor"):
        World(config(a, b))
    every = cheat("price_tamper", dispenser=2, markup=0.01)
    one = cheat("price_tamper", dispenser=2, nozzle=2, start=START + 2 * DAY, markup=0.02)
    with pytest.raises(ValueError, match="charged unit price of station S1 dispenser 2 nozzle 2"):
        World(config(every, one))
    # filters add up; a one-off recalibration holds the factor only while the seal is open
    World(config(cheat("transaction_filter", dispenser=1, every_n=5),
                 cheat("dispenser_offline", dispenser=1)))
    World(config(cheat("verified_recalibration", dispenser=1, nozzle=1, adjust=0.001),
                 cheat("pulse_factor", dispenser=1, nozzle=1, start=START + DAY + 7200,
                       factor=1.02)))


def _scenario(tmp_path: Path, cheats: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"""name: t
seed: 1
start: "2026-04-01T00:00:00+08:00"
days: 3
fleet: {ROOT / 'scenarios' / 'fleets' / 'urad-middle-banner.csv'}
stations: [UMB07]
prices:
  - {{from: "2026-03-24T00:00:00+08:00", grade: "92", price: 7.03}}
  - {{from: "2026-03-24T00:00:00+08:00", grade: "95", price: 7.52}}
  - {{from: "2026-03-24T00:00:00+08:00", grade: "0", price: 6.71}}
{extra}cheats:
{cheats}
""", encoding="utf-8")
    return path


@pytest.mark.parametrize(("cheats", "want"), [
    ('  - {kind: tax_zone, station: UMB07, dispenser: 1, nozzle: 1, start: "+1d"}',
     "cheats[0].kind: expected a cheat kind of docs/cheats.md (pulse_factor, "),
    ('  - {kind: blind_sales, station: UMB07, tank: 3, start: "+1d"}',
     "cheats[0].litres_per_day: expected a value (required field), found nothing"),
    ('  - {kind: blind_sales, station: UMB07, tank: 3, start: "+1d", litres_per_day: 100, '
     'factor: 1.02}',
     "cheats[0]: expected a field of a blind_sales cheat (kind, station, tank, start, end, "
     "schedule, litres_per_day, chunk_l, from_h, to_h), found 'factor'"),
    ('  - {kind: blind_sales, station: UMB07, tank: 7, start: "+1d", litres_per_day: 100}',
     "cheats[0].tank: expected a tank of station UMB07 (1, 2, 3), found 7"),
    ('  - {kind: transaction_filter, station: UMB07, start: "+1d", every_n: 10}',
     "cheats[0].dispenser: expected a value (required field), found nothing"),
    ('  - {kind: transaction_filter, station: UMB07, dispenser: 2, start: "+1d", every_n: 1}',
     "cheats[0].every_n: expected a value of at least 2, found 1 (integer)"),
    ('  - {kind: price_tamper, station: UMB07, dispenser: 2, start: "+1d", markup: "2%"}',
     "cheats[0].markup: expected relative overcharge"),
    ('  - {kind: gauge_offset, station: UMB07, tank: 1, start: "+1d", offset_mm: 0}',
     "cheats[0].offset_mm: expected added to the level the probe measures [mm]"),
    ('  - {kind: leak, station: UMB07, tank: 1, start: "+1d", litres_per_hour: 1, '
     'schedule: nights}', "cheats[0].schedule: expected a schedule of kind constant"),
    ('  - {kind: remote_skim, station: UMB07, dispenser: 2, nozzle: 1, start: "+1d", '
     'factor: 1.1, schedule: {kind: remote, from_h: 3}}',
     "cheats[0].schedule: expected a field of a remote schedule (kind, mean_on_h, "
     "mean_off_h), found 'from_h'"),
    ('  - {kind: pulse_factor, station: UMB07, dispenser: 2, nozzle: 1, start: "+1d", '
     'factor: 1.02}\n'
     '  - {kind: encoder_swap, station: UMB07, dispenser: 2, nozzle: 1, start: "+2d", '
     'factor: 1.01}',
     "cheats[1].start: expected a start at or after cheats[0] ends (its end; both change the "
     "display (pulse-equivalent) factor of UMB07 dispenser 2 nozzle 1), found '+2d'"),
    ('  - {kind: mainboard_swap, station: UMB07, dispenser: 2, start: "+1d", factor: 1.02}\n'
     '  - {kind: pulse_factor, station: UMB07, dispenser: 2, nozzle: 2, start: "+2d", '
     'factor: 1.02}',
     "both change the display (pulse-equivalent) factor of UMB07 dispenser 2 nozzle 2"),
])
def test_a_bad_cheat_in_a_file_names_file_field_expected_and_found(tmp_path, cheats, want):
    path = _scenario(tmp_path, cheats)
    messages = validate_file(path)
    assert any(want in m for m in messages), messages
    assert all(m.startswith(str(path)) and "expected " in m and ", found " in m
               for m in messages)


def test_scenario_cheats_become_cheat_configs(tmp_path):
    path = _scenario(tmp_path, '  - {kind: night_withdrawal, station: UMB07, tank: 1, '
                     'start: "+1d", end: "+2d", litres: 300, schedule: {kind: nights, share: 0.5}}'
                     '\n  - {kind: price_tamper, station: UMB07, dispenser: 2, start: "+1d", '
                     'markup: 0.01, schedule: remote}',
                     extra="inspections: {mean_interval_days: 7}\n")
    scenario = load_scenario(path)
    cfg = build_world_config(scenario)
    night, price = cfg.cheats
    assert (night.tank, night.dispenser, night.nozzle, night.index) == (1, 0, 0, 0)
    assert night.params == {"litres": 300, "rate_l_per_min": 100.0}
    assert night.schedule == {"kind": "nights", "share": 0.5}
    assert (price.dispenser, price.nozzle, price.index, price.schedule) == (2, 0, 1,
                                                                          {"kind": "remote"})
    assert cfg.inspections.mean_interval_days == 7.0
    only = build_world_config(scenario, station_ids=["UMB07"])
    assert [c.index for c in only.cheats] == [0, 1]


# ---------------------------------------------------------------- determinism


def test_cheat_worlds_are_deterministic_whatever_the_worker_count(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "cheats" / "transaction_filter.yaml")
    cfg = build_world_config(scenario, days=17.5)  # the cheat starts on day 16
    one = simulate(cfg, tmp_path / "one", workers=1)
    two = simulate(cfg, tmp_path / "two", workers=2)
    assert one["files"] == two["files"]
    assert one["counts"]["off_book_draws"] > 0 and one["counts"]["cheat_instances"] == 1


def test_stepping_the_clock_and_reading_live_values_changes_nothing():
    cheats = (cheat("remote_skim", dispenser=1, nozzle=1, factor=1.1),
              cheat("gauge_frozen", tank=1), cheat("price_tamper", dispenser=2, markup=0.02),
              cheat("dispenser_offline", dispenser=3))
    once = run(*cheats, days=3.0)
    cfg = config(*cheats, days=3.0)
    stepped = World(cfg)
    truth: dict[str, list] = defaultdict(list)
    stepped.add_truth_listener(lambda sid, kind, r: truth[kind].append(r))
    station = stepped.station("S1")
    t = cfg.start
    while not stepped.finished:
        t += 997.0
        stepped.run_until(t)
        for unit in station.gauge.tanks:
            unit.live_reading()
        for disp in station.dispensers:
            for n in disp.nozzles:
                _ = (n.state, n.unit_price_fen, n.live_volume_ml, n.live_amount_fen)
    for kind in ("cheat", "cheat_instance", "device_state", "off_book_draw", "tank_state"):
        assert truth[kind] == once.truth[kind], kind


# ---------------------------------------------------------------- shipped scenarios


def test_there_is_one_scenario_per_kind():
    assert sorted(p.stem for p in CHEAT_SCENARIOS) == sorted(CHEAT_KINDS)


@pytest.mark.parametrize("path", CHEAT_SCENARIOS, ids=[p.stem for p in CHEAT_SCENARIOS])
def test_each_cheat_scenario_validates_and_simulates(path: Path, tmp_path: Path):
    assert validate_file(path) == []
    scenario = load_scenario(path)
    data = scenario.data
    (entry,) = data["cheats"]
    assert entry["kind"] == path.stem and data["days"] == 22 and data["faults"] == []
    assert data["criteria"] == {"stability_days": "run"} and 2 <= len(scenario.station_ids) <= 3
    # after the reference platform's 14-day learning period (docs/detectors.md)
    assert scenario.instant(entry["start"]) >= scenario.start_epoch + 15 * DAY
    manifest = simulate(build_world_config(scenario), tmp_path, workers=1)
    assert manifest["complete"]
    (inst,) = pq.read_table(tmp_path / "cheat_instances.parquet").to_pylist()
    assert inst["kind"] == path.stem and inst["station_id"] == entry["station"]
    assert not math.isnan(inst["first_start"]) and inst["active_s"] > 0
    if inst["class"] == "MET":  # paperwork: its signature is in the metrology tables
        records = pq.read_table(tmp_path / "verification_records.parquet").to_pylist()
        lapses = pq.read_table(tmp_path / "verification_lapses.parquet").to_pylist()
        assert [r for r in records if r["cheat"] == 0 and (
            not r["fully_signed"] or r["seal_mismatch"])] or [
            r for r in lapses if r["cheat"] == 0], "the cheat must act within the run"
    elif path.stem not in ("totalizer_reset", "verified_recalibration"):
        assert inst["effect_l"] > 0, "the cheat must act within the run"


def test_forecourt_simulate_runs_a_cheat_scenario(tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "acceptance.cli", "simulate",
         str(ROOT / "scenarios" / "cheats" / "price_tamper.yaml"), "--out", str(out),
         "--days", "17", "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])["counts"]
    assert counts["cheat_instances"] == 1 and counts["cheats"] == 1
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for table in ("cheat_instances", "device_states", "inspections", "verification_records",
                  "off_book_draws"):
        assert f"{table}.parquet" in manifest["files"]
