"""The detection service: a thread that keeps every active station's detection up to date
with its watermark, in the platform's detection worker (central/detectors/worker.py) or,
with `forecourt platform --detection thread`, in the platform's own process.

Every `interval_s` (wall clock; `--detect-interval`, default 1 s) it computes each
station's watermark (central/detectors/watermark.py) and picks a checkpoint:

- while the watermark moves, the latest point of the local checkpoint grid at or below it
  (local midnight + n × `step_s`, default 1 h of device time) — daily statistics are
  decided at local midnights, record-level checks at most an hour late, and a station is
  evaluated at most once per grid step however fast data arrives;
- once the watermark has not moved for `still_s` (5 s of wall time, longer than the
  harness's 2-second heartbeats that move it while data arrives: the data has stopped,
  e.g. the run is drained), the watermark itself, so `evaluated_through` reaches the end
  of the data.

It evaluates when the checkpoint is past the station's `evaluated_through`, never beyond
the watermark. Results do not depend on the checkpoints chosen (detectors are causal).
`stop()` ends the thread after the station it is evaluating.

**Budget** (`--detect-budget`, default 0.05): while a station's data still moves, its
evaluations may use at most that share of the thread's wall time, as a token bucket (credit
grows by `budget` s per wall second, at most `BURST_S`; an evaluation spends what it took;
none starts in debt). Stations are visited least recently evaluated first, so a skipped one
comes first next time. An evaluation costs in proportion to the station's history, so in a
run compressed 15 000× the grid's 46 evaluations per wall second would otherwise take a
whole core from the ingest and the rest of the chain. What the budget defers is only *when* a decision is made on the wall clock: its `as_of` and dedup key come from the
data (causality above). Once *no* station's watermark has moved for `still_s` (the data
has stopped, e.g. a run drained), every station is evaluated through its watermark
whatever the credit, so the end of a run is never left unevaluated. A station that stands
still while others still move — in a compressed run, every station but the one draining
while the world waits for a FIFO — pays from the budget like any other: otherwise each such
wait of 5 s would evaluate all 46 stations in debt (in the banner's 180-day run that kept
detection at a quarter of a core whatever the budget). At real-time pace the grid asks far
less than the budget and it never binds. The default was 0.25 until banner run 14: at 0.05
the platform used 626 s of CPU instead of 753 s (run 13), the final evaluations took 75 s
instead of 90 s, and the run was accepted with all 21 requirements passing
(docs/performance.md).

Each pass also compares the sales of every station whose tax declarations or watermark
changed with its declarations (以销核税, central/tax.py) and raises a `tax_under_declaration`
alert for each flagged period whose data is complete — not with `--no-detect` (no alert at
all) nor `--no-tax` (no comparison).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from central import tax
from central.db import Conn, Database
from central.detectors.base import DayGrid, Settings
from central.detectors.runner import evaluate_station, progress, record_progress
from central.detectors.watermark import station_watermark

log = logging.getLogger(__name__)


def checkpoint(watermark: int, settings: Settings, step_s: int) -> int:
    """The latest grid point (local midnight + n × step_s) at or below the watermark."""
    ctx = settings.context()
    midnight = DayGrid(ctx.zone, watermark, watermark).start(0)
    return midnight + ((watermark - midnight) // step_s) * step_s


BURST_S = 2.0  # s of evaluation credit kept at most (the budget's bucket)


class DetectionService:
    def __init__(self, db: Database, settings: Settings, interval_s: float = 1.0,
                 step_s: int = 3600, clock: Callable[[], float] = time.time,
                 budget: float = 0.05, still_s: float = 5.0,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.check_options(interval_s, budget)
        self.db = db
        self.settings = settings
        self.interval_s = interval_s
        self.step_s = step_s
        self.clock = clock
        self.budget = budget
        self.still_s = still_s
        self.timer = timer
        self.evaluations = 0
        self.deferred = 0  # evaluations put off by the budget
        self.alerts = 0
        self.last_error: str | None = None
        self._seen: dict[str, tuple[int, float]] = {}  # station → (watermark, seen since)
        self._moved_at = timer()  # the last time any station's watermark moved
        self._credit = BURST_S
        self._refilled = timer()
        self._last_eval: dict[str, float] = {}  # station → timer() of its last evaluation
        self._tax = tax.TaxAlerter(settings.context().zone)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def check_options(interval_s: float, budget: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"detect interval must be > 0 s, got {interval_s!r}")
        if not 0 < budget <= 1:
            raise ValueError(f"detect budget must be in (0, 1], got {budget!r}")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="detection", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("detection thread did not stop within %.0f s", timeout)

    def _run(self) -> None:
        conn: Conn | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self.db.connect()
                self.run_once(conn)
                self.last_error = None
            except Exception as exc:  # keep the platform up; retry on the next tick
                log.exception("detection pass failed")
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if conn is not None:
                    conn.rollback_quietly()
                    conn.close()
                    conn = None
            self._stop.wait(self.interval_s)
        if conn is not None:
            conn.close()

    # -- one pass ----------------------------------------------------------------------------
    def run_once(self, conn: Conn) -> dict[str, list[str]]:
        """Evaluate every active station whose checkpoint advanced; new alert ids by station."""
        raised: dict[str, list[str]] = {}
        stations = sorted((r[0] for r in conn.query(
            "SELECT station_id FROM stations WHERE active = 1 ORDER BY station_id")),
            key=lambda sid: self._last_eval.get(sid, -1.0))
        now = self.timer()
        self._credit = min(BURST_S, self._credit + self.budget * (now - self._refilled))
        self._refilled = now
        for sid in stations:
            if self._stop.is_set():
                break
            ids = self.run_station(conn, sid) + self.run_tax(conn, sid)
            if ids:
                raised[sid] = ids
        return raised

    def run_tax(self, conn: Conn, station_id: str) -> list[str]:
        """Compare the station's newly complete or newly declared periods; new alerts."""
        if not (self.settings.tax and self.settings.detect):
            return []
        ids = self._tax.run(conn, station_id, self.clock())
        self.alerts += len(ids)
        return ids

    def run_station(self, conn: Conn, station_id: str) -> list[str]:
        wm = station_watermark(conn, station_id, self.settings)
        stored, evaluated = progress(conn, station_id)
        candidates = [w for w in (wm.watermark, stored) if w is not None]
        if not candidates:
            return []
        water = max(candidates)
        now = self.timer()
        seen, since = self._seen.get(station_id, (None, now))
        if seen != water:
            self._seen[station_id] = (water, now)
            self._moved_at = now
        still = seen == water and now - since >= self.still_s
        through = water if still else checkpoint(water, self.settings, self.step_s)
        all_still = still and now - self._moved_at >= self.still_s
        if evaluated is not None and (through <= evaluated
                                      or (not all_still and self._credit <= 0)):
            if through > evaluated:
                self.deferred += 1  # the budget is spent: later, or once the data stands still
            if stored is None or water > stored:
                with conn.transaction():
                    record_progress(conn, station_id, water, evaluated, self.clock(), None,
                                    wm.excluded)
            return []
        started = self.timer()
        ids = evaluate_station(conn, station_id, through, self.settings, watermark=wm,
                               now=self.clock)
        self._last_eval[station_id] = ended = self.timer()
        self._credit -= ended - started
        self.evaluations += 1
        self.alerts += len(ids)
        return ids
