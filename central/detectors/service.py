"""The detection service: a thread in `forecourt platform` that keeps every active
station's detection up to date with its watermark.

Every `interval_s` (wall clock; `--detect-interval`, default 1 s) it computes each
station's watermark (central/detectors/watermark.py) and picks a checkpoint:

- while the watermark moves, the latest point of the local checkpoint grid at or below it
  (local midnight + n × `step_s`, default 1 h of device time) — daily statistics are
  decided at local midnights, record-level checks at most an hour late, and a station is
  evaluated at most once per grid step however fast data arrives;
- once the watermark has stood still for one tick (the run is drained), the watermark
  itself, so `evaluated_through` reaches the end of the data.

It evaluates when the checkpoint is past the station's `evaluated_through`, never beyond
the watermark. Results do not depend on the checkpoints chosen (detectors are causal).
`stop()` ends the thread after the station it is evaluating.

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


class DetectionService:
    def __init__(self, db: Database, settings: Settings, interval_s: float = 1.0,
                 step_s: int = 3600, clock: Callable[[], float] = time.time) -> None:
        if not interval_s > 0:
            raise ValueError(f"detect interval must be > 0 s, got {interval_s!r}")
        self.db = db
        self.settings = settings
        self.interval_s = interval_s
        self.step_s = step_s
        self.clock = clock
        self.evaluations = 0
        self.alerts = 0
        self.last_error: str | None = None
        self._seen: dict[str, int] = {}
        self._tax = tax.TaxAlerter(settings.context().zone)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        stations = [r[0] for r in conn.query(
            "SELECT station_id FROM stations WHERE active = 1 ORDER BY station_id")]
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
        still = self._seen.get(station_id) == water
        self._seen[station_id] = water
        through = water if still else checkpoint(water, self.settings, self.step_s)
        if evaluated is not None and through <= evaluated:
            if stored is None or water > stored:
                with conn.transaction():
                    record_progress(conn, station_id, water, evaluated, self.clock(), None,
                                    wm.excluded)
            return []
        ids = evaluate_station(conn, station_id, through, self.settings, watermark=wm,
                               now=self.clock)
        self.evaluations += 1
        self.alerts += len(ids)
        return ids
