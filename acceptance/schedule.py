"""One schedule for the world and its faults (运行时间表): the harness owns the simulated clock.

Jepsen-style, the schedule is a sequence of operations at simulated times: every fault's
start and end (ends before starts at the same instant), whoever serves it. For each one the
harness advances the world exactly to its time over the devices' control channel
(devices/control.py), waits until the world holds there, carries the operation out (the
harness's own kinds: kill, cut, restart; the devices' and the world's kinds act on their
own at that simulated time) and records what it observed: the simulated and wall times at
which the operation started and ended. Then it lets the world run to its end.

The world holds *at* each operation, so a fault never starts late, and one starting inside
another (a crash during a network cut) does so at its planned instant whatever the
machine's load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acceptance.faults import KINDS
from acceptance.observe import ApiError
from scenarios.loader import Scenario
from scenarios.timespec import parse_duration

if TYPE_CHECKING:
    from acceptance.chain import Chain


@dataclass(frozen=True)
class Fault:
    """One fault of a scenario's timeline, in simulated epoch seconds."""

    kind: str  # a kind of acceptance.faults.KINDS
    station: str | None  # None: a fleet-wide kind (broker, platform)
    at: float
    duration: float
    device: str | None = None
    delay_s: float = 0.0  # modbus_slow: how late each reply comes

    @property
    def end(self) -> float:
        return self.at + self.duration


def scenario_faults(scenario: Scenario) -> list[Fault]:
    """The scenario's faults (docs/scenarios.md), with times resolved, in time order."""
    faults = []
    for i, f in enumerate(scenario.data.get("faults") or []):
        if f["kind"] not in KINDS:
            raise ValueError(f"{scenario.path}: faults[{i}].kind: expected one of "
                             f"{list(KINDS)}, found {f['kind']!r}")
        faults.append(Fault(f["kind"], f.get("station"), scenario.instant(f["at"]),
                            parse_duration(f["duration"]), f.get("device"),
                            f.get("delay_ms", 800) / 1000.0 if f["kind"] == "modbus_slow"
                            else 0.0))
    return sorted(faults, key=lambda f: (f.at, f.kind, f.station or ""))


@dataclass(frozen=True)
class Operation:
    at: float  # simulated epoch seconds
    action: str  # start | end
    fault: Fault


@dataclass(frozen=True)
class FaultAction:
    """What was observed of one operation, for timeline.json."""

    wall: float  # when the operation started (wall epoch seconds)
    sim_time: float  # the world's clock meanwhile (it holds during the operation)
    fault: Fault
    action: str  # start | end | end-early (the world could not reach the end time)
    wall_done: float | None = None  # when the operation had been carried out


def plan(faults: Iterable[Fault], end: float) -> list[Operation]:
    """The operations of the faults that begin before `end`; an end past `end` is at `end`."""
    ops: list[Operation] = []
    for f in faults:
        if f.at < end:
            ops += [Operation(f.at, "start", f), Operation(min(f.end, end), "end", f)]
    return sorted(ops, key=lambda o: (o.at, o.action == "start"))


class WorldStalled(RuntimeError):
    """The world was held at a FIFO's high-water mark, without progress and with no fault in
    force, for longer than the stall timeout: a station's collector does not drain (a finding
    about the SUT, which ends the run; STB-1 fails on it)."""

    def __init__(self, station: str | None, sim_time: float, held_s: float) -> None:
        self.station, self.sim_time, self.held_s = station, sim_time, held_s
        who = f"station {station}'s" if station else "a station's"
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sim_time))
        super().__init__(f"the world was held {held_s:.0f} s without progress at simulated "
                         f"{at}, at the high-water mark of {who} device FIFOs: its collector "
                         f"does not drain them, and no fault was in force")

    def to_dict(self) -> dict[str, Any]:
        return {"station": self.station, "sim_time": self.sim_time, "held_s": self.held_s}


def run_schedule(chain: Chain, faults: Iterable[Fault], end: float, timeout: float,
                 on_action: Callable[[FaultAction], None] | None = None,
                 stall_s: float = 3.0, stall_timeout_s: float = 300.0) -> list[FaultAction]:
    """Carry the schedule out on a chain started with `controlled`; then release the world.

    A world held at the FIFOs' high-water mark (compression max, a station whose collector
    does not drain) may never reach an operation: after `stall_s` wall seconds without
    progress, the harness faults in force end early (action `end-early`); with none in
    force, after `stall_timeout_s` it raises WorldStalled."""
    clock = chain.clock
    if clock is None:
        raise RuntimeError("run_schedule needs a chain started with ChainSettings.controlled")
    log: list[FaultAction] = []
    active: list[Fault] = []
    deadline = time.monotonic() + timeout

    def act(op: Operation, action: str, sim: float) -> None:
        kind = KINDS[op.fault.kind]
        wall = time.time()
        if kind.start is not None and kind.end is not None:  # served by the harness
            (kind.start if op.action == "start" else kind.end)(chain, op.fault)
        entry = FaultAction(wall, sim, op.fault, action, time.time())
        log.append(entry)
        if on_action:
            on_action(entry)

    ops = plan(faults, end)
    while ops:
        op = ops.pop(0)
        st = _reach(chain, op.at, deadline, stall_s if active else stall_timeout_s,
                    faults_in_force=bool(active))
        if st is None:  # stalled: what is in force ends now
            sim = float(clock.status()["sim_time"])
            for f in list(active):
                end_op = next(o for o in ops if o.fault is f and o.action == "end")
                ops.remove(end_op)
                active.remove(f)
                act(end_op, "end-early", sim)
            ops.insert(0, op)
            continue
        if op.action == "start" and KINDS[op.fault.kind].served_by == "harness":
            active.append(op.fault)
        elif op.fault in active:
            active.remove(op.fault)
        act(op, op.action, float(st["sim_time"]))
    clock.release()
    return log


def wait_on_line(chain: Chain, timeout: float) -> tuple[bool, float]:
    """Hold the world at its start until the platform shows every station's collector and
    devices on line, so that start-up (processes starting, first connections and polls) is
    no simulated off-line time of the SUT whatever the machine's load. (reached, wall s
    waited); not reached within `timeout`: the run goes on and the off-line time counts."""
    t0 = time.monotonic()
    while True:
        chain.check()
        try:
            states = chain.station_states()
        except ApiError:
            states = {}
        up = [sid for sid in chain.station_ids
              if (states.get(sid, {}).get("collector") or {}).get("online")
              and states[sid].get("devices")
              and all(d.get("online") for d in states[sid]["devices"])]
        waited = time.monotonic() - t0
        if len(up) == len(chain.station_ids) or waited >= timeout:
            return len(up) == len(chain.station_ids), waited
        time.sleep(0.2)


def _reach(chain: Chain, t: float, deadline: float, stall_s: float, faults_in_force: bool
           ) -> dict[str, Any] | None:
    """Advance the world to `t` and wait until it holds there (or has finished). When the
    world made no progress for `stall_s` wall seconds while flow control held it: None if
    faults are in force (they end early), else WorldStalled."""
    clock = chain.clock
    assert clock is not None
    st = clock.advance_to(t)
    last, moved = float(st["sim_time"]), time.monotonic()
    while not (st["sim_time"] >= t or st["finished"]):
        chain.check()  # a SUT part that exited is a finding, not a hang
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"the world did not reach simulated time {t:.0f} "
                               f"(at {st['sim_time']:.0f}) before the fault timeout")
        if st["sim_time"] != last:
            last, moved = float(st["sim_time"]), now
        elif st["paused"] and now - moved >= stall_s:
            if faults_in_force:
                return None
            raise WorldStalled(st.get("held_by"), float(st["sim_time"]), now - moved)
        time.sleep(0.02)
        st = clock.status()
    return st
