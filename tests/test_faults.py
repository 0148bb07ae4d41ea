"""The fault catalogue (acceptance/faults/, docs/faults.md): registry, scenario format, and the
kinds served below the harness — Modbus busy/slow replies (devices/silence.py) and an honest
dispenser power loss in the world (sim.config.PowerCut)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from acceptance.faults import KINDS, markdown
from devices.fleet import DeviceFleet, WorldClock
from devices.server import StationServer
from devices.silence import Silence, SilenceWindows
from scenarios.crosscheck import DEVICE_FAULTS, FAULT_PARTS, FLEET_FAULTS
from scenarios.loader import validate_file
from sim.config import (
    DispenserConfig,
    PowerCut,
    PriceChange,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.world import World

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
START = 1774972800.0  # 2026-04-01T00:00:00+08:00


def test_registry_schema_and_scenario_rules_agree():
    schema = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert schema["$defs"]["fault"]["properties"]["kind"]["enum"] == list(KINDS)
    assert len(KINDS) >= 10
    assert set(FLEET_FAULTS) == {k.name for k in KINDS.values() if k.scope == "fleet"}
    assert set(DEVICE_FAULTS) == {k.name for k in KINDS.values() if k.scope == "device"}
    assert set(FAULT_PARTS) == {k.name for k in KINDS.values() if k.served_by == "harness"}
    for k in KINDS.values():
        assert (k.start is not None) == (k.served_by == "harness"), k.name
        assert k.summary and k.expected and k.shows, k.name


def test_docs_list_every_kind_as_the_registry_says():
    doc = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    assert markdown() in doc, "docs/faults.md is stale: paste `forecourt faults --markdown`"


def test_forecourt_faults_lists_every_kind():
    res = subprocess.run([sys.executable, "-m", "acceptance.cli", "faults"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    listed = [line.split()[0] for line in res.stdout.splitlines() if not line.startswith(" ")]
    assert listed == list(KINDS)


@pytest.mark.parametrize("fault, message", [
    ({"kind": "broker_restart", "station": "UMB25", "at": "+1h", "duration": "5min"},
     "faults[0].station: expected no station for kind broker_restart"),
    ({"kind": "network_cut", "at": "+1h", "duration": "5min"},
     "faults[0].station: expected a station id (kind network_cut acts on one station)"),
    ({"kind": "device_power_loss", "station": "UMB25", "at": "+1h", "duration": "5min"},
     "faults[0].device: expected a dispenser 'D<n>'"),
    ({"kind": "device_power_loss", "station": "UMB25", "device": "G", "at": "+1h",
      "duration": "5min"}, "faults[0].device: expected a dispenser 'D<n>'"),
    ({"kind": "modbus_busy", "station": "UMB25", "device": "D1", "at": "+1h", "duration": "5min",
      "delay_ms": 300}, "faults[0].delay_ms: expected no delay_ms for kind modbus_busy"),
    ({"kind": "platform_stall", "at": "+1h", "duration": "5min", "device": "D1"},
     "faults[0].device: expected no device for kind platform_stall (it acts on the fleet)"),
    # wire faults fit one transport each (smoke: UMB25 over TCP, UMB44 over RTU)
    ({"kind": "rtu_line_noise", "station": "UMB25", "at": "+1h", "duration": "5min"},
     "faults[0].station: expected a station served over Modbus RTU for kind rtu_line_noise "
     "(rtu_stations: UMB44), found 'UMB25', served over Modbus TCP"),
    ({"kind": "modbus_garbled", "station": "UMB44", "device": "G", "at": "+1h",
      "duration": "5min"}, "faults[0].station: expected a station served over Modbus TCP"),
    ({"kind": "rtu_line_noise", "station": "UMB44", "at": "+1h", "duration": "5min", "rate": 0},
     "faults[0].rate: expected a value above 0"),
    ({"kind": "rtu_line_noise", "station": "UMB44", "at": "+1h", "duration": "5min",
      "rate": 1.5}, "faults[0].rate: expected a value of at most 1"),
    ({"kind": "modbus_busy", "station": "UMB25", "at": "+1h", "duration": "5min", "rate": 0.5},
     "faults[0].rate: expected no rate for kind modbus_busy"),
    ([{"kind": "rtu_line_noise", "station": "UMB44", "at": "+1h", "duration": "1h"},
      {"kind": "rtu_line_noise", "station": "UMB44", "device": "D1", "at": "+90min",
       "duration": "1h", "rate": 0.9}],
     "faults[1].at: expected no overlap with faults[0] (both corrupt the replies of UMB44/D1)"),
    # two faults on one part at once (what `forecourt fuzz` first drew: a broker restarted
    # while down, then started twice)
    ([{"kind": "broker_restart", "at": "+12h", "duration": "2h"},
      {"kind": "broker_restart", "at": "+12h30min", "duration": "10min"}],
     "faults[1].at: expected no overlap with faults[0] (both act on the broker)"),
    ([{"kind": "collector_crash", "station": "UMB25", "at": "+1h", "duration": "1h"},
      {"kind": "collector_stall", "station": "UMB25", "at": "+90min", "duration": "1h"}],
     "faults[1].at: expected no overlap with faults[0] (both act on the collector of UMB25)"),
])
def test_bad_faults_are_refused_naming_the_field(tmp_path, fault, message):
    data = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    data["fleet"] = str(ROOT / "scenarios" / data["fleet"])
    data["faults"] = fault if isinstance(fault, list) else [fault]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = validate_file(path)
    assert any(message in p for p in problems), problems


def small_world(power_cuts=(), clock_faults=()) -> World:
    station = StationConfig(
        station_id="S01", name="fault test", town="Haliut", ownership="private",
        dialect="int_be", transport="tcp", tanks=(TankConfig(1, "92", 30),),
        dispensers=(DispenserConfig(1, (1,)), DispenserConfig(2, (1,))),
        throughput_l_per_day={"92": 20000.0})
    return World(WorldConfig(seed=5, start=START, days=1.0, timezone="Asia/Shanghai",
                             stations=(station,), power_cuts=tuple(power_cuts),
                             clock_faults=tuple(clock_faults),
                             prices=(PriceChange(START - 86400, "92", 703),)))


def test_windows_say_which_misbehaviour_holds_and_silence_wins():
    w = SilenceWindows([(0.0, 10.0, "busy", 0.0), (5.0, 8.0, "silent", 0.0),
                        (20.0, 30.0, "slow", 0.5)])
    assert [w.mode_at(t) for t in (1, 6, 9, 25, 30)] == [
        ("busy", 0.0), ("silent", 0.0), ("busy", 0.0), ("slow", 0.5), (None, 0.0)]
    with pytest.raises(ValueError, match="mode slow needs 0 < delay_s"):
        Silence("S01", "D1", 0.0, 1.0, "slow", 0.0)
    with pytest.raises(ValueError, match="mode 'mangled' is not one of"):
        Silence("S01", "D1", 0.0, 1.0, "mangled")


def test_busy_device_answers_exception_06_and_slow_one_answers_late():
    world = small_world()
    fleet = DeviceFleet(world, {"S01": "int_be"}, clock=WorldClock(world),
                        timezone="Asia/Shanghai")
    fleet.attach()
    fleet.set_silences([Silence("S01", "D1", START + 3600, START + 7200, "busy"),
                        Silence("S01", "D2", START + 3600, START + 7200, "slow", 0.4)])
    d1, d2 = fleet.devices[("S01", "D1")], fleet.devices[("S01", "D2")]

    async def scenario():
        server = StationServer("S01", fleet.by_station["S01"])
        port = await server.start_tcp("127.0.0.1", 0)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0)
        try:
            assert await client.connect()
            world.run_until(START + 3700)  # inside both windows
            busy = await client.read_holding_registers(0, count=4, device_id=d1.unit_id)
            assert busy.isError() and busy.exception_code == 6
            t0 = time.monotonic()
            slow = await client.read_holding_registers(0, count=4, device_id=d2.unit_id)
            assert not slow.isError() and time.monotonic() - t0 >= 0.4
            world.run_until(START + 7300)  # after: both answer normally
            for dev in (d1, d2):
                ok = await client.read_holding_registers(0, count=4, device_id=dev.unit_id)
                assert not ok.isError()
        finally:
            client.close()
            await server.stop()

    asyncio.run(scenario())
    assert (d1.busy_replies, d2.slow_replies) == (1, 1)


def test_an_honest_power_cut_logs_its_events_sells_nothing_and_keeps_the_totalizers():
    cut = PowerCut("S01", 1, START + 10 * 3600, 2 * 3600.0)
    records: list[tuple[str, str, object]] = []
    world = small_world([cut])
    world.add_listener(lambda sid, dev, stream, rec: records.append((dev, stream, rec)))
    states = []
    world.add_truth_listener(lambda sid, kind, rec: states.append(rec)
                             if kind == "device_state" else None)
    world.run_until(START + 86400)
    events = [(r.code, r.time) for dev, s, r in records if dev == "D1" and s == "events"]
    (down,) = [t for c, t in events if c == 2]
    (up,) = [t for c, t in events if c == 1 and t > START]
    assert cut.at <= down < cut.at + 600 and up == pytest.approx(down + cut.duration_s)
    fills = [r for dev, s, r in records if dev == "D1" and s == "transactions"]
    assert fills and not [f for f in fills if down < f.end_time <= up]  # nothing sold meanwhile
    # the totalizer goes on from where it was: each fill starts at the previous one's total
    for before, after in zip(fills, fills[1:], strict=False):
        assert after.volume_total_before_ml == before.volume_total_after_ml
    assert [s.offline for s in states if s.device == "D1"][-2:] == [True, False]
    # same scenario and seed, same ground truth
    again: list = []
    twin = small_world([cut])
    twin.add_listener(lambda sid, dev, stream, rec: again.append((dev, stream, rec)))
    twin.run_until(START + 86400)
    assert again == records


def test_recovery_is_the_first_sample_showing_the_stations_whole_after_the_end():
    from acceptance.recovery import add_recoveries

    rows = []
    for i, wall in enumerate((100.0, 110.0, 120.0, 130.0)):
        sim = 1000.0 + 60 * i
        rows += [{"station_id": "A", "device": "", "wall_time": wall, "sim_time": sim,
                  "online": wall != 110.0},
                 {"station_id": "A", "device": "D1", "wall_time": wall, "sim_time": sim,
                  "online": wall not in (110.0, 120.0)},
                 {"station_id": "B", "device": "", "wall_time": wall, "sim_time": sim,
                  "online": True}]
    timeline = [
        {"kind": "network_cut", "station_id": "A", "device": None, "sim_start": 1000.0,
         "sim_end": 1050.0, "wall_start": 101.0, "wall_end": 105.0, "detail": {}},
        {"kind": "broker_restart", "station_id": None, "device": None, "sim_start": 1000.0,
         "sim_end": 1050.0, "wall_start": 101.0, "wall_end": 131.0, "detail": {}},
        {"kind": "device_power_loss", "station_id": "A", "device": "D1", "sim_start": 1000.0,
         "sim_end": 1030.0, "wall_start": None, "wall_end": None, "detail": {}},
        {"kind": "real_time_segment", "station_id": None, "device": None, "sim_start": 0.0,
         "sim_end": 1.0, "wall_start": None, "wall_end": None, "detail": {}}]
    out = add_recoveries(timeline, pd.DataFrame(rows), ["A", "B"])
    cut, restart, power, segment = (r["detail"] for r in out)
    assert (cut["recovered_wall"], cut["recovery_wall_s"]) == (130.0, 25.0)  # A whole at 130
    assert restart == {"recovered": False}  # no sample after its end
    assert (power["recovered_sim"], "recovery_wall_s" in power) == (1180.0, False)
    assert segment == {}


def _minutes(text: str) -> int:
    return int(text.strip("+min"))


def test_fuzz_finds_a_failing_schedule_and_shrinks_it_to_its_core():
    """A stand-in SUT that, like the no-spool collector, loses data only when its collector
    crashes while its network is cut: the search finds such a schedule among random ones and
    shrinks it to those two faults."""
    from acceptance.fuzz import Outcome, conflict_free, schedules, search

    def loses_data(schedule):
        cuts = [(f["station"], _minutes(f["at"]), _minutes(f["at"]) + _minutes(f["duration"]))
                for f in schedule if f["kind"] == "network_cut"]
        crashed_in_cut = any(f["kind"] == "collector_crash" and any(
            s == f["station"] and a <= _minutes(f["at"]) < b for s, a, b in cuts)
            for f in schedule)
        return Outcome(1 if crashed_in_cut else 3, ("DAT-1",) if crashed_in_cut else ())

    kinds = ["collector_crash", "network_cut", "broker_restart", "device_silent"]
    found, campaign = search(loses_data, schedules(["UMB25", "UMB44"], 864, kinds), budget=300,
                             max_runs=2000, seed=3)
    assert found is not None and len(found) == 2, found
    assert sorted(f["kind"] for f in found) == ["collector_crash", "network_cut"]
    assert all(conflict_free(r["faults"]) for r in campaign.runs)
    assert campaign.runs[-1]["exit_code"] in (1, 3) and len(campaign.runs) <= 2000
    # and a SUT that never fails gives no schedule, within the budget
    none, quiet = search(lambda s: Outcome(3), schedules(["UMB25"], 864, kinds), budget=20,
                         max_runs=100, seed=3)
    assert none is None and len(quiet.runs) == 20


def test_shrinking_moves_faults_together_when_no_single_one_can_go():
    """As found against the no-spool collector: a broker restart, a platform stall and a
    crash after it fail together, and no one of the three can be dropped; moved into the
    stall, the crash needs nothing else (≤ 2 faults)."""
    from acceptance.fuzz import shrink

    def fails(schedule):
        kinds = {f["kind"]: f for f in schedule}
        stall, crash = kinds.get("platform_stall"), kinds.get("collector_crash")
        if not (stall and crash):
            return False
        start = _minutes(stall["at"])
        in_stall = start <= _minutes(crash["at"]) < start + _minutes(stall["duration"])
        return in_stall or (len(schedule) == 3 and _minutes(crash["at"]) < start + 240)

    original = [{"kind": "broker_restart", "at": "+480min", "duration": "30min"},
                {"kind": "platform_stall", "at": "+480min", "duration": "60min"},
                {"kind": "collector_crash", "station": "UMB44", "at": "+690min",
                 "duration": "30min"}]
    assert fails(original) and not any(
        fails(original[:i] + original[i + 1:]) for i in range(3))
    assert shrink(original, fails) == [
        # 10 min would end the stall as the crash begins: the crash must fall inside it
        {"kind": "platform_stall", "at": "+480min", "duration": "30min"},
        {"kind": "collector_crash", "station": "UMB44", "at": "+490min", "duration": "10min"}]


def test_device_faults_are_paced_to_give_the_platform_its_time():
    """pace_windows: every device fault that must show off line (DAT-6) lasts at least
    1.5 × device_offline_shown_s of wall time, every other fault at least fault_wall_s,
    also inside a longer one; the windows do not overlap."""
    from acceptance.checkers.device_state import SHOWN_OFF_LINE
    from acceptance.run import RunOptions, pace_windows
    from acceptance.schedule import scenario_faults
    from scenarios.loader import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "faults.yaml")
    opts = RunOptions(scenario=scenario.path, out=Path("unused"))
    windows = sorted(pace_windows(opts, scenario), key=lambda w: w.start)
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.end <= b.start
    for f in scenario_faults(scenario):
        covering = [w for w in windows if w.start < f.end and w.end > f.at]
        assert covering, f
        wall = sum((min(w.end, f.end) - max(w.start, f.at)) / w.compression for w in covering)
        if f.kind in SHOWN_OFF_LINE:
            assert wall >= 1.5 * 20.0 - 1e-6, (f, wall)
        else:  # its own time even inside a longer fault (the crash inside the cut)
            assert wall >= opts.fault_wall_s - 1e-6, (f, wall)


def test_fault_windows_exempt_only_the_stations_their_faults_take_away():
    """A window's compression is a ceiling: the FIFOs of stations no fault touches still
    hold the world (a 1-day cut served in 6 s outran the chain: UMB28's gauge overflowed in
    the first 180-day banner run). Exempt: the faulted station, in fleet mode every station
    of its collectors process, and everybody in a fleet-wide fault's window."""
    from acceptance.chain import deal_collectors
    from acceptance.run import RunOptions, pace_windows
    from acceptance.schedule import scenario_faults
    from devices.pace import ALL
    from scenarios.loader import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "urad-middle-banner.yaml")
    opts = RunOptions(scenario=scenario.path, out=Path("unused"))
    ids = scenario.station_ids
    cut = next(f for f in scenario_faults(scenario) if f.station == "UMB43")

    def exempt_at(windows, t):
        return next(w.exempt for w in windows if w.start <= t < w.end)

    alone = pace_windows(opts, scenario)
    assert exempt_at(alone, cut.at + 3600) == ("UMB43",)
    fleet = pace_windows(opts, scenario, deal_collectors(ids, "fleet", 2))
    shared = exempt_at(fleet, cut.at + 3600)
    assert "UMB43" in shared and "UMB28" not in shared
    assert len(shared) == len(ids[ids.index("UMB43") % 2::2])
    assert all(w.exempt == () for w in fleet if w.latency)
    faults = load_scenario(ROOT / "scenarios" / "faults.yaml")
    crash = next(f for f in scenario_faults(faults) if f.kind == "platform_crash")
    assert exempt_at(pace_windows(opts, faults), crash.at + 1) == (ALL,)


@pytest.mark.parametrize("change_wall_s", [10.0, 60.0])
def test_a_change_only_the_header_shows_is_paced_for_the_collector_to_read_it(change_wall_s):
    """A mainboard swap that logs no event shows only in the dispenser's header, which the
    collector reads every few wall seconds: the world gives the 6 h after it change_wall_s
    of wall time (`--change-wall`: longer for a collector that reads the header less often),
    for every station (banner run 24 missed MET-1's 2 days at full pace).
    Logged, the swap's events reach the platform through the FIFO: no window."""
    from dataclasses import replace

    from acceptance.run import CHANGE_WINDOW_S, RunOptions, header_changes, pace_windows
    from scenarios.loader import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "urad-middle-banner.yaml")
    opts = RunOptions(scenario=scenario.path, out=Path("unused"), change_wall_s=change_wall_s)
    swap = next(c for c in scenario.data["cheats"] if c["kind"] == "mainboard_swap")
    t = scenario.instant(swap["start"])
    assert header_changes(scenario, scenario.start_epoch, scenario.end_epoch) == [t]
    covering = [w for w in pace_windows(opts, scenario)
                if w.start < t + CHANGE_WINDOW_S and w.end > t]
    assert covering and covering[0].start <= t and all(w.exempt == () for w in covering)
    wall = sum((min(w.end, t + CHANGE_WINDOW_S) - max(w.start, t)) / w.compression
               for w in covering)
    assert wall >= opts.change_wall_s - 1e-6
    logged = replace(scenario, data={**scenario.data, "cheats": [
        dict(c, log_events=True) if c is swap else c for c in scenario.data["cheats"]]})
    assert header_changes(logged, scenario.start_epoch, scenario.end_epoch) == []
    assert not any(w.start <= t < w.end for w in pace_windows(opts, logged))


def test_run_pacing_flags_reach_the_run_and_bad_values_are_refused(monkeypatch, capsys):
    """`forecourt run --fault-wall S --change-wall S` set the run's pacing (a vendor's slower
    collector needs longer windows); a value that is not seconds > 0 is refused, naming it."""
    import acceptance.run
    from acceptance.cli import main

    seen = []
    monkeypatch.setattr(acceptance.run, "run", lambda opts: seen.append(opts) or 0)
    base = ["run", str(ROOT / "scenarios" / "smoke.yaml"), "--out", "unused"]
    assert main(base) == 0
    assert (seen[0].fault_wall_s, seen[0].change_wall_s) == (6.0, 10.0)
    assert main([*base, "--fault-wall", "20", "--change-wall", "60"]) == 0
    assert (seen[1].fault_wall_s, seen[1].change_wall_s) == (20.0, 60.0)
    for flag, bad in (("--change-wall", "0"), ("--fault-wall", "-5"), ("--change-wall", "nan"),
                      ("--drain-timeout", "inf"), ("--stall-timeout", "soon")):
        with pytest.raises(SystemExit) as exc:
            main([*base, flag, bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert flag in err and repr(bad) in err, err
    assert len(seen) == 2


def test_fuzz_runs_each_schedule_once_so_a_flaky_sut_does_not_derail_the_search():
    """A SUT that fails a schedule only every other time (as the no-spool collector did with
    a broker restart and a platform stall): the search still ends with a minimal schedule,
    and confirming it says how often it fails."""
    from acceptance.fuzz import Campaign, Outcome, schedules, search

    calls = {"n": 0}

    def sometimes(schedule):
        if any(f["kind"] == "broker_restart" for f in schedule):
            calls["n"] += 1
            return Outcome(1 if calls["n"] % 2 else 3)
        return Outcome(3)

    found, campaign = search(sometimes, schedules(["UMB25"], 864, ["broker_restart",
                                                                   "collector_crash"]),
                             budget=50, max_runs=200, seed=1)
    assert found is not None and [f["kind"] for f in found] == ["broker_restart"]
    keys = [json.dumps(r["faults"], sort_keys=True) for r in campaign.runs]
    assert len(keys) == len(set(keys))  # nothing run twice during the search
    assert isinstance(Campaign(1, 5).confirm(sometimes, found, 2), int)


def test_the_timeline_names_every_station_a_shared_collector_fault_took_down():
    """In fleet mode a collector crash or network cut of one station is one of its whole
    collectors process: timeline.json lists them (detail.stations), so availability excuses
    them; a device fault, or the per-station mode, names the station alone."""
    from types import SimpleNamespace

    from acceptance.chain import deal_collectors
    from acceptance.run import _timeline
    from acceptance.schedule import Fault, FaultAction

    ids = ["UMB01", "UMB02", "UMB03", "UMB04"]
    crash = Fault("collector_crash", "UMB03", 100.0, 50.0)
    silent = Fault("device_silent", "UMB03", 300.0, 50.0, device="G")
    actions = [FaultAction(1.0, f.at + d, f, a) for f in (crash, silent)
               for d, a in ((0, "start"), (f.duration, "end"))]
    fleet = SimpleNamespace(collector_keys=deal_collectors(ids, "fleet", 2))
    rows = {r["kind"]: r for r in _timeline(actions, fleet)}
    assert rows["collector_crash"]["detail"]["stations"] == ["UMB01", "UMB03"]
    assert "stations" not in rows["device_silent"]["detail"]
    alone = SimpleNamespace(collector_keys=deal_collectors(ids, "per-station", 1))
    assert all("stations" not in r["detail"] for r in _timeline(actions, alone))
