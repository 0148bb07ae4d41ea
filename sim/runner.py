"""`simulate`: run a world as fast as possible and write its ground truth.

Stations are independent, so they run in up to `workers` processes, one station per
task; the parent writes each station's truth as soon as every station before it (in
world order) is written, so the files are the same for any worker count.

`scheduler="dask"` (a dask LocalCluster of `workers` processes) or a scheduler address
(tcp://HOST:8786) shards the stations over dask.distributed instead (sim/dask_runner.py),
with the same bytes.

Ctrl-C (KeyboardInterrupt) stops the workers and leaves complete files holding every
station that had finished, with a manifest saying "complete": false and, per station,
how far it was simulated (null = not at all); the KeyboardInterrupt is then re-raised.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from sim.config import WorldConfig
from sim.ledger import (
    LEDGER_STREAMS,
    StationColumns,
    StationTruth,
    TruthWriter,
    manifest,
    write_manifest,
)
from sim.world import World, validate_world

Progress = Callable[[float, float], None]
_PROGRESS_STEP_S = 86400.0  # workers report progress once per simulated day
_POLL_S = 0.2
_JOIN_S = 5.0


def simulate_station(config: WorldConfig, station_id: str,
                     report: Callable[[float], None] | None = None) -> StationColumns:
    """Simulate one station over the whole run; returns its ground-truth columns."""
    world = World(config, [station_id])
    truth = StationTruth(station_id)
    world.add_listener(truth, streams=LEDGER_STREAMS)
    world.add_truth_listener(truth.on_truth)
    t = world.start
    while not world.finished:
        step_to = min(t + _PROGRESS_STEP_S, world.end)
        world.run_until(step_to)
        if report is not None:
            report(step_to - t)
        t = step_to
    return truth.export()


def _worker_main(conn: Connection, config: WorldConfig) -> None:
    """Worker process: simulate the stations the parent sends, one at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    while True:
        station_id = conn.recv()
        if station_id is None:
            break
        try:
            columns = simulate_station(config, station_id,
                                       lambda dt: conn.send(("progress", dt)))
        except BaseException:
            conn.send(("error", station_id, traceback.format_exc()))
            break
        conn.send(("done", station_id, columns))
    conn.close()


def simulate(config: WorldConfig, out_dir: str | os.PathLike[str], *,
             station_ids: Iterable[str] | None = None, workers: int = 2,
             progress: Progress | None = None, scenario_name: str | None = None,
             scenario_digest: str | None = None, scheduler: str = "processes") -> dict[str, Any]:
    """Simulate `config` (or the given stations) and write the ground truth to `out_dir`.

    `scheduler`: "processes" (this module's worker processes), "dask" (a dask LocalCluster
    of `workers` processes) or a dask scheduler address (its workers; `workers` unused).

    Returns the manifest (also written as manifest.json). `progress(done, total)` gets the
    simulated seconds done, averaged over the stations, and the run's length in seconds.
    """
    if workers < 1:
        raise ValueError(f"simulate: workers must be >= 1, got {workers!r}")
    if scheduler != "processes":
        from sim.dask_runner import check_scheduler

        try:
            check_scheduler(scheduler)
        except ValueError as exc:
            raise ValueError(f"simulate: scheduler: {exc}") from None
    _, order, _ = validate_world(config, station_ids)  # fail before any work starts
    out = Path(out_dir)
    total = config.end - config.start
    done = 0.0  # simulated seconds summed over stations
    until: dict[str, float | None] = dict.fromkeys(order)

    def advance(dt: float) -> None:
        nonlocal done
        done += dt
        if progress is not None:
            progress(min(done / len(order), total), total)

    writer = TruthWriter(out)
    complete = False
    try:
        if scheduler != "processes":
            from sim.dask_runner import run_dask

            run_dask(config, order, writer, until, advance, scheduler=scheduler,
                     workers=workers)
        elif workers == 1 or len(order) <= 1:
            for sid in order:
                writer.add(sid, simulate_station(config, sid, advance))
                until[sid] = config.end
        else:
            _run_workers(config, order, min(workers, len(order)), writer, until, advance)
        complete = True
    finally:
        files = writer.close()
        data = manifest(config, stations=order, complete=complete, simulated_until=until,
                        files=files, scenario_name=scenario_name,
                        scenario_digest=scenario_digest)
        write_manifest(out, data)
    return data


def _run_workers(config: WorldConfig, order: list[str], workers: int, writer: TruthWriter,
                 until: dict[str, float | None], advance: Callable[[float], None]) -> None:
    """Stations go to worker processes one at a time, in order; results are written in order.

    Each worker has its own pipe (no shared locks), so stopping a worker at any moment can
    never deadlock the parent — unlike multiprocessing.Pool.terminate()."""
    ctx = mp.get_context("spawn")  # no fork: the caller may have threads (asyncio, pytest)
    procs: list[Any] = []
    conns: list[Connection] = []
    try:
        for _ in range(workers):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child_end, config), daemon=True,
                               name="forecourt-simulate")
            proc.start()
            child_end.close()
            procs.append(proc)
            conns.append(parent_end)
        todo = iter(order)
        busy: dict[Connection, str] = {}

        def assign(conn: Connection) -> None:
            sid = next(todo, None)
            if sid is not None:
                conn.send(sid)
                busy[conn] = sid

        for conn in conns:
            assign(conn)
        finished: dict[str, StationColumns] = {}
        written = 0
        while written < len(order):
            for conn in cast(list[Connection], wait(list(busy), timeout=_POLL_S)):
                assert isinstance(conn, Connection)
                try:
                    msg = conn.recv()
                except EOFError:
                    raise RuntimeError(f"simulate: the worker simulating station {busy[conn]} "
                                       f"died") from None
                if msg[0] == "progress":
                    advance(msg[1])
                elif msg[0] == "done":
                    finished[msg[1]] = msg[2]
                    del busy[conn]
                    assign(conn)
                else:
                    raise RuntimeError(f"simulate: station {msg[1]} failed:\n{msg[2]}")
            while written < len(order) and order[written] in finished:
                sid = order[written]
                writer.add(sid, finished.pop(sid))
                until[sid] = config.end
                written += 1
        for conn in conns:
            conn.send(None)
        for proc in procs:
            proc.join(timeout=_JOIN_S)
    finally:
        for proc in procs:  # only our own workers, by their handles
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=_JOIN_S)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=_JOIN_S)
        for conn in conns:
            conn.close()
