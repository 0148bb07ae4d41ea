"""End to end with real processes: devices → collectors → broker → platform (issue 3).

The smoke scenario (two stations, both dialects, Modbus TCP and RTU) made to have fuel
deliveries, run at compression max; every ground-truth transaction, inventory reading,
delivery and event must be at the platform exactly once with equal values, and nothing
else. Once with the embedded broker, once with Mosquitto.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from waiting import HANG_S, wait_for

from acceptance.chain import Chain, ChainSettings
from acceptance.compare import compare_platform, load_truth
from acceptance.processes import ChainError, SutExited
from scenarios.variant import write_scenario_variant

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "scenarios" / "smoke.yaml"


def smoke_with_deliveries(tmp_path: Path) -> Path:
    """Smoke, with tanks low enough at start that tankers come within the two days."""
    return write_scenario_variant(
        SMOKE, tmp_path / "smoke-deliveries.yaml",
        tank_conditions=[{"station": "UMB25", "tank": 2, "initial_fill": 0.37},
                         {"station": "UMB44", "tank": 1, "initial_fill": 0.36}],
        deliveries={"lead_time_h": [1, 3]})


def assert_uplink_1_1(chain: Chain) -> None:
    """Uplink 1.1 end to end: every device's state reached the platform (a baseline at
    least), deliveries carry the bill of lading (its values are compared with the ground
    truth in assert_exactly_once), and once drained every device is drained through the
    end of the world (the RTC the lingering devices show)."""
    reports = list(chain.api.items("states"))
    for sid in chain.station_ids:
        devices = {d["device"] for d in chain.station_states()[sid]["devices"]}
        mine = [r for r in reports if r["station_id"] == sid]
        assert {r["device"] for r in mine} == devices, (sid, mine)
        assert all(r["serial_number"] and r["software_id"] for r in mine)
        assert all(r["mainboard_id"] and r["encoder_id"] for r in mine if r["device"] != "G")
    drops = list(chain.api.items("deliveries"))
    assert drops and all(isinstance(d["bol_volume_20c_ml"], int) for d in drops), drops[:2]
    end = int(chain.device_status()["end"])
    deadline = time.monotonic() + HANG_S
    while True:
        through = {(sid, d["device"]): d["drained_through"]
                   for sid, st in chain.station_states().items() for d in st["devices"]}
        if all(t == end for t in through.values()):
            break
        assert time.monotonic() < deadline, (end, through)
        time.sleep(0.2)


def assert_exactly_once(chain: Chain, min_deliveries: int = 0):
    """Stop the station side (the ground truth is then complete), then compare the
    platform's records with it."""
    chain.stop_field()
    comparison = compare_platform(chain.truth_dir, chain.api, chain.station_ids)
    summary = comparison.summary()
    assert comparison.ok, f"{summary}\n" + "\n".join(comparison.problems())
    counts = comparison.counts().get("received_once", {})
    for stream in ("transactions", "inventory", "events"):
        assert counts.get(stream, 0) > 0, f"no {stream} at all: {summary}"
    assert counts.get("deliveries", 0) >= min_deliveries
    return comparison


@pytest.mark.parametrize("broker", ["embedded", pytest.param("mosquitto",
                                                             marks=pytest.mark.mosquitto)])
def test_smoke_end_to_end_exactly_once(tmp_path, broker):
    scenario = smoke_with_deliveries(tmp_path)
    chain = Chain(ChainSettings(scenario, tmp_path / "run", broker=broker,
                                device_faults=False))
    # Mosquitto runs with per-run accounts and ACL (tests/test_broker_acl.py), the embedded
    # broker without
    assert (chain.mqtt_accounts is not None) == (broker == "mosquitto")
    with chain:
        report = chain.wait_drained(timeout=120)
        assert report.drained and report.reason == "drained", report
        assert report.device_backlog == 0
        assert report.accepted == sum(report.served.values()) > 1000
        deadline = time.monotonic() + HANG_S
        while True:  # the collectors' heartbeats come to report empty spools
            states = chain.station_states()
            if all(states[sid]["collector"]["backlog"] == 0 for sid in chain.station_ids):
                break
            assert time.monotonic() < deadline, [s["collector"] for s in states.values()]
            time.sleep(0.2)
        for sid in chain.station_ids:
            assert states[sid]["collector"]["online"], states[sid]["collector"]
            assert all(d["online"] for d in states[sid]["devices"]), states[sid]["devices"]
        assert_uplink_1_1(chain)
        stats = chain.api.ingest_stats()
        assert stats["rejected_total"] == 0 and not stats["rejected_records"], stats
        comparison = assert_exactly_once(chain, min_deliveries=2)
        if broker == "embedded":
            # cursor pagination over many pages gives the same records
            paged = list(chain.api.items("inventory", page_size=97))
            assert len(paged) == len({r["key"] for r in paged}) == \
                comparison.counts().loc["inventory", "received_once"]
    codes = [chain.devices.exit_codes, chain.platform.exit_codes,
             *(c.exit_codes for c in chain.collectors.values())]
    assert codes == [[0]] * len(codes)
    truth = load_truth(chain.truth_dir)
    assert truth.manifest["complete"] is True and len(truth.fifo_drops) == 0


def test_a_part_that_dies_is_reported_not_waited_for(tmp_path):
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run", days=0.5, compression=2000.0))
    with chain:
        chain.kill_collector("UMB25")  # on purpose: no drain, but no hang either
        report = chain.wait_drained(timeout=2)
        assert not report.drained
        assert report.reason.startswith("timeout after 2 s since the world last moved: "
                                        "stopped on purpose: collector:UMB25"), report.reason
        # the platform's detection worker is one of its parts: sampled, frozen with it
        worker = chain.pids()["platform:child"]
        assert b"central.detectors.worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
        platform = chain.pids()["platform"]
        chain.freeze_platform(True)  # signals are delivered asynchronously
        wait_for(lambda: {state(platform), state(worker)} == {"T"}, HANG_S, "both stopped")
        chain.freeze_platform(False)
        wait_for(lambda: "T" not in {state(platform), state(worker)}, HANG_S, "both resumed")
        os.kill(platform, signal.SIGKILL)  # behind the chain's back
        # once the chain runs, a SUT part that exits is a finding about the SUT
        with pytest.raises(SutExited, match=r"platform \(pid \d+\) exited on its own with "
                                            r"code -9"):
            chain.wait_drained(timeout=60)
    assert chain.platform.exit_codes == [-9]
    # and the worker did not outlive it (a detector writing beside the platform's successor)
    wait_for(lambda: state(worker) in ("", "Z"), HANG_S, "the detection worker's end")


def state(pid: int) -> str:
    """The process's state letter (T stopped, Z zombie), "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def test_a_part_that_fails_to_start_is_named_and_the_rest_stopped(tmp_path):
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run", days=0.1,
                                platform_args=("--no-such-flag",)))
    with pytest.raises(ChainError, match=r"(?s)platform \(pid \d+\) exited with code 2;.*"
                                         r"unrecognized arguments: --no-such-flag"):
        chain.start()
    assert chain.stopped and not chain.broker.part.alive and not chain.devices.alive


class _FakeApi:
    def __init__(self, accepted: int) -> None:
        self.accepted = accepted

    def ingest_stats(self, station_id=None):
        return {"accepted": self.accepted}


def test_drain_logic_drains_settles_or_keeps_waiting(tmp_path, monkeypatch):
    """wait_drained's decisions on given observations (no processes are started)."""
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run"))
    status = {"sim_time": 2.0, "end": 2.0, "finished": True, "backlog": 0,
              "stations": {"UMB25": {"pushed": 7, "dropped": 0},
                           "UMB44": {"pushed": 5, "dropped": 0}}}
    heartbeat = {"UMB25": {"backlog": 0}, "UMB44": {"backlog": 0}}
    monkeypatch.setattr(chain, "device_status", lambda: status)
    monkeypatch.setattr(chain, "station_states", lambda: {
        sid: {"collector": {"backlog": hb["backlog"], "last_heartbeat_at": time.time()}}
        for sid, hb in heartbeat.items()})
    chain.api = _FakeApi(12)
    report = chain.wait_drained(timeout=5)
    assert report.drained and report.reason == "drained" and report.served == {
        "UMB25": 7, "UMB44": 5}
    chain.api = _FakeApi(10)  # two records never arrive, the spools say they are empty
    report = chain.wait_drained(timeout=30, settle_s=0.5)
    assert report.drained and report.reason == (
        "settled: platform accepted 10 of 12 records served, unchanged for 0.5 s")
    heartbeat["UMB44"]["backlog"] = 2  # ... but here a spool still holds them
    report = chain.wait_drained(timeout=1.0, settle_s=0.2)
    assert not report.drained
    assert report.reason == ("timeout after 1 s since the world last moved: records left in "
                             "the spool of UMB44 (2)")
    status.update(finished=False, sim_time=1.0)
    report = chain.wait_drained(timeout=0.5)
    assert not report.drained and report.reason == (
        "timeout after 0.5 s since the world last moved: world at 1, ends at 2")
    # a world still moving is waited for however long it takes (a long run's last days)
    heartbeat["UMB44"]["backlog"] = 0
    chain.api = _FakeApi(12)
    calls = 0

    def moving():
        nonlocal calls
        calls += 1
        finished = calls >= 40  # 40 observations, 0.2 s apart: far beyond the timeout
        return {**status, "sim_time": 2.0 if finished else 1.0 + calls / 100,
                "finished": finished}

    monkeypatch.setattr(chain, "device_status", moving)
    report = chain.wait_drained(timeout=0.5)
    assert report.drained and calls >= 40 and report.waited_s > 0.5


def test_a_part_that_ignores_sigterm_is_killed_with_its_children(tmp_path):
    from acceptance.processes import Part, descendants

    part = Part("stubborn", ["bash", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"],
                tmp_path / "stubborn.log", tmp_path).start()
    deadline = time.monotonic() + HANG_S
    while not (kids := descendants(part.pid)):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    assert part.stop(timeout=0.5) == -9 and part.exit_codes == [-9]

    def running(pid: int) -> bool:  # a zombie has ended: only its parent has yet to reap it
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] != "Z"

    for pid in kids:
        deadline = time.monotonic() + HANG_S
        while running(pid):
            assert time.monotonic() < deadline, f"child {pid} survived"
            time.sleep(0.05)
    assert "start: bash -c" in part.tail()


class _FakeDetection:
    """GET /api/v1/detection/status answers (None: the platform has no such endpoint)."""

    def __init__(self, items) -> None:
        self.answer = items

    def items(self, resource, **filters):
        from acceptance.observe import ApiError

        assert resource == "detection/status"
        if self.answer is None:
            raise ApiError("/api/v1/detection/status", 404, "not_found")
        return list(self.answer)


def test_detection_wait_logic(tmp_path):
    """wait_detection's decisions on given answers (no processes are started)."""
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run"))
    end = 2000

    def status(**through):
        return [{"station_id": sid, "watermark": t, "evaluated_through": t,
                 "updated_at": None if t is None else 1.0} for sid, t in through.items()]

    chain.api = _FakeDetection(status(UMB25=end, UMB44=end + 86400))
    report = chain.wait_detection(end, timeout=5, grace_s=0.1)
    assert report.done and report.supported and report.reason == "evaluated"
    assert report.status["UMB44"]["evaluated_through"] == end + 86400
    chain.api = _FakeDetection(status(UMB25=end, UMB44=end - 1))  # one station behind
    report = chain.wait_detection(end, timeout=0.5, grace_s=0.1)
    assert not report.done and report.reason == (
        "no progress for 0.5 s: evaluated_through < the run's end at UMB44 (1999)")
    chain.api = _FakeDetection(status(UMB25=end))  # UMB44 not listed at all
    report = chain.wait_detection(end, timeout=0.3, grace_s=0.1)
    assert not report.done and report.reason.endswith("UMB44 (None)")
    chain.api = _FakeDetection(status(UMB25=None, UMB44=None))  # no detector progress ever
    report = chain.wait_detection(end, timeout=30, grace_s=0.3)
    assert report.done and report.supported and 0.3 <= report.waited_s < 5
    assert report.reason == "the platform reported no detection progress for any station " \
                            "within 0.3 s"
    chain.api = _FakeDetection(None)  # a platform without the endpoint: the fixed grace
    report = chain.wait_detection(end, timeout=30, grace_s=0.3)
    assert report.done and not report.supported and 0.3 <= report.waited_s < 5
    assert report.reason == "no GET /api/v1/detection/status: waited the fixed grace of 0.3 s"


class _AdvancingDetection(_FakeDetection):
    """Each answer has UMB44 evaluated one step further, up to `end`."""

    def __init__(self, end: int, steps: int) -> None:
        super().__init__([])
        self.end, self.behind = end, steps

    def items(self, resource, **filters):
        assert resource == "detection/status"
        through = self.end - self.behind
        self.behind = max(0, self.behind - 1)
        return [{"station_id": sid, "watermark": self.end, "evaluated_through": t,
                 "updated_at": 1.0} for sid, t in (("UMB25", self.end), ("UMB44", through))]


def test_detection_wait_bounds_the_time_without_progress(tmp_path):
    """A long run's final evaluations take longer than `timeout` in all, but each answer
    shows progress: the wait goes on to the end (the timeout counts from the last progress,
    whatever the machine's speed, as the answers, not the clock, drive it)."""
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run"))
    chain.api = _AdvancingDetection(2000, steps=6)  # ≥ 6 polls 0.2 s apart: > the timeout
    report = chain.wait_detection(2000, timeout=0.5, grace_s=0.1)
    assert report.done and report.reason == "evaluated" and report.waited_s > 0.5
    assert chain.api.behind == 0


class _FlappingDetection(_FakeDetection):
    """UMB44's evaluated_through goes back and forth (a broken platform); answers run out
    after `limit` calls, so a wait that took flapping for progress fails instead of hanging."""

    def __init__(self, end: int, limit: int) -> None:
        super().__init__([])
        self.end, self.calls, self.limit = end, 0, limit

    def items(self, resource, **filters):
        self.calls += 1
        assert self.calls <= self.limit, "the wait took flapping for progress"
        through = self.end - 10 - self.calls % 2
        return [{"station_id": sid, "watermark": self.end, "evaluated_through": t,
                 "updated_at": 1.0} for sid, t in (("UMB25", self.end), ("UMB44", through))]


def test_detection_wait_is_not_held_by_a_value_that_only_flaps(tmp_path):
    chain = Chain(ChainSettings(SMOKE, tmp_path / "run"))
    chain.api = _FlappingDetection(2000, limit=200)  # 200 polls 0.2 s apart: 40 s
    report = chain.wait_detection(2000, timeout=0.5, grace_s=0.1)
    assert not report.done and report.reason.startswith("no progress for 0.5 s")


def test_fleet_collectors_dealt_over_processes(tmp_path):
    """`fleet_processes`: the stations are dealt over several `forecourt collectors`
    processes, each with its own proxy; the data arrive exactly once, and a station's
    collector fault acts on the process that serves it, not on the others."""
    settings = ChainSettings(SMOKE, tmp_path / "run", broker="embedded", device_faults=False,
                             days=1.0, collectors="fleet", fleet_processes=2)
    chain = Chain(settings)
    first, second = chain.station_ids
    assert chain.collector_keys == {first: "*1", second: "*2"}
    with chain:
        assert set(chain.collectors) == set(chain.proxies) == {"*1", "*2"}
        assert first in chain.collectors["*1"].argv and second not in chain.collectors["*1"].argv
        chain.kill_collector(second)
        assert not chain.collector_part(second).alive and chain.collector_part(first).alive
        chain.start_collector(second)
        report = chain.wait_drained(timeout=120)
        assert report.drained and report.reason == "drained", report
        assert_exactly_once(chain)
    with pytest.raises(ValueError, match="fleet_processes"):
        ChainSettings(SMOKE, tmp_path / "x", fleet_processes=2)  # per-station collectors
