"""Serve a world's devices over Modbus while the world runs (`forecourt devices`).

Everything runs in one asyncio loop and one thread: the Modbus servers and the world's
steps interleave, because neither the world nor the devices' Modbus state is thread-safe.
Only the ground truth's Parquet files are written in a thread of their own (the rows are
handed over in the loop), so a flush does not keep the servers from answering.

- compression N: about every `tick_s` wall seconds the world advances to
  start + elapsed_wall × N (in steps of at most `max_step_s`, yielding to the servers
  between steps, so a slow machine lags instead of freezing the servers);
- compression None ("max"): the world advances in steps of `max_step_s` only while every
  FIFO holds fewer than `high_water` records; with no collector draining, it pauses at
  high water and the devices keep answering.

Output directory (docs/register-map.md §12): endpoints.json (as soon as every server
listens), the ground truth from sim.ledger.Ledger (flushed every `flush_every_s` wall
seconds, closed on stop/Ctrl-C) with fifo_drops.parquet (records lost to overflow, never
served) as an extra table of its manifest, devices.json (per device and stream:
pushed, acknowledged, dropped, pending) at stop, and status.json (simulated time, finished,
backlog, per-station counts) rewritten every `status_every_s` wall seconds (0.25) while
serving, so a harness can tell when the world has finished and the FIFOs are drained.
inputs.jsonl: documents the world's other parties produce as it runs (a signed
verification record, 检定记录), one JSON line each as it happens, so a harness can hand them
to the platform in step with the world (the ground truth has them only at a flush).

Silences (devices.silence, fault `device_silent`) make devices ignore requests during
given simulated intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from devices.control import ClockControl
from devices.fleet import DeviceFleet, DropRow, WorldClock
from devices.pace import Pacer, PaceWindow
from devices.rtu import PtyPair
from devices.rtu_server import RTU_SERIAL
from devices.server import StationServer
from devices.silence import Silence

ENDPOINTS_FORMAT = "forecourt-endpoints/1"
STATUS_FORMAT = "forecourt-device-status/1"
DROPS_SCHEMA = pa.schema([
    ("station_id", pa.string()),
    ("device", pa.string()),
    ("stream", pa.string()),
    ("seq", pa.int32()),
    ("time", pa.float64()),
    ("dropped_total", pa.int64()),
])

Progress = Callable[[float, float, str], None]


@dataclass
class ServeResult:
    stop_reason: str  # finished | stopped | interrupted
    sim_time: float
    endpoints: dict
    drops: int
    backlog: int
    summary: dict = field(repr=False, default_factory=dict)


class _Stop:
    def __init__(self, event: Any) -> None:
        self.event = event

    def __call__(self) -> bool:
        return self.event is not None and self.event.is_set()


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop: the same asyncio API with a faster loop and socket I/O for the
    Modbus servers (docs/performance.md). asyncio's own loop where uvloop is not installed
    (Windows) or FORECOURT_EVENT_LOOP is "asyncio"."""
    choice = os.environ.get("FORECOURT_EVENT_LOOP", "uvloop")
    if choice not in ("uvloop", "asyncio"):
        main.close()
        raise ValueError(f"FORECOURT_EVENT_LOOP={choice!r}: expected uvloop or asyncio")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def serve(world: Any, **kwargs: Any) -> ServeResult:
    """Blocking entry point (keyword arguments: see DeviceRun) in a fresh event loop.

    Ctrl-C stops cleanly (servers closed, socat stopped, ground truth closed) and returns
    the result with stop_reason "interrupted".
    """
    run = DeviceRun(world, **kwargs)
    try:
        run_loop(run.run())
    except KeyboardInterrupt:
        if run.result is None:
            raise
    assert run.result is not None
    return run.result


async def serve_async(world: Any, **kwargs: Any) -> ServeResult:
    """Serve every station of `world` (keyword arguments: see DeviceRun) until it finishes,
    `stop_event.is_set()`, or the task is cancelled (the cleanup runs, CancelledError
    propagates)."""
    run = DeviceRun(world, **kwargs)
    await run.run()
    assert run.result is not None
    return run.result


class DeviceRun:
    """One serving session: world, devices, servers and output files.

    port_base: TCP station i (in world.stations order) listens on port_base + i; 0 picks
    free ports. rtu_station_ids: stations served over RTU (None = those whose config says
    transport "rtu"). high_water: default 80 % of fifo_depth. ledger: "default" writes the
    sim Ledger's ground truth into out_dir, None records none, or pass an object with the
    sim Ledger's attach(world), flush_in_background(), close() and
    set_extra_table(name, table).
    progress(done_sim_s, total_sim_s, extra) is called about 5 times per wall second.
    silences: devices that stop answering for a while (fault device_silent).
    """

    def __init__(
        self,
        world: Any,
        *,
        compression: float | None = None,
        port_base: int = 0,
        out_dir: str | Path,
        rtu_station_ids: list[str] | tuple[str, ...] | None = None,
        fifo_depth: int = 500,
        high_water: int | None = None,
        host: str = "127.0.0.1",
        timezone: str | None = None,
        scenario_name: str = "",
        scenario_digest: str | None = None,
        stop_event: Any = None,
        progress: Progress | None = None,
        linger: bool = False,
        ledger: Any = "default",
        tick_s: float = 0.05,
        max_step_s: float = 300.0,
        flush_every_s: float = 60.0,
        status_every_s: float = 0.25,
        echo: bool = True,
        silences: list[Silence] | tuple[Silence, ...] = (),
        pace: list[PaceWindow] | tuple[PaceWindow, ...] = (),
        max_compression: float | None = None,
        controlled: bool = False,
    ) -> None:
        if compression is not None and not compression > 0:
            raise ValueError(f"compression must be > 0 or None (max), got {compression!r}")
        if not 1 <= fifo_depth <= 0xFFFE:
            raise ValueError(f"fifo_depth must be 1..65534, got {fifo_depth}")
        if high_water is None:
            high_water = max(1, int(fifo_depth * 0.8))
        if not 1 <= high_water <= fifo_depth:
            raise ValueError(f"high_water must be 1..fifo_depth ({fifo_depth}), got {high_water}")
        if not 0 <= port_base <= 65535:
            raise ValueError(f"port_base must be 0..65535, got {port_base}")
        if not (tick_s > 0 and max_step_s > 0 and status_every_s > 0):
            raise ValueError("tick_s, max_step_s and status_every_s must be > 0")
        self.world = world
        self.compression = compression
        self.port_base = port_base
        self.out = Path(out_dir)
        self.fifo_depth = fifo_depth
        self.high_water = high_water
        self.host = host
        config = getattr(world, "config", None)
        self.timezone = timezone or getattr(config, "timezone", None) or "Asia/Shanghai"
        self.scenario_name = scenario_name
        self.scenario_digest = scenario_digest
        self.stop = _Stop(stop_event)
        self.progress = progress
        self.linger = linger
        self.tick_s = tick_s
        self.max_step_s = max_step_s
        self.flush_every_s = flush_every_s
        self.status_every_s = status_every_s
        self.echo = echo
        self.stations = list(world.stations)
        station_cfg = {s.station_id: s for s in getattr(config, "stations", ())}
        if rtu_station_ids is None:
            self.rtu = {sid for sid in self.stations
                        if getattr(station_cfg.get(sid), "transport", "tcp") == "rtu"}
        else:
            self.rtu = set(rtu_station_ids)
            unknown = sorted(self.rtu - set(self.stations))
            if unknown:
                raise ValueError(f"rtu_station_ids: unknown stations {unknown}; "
                                 f"the world has {self.stations}")
        self.dialects = {sid: getattr(station_cfg.get(sid), "dialect", "int_be")
                         for sid in self.stations}
        self.clock = WorldClock(world)
        self.fleet = DeviceFleet(world, self.dialects, clock=self.clock, timezone=self.timezone,
                                 depth=fifo_depth)
        self.fleet.set_silences(tuple(silences))
        self.paused = False  # max compression: held at the high-water mark
        # max compression: wall seconds the world was held, per station whose FIFO held it
        self.held_s: dict[str, float] = {}
        self._held_since: tuple[str, float] | None = None
        self.pacer = Pacer(pace, default=compression, ceiling=max_compression)
        # controlled: the world holds at its start until the harness advances it (devices.control)
        self.control = ClockControl(world.now, controlled, self._clock_status)
        self.controlled = controlled
        self.emitted: list[tuple] = []  # records that appeared inside a latency window
        self._ledger_arg = ledger
        self.truth: Any = None
        self.servers: list[StationServer] = []
        self.ptys: list[PtyPair] = []
        self.endpoints: dict = {}
        self.result: ServeResult | None = None

    async def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.truth = _make_ledger(self._ledger_arg, self.world, self.out, self.scenario_name,
                                  self.scenario_digest)
        if self.truth is not None:
            # before the fleet: the ledger sees a record before the overflow event it may cause
            self.truth.attach(self.world)
        self.fleet.attach()
        if any(w.latency for w in self.pacer.windows):
            self.world.add_listener(self._note_emitted)
        if hasattr(self.world, "add_truth_listener"):
            (self.out / INPUTS_FILE).unlink(missing_ok=True)  # this run's documents only
            self.world.add_truth_listener(self._note_input)
        reason = "interrupted"
        try:
            self.endpoints = await self._start_servers()
            if self.controlled:
                port = await self.control.start(self.host)
                self.endpoints["control"] = {"host": self.host, "port": port}
            _write_json(self.out / "endpoints.json", self.endpoints)
            self._write_status("running")
            if self.echo:
                print(json.dumps(self.endpoints, indent=2, ensure_ascii=False), flush=True)
            reason = await self._drive()
        except Exception:
            reason = "error"
            raise
        finally:
            await self._shutdown(reason)

    async def _shutdown(self, reason: str) -> None:
        await self.control.stop()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.stop()
        for pty in self.ptys:
            pty.stop()
        fleet = self.fleet
        self._save_drops()
        if any(w.latency for w in self.pacer.windows):
            self._save_emitted()
        summary = fleet.summary()
        self._note_held(None)  # the hold in progress counts up to the stop, not to its last pass
        _write_json(self.out / "devices.json", {
            "stop_reason": reason, "sim_time": self.world.now, "fifo_depth": self.fifo_depth,
            "high_water": self.high_water, "drops": len(fleet.drops),
            "held_s": {sid: round(s, 3) for sid, s in sorted(self.held_s.items())},
            "devices": summary})
        self._write_status(reason)
        if self.truth is not None:
            self.truth.close()  # complete only if the world finished
        self.result = ServeResult(reason, self.world.now, self.endpoints, len(fleet.drops),
                                  fleet.backlog(), summary)

    async def _start_servers(self) -> dict:
        entries: dict[str, dict] = {}
        for i, sid in enumerate(self.stations):
            server = StationServer(sid, self.fleet.by_station[sid])
            if sid in self.rtu:
                pty = PtyPair(self.out / "tty", sid)
                self.ptys.append(pty)
                pty.start()
                await server.start_rtu(pty.device_path)
                entry: dict[str, Any] = {"transport": "rtu", "serial_port": pty.collector_path,
                                         **RTU_SERIAL}
            else:
                port = await server.start_tcp(self.host, self.port_base + i if self.port_base else 0)
                entry = {"transport": "tcp", "host": self.host, "port": port}
            self.servers.append(server)
            entry["dialect"] = self.dialects[sid]
            entry["devices"] = [_device_entry(d) for d in self.fleet.by_station[sid]]
            entries[sid] = entry
        return {"format": ENDPOINTS_FORMAT, "scenario": self.scenario_name,
                "compression": "max" if self.compression is None else self.compression,
                "timezone": self.timezone, "stations": entries}

    async def _drive(self) -> str:
        world, fleet, stop = self.world, self.fleet, self.stop
        loop = asyncio.get_running_loop()
        sim0 = world.now
        total = world.end - sim0
        last_flush = last_progress = last_status = time.monotonic()
        while True:
            if stop():
                return "stopped"
            if world.finished:
                self._report(sim0, total)
                if not self.linger:
                    return "finished"
                if time.monotonic() - last_status >= self.status_every_s:
                    self._write_status("finished")
                    last_status = time.monotonic()
                await asyncio.sleep(self.tick_s)
                continue
            target, flow = self.pacer.target(world.now, loop.time(), self.max_step_s)
            if self.control.holding(world.now):
                self.pacer.reset()  # wall time spent held is not owed to the world afterwards
                target, flow = world.now, False
            target = self.control.limit(target)
            if flow:
                holder = fleet.at_high_water(self.high_water, self.pacer.exempt(world.now))
                self._note_held(holder)
                if holder is not None:
                    target = world.now
            stepped = False
            while world.now < min(target, world.end) and not stop():
                world.run_until(min(target, world.now + self.max_step_s))
                self.clock.stepped()
                stepped = True
                await asyncio.sleep(0)  # let the servers answer between steps
                if flow:
                    break
            now = time.monotonic()
            if now - last_flush >= self.flush_every_s:
                self._save_drops()
                if self.truth is not None:
                    self.truth.flush_in_background()
                last_flush = now
            if now - last_progress >= 0.2:
                self._report(sim0, total)
                last_progress = now
            if now - last_status >= self.status_every_s:
                self._write_status("finished" if world.finished else "running")
                last_status = now
            if not stepped or not flow:
                await asyncio.sleep(self.tick_s)

    def _note_held(self, holder: str | None) -> None:
        """Account wall time the world waits for a station's collector (flow control)."""
        now = time.monotonic()
        if self._held_since is not None:
            sid, since = self._held_since
            self.held_s[sid] = self.held_s.get(sid, 0.0) + now - since
        self._held_since = None if holder is None else (holder, now)
        self.paused = holder is not None

    def _note_emitted(self, station_id: str, device: str, stream: str, record: Any) -> None:
        win = self.pacer.window(self.world.now)
        if win is None or not win.latency:
            return
        t = getattr(record, "start_time", None)
        t = record.time if t is None else t
        self.emitted.append((station_id, device, stream, int(record.seq), float(t), time.time()))

    def _save_emitted(self) -> None:
        """emitted.parquet: when each record of a latency window appeared (wall clock)."""
        cols: list[Any] = list(zip(*self.emitted, strict=True)) if self.emitted else [[]] * 6
        table = pa.table({"station_id": pa.array(cols[0], pa.string()),
                          "device": pa.array(cols[1], pa.string()),
                          "stream": pa.array(cols[2], pa.string()),
                          "seq": pa.array(cols[3], pa.int32()),
                          "time": pa.array(cols[4], pa.float64()),
                          "emitted_wall": pa.array(cols[5], pa.float64())})
        pq.write_table(table, self.out / "emitted.parquet")

    def _note_input(self, station_id: str, kind: str, record: Any) -> None:
        """Append a document another party produced (kind "verification_record") to
        inputs.jsonl, at once: {kind, sim_time, station_id, device, nozzle, performed_at,
        body (the JSON text to POST)}."""
        if kind not in INPUT_KINDS:
            return
        line = {"kind": kind, "sim_time": self.world.now, "station_id": station_id,
                "device": getattr(record, "device", None),
                "nozzle": getattr(record, "nozzle", None),
                "performed_at": getattr(record, "performed_at", None),
                "body": getattr(record, "body", None)}
        with open(self.out / INPUTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _save_drops(self) -> None:
        """fifo_drops goes into the ledger (listed in its manifest) or, without one, beside it."""
        table = drops_table(self.fleet.drops)
        if self.truth is not None and hasattr(self.truth, "set_extra_table"):
            self.truth.set_extra_table("fifo_drops", table)
        else:
            tmp = self.out / ".fifo_drops.parquet.partial"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self.out / "fifo_drops.parquet")

    def _write_status(self, state: str) -> None:
        """status.json: where the world is and what the FIFOs hold (docs/register-map.md §12)."""
        stations: dict[str, dict[str, int]] = {}
        for (sid, _key), dev in self.fleet.devices.items():
            st = stations.setdefault(sid, {"pushed": 0, "acknowledged": 0, "dropped": 0,
                                           "pending": 0})
            for ch in dev.channels.values():
                st["pushed"] += ch.fifo.pushed
                st["acknowledged"] += ch.fifo.released
                st["dropped"] += ch.fifo.dropped
                st["pending"] += ch.fifo.pending
        world = self.world
        _write_json(self.out / "status.json", {
            "format": STATUS_FORMAT, "state": state, "pid": os.getpid(),
            "updated_at": time.time(), "sim_time": world.now,
            "start": getattr(world, "start", None), "end": world.end, "finished": bool(world.finished), "paused": self.paused,
            "compression": "max" if self.compression is None else self.compression,
            "horizon": self.control.horizon,
            "backlog": sum(st["pending"] for st in stations.values()),
            "drops": len(self.fleet.drops), "silent": self.fleet.silent_now(),
            "stations": stations})

    def _clock_status(self) -> dict[str, Any]:
        world = self.world
        return {"sim_time": world.now, "end": world.end, "finished": bool(world.finished),
                "paused": self.paused, "backlog": self.fleet.backlog(),
                "held_by": self._held_since[0] if self._held_since else None}

    def _report(self, sim0: float, total: float) -> None:
        if self.progress is not None:
            self.progress(self.world.now - sim0, total, f"backlog {self.fleet.backlog()}")


INPUTS_FILE = "inputs.jsonl"
INPUT_KINDS = ("verification_record",)


def _make_ledger(ledger: Any, world: Any, out: Path, scenario_name: str,
                 scenario_digest: str | None) -> Any:
    if ledger != "default":
        return ledger
    from sim.ledger import Ledger

    return Ledger(out, world.config, station_ids=world.stations,
                  scenario_name=scenario_name or None, scenario_digest=scenario_digest)


def _device_entry(dev) -> dict:
    if dev.kind == "tank_gauge":
        units = {"tanks": [t.tank for t in dev.view.tanks]}
    else:
        units = {"nozzles": [n.nozzle for n in dev.view.nozzles]}
    return {"device": dev.device, "kind": dev.kind, "unit_id": dev.unit_id,
            "profile": dev.profile.profile, **units}


def drops_table(drops: list[DropRow]) -> pa.Table:
    """Records lost to FIFO overflow: never served to any collector."""
    return pa.table({
        "station_id": [d.station_id for d in drops],
        "device": [d.device for d in drops],
        "stream": [d.stream for d in drops],
        "seq": [d.seq for d in drops],
        "time": [d.time for d in drops],
        "dropped_total": [d.dropped_total for d in drops],
    }, schema=DROPS_SCHEMA)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
