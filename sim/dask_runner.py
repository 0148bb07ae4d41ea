"""`simulate` over a dask.distributed cluster (issue 11): city-scale worlds.

    simulate(config, out, scheduler="dask", workers=4)            # a LocalCluster of 4 processes
    simulate(config, out, scheduler="tcp://10.0.0.5:8786")        # a running cluster

Stations are independent, so each is one task (`simulate_station` on a worker). The parent
keeps at most `in_flight` stations submitted and not yet written (4 per worker thread, at
least 16, by default), and writes each station's truth as soon as every station before it in world order
is written — the same bytes as the multiprocessing runner, whatever the cluster. Progress
advances one station at a time (a task reports nothing while it runs).

dask is an optional dependency (`pip install 'forecourt-hil[dask]'`), imported only here and
only when a dask scheduler is asked for.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sim.config import WorldConfig
from sim.ledger import StationColumns, TruthWriter

PROCESSES, LOCAL = "processes", "dask"
ADDRESS = re.compile(r"^(tcp|tls)://[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
CONNECT_TIMEOUT_S = 10.0  # a scheduler that does not answer (or has no worker) within this
# Stations submitted and not yet written. Stations differ (a port station costs 5 times a
# rural one), so a window of a few per worker keeps the workers busy while the parent waits
# for the next station in world order; each held result is about 20 MB per 180 days.
IN_FLIGHT_PER_THREAD, IN_FLIGHT_MIN = 4, 16
INSTALL_HINT = "pip install 'forecourt-hil[dask]' (or: pip install dask distributed)"


class SchedulerError(RuntimeError):
    """The dask scheduler cannot be used: dask missing, no answer, no workers."""


def check_scheduler(text: str) -> str:
    """`processes`, `dask` or a scheduler address tcp://HOST:PORT (tls:// too); ValueError else."""
    if text in (PROCESSES, LOCAL) or ADDRESS.match(text):
        return text
    raise ValueError(f"expected 'processes' (the default), 'dask' (a local dask cluster) or a "
                     f"dask scheduler address such as tcp://127.0.0.1:8786, got {text!r}")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise SchedulerError(f"a dask scheduler needs dask.distributed, which is not installed "
                             f"({exc}); {INSTALL_HINT}") from None
    return distributed


@contextmanager
def open_client(scheduler: str, workers: int,
                connect_timeout_s: float | None = None) -> Iterator[Any]:
    """A dask Client: on a new LocalCluster of `workers` processes (`dask`) or connected to
    the scheduler at an address (SchedulerError if none answers, or it has no worker, within
    `connect_timeout_s`, default CONNECT_TIMEOUT_S). Closes what it opened."""
    distributed = _distributed()
    if connect_timeout_s is None:
        connect_timeout_s = CONNECT_TIMEOUT_S
    with _quiet(), ExitStack() as stack:
        if scheduler == LOCAL:
            # loopback only; the dashboard (always served) on a free port, not 8787
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", silence_logs=_level())
            stack.callback(cluster.close)
            client = distributed.Client(cluster, set_as_default=False)
        else:
            try:
                client = distributed.Client(scheduler, timeout=connect_timeout_s,
                                            set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise SchedulerError(f"no dask scheduler answered at {scheduler} within "
                                     f"{connect_timeout_s:g} s ({exc}); start one with `dask "
                                     f"scheduler` and workers with `dask worker {scheduler}`"
                                     ) from None
        try:
            try:
                client.wait_for_workers(1, timeout=connect_timeout_s)
            except TimeoutError:
                raise SchedulerError(f"the dask scheduler at {client.scheduler.address} has no "
                                     f"worker after {connect_timeout_s:g} s; start some with "
                                     f"`dask worker {client.scheduler.address}`") from None
            yield client
        finally:
            client.close()


def _level() -> int:
    """The log level asked for (`forecourt --log-level`, WARNING by default): distributed
    sets its own loggers to INFO, which would flood a user's terminal."""
    return max(logging.getLogger().getEffectiveLevel(), logging.WARNING)


@contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("distributed")
    saved = logger.level
    logger.setLevel(_level())
    try:
        yield
    finally:
        logger.setLevel(saved)


def station_task(config: WorldConfig, station_id: str) -> StationColumns:
    """One station on a worker; a failure says which station (the worker's traceback kept)."""
    from sim.runner import simulate_station  # sim.runner imports this module lazily

    try:
        return simulate_station(config, station_id)
    except Exception:
        raise RuntimeError(f"station {station_id} failed on a dask worker:\n"
                           f"{traceback.format_exc()}") from None


def run_dask(config: WorldConfig, order: list[str], writer: TruthWriter,
             until: dict[str, float | None], advance: Callable[[float], None], *,
             scheduler: str, workers: int, in_flight: int | None = None) -> None:
    """Simulate the stations of `order` on a dask cluster, writing each in world order.

    Fills `until` as stations are written, so an interrupted run (KeyboardInterrupt) leaves
    `writer` holding every station before the first unfinished one."""
    distributed = _distributed()
    length = config.end - config.start
    with open_client(scheduler, workers) as client:
        window = in_flight or max(IN_FLIGHT_MIN, IN_FLIGHT_PER_THREAD * sum(
            client.nthreads().values()))
        shared = client.scatter(config, broadcast=True, hash=False)
        run = uuid.uuid4().hex[:8]
        station_of: dict[str, str] = {}
        futures: list[Any] = []
        done_iter = distributed.as_completed(loop=client.loop)
        todo = iter(order)

        def submit() -> None:
            sid = next(todo, None)
            if sid is not None:
                future = client.submit(station_task, shared, sid, pure=False,
                                       key=f"forecourt-station-{sid}-{run}")
                station_of[future.key] = sid
                futures.append(future)
                done_iter.add(future)

        try:
            for _ in range(window):
                submit()
            finished: dict[str, StationColumns] = {}
            written = 0
            for future in done_iter:
                sid = station_of.pop(future.key)
                finished[sid] = _result(future, sid, distributed)
                futures.remove(future)
                future.release()
                advance(length)
                while written < len(order) and order[written] in finished:
                    writer.add(order[written], finished.pop(order[written]))
                    until[order[written]] = config.end
                    written += 1
                    submit()
        finally:
            if futures:  # interrupted or failed: nothing more runs for us
                client.cancel(futures, force=True)


def _result(future: Any, station_id: str, distributed: Any) -> StationColumns:
    try:
        return future.result()
    except distributed.KilledWorker as exc:
        raise RuntimeError(f"simulate: station {station_id}: its dask worker died ({exc})"
                           ) from None
    except RuntimeError as exc:
        if str(exc).startswith(f"station {station_id} failed"):
            raise RuntimeError(f"simulate: {exc}") from None
        raise


def default_workers() -> int:
    return os.cpu_count() or 1
