"""The harness owns the simulated clock: the devices' control channel (devices/control.py),
its client (acceptance/clock.py) and the schedule's plan (acceptance/schedule.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from waiting import wait_for

from acceptance.clock import ClockError, SimClock
from acceptance.schedule import Fault, plan
from devices.control import ClockControl
from devices.runner import DeviceRun
from tests.test_device_silence import START, small_world

H = 3600.0


def _wait_status(clock: SimClock, until, what: str, timeout: float = 60.0) -> dict:
    def reached() -> dict | None:
        st = clock.status()
        return st if until(st) else None
    return wait_for(reached, timeout, what)


def test_the_world_holds_exactly_at_each_horizon_and_runs_on_when_released(tmp_path):
    world = small_world(days=0.5)
    stop = threading.Event()
    run = DeviceRun(world, compression=50000.0, out_dir=tmp_path, stop_event=stop, linger=True,
                    echo=False, ledger=None, controlled=True)
    seen: dict = {}

    def harness() -> None:
        wait_for(lambda: run.endpoints.get("control"), 30, "the control channel")
        clock = SimClock(**run.endpoints["control"])
        try:
            st = clock.status()
            seen["start"] = st
            for t in (START + H, START + 1.5 * H, START + 4 * H):
                clock.advance_to(t)
                seen[t] = _wait_status(clock, lambda s, t=t: s["sim_time"] >= t, f"reach {t}")
                # held: whatever the machine's speed, the clock reads the horizon
                seen[(t, "again")] = [clock.status()["sim_time"] for _ in range(20)]
            with pytest.raises(ClockError, match=r"advance_to.t: .* is before the horizon"):
                clock.advance_to(START)
            with pytest.raises(ClockError, match=r"op: expected one of"):
                clock.call("rewind")
            with pytest.raises(ClockError, match=r"advance_to.t: expected finite"):
                clock.call("advance_to", t="noon")
            clock.pause()
            clock.advance_to(START + 5 * H)
            seen["paused"] = [clock.status()["sim_time"] for _ in range(20)]
            clock.resume()
            clock.release()
            seen["end"] = _wait_status(clock, lambda s: s["finished"], "the world's end")
        finally:
            clock.close()
            stop.set()

    async def main() -> None:
        thread = threading.Thread(target=harness)
        thread.start()
        await run.run()
        thread.join()

    asyncio.run(main())
    assert seen["start"]["sim_time"] == START and seen["start"]["horizon"] == START
    for t in (START + H, START + 1.5 * H, START + 4 * H):
        assert seen[t]["sim_time"] == t and seen[t]["horizon"] == t
        assert set(seen[(t, "again")]) == {t}
    assert set(seen["paused"]) == {START + 4 * H}
    assert seen["end"]["sim_time"] == world.end and seen["end"]["horizon"] is None


def test_control_requests_are_checked_and_never_move_the_clock_back():
    control = ClockControl(START, held=True, status=lambda: {"sim_time": START})
    assert control.limit(START + 10) == START and control.holding(START)
    assert control.handle({"op": "advance_to", "t": START + 60})["horizon"] == START + 60
    assert control.limit(START + 999) == START + 60 and not control.holding(START + 30)
    for bad, message in (({"op": "advance_to", "t": START}, "before the horizon"),
                         ({"op": "advance_to", "t": float("nan")}, "expected finite"),
                         ({"op": "advance_to", "t": True}, "expected finite"),
                         ({"op": "jump"}, "expected one of"), ([], "expected one of")):
        reply = control.handle(bad)
        assert reply["ok"] is False and message in reply["error"]
    assert control.horizon == START + 60  # refused requests change nothing
    control.handle({"op": "release"})
    assert control.limit(START + 999) == START + 999
    free = ClockControl(START, held=False, status=dict)
    assert free.horizon is None and not free.holding(START)


def test_plan_orders_operations_ends_first_and_cuts_at_the_run_end():
    cut = Fault("network_cut", "A", START + 2 * H, 4 * H)
    crash = Fault("collector_crash", "A", START + 3 * H, 600.0)
    then = Fault("network_cut", "B", START + 6 * H, H)  # starts where the cut of A ends
    late = Fault("collector_crash", "B", START + 30 * H, 600.0)
    ops = plan([then, crash, late, cut], end=START + 6.5 * H)
    assert [(o.fault.kind, o.fault.station, o.action, o.at - START) for o in ops] == [
        ("network_cut", "A", "start", 2 * H), ("collector_crash", "A", "start", 3 * H),
        ("collector_crash", "A", "end", 3 * H + 600), ("network_cut", "A", "end", 6 * H),
        ("network_cut", "B", "start", 6 * H), ("network_cut", "B", "end", 6.5 * H)]
