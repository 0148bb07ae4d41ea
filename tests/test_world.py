"""The world: mass balance, totalizers, sequences, demand level, queueing, cheats, prices."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import (
    CheatConfig,
    DispenserConfig,
    PriceChange,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.records import DeliveryRecord, DeviceEvent, InventoryRecord, Transaction
from sim.station import NozzleInfo
from sim.world import World

TZ = "Asia/Shanghai"
START = datetime(2026, 4, 6, tzinfo=ZoneInfo(TZ)).timestamp()  # a Monday, local midnight
DAY = 86400.0
PRICES = (PriceChange(START - DAY, "92", 712), PriceChange(START - DAY, "95", 761),
          PriceChange(START - DAY, "0", 701))


def station(sid: str = "S1", *, throughput: dict[str, float] | None = None,
            tanks: tuple[TankConfig, ...] | None = None,
            dispensers: tuple[DispenserConfig, ...] | None = None,
            truck_share: float = 0.3) -> StationConfig:
    return StationConfig(
        station_id=sid, name="test", town="test", ownership="private", dialect="int_be",
        transport="tcp",
        tanks=tanks or (TankConfig(1, "92", 20), TankConfig(2, "95", 20), TankConfig(3, "0", 30)),
        dispensers=dispensers or (DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 3)),
                                  DispenserConfig(3, (3,))),
        throughput_l_per_day=throughput or {"92": 6000.0, "95": 1500.0, "0": 7000.0},
        truck_share=truck_share)


def config(*stations: StationConfig, days: float = 2.0, seed: int = 7,
           **kw: object) -> WorldConfig:
    return WorldConfig(seed=seed, start=START, days=days, timezone=TZ,
                       stations=stations or (station(),), prices=kw.pop("prices", PRICES),
                       **kw)  # type: ignore[arg-type]


class Recorder:
    """Collects every record by stream, and the truth records by kind."""

    def __init__(self, world: World) -> None:
        self.by_stream: dict[str, list] = defaultdict(list)
        self.by_device: dict[tuple[str, str, str], list] = defaultdict(list)
        self.truth: dict[str, list] = defaultdict(list)
        world.add_listener(self.on_record)
        world.add_truth_listener(lambda sid, kind, rec: self.truth[kind].append(rec))

    def on_record(self, sid: str, device: str, stream: str, record: object) -> None:
        self.by_stream[stream].append(record)
        self.by_device[(sid, device, stream)].append(record)


def test_mass_balance_at_every_step_with_deliveries_leak_and_water() -> None:
    tanks = (TankConfig(1, "92", 20, initial_fill=0.4, leak_l_per_h=2.0),
             TankConfig(2, "95", 20, water_ingress_l_per_day=30.0),
             TankConfig(3, "0", 30, initial_fill=0.45))
    world = World(config(station(tanks=tanks), days=4.0))
    rec = Recorder(world)
    st = world.station("S1")
    t = world.start
    steps = 0
    while not world.finished:
        t += 1800.0
        world.run_until(t)
        steps += 1
        drawn = defaultdict(float)
        for txn in rec.by_stream["transactions"]:
            drawn[txn.tank] += txn.true_volume_20c_l
        dropped = defaultdict(float)
        for d in rec.by_stream["deliveries"]:
            dropped[d.tank] += d.true_drop_20c_l
        for unit in st.gauge.tanks:
            p = unit.physics
            expected = (p.initial_20c_l + p.delivered_20c_l - p.drawn_20c_l - p.leaked_20c_l
                        - p.evaporated_20c_l)
            assert p.volume_20c_l == pytest.approx(expected, rel=1e-9, abs=1e-6)
            assert p.water_l == pytest.approx(p.water_in_l, abs=1e-9)
            # The records account for every litre the physics moved.
            assert p.drawn_20c_l == pytest.approx(drawn[unit.tank], rel=1e-9, abs=1e-6)
            if not unit.delivering:
                assert p.delivered_20c_l == pytest.approx(dropped[unit.tank], rel=1e-9, abs=1e-6)
    assert steps == 4 * 48
    assert rec.by_stream["deliveries"], "the low initial fill must trigger deliveries"
    leak_tank = st.units[1].physics
    assert leak_tank.leaked_20c_l == pytest.approx(2.0 * 4 * 24, rel=0.05)
    assert st.units[2].physics.water_l == pytest.approx(30.0 * 4, rel=1e-6)


def test_totalizers_monotonic_and_equal_opening_plus_transactions() -> None:
    world = World(config(days=2.0))
    rec = Recorder(world)
    world.run_until(world.end)
    opening = {(n.dispenser, n.nozzle): n for n in rec.truth["nozzle"]}
    per_nozzle: dict[tuple[int, int], list[Transaction]] = defaultdict(list)
    for txn in rec.by_stream["transactions"]:
        per_nozzle[(txn.dispenser, txn.nozzle)].append(txn)
    assert set(per_nozzle) == set(opening)
    for disp in world.dispensers("S1"):
        for nozzle in disp.nozzles:
            key = (disp.dispenser, nozzle.nozzle)
            vol, amt = opening[key].volume_total_open_ml, opening[key].amount_total_open_fen
            for txn in per_nozzle[key]:
                assert txn.volume_total_before_ml == vol and txn.amount_total_before_fen == amt
                assert txn.displayed_volume_ml > 0 and txn.displayed_volume_ml % 10 == 0
                vol, amt = txn.volume_total_after_ml, txn.amount_total_after_fen
                assert vol - txn.volume_total_before_ml == txn.displayed_volume_ml
                assert amt - txn.amount_total_before_fen == txn.amount_fen
            assert nozzle.volume_total_ml == vol and nozzle.amount_total_fen == amt
            assert vol == opening[key].volume_total_open_ml + sum(
                t.displayed_volume_ml for t in per_nozzle[key])


def _check_consecutive(records: list, where: str) -> None:
    for a, b in zip(records, records[1:], strict=False):
        assert b.seq == (a.seq + 1) % 65536, f"{where}: {a.seq} then {b.seq}"


def test_sequences_consecutive_and_wrapping() -> None:
    # A 1-minute inventory interval makes the gauge's inventory stream long enough that
    # some seed starts it near 65535; look for one and check the wrap.
    wrapped = False
    for seed in range(60):
        world = World(config(days=1.0, seed=seed, inventory_interval_s=60))
        rec = Recorder(world)
        world.run_until(world.end)
        for (sid, device, stream), records in rec.by_device.items():
            _check_consecutive(records, f"seed {seed} {sid} {device} {stream}")
            if stream == "transactions":
                nos = [r.txn_no for r in records]
                assert nos == list(range(nos[0], nos[0] + len(nos)))
                assert all(r.seq == r.txn_no % 65536 for r in records)
        inventory = rec.by_device[("S1", "G", "inventory")]
        if any(b.seq < a.seq for a, b in zip(inventory, inventory[1:], strict=False)):
            wrapped = True
            break
    assert wrapped, "no seed in 0..59 wrapped the inventory sequence"


def test_every_device_powers_up_at_start() -> None:
    world = World(config())
    rec = Recorder(world)
    world.run_until(world.start)
    events = rec.by_stream["events"]
    assert {(e.device, e.code, e.name, e.time) for e in events} == {
        ("D1", 1, "power_up", START), ("D2", 1, "power_up", START), ("D3", 1, "power_up", START),
        ("G", 1, "power_up", START)}
    inventory = rec.by_stream["inventory"]
    assert [r.tank for r in inventory] == [1, 2, 3] and all(r.time == START for r in inventory)


def test_daily_sales_match_configured_throughput() -> None:
    # 7 full days (Monday to Sunday): the weekday factors average out exactly.
    throughput = {"92": 9000.0, "95": 3000.0, "0": 12000.0}
    dispensers = (DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 3)),
                  DispenserConfig(3, (3, 3)), DispenserConfig(4, (1, 2)))
    tanks = (TankConfig(1, "92", 50), TankConfig(2, "95", 30), TankConfig(3, "0", 50))
    world = World(config(station(throughput=throughput, dispensers=dispensers, tanks=tanks),
                         days=7.0))
    rec = Recorder(world)
    world.run_until(world.end)
    stats = world.station("S1").stats
    assert stats.balked == 0 and stats.dry == 0
    sold = defaultdict(float)
    hours = defaultdict(int)
    for txn in rec.by_stream["transactions"]:
        sold[txn.grade] += txn.true_volume_l
        hours[datetime.fromtimestamp(txn.start_time, ZoneInfo(TZ)).hour] += 1
    for grade, litres in throughput.items():
        assert sold[grade] / 7 == pytest.approx(litres, rel=0.10), grade
    # The diurnal profile: the evening peak is far busier than the small hours.
    assert hours[18] > 5 * hours[3]


def test_customers_queue_at_a_busy_single_nozzle_station() -> None:
    busy = station(tanks=(TankConfig(1, "92", 50),), dispensers=(DispenserConfig(1, (1,)),),
                   throughput={"92": 9000.0})
    world = World(config(busy, days=1.0))
    rec = Recorder(world)
    world.run_until(world.end)
    stats = world.station("S1").stats
    assert stats.queued > 10 and stats.wait_s > 0 and stats.max_queue >= 2
    fills = rec.by_stream["transactions"]
    assert stats.served == len(fills)
    # Every customer is accounted for: served, gone, still waiting, or still filling.
    st_obj = world.station("S1")
    waiting = sum(len(lane.queue) for lane in st_obj.lanes.values())
    filling = sum(n._fill_end > world.end for d in st_obj.dispensers for n in d.nozzles)
    assert stats.customers == stats.served + stats.balked + stats.dry + waiting + filling
    # One nozzle serves one customer at a time: fills never overlap.
    for a, b in zip(fills, fills[1:], strict=False):
        assert b.start_time > a.end_time


def honest_gain(n: NozzleInfo, txn: Transaction) -> tuple[float, float]:
    """A fill's honest displayed-per-true litres from its nozzle's truth (calibration error,
    drift since verification, flow and small-volume terms), and a tolerance covering the
    fill's repeatability scatter (5 σ) and display rounding (5 mL) plus float slack."""
    flow_lpm = 60.0 * txn.true_volume_l / (txn.end_time - txn.start_time)
    litres = txn.displayed_volume_ml / 1000
    e = (n.meter_error + n.drift_per_day * (txn.start_time - n.verified_at) / 86400.0
         + n.flow_slope * (flow_lpm / n.flow_ref_lpm - 1.0)
         + n.small_volume * 2.0 / max(litres, 1.0))
    return 1.0 + e, 5 * n.repeatability + 0.006 / txn.true_volume_l


def test_pulse_factor_cheat_shows_more_than_delivered_from_its_start() -> None:
    cheat_at = START + DAY
    cheat = CheatConfig("pulse_factor", "S1", 1, 1, cheat_at,
                        params={"factor": 1.03, "log_event": True})
    world = World(config(days=2.0, cheats=(cheat,)))
    rec = Recorder(world)
    world.run_until(world.end)
    info = {(n.dispenser, n.nozzle): n for n in rec.truth["nozzle"]}
    before = after = 0
    for txn in rec.by_stream["transactions"]:
        ratio = txn.displayed_volume_ml / 1000 / txn.true_volume_l
        honest, tolerance = honest_gain(info[(txn.dispenser, txn.nozzle)], txn)
        if (txn.dispenser, txn.nozzle) == (1, 1) and txn.start_time > cheat_at + 60:
            assert ratio == pytest.approx(1.03 * honest, abs=tolerance)
            after += 1
        else:
            assert ratio == pytest.approx(honest, abs=tolerance)
            before += (txn.dispenser, txn.nozzle) == (1, 1)
    assert before > 10 and after > 10
    [activation] = rec.truth["cheat"]
    assert (activation.time, activation.action, activation.value_new) == (cheat_at, "start", 1.03)
    logged = [e for e in rec.by_stream["events"] if e.code == 11]
    assert [(e.device, e.unit, e.time, e.value_old, e.value_new) for e in logged] == [
        ("D1", 1, cheat_at, 1.0, 1.03)]


def test_pulse_factor_cheat_ends_and_can_stay_silent() -> None:
    on, off = START + 0.5 * DAY, START + 1.5 * DAY
    cheat = CheatConfig("pulse_factor", "S1", 2, 1, on, off, params={"factor": 1.1})
    world = World(config(days=2.0, cheats=(cheat,)))
    rec = Recorder(world)
    world.run_until(world.end)
    assert not [e for e in rec.by_stream["events"] if e.code == 11]
    assert [(a.action, a.time) for a in rec.truth["cheat"]] == [("start", on), ("end", off)]
    assert world.station("S1").meter_of(2, 1).factor == 1.0
    late = [t for t in rec.by_stream["transactions"]
            if (t.dispenser, t.nozzle) == (2, 1) and t.start_time > off + 60]
    assert late and all(t.displayed_volume_ml / 1000 / t.true_volume_l < 1.01 for t in late)


def test_price_change_takes_effect_and_is_logged() -> None:
    change_at = START + 1.25 * DAY
    prices = (*PRICES, PriceChange(change_at, "92", 735))
    world = World(config(days=2.0, prices=prices))
    rec = Recorder(world)
    world.run_until(change_at - 1)
    idle = [n for d in world.dispensers("S1") for n in d.nozzles if n.grade == "92" and not n.busy]
    assert idle and all(n.unit_price_fen == 712 for n in idle)
    world.run_until(world.end)
    fills = [t for t in rec.by_stream["transactions"] if t.grade == "92"]
    assert {t.unit_price_fen for t in fills if t.end_time <= change_at} == {712}
    assert {t.unit_price_fen for t in fills if t.start_time < change_at < t.end_time} <= {712}
    assert {t.unit_price_fen for t in fills if t.start_time > change_at + 60} == {735}
    for t in fills:
        if t.fill_type == "full":
            assert t.amount_fen == (t.displayed_volume_ml * t.unit_price_fen + 500) // 1000
        else:
            assert t.amount_fen in (10000, 20000, 30000)
            assert abs(t.amount_fen * 10 - t.displayed_volume_ml * t.unit_price_fen / 100) \
                <= 5 * t.unit_price_fen / 100 + 1e-6
    changes = [e for e in rec.by_stream["events"] if e.code == 10]
    assert sorted((e.device, e.unit) for e in changes) == [("D1", 1), ("D2", 1)]
    assert all((e.time, e.value_old, e.value_new) == (change_at, 7.12, 7.35) for e in changes)


def test_deliveries_have_whole_compartments_and_readings() -> None:
    tanks = (TankConfig(1, "92", 20, initial_fill=0.36), TankConfig(2, "95", 20),
             TankConfig(3, "0", 30, initial_fill=0.3))
    world = World(config(station(tanks=tanks), days=3.0))
    rec = Recorder(world)
    world.run_until(world.end)
    drops: list[DeliveryRecord] = rec.by_stream["deliveries"]
    assert drops
    for d in drops:
        assert d.bol_volume_20c_l % 5000 == 0 and d.bol_volume_20c_l > 0
        assert 0.99 * d.bol_volume_20c_l < d.true_drop_20c_l <= d.bol_volume_20c_l
        assert d.ordered_time < d.start_time < d.end_time
        assert d.end_reading.gross_l > d.start_reading.gross_l + 0.8 * d.true_drop_gross_l - 2000
    gauge_events = [e for e in rec.by_stream["events"] if e.code in (50, 51)]
    assert len(gauge_events) == 2 * len(drops)
    kinds = [s.kind for s in rec.truth["tank_state"]]
    assert kinds.count("pre_delivery") == kinds.count("post_delivery") == len(drops)


def test_views_read_the_live_state_without_changing_the_truth() -> None:
    cfg = config(days=1.0)
    quiet, probed = World(cfg), World(cfg)
    rec_quiet, rec_probed = Recorder(quiet), Recorder(probed)
    quiet.run_until(quiet.end)
    states_seen = set()
    t = probed.start
    while not probed.finished:
        t += 37.0
        probed.run_until(t)
        for disp in probed.dispensers("S1"):
            for n in disp.nozzles:
                states_seen.add(n.state)
                assert n.live_volume_ml >= 0 and n.live_amount_fen >= 0
        for tank in probed.gauge("S1").tanks:
            reading = tank.live_reading()
            assert 0 < reading.gross_l < tank.capacity_l
            assert tank.status in (0, 1) and tank.alarms >= 0
    assert states_seen == {0, 1, 4, 5}
    assert rec_probed.by_stream == rec_quiet.by_stream
    assert rec_probed.truth == rec_quiet.truth


def test_station_subset_gives_each_station_the_same_truth() -> None:
    cfg = config(station("A"), station("B", throughput={"92": 3000.0}), days=1.0)
    both, only_b = World(cfg), World(cfg, ["B"])
    rec_both, rec_b = Recorder(both), Recorder(only_b)
    both.run_until(both.end)
    only_b.run_until(only_b.end)
    assert only_b.stations == ("B",)
    b_records = {k: v for k, v in rec_both.by_device.items() if k[0] == "B"}
    assert b_records == dict(rec_b.by_device)
    a_fills = rec_both.by_device[("A", "D1", "transactions")]
    b_fills = rec_both.by_device[("B", "D1", "transactions")]
    assert [t.start_time for t in a_fills[:5]] != [t.start_time for t in b_fills[:5]]


def test_record_types_per_stream() -> None:
    world = World(config(days=1.0))
    rec = Recorder(world)
    world.run_until(world.end)
    types = {"transactions": Transaction, "events": DeviceEvent, "inventory": InventoryRecord}
    for stream, cls in types.items():
        assert rec.by_stream[stream] and all(isinstance(r, cls) for r in rec.by_stream[stream])


@pytest.mark.parametrize(("change", "message"), [
    (dict(cheats=(CheatConfig("skim", "S1", 1, 1, START),)), "unknown cheat kind 'skim'"),
    (dict(cheats=(CheatConfig("pulse_factor", "S1", 1, 1, START, params={}),)),
     "needs params.factor"),
    (dict(cheats=(CheatConfig("pulse_factor", "S1", 1, 9, START, params={"factor": 1.1}),)),
     "cheats[0]: station S1 has no dispenser 1 nozzle 9"),
    (dict(cheats=(CheatConfig("pulse_factor", "S1", 1, 1, START, params={"factor": "x"}),)),
     "params.factor must be"),
    (dict(cheats=(CheatConfig("pulse_factor", "S1", 1, 1, START, START - 1,
                              params={"factor": 1.1}),)), "must be after start"),
    (dict(cheats=(CheatConfig("pulse_factor", "S1", 1, 1, START, params={"factor": 1.1}),
                  CheatConfig("pulse_factor", "S1", 1, 1, START + 10, params={"factor": 1.2}))),
     "cheats[1]: overlaps cheats[0]"),
    (dict(prices=PRICES[:2]), "no price for grade '0'"),
    (dict(timezone="Mars/Olympus"), "unknown timezone"),
    (dict(seed=-1), "seed must be"),
    (dict(stations=(station(dispensers=(DispenserConfig(1, (1, 9)),)),)),
     "dispenser 1 nozzle 2: draws from tank 9"),
    (dict(stations=(station(throughput={"95": 100.0},
                            dispensers=(DispenserConfig(1, (1,)),)),)),
     "throughput for grade 95 but no nozzle sells it"),
])
def test_bad_config_gives_a_clear_error(change: dict, message: str) -> None:
    cfg = dataclasses.replace(config(), **change)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        World(cfg)


def test_unknown_station_subset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown station ids \\['X'\\]"):
        World(config(), ["X"])


@st.composite
def small_stations(draw: st.DrawFn) -> StationConfig:
    n_tanks = draw(st.integers(1, 3))
    tanks = tuple(TankConfig(k, draw(st.sampled_from(["92", "95", "0"])),
                             draw(st.sampled_from([20, 30, 50])),
                             initial_fill=draw(st.floats(0.0, 1.0)),
                             leak_l_per_h=draw(st.sampled_from([0.0, 0.76, 40.0])),
                             water_ingress_l_per_day=draw(st.sampled_from([0.0, 50.0])))
                  for k in range(1, n_tanks + 1))
    dispensers = tuple(DispenserConfig(d, tuple(draw(st.lists(st.integers(1, n_tanks),
                                                              min_size=1, max_size=4))))
                       for d in range(1, draw(st.integers(1, 3)) + 1))
    sold = {tanks[t - 1].grade for d in dispensers for t in d.nozzle_tanks}
    throughput = {g: draw(st.floats(0.0, 30000.0)) for g in sorted(sold)}
    return station(tanks=tanks, dispensers=dispensers, throughput=throughput,
                   truck_share=draw(st.floats(0.0, 1.0)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg_station=small_stations(), step_s=st.floats(60.0, 20000.0),
       seed=st.integers(0, 2**31))
def test_any_small_station_keeps_mass_balance_and_step_independence(
        cfg_station: StationConfig, step_s: float, seed: int) -> None:
    cfg = config(cfg_station, days=0.75, seed=seed)
    stepped, whole = World(cfg), World(cfg)
    rec_stepped, rec_whole = Recorder(stepped), Recorder(whole)
    t = stepped.start
    while not stepped.finished:
        t += step_s
        stepped.run_until(t)
        for unit in stepped.station("S1").gauge.tanks:
            p = unit.physics
            assert p.volume_20c_l >= 0
            assert p.volume_20c_l == pytest.approx(
                p.initial_20c_l + p.delivered_20c_l - p.drawn_20c_l - p.leaked_20c_l
                - p.evaporated_20c_l, rel=1e-9, abs=1e-6)
            assert unit.live_reading().level_mm >= 0
    whole.run_until(whole.end)
    assert rec_stepped.by_device == rec_whole.by_device
    assert rec_stepped.truth == rec_whole.truth
    st_obj = whole.station("S1")
    stats = st_obj.stats
    waiting = sum(len(lane.queue) for lane in st_obj.lanes.values())
    filling = sum(n._fill_end > whole.end for d in st_obj.dispensers for n in d.nozzles)
    assert stats.customers == stats.served + stats.balked + stats.dry + waiting + filling


def test_listeners_can_subscribe_to_some_streams() -> None:
    world = World(config(days=0.5))
    everything, some = Recorder(world), []
    world.add_listener(lambda sid, dev, stream, rec: some.append(stream),
                       streams=("transactions", "deliveries"))
    world.run_until(world.end)
    assert set(some) == {"transactions"}
    assert some == ["transactions"] * len(everything.by_stream["transactions"])
    with pytest.raises(ValueError, match="unknown record streams \\['fills'\\]"):
        world.add_listener(print, streams=("fills",))
