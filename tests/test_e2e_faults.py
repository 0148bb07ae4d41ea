"""End to end under faults (issue 3): each fault its own test, each ending with every
ground-truth record at the platform exactly once with equal values.

Runs use the two-day smoke scenario at a fixed high compression (a simulated day in a few
wall seconds) on the harness's clock: `wait_sim_time` advances the world to a time and holds
it there, so each fault lands at its simulated time however loaded the machine is, and
every wait is on a condition (bounded by a deadline), never on the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for

from acceptance.chain import Chain, ChainSettings
from acceptance.compare import compare_platform
from acceptance.schedule import WorldStalled, run_schedule, scenario_faults
from scenarios.variant import write_scenario_variant

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "scenarios" / "smoke.yaml"
FAST = 20000.0  # simulated s per wall s: the two days in ~9 s
H = 3600.0


def settings(tmp_path: Path, **kw) -> ChainSettings:
    kw.setdefault("compression", FAST)
    kw.setdefault("device_faults", False)
    kw.setdefault("controlled", True)
    return ChainSettings(kw.pop("scenario", SMOKE), tmp_path / "run", **kw)


def drain_and_compare(chain: Chain, timeout: float = 120.0, min_records: int = 1000):
    if chain.clock is not None:
        chain.clock.release()  # the world runs on to its end
    report = chain.wait_drained(timeout=timeout)
    assert report.drained and report.reason == "drained", report
    chain.stop_field()
    comparison = compare_platform(chain.truth_dir, chain.api, chain.station_ids)
    assert comparison.ok, f"{comparison.summary()}\n" + "\n".join(comparison.problems())
    assert comparison.summary()["received_once"] > min_records
    return comparison


def test_collector_kill9_mid_run_and_restart(tmp_path):
    """kill -9 with records in the spool that the platform has not acknowledged (held
    there by a cut link), and a plain kill -9 of the other station's collector."""
    with Chain(settings(tmp_path)) as chain:
        t0 = chain.scenario.start_epoch
        chain.wait_sim_time(t0 + 8 * H, timeout=60)
        chain.cut_network("UMB25")
        chain.wait_sim_time(t0 + 11 * H, timeout=60)  # three hours of records pile up
        wait_for(lambda: chain.custody()["UMB25"] >= 20, 30, "UMB25 records held in the spool")
        chain.kill_collector("UMB25")
        chain.restore_network("UMB25")
        chain.start_collector("UMB25")
        chain.wait_sim_time(t0 + 30 * H, timeout=60)
        chain.kill_collector("UMB44")
        chain.start_collector("UMB44")
        drain_and_compare(chain)
        assert chain.collectors["UMB25"].exit_codes == [-9, 0]
        assert chain.collectors["UMB44"].exit_codes == [-9, 0]


@pytest.mark.parametrize("broker", ["embedded", pytest.param("mosquitto",
                                                             marks=pytest.mark.mosquitto)])
def test_broker_restart(tmp_path, broker):
    """The embedded broker forgets every session when it restarts: whatever it had not
    delivered is sent again by the collectors after their ack timeout. Mosquitto keeps the
    sessions on disk (persistence)."""
    with Chain(settings(tmp_path, broker=broker,
                        collector_args=("--ack-timeout", "3"))) as chain:
        t0 = chain.scenario.start_epoch
        wait_for(lambda: all(p.connections_total >= 1 for p in chain.proxies.values()), 120,
                 "every collector connected before the first restart")
        for at in (12 * H, 30 * H):
            chain.wait_sim_time(t0 + at, timeout=60)
            before = {sid: proxy.connections_total for sid, proxy in chain.proxies.items()}
            chain.restart_broker(down_s=1.0)
            # the next restart only once every collector is back (the world holds meanwhile)
            wait_for(lambda b=before: all(proxy.connections_total > b[sid]
                                          for sid, proxy in chain.proxies.items()),
                     120, "every collector reconnected")
        drain_and_compare(chain)
        assert chain.broker.part is None or chain.broker.part.starts == 3
        # every collector lost its connection twice and came back
        assert all(proxy.connections_total >= 3 for proxy in chain.proxies.values()), {
            sid: proxy.connections_total for sid, proxy in chain.proxies.items()}


@pytest.mark.mosquitto
def test_platform_restart(tmp_path):
    """Clean stop and kill -9 of the platform; its persistent session at Mosquitto holds
    what arrives meanwhile."""
    with Chain(settings(tmp_path, broker="mosquitto")) as chain:
        t0 = chain.scenario.start_epoch
        chain.wait_sim_time(t0 + 12 * H, timeout=60)
        before = chain.api.ingest_stats()["accepted"]
        chain.restart_platform(down_s=2.0)
        assert chain.api.ingest_stats()["accepted"] >= before  # the database survived
        chain.wait_sim_time(t0 + 30 * H, timeout=60)
        chain.restart_platform(down_s=1.0, kill=True)
        drain_and_compare(chain)
    assert chain.platform.exit_codes == [0, -9, 0]


def test_network_cut_for_a_simulated_day(tmp_path):
    """Collector ↔ broker cut for a simulated day: the spool holds the day's records (the
    records the devices handed over but the platform lacks grow), nothing made after the cut
    arrives through it, everything arrives once the link is back."""
    with Chain(settings(tmp_path)) as chain:
        t0 = chain.scenario.start_epoch
        chain.wait_sim_time(t0 + 12 * H, timeout=60)  # the world holds here while we cut
        # a loaded machine may start the collector late: cut a link that has carried data
        wait_for(lambda: chain.api.ingest_stats("UMB44")["accepted"], 60, "UMB44 records in")
        chain.cut_network("UMB44")
        cut_at = chain.sim_time()
        held = [chain.custody()["UMB44"]]
        for hours in range(2, 25, 2):  # the world held every two simulated hours
            chain.wait_sim_time(cut_at + hours * H, timeout=60)
            held.append(chain.custody()["UMB44"])
            # Records that crossed just before the cut may still be landing (the count of
            # accepted ones is no witness); nothing the devices made after it may.
            assert made_since("UMB44", cut_at + 1, chain) == [], "data crossed the cut"
        chain.restore_network("UMB44")
        assert held[-1] > held[0] and held[-1] >= 100, held
        drain_and_compare(chain)
        assert chain.proxies["UMB44"].connections_total >= 2  # reconnected after the cut


def made_since(station: str, t: float, chain: Chain) -> list[str]:
    """The record resources in which the platform holds a record of `station` stamped at or
    after `t` (one item asked of each)."""
    return [resource for resource in ("transactions", "inventory", "deliveries", "events",
                                      "states")
            if chain.api.get(f"/api/v1/{resource}",
                             {"station_id": station, "from": t, "limit": 1})["items"]]


def test_device_silent_for_a_simulated_hour(tmp_path):
    """A dispenser stops answering for an hour: the platform shows it off line during the
    silence (its station's other devices stay on line), back on line after, nothing lost."""
    scenario = write_scenario_variant(
        SMOKE, tmp_path / "silent.yaml", start="2026-04-01T09:00:00+08:00", days=0.1,
        cheats=[], faults=[{"kind": "device_silent", "station": "UMB25", "device": "D1",
                            "at": "+1h", "duration": "1h"}])
    with Chain(settings(tmp_path, scenario=scenario, compression=600.0, device_faults=True,
                        collector_args=("--modbus-timeout", "0.3",
                                        "--offline-after", "2"))) as chain:
        t0 = chain.scenario.start_epoch

        def devices() -> dict[str, bool]:
            return {d["device"]: d["online"] for d in chain.station_states()["UMB25"]["devices"]}

        chain.wait_sim_time(t0 + 50 * 60, timeout=30)  # held before the silence
        assert wait_for(lambda: devices().get("D1"), 30, "D1 on line before the silence")
        chain.wait_sim_time(t0 + 70 * 60, timeout=30)  # held inside it
        seen = wait_for(lambda: (lambda d: d if d["D1"] is False else None)(devices()), 30,
                        "D1 off line at the platform")
        assert seen["G"] and seen["D2"], f"other devices went off line too: {seen}"
        wait_for(lambda: "UMB25/D1" in (chain.device_status() or {}).get("silent", ()), 30,
                 "the devices' status shows D1 silent")
        chain.wait_sim_time(t0 + 2 * H + 10 * 60, timeout=30)  # held after it
        wait_for(lambda: devices()["D1"], 30, "D1 back on line")
        records = drain_and_compare(chain, min_records=50).records
    during = records[(records["device"] == "D1") & (records["time"] >= t0 + 1 * H)
                     & (records["time"] < t0 + 2 * H)]
    assert len(during) >= 1 and set(during["status"]) == {"received_once"}


def test_smoke_fault_timeline(tmp_path):
    """The smoke scenario's own faults (a collector crash inside a network cut, another
    network cut, a silent dispenser) carried out by the schedule, as an acceptance run does:
    the harness holds the world at each operation, so each happens at exactly its time."""
    with Chain(settings(tmp_path, device_faults=True, controlled=True)) as chain:
        faults = scenario_faults(chain.scenario)
        end = chain.scenario.start_epoch + 2 * 86400.0
        log = run_schedule(chain, faults, end, timeout=120)
        assert [(a.fault.kind, a.fault.station, a.action) for a in log] == [
            ("device_silent", "UMB25", "start"), ("device_silent", "UMB25", "end"),
            ("network_cut", "UMB25", "start"), ("collector_crash", "UMB25", "start"),
            ("collector_crash", "UMB25", "end"), ("network_cut", "UMB25", "end"),
            ("network_cut", "UMB44", "start"), ("network_cut", "UMB44", "end")]
        for action in log:
            edge = action.fault.at if action.action == "start" else action.fault.end
            assert action.sim_time == edge, action
            assert action.wall <= action.wall_done
        drain_and_compare(chain)
        assert chain.collectors["UMB25"].exit_codes == [-9, 0]


def test_corrupted_replies_leave_the_reference_accepted_for_dat_1_to_3(tmp_path):
    """`forecourt run` of a short scenario in which half the replies of the RTU station UMB44
    (rtu_line_noise) and of UMB25's dispenser 1 over TCP (modbus_garbled) are corrupted for
    two hours: the devices did corrupt them (devices.json), and the reference collector and
    platform still lose, duplicate and alter nothing (DAT-1, DAT-2, DAT-3 pass)."""
    scenario = write_scenario_variant(
        SMOKE, tmp_path / "noise.yaml", start="2026-04-01T09:00:00+08:00", days=0.15,
        cheats=[], faults=[
            {"kind": "rtu_line_noise", "station": "UMB44", "at": "+30min", "duration": "2h",
             "rate": 0.5},
            {"kind": "modbus_garbled", "station": "UMB25", "device": "D1", "at": "+30min",
             "duration": "2h", "rate": 0.5}])
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "acceptance.cli", "run", str(scenario),
                          "--out", str(run)], capture_output=True, text=True, timeout=1200,
                         cwd=REPO)
    assert res.returncode in (0, 1, 3) and (run / "record.json").exists(), \
        res.stdout + res.stderr
    record = json.loads((run / "record.json").read_text(encoding="utf-8"))
    outcomes = {r["id"]: r["outcome"] for r in record["requirements"]}
    assert [outcomes[rid] for rid in ("DAT-1", "DAT-2", "DAT-3")] == ["pass"] * 3, outcomes
    served = json.loads((run / "devices" / "devices.json").read_text())["devices"]
    garbled = {f"{sid}/{dev}": info["modbus_faults"]["garbled"]
               for sid, devs in served.items() for dev, info in devs.items()}
    # each corrupted RTU reply costs the collector its 1 s timeout on the shared line
    assert sum(n for key, n in garbled.items() if key.startswith("UMB44/")) >= 3, garbled
    assert garbled["UMB25/D1"] >= 1, garbled
    assert garbled["UMB25/G"] == garbled["UMB25/D2"] == 0, garbled  # outside the fault


def test_wrong_device_clocks_reach_the_platform_as_the_devices_showed_them(tmp_path):
    """A dispenser whose clock resets to 2000-01-01 for six hours and a gauge whose clock
    gains two hours a day (served by the world): the reference collector and platform store
    every record exactly once with the device times the wrong clocks stamped (the harness
    expects those from the ground truth's manifest)."""
    scenario = write_scenario_variant(SMOKE, tmp_path / "clocks.yaml", cheats=[], faults=[
        {"kind": "device_clock_reset", "station": "UMB25", "device": "D1", "at": "+8h",
         "duration": "6h"},
        {"kind": "device_clock_drift", "station": "UMB44", "device": "G", "at": "+2h",
         "duration": "12h", "drift_s_per_day": 7200}])
    with Chain(settings(tmp_path, scenario=scenario)) as chain:
        t0 = chain.scenario.start_epoch
        records = drain_and_compare(chain).records
    d1 = records[(records["station_id"] == "UMB25") & (records["device"] == "D1")]
    reset = d1[(d1["time"] >= t0 + 8 * H + 60) & (d1["time"] < t0 + 14 * H)]
    assert len(reset) >= 5 and (reset["device_time"] < 978307200).all()  # before 2001
    gauge = records[(records["station_id"] == "UMB44") & (records["device"] == "G")
                    & (records["stream"] == "inventory")]
    late = gauge[(gauge["time"] >= t0 + 13 * H) & (gauge["time"] < t0 + 14 * H)]
    assert len(late) >= 3 and ((late["device_time"] - late["time"]) > 3000).all()


def test_a_collector_that_stops_draining_with_no_fault_in_force_ends_the_schedule(tmp_path):
    """UMB25's collector hangs (SIGSTOP) with no fault scheduled: at max compression the
    world is held at its FIFOs' high-water mark; after the stall timeout the schedule raises
    WorldStalled naming UMB25, instead of waiting for the fault timeout (run 28 waited)."""
    scenario = write_scenario_variant(SMOKE, tmp_path / "stall.yaml", cheats=[], fifo={"depth": 10},
                                      faults=[{"kind": "network_cut", "station": "UMB44",
                                               "at": "+1d", "duration": "1h"}])
    with Chain(settings(tmp_path, scenario=scenario, compression=None)) as chain:
        t0 = chain.scenario.start_epoch
        chain.wait_sim_time(t0 + H, timeout=60)
        chain.freeze_collector("UMB25", True)
        try:
            with pytest.raises(WorldStalled) as stalled:
                run_schedule(chain, scenario_faults(chain.scenario), t0 + 2 * 86400.0,
                             timeout=600, stall_timeout_s=2.0)
        finally:
            chain.freeze_collector("UMB25", False)
        assert stalled.value.station == "UMB25" and stalled.value.held_s >= 2.0
        assert t0 + H <= stalled.value.sim_time < t0 + 86400.0  # before the cut's start
        assert chain.device_status()["stations"]["UMB25"]["pending"] >= 8  # the high-water mark
