"""The observe directory's state: one SQLite file (`observe.db`).

Everything one poll learns is written in one transaction (`Store.poll`), so a SIGKILL at
any instant leaves either the whole poll or none of it: no sample is lost once committed,
and none is counted twice. Records are keyed by their idempotency key and alerts by id, so
reading a record again (a resumed walk, an overlapping window) changes nothing; each daily
figure is recomputed from the stored rows of its day, never incremented by a replay.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from acceptance.observing.aggregate import (
    covered_span,
    day_bounds,
    local_day,
    next_day,
    order_chain,
    percentile,
    sequence_figures,
    split_span,
    totalizer_figures,
)

DB_FILE = "observe.db"
SCHEMA_VERSION = "1"
# the time field of each record resource (docs/platform-api.md §4)
STREAM_TIME = {"transactions": "end_time", "inventory": "device_time",
               "deliveries": "end_time", "events": "device_time"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS polls (
  poll INTEGER PRIMARY KEY, at REAL NOT NULL, ok INTEGER NOT NULL, error TEXT,
  new_records INTEGER NOT NULL DEFAULT 0, errors TEXT);
CREATE TABLE IF NOT EXISTS stations (
  station_id TEXT PRIMARY KEY, name TEXT, town TEXT, ownership TEXT, active INTEGER,
  dispensers INTEGER, nozzles INTEGER, tanks INTEGER);
CREATE TABLE IF NOT EXISTS samples (
  poll INTEGER NOT NULL, station_id TEXT NOT NULL, online INTEGER NOT NULL,
  collector_online INTEGER, offline_devices TEXT, PRIMARY KEY (poll, station_id));
CREATE TABLE IF NOT EXISTS observed_daily (
  day TEXT PRIMARY KEY, polls INTEGER NOT NULL, ok_polls INTEGER NOT NULL,
  covered_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS availability_daily (
  station_id TEXT NOT NULL, day TEXT NOT NULL, samples INTEGER NOT NULL,
  online INTEGER NOT NULL, PRIMARY KEY (station_id, day));
CREATE TABLE IF NOT EXISTS records (
  key TEXT PRIMARY KEY, stream TEXT NOT NULL, station_id TEXT NOT NULL, device TEXT NOT NULL,
  seq INTEGER NOT NULL, t REAL NOT NULL, day TEXT NOT NULL, nozzle INTEGER,
  volume_ml INTEGER, volume_total_ml INTEGER, received_at REAL, first_poll INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_series ON records (station_id, device, stream, t);
CREATE INDEX IF NOT EXISTS records_day ON records (station_id, day);
CREATE TABLE IF NOT EXISTS cursors (
  stream TEXT NOT NULL, station_id TEXT NOT NULL, settled REAL,
  PRIMARY KEY (stream, station_id));
CREATE TABLE IF NOT EXISTS sequence_daily (
  station_id TEXT NOT NULL, device TEXT NOT NULL, stream TEXT NOT NULL, day TEXT NOT NULL,
  records INTEGER NOT NULL, gaps INTEGER NOT NULL, missing INTEGER NOT NULL,
  repeats INTEGER NOT NULL, out_of_order INTEGER NOT NULL,
  PRIMARY KEY (station_id, device, stream, day));
CREATE TABLE IF NOT EXISTS totalizer_daily (
  station_id TEXT NOT NULL, device TEXT NOT NULL, nozzle INTEGER NOT NULL, day TEXT NOT NULL,
  fills INTEGER NOT NULL, volume_ml INTEGER NOT NULL, breaks INTEGER NOT NULL,
  unexplained_ml INTEGER NOT NULL, resets INTEGER NOT NULL,
  PRIMARY KEY (station_id, device, nozzle, day));
CREATE TABLE IF NOT EXISTS latency_daily (
  station_id TEXT NOT NULL, day TEXT NOT NULL, records INTEGER NOT NULL, p50_s REAL,
  p95_s REAL, max_s REAL, PRIMARY KEY (station_id, day));
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, station_id TEXT, kind TEXT, severity TEXT, raised_at REAL,
  as_of REAL, status TEXT, confirmed_at REAL, status_changed_at REAL,
  first_poll INTEGER NOT NULL, last_poll INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alert_statuses (
  id TEXT NOT NULL, status TEXT NOT NULL, first_seen_at REAL NOT NULL,
  PRIMARY KEY (id, status));
"""


class StoreError(RuntimeError):
    """The observe directory's state cannot be used (names the file and the problem)."""


@dataclass
class PollData:
    """What one poll learnt, written by `Store.poll` in one transaction."""

    at: float
    ok: bool  # the platform answered GET /api/v1/stations
    error: str | None = None
    stations: list[dict[str, Any]] = field(default_factory=list)  # registry rows
    samples: dict[str, tuple[bool, bool | None, list[str]]] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # stream → items
    settled: dict[tuple[str, str], float] = field(default_factory=dict)  # (stream, sid) → t
    alerts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # resources that failed (not fatal)


class Store:
    def __init__(self, directory: Path, timezone: str = "Asia/Shanghai") -> None:
        self.path = Path(directory) / DB_FILE
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable observe state ({exc})") from None
        self.tz = ZoneInfo(timezone)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta -------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                          "DO UPDATE SET value = excluded.value", sorted(values.items()))

    def settled(self) -> dict[tuple[str, str], float | None]:
        return {(s, sid): t for s, sid, t in
                self.conn.execute("SELECT stream, station_id, settled FROM cursors")}

    def known_stations(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT station_id FROM stations ORDER BY station_id")]

    def last_poll_at(self) -> float | None:
        row = self.conn.execute("SELECT MAX(at) FROM polls").fetchone()
        return None if row[0] is None else float(row[0])

    # ---- one poll ---------------------------------------------------------------------
    def poll(self, data: PollData, gap_limit: float, crash_hook: Any = None) -> int:
        """Write everything of one poll in one transaction; returns the poll number."""
        with self.transaction() as c:
            prev_at = self.last_poll_at()
            n = int(c.execute("SELECT COALESCE(MAX(poll), 0) + 1 FROM polls").fetchone()[0])
            new = self._records(c, n, data.records)
            if crash_hook is not None:
                crash_hook(n)  # tests: die in the middle of the transaction
            c.execute("INSERT INTO polls (poll, at, ok, error, new_records, errors) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (n, data.at, int(data.ok), data.error,
                                                    new, "; ".join(data.errors) or None))
            self._stations(c, data.stations)
            self._samples(c, n, data, prev_at, gap_limit)
            for (stream, sid), t in data.settled.items():
                c.execute("INSERT INTO cursors (stream, station_id, settled) VALUES (?, ?, ?) "
                          "ON CONFLICT (stream, station_id) DO UPDATE SET "
                          "settled = MAX(COALESCE(settled, excluded.settled), excluded.settled)",
                          (stream, sid, t))
            self._alerts(c, n, data.at, data.alerts)
        return n

    def _stations(self, c: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
        c.executemany(
            "INSERT INTO stations VALUES (:station_id, :name, :town, :ownership, :active, "
            ":dispensers, :nozzles, :tanks) ON CONFLICT (station_id) DO UPDATE SET "
            "name = excluded.name, town = excluded.town, ownership = excluded.ownership, "
            "active = excluded.active, dispensers = excluded.dispensers, "
            "nozzles = excluded.nozzles, tanks = excluded.tanks", rows)

    def _samples(self, c: sqlite3.Connection, n: int, data: PollData, prev_at: float | None,
                 gap_limit: float) -> None:
        day = local_day(data.at, self.tz)
        a, b = covered_span(prev_at, data.at, gap_limit)
        for d, secs in split_span(a, b, self.tz) or [(day, 0.0)]:
            c.execute("INSERT INTO observed_daily VALUES (?, 0, 0, ?) ON CONFLICT (day) "
                      "DO UPDATE SET covered_s = covered_s + excluded.covered_s", (d, secs))
        c.execute("UPDATE observed_daily SET polls = polls + 1, ok_polls = ok_polls + ? "
                  "WHERE day = ?", (int(data.ok), day))
        samples = data.samples
        if not data.ok:  # the platform did not answer: every known station is unavailable
            samples = {sid: (False, None, []) for sid in self.known_stations()}
        for sid, (online, collector, offline) in sorted(samples.items()):
            c.execute("INSERT INTO samples VALUES (?, ?, ?, ?, ?)",
                      (n, sid, int(online), None if collector is None else int(collector),
                       ",".join(offline) or None))
            c.execute("INSERT INTO availability_daily VALUES (?, ?, 1, ?) ON CONFLICT "
                      "(station_id, day) DO UPDATE SET samples = samples + 1, "
                      "online = online + excluded.online", (sid, day, int(online)))

    def _records(self, c: sqlite3.Connection, n: int,
                 records: dict[str, list[dict[str, Any]]]) -> int:
        new = 0
        touched: set[tuple[str, str, str, str]] = set()
        nozzles: set[tuple[str, str, int, str]] = set()
        latency: set[tuple[str, str]] = set()
        for stream, items in records.items():
            tf = STREAM_TIME[stream]
            for it in items:
                t = float(it[tf])
                day = local_day(t, self.tz)
                cur = c.execute(
                    "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (it["key"], stream, it["station_id"], it["device"], int(it["seq"]), t,
                     day, it.get("nozzle"), it.get("volume_ml"), it.get("volume_total_ml"),
                     it.get("received_at"), n))
                if cur.rowcount != 1:
                    continue  # already stored: a replay changes nothing
                new += 1
                touched.add((it["station_id"], it["device"], stream, day))
                latency.add((it["station_id"], day))
                if stream == "transactions" and it.get("nozzle") is not None:
                    nozzles.add((it["station_id"], it["device"], int(it["nozzle"]), day))
        for sid, dev, stream, day in touched:  # a late record may change the next day too
            for d in (day, next_day(day)):
                self._sequence_day(c, sid, dev, stream, d)
        for sid, dev, noz, day in nozzles:
            for d in (day, next_day(day)):
                self._totalizer_day(c, sid, dev, noz, d)
        for sid, day in latency:
            self._latency_day(c, sid, day)
        return new

    def _sequence_day(self, c: sqlite3.Connection, sid: str, dev: str, stream: str,
                      day: str) -> None:
        lo, hi = day_bounds(day, self.tz)
        rows = c.execute("SELECT t, seq FROM records WHERE station_id = ? AND device = ? AND "
                         "stream = ? AND t >= ? AND t < ?", (sid, dev, stream, lo, hi)).fetchall()
        if not rows:
            return
        before = c.execute("SELECT t, seq FROM records WHERE station_id = ? AND device = ? "
                           "AND stream = ? AND t < ? AND t >= (SELECT MAX(t) FROM records "
                           "WHERE station_id = ? AND device = ? AND stream = ? AND t < ?)",
                           (sid, dev, stream, lo, sid, dev, stream, lo)).fetchall()
        # the last of the records before the day, in chain order
        prev = _last_in_chain(c, sid, dev, stream, before) if before else None
        f = sequence_figures(rows, prev)
        c.execute("INSERT OR REPLACE INTO sequence_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (sid, dev, stream, day, f.records, f.gaps, f.missing, f.repeats,
                   f.out_of_order))

    def _totalizer_day(self, c: sqlite3.Connection, sid: str, dev: str, noz: int,
                       day: str) -> None:
        lo, hi = day_bounds(day, self.tz)
        rows = c.execute("SELECT t, seq, volume_ml, volume_total_ml FROM records WHERE "
                         "stream = 'transactions' AND station_id = ? AND device = ? AND "
                         "nozzle = ? AND t >= ? AND t < ? AND volume_ml IS NOT NULL AND "
                         "volume_total_ml IS NOT NULL", (sid, dev, noz, lo, hi)).fetchall()
        if not rows:
            return
        before = c.execute("SELECT volume_total_ml FROM records WHERE stream = 'transactions' "
                           "AND station_id = ? AND device = ? AND nozzle = ? AND t < ? AND "
                           "volume_total_ml IS NOT NULL ORDER BY t DESC, seq DESC LIMIT 1",
                           (sid, dev, noz, lo)).fetchone()
        f = totalizer_figures(rows, None if before is None else int(before[0]))
        c.execute("INSERT OR REPLACE INTO totalizer_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (sid, dev, noz, day, f.fills, f.volume_ml, f.breaks, f.unexplained_ml,
                   f.resets))

    def _latency_day(self, c: sqlite3.Connection, sid: str, day: str) -> None:
        lat = [float(r[0]) for r in c.execute(
            "SELECT received_at - t FROM records WHERE station_id = ? AND day = ? AND "
            "received_at IS NOT NULL", (sid, day))]
        c.execute("INSERT OR REPLACE INTO latency_daily VALUES (?, ?, ?, ?, ?, ?)",
                  (sid, day, len(lat), percentile(lat, 50), percentile(lat, 95),
                   max(lat) if lat else None))

    def _alerts(self, c: sqlite3.Connection, n: int, at: float,
                alerts: Iterable[dict[str, Any]]) -> None:
        for a in alerts:
            aid = str(a.get("id"))
            c.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET status = excluded.status, confirmed_at = excluded.confirmed_at, "
                "status_changed_at = excluded.status_changed_at, last_poll = excluded.last_poll",
                (aid, a.get("station_id"), a.get("kind"), a.get("severity"), a.get("raised_at"),
                 a.get("as_of"), a.get("status"), a.get("confirmed_at"),
                 a.get("status_changed_at"), n, n))
            c.execute("INSERT OR IGNORE INTO alert_statuses VALUES (?, ?, ?)",
                      (aid, str(a.get("status")), at))


def _last_in_chain(c: sqlite3.Connection, sid: str, dev: str, stream: str,
                   same_time: list[tuple[float, int]]) -> int:
    """Of several records with the same (last) device time before a day, the one last in
    chain order: ordered relative to the record before them."""
    t0 = same_time[0][0]
    row = c.execute("SELECT seq FROM records WHERE station_id = ? AND device = ? AND "
                    "stream = ? AND t < ? ORDER BY t DESC, seq DESC LIMIT 1",
                    (sid, dev, stream, t0)).fetchone()
    return order_chain(same_time, None if row is None else int(row[0]))[-1][1]
