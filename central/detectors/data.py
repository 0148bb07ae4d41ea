"""One station's stored data as numpy arrays per stream (`StationData`), loaded from the
database up to a checkpoint `through` (device clock) — or built from plain arrays in tests.

Streams and columns (units as stored: mL, fen, µm, m°C, epoch s):

- transactions: device, nozzle, tank, grade, seq, start_time, end_time, volume_ml,
  amount_fen, unit_price_fen, volume_total_ml, amount_total_fen   (time: end_time)
- inventory: device, tank, seq, device_time, product_level_um, temperature_mc,
  gross_volume_ml, volume_20c_ml, water_level_um, water_volume_ml    (time: device_time)
- deliveries: device, tank, seq, start_time, end_time, start/end_volume_20c_ml,
  start/end_gross_volume_ml, start/end_temperature_mc, bol_volume_20c_ml (NaN = not
  reported, uplink 1.0)                                               (time: end_time)
- events: device, seq, code, unit, device_time, value_old_e4, value_new_e4
- states: device, seq, device_time, serial_number, software_id, mainboard_id, encoder_id,
  seal_state, device_status
- prices (posted prices 挂牌价): grade, price_fen, valid_from — all of them (a price is
  posted ahead of its validity; it is configuration, not device data)
- records (verification/maintenance 检定/维修): id, device, nozzle (0 = whole device), kind,
  performed_at, fully_signed, valid_until (epoch s, NaN = none stated), result,
  certificate_no, seals (JSON text [{position, before, after}]), missing (signatories who
  did not sign, comma-separated)                                      (time: performed_at)
- availability (collector heartbeats per device, changes of the reported state only):
  device, online, device_time (an off-line report carries the device time of the last
  good read, so an off-line stretch runs from it to the next on-line report's)

`device_through[d]` is how far device d's data is known complete (its drained_through,
capped at `through`); a device missing there counts as complete to `through`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from central.db import Conn
from central.prices import price_schedule

INT, F, S = "int64", "float64", "str"
SPECS: dict[str, dict[str, str]] = {
    "transactions": {"device": S, "nozzle": INT, "tank": INT, "grade": S, "seq": INT,
                     "start_time": INT, "end_time": INT, "volume_ml": INT, "amount_fen": INT,
                     "unit_price_fen": INT, "volume_total_ml": INT, "amount_total_fen": INT},
    "inventory": {"device": S, "tank": INT, "seq": INT, "device_time": INT, "product_level_um": INT,
                  "temperature_mc": INT, "gross_volume_ml": INT, "volume_20c_ml": INT,
                  "water_level_um": INT, "water_volume_ml": INT},
    "deliveries": {"device": S, "tank": INT, "seq": INT, "start_time": INT, "end_time": INT,
                   "start_volume_20c_ml": INT, "end_volume_20c_ml": INT,
                   "start_gross_volume_ml": INT, "end_gross_volume_ml": INT,
                   "start_temperature_mc": INT, "end_temperature_mc": INT,
                   "bol_volume_20c_ml": F},
    "events": {"device": S, "seq": INT, "code": INT, "unit": INT, "device_time": INT,
               "value_old_e4": INT, "value_new_e4": INT},
    "states": {"device": S, "seq": INT, "device_time": INT, "serial_number": S, "software_id": S,
               "mainboard_id": S, "encoder_id": S, "seal_state": INT, "device_status": INT},
    "prices": {"grade": S, "price_fen": INT, "valid_from": F},
    "records": {"id": S, "device": S, "nozzle": INT, "kind": S, "performed_at": F,
                "fully_signed": INT, "valid_until": F, "result": S, "certificate_no": S,
                "seals": S, "missing": S},
    "availability": {"device": S, "online": INT, "device_time": F},
}
TIME_COLUMN = {"transactions": "end_time", "inventory": "device_time",
               "deliveries": "end_time", "events": "device_time", "states": "device_time",
               "records": "performed_at", "availability": "device_time"}
# Streams a device produces (sequence numbers per device stream), with their time column.
DEVICE_STREAMS = ("transactions", "inventory", "deliveries", "events")


def _array(values: Any, kind: str) -> np.ndarray:
    if kind == S:
        arr = np.asarray(values if len(values) else [], dtype=str)
        return arr if arr.size else np.array([], dtype="<U1")
    return np.asarray(values, dtype=kind).reshape(-1)


class Stream:
    """Named columns of equal length; `select` keeps rows by mask or index array."""

    def __init__(self, name: str, columns: Mapping[str, Any]) -> None:
        spec = SPECS[name]
        unknown = set(columns) - set(spec)
        if unknown:
            raise ValueError(f"stream {name}: unknown column(s) {sorted(unknown)}; "
                             f"expected {list(spec)}")
        n = None
        cols: dict[str, np.ndarray] = {}
        for col, kind in spec.items():
            if col in columns:
                cols[col] = _array(columns[col], kind)
                if n is None:
                    n = len(cols[col])
                elif len(cols[col]) != n:
                    raise ValueError(f"stream {name}: column {col} has {len(cols[col])} "
                                     f"rows, expected {n}")
        n = n or 0
        for col, kind in spec.items():
            if col not in cols:
                if kind == S:
                    cols[col] = np.full(n, "", dtype="<U1")
                elif kind == F:
                    cols[col] = np.full(n, np.nan)
                else:
                    cols[col] = np.zeros(n, dtype=np.int64)
        self.name = name
        self.columns = cols
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getattr__(self, col: str) -> np.ndarray:
        try:
            return self.__dict__["columns"][col]
        except KeyError:
            raise AttributeError(f"stream {self.__dict__.get('name')!r} has no column "
                                 f"{col!r}") from None

    def select(self, which: np.ndarray) -> Stream:
        return Stream(self.name, {c: v[which] for c, v in self.columns.items()})

    @property
    def time(self) -> np.ndarray:
        return self.columns[TIME_COLUMN[self.name]]

    @classmethod
    def from_rows(cls, name: str, rows: Sequence[Sequence[Any]]) -> Stream:
        spec = SPECS[name]
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in spec]
        out: dict[str, Any] = {}
        for (col, kind), values in zip(spec.items(), cols, strict=True):
            if kind == F:  # None → NaN
                out[col] = np.array(values, dtype=float)
            elif kind == INT:  # the queries select NOT NULL (or COALESCEd) integers
                out[col] = np.fromiter(values, dtype=np.int64, count=len(values))
            else:
                out[col] = ["" if v is None else v for v in values] if None in values \
                    else values
        return cls(name, out)


@dataclass
class StationData:
    """A station's data up to `through`, plus its registry (tanks → grade, nozzles → tank)."""

    station_id: str
    through: int
    tanks: dict[int, str]
    nozzles: dict[tuple[str, int], int]
    streams: dict[str, Stream] = field(default_factory=dict)
    device_through: dict[str, int] = field(default_factory=dict)
    # (device, time, seq) of each device stream's records timed after `through` (up to
    # LATER_S): a clock set back may have made them before records timed up to it
    later: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in SPECS:
            if name not in self.streams:
                self.streams[name] = Stream(name, {})
            elif not isinstance(self.streams[name], Stream):
                self.streams[name] = Stream(name, self.streams[name])  # type: ignore[arg-type]

    # streams by attribute
    @property
    def transactions(self) -> Stream:
        return self.streams["transactions"]

    @property
    def inventory(self) -> Stream:
        return self.streams["inventory"]

    @property
    def deliveries(self) -> Stream:
        return self.streams["deliveries"]

    @property
    def events(self) -> Stream:
        return self.streams["events"]

    @property
    def states(self) -> Stream:
        return self.streams["states"]

    @property
    def prices(self) -> Stream:
        return self.streams["prices"]

    @property
    def records(self) -> Stream:
        return self.streams["records"]

    @property
    def availability(self) -> Stream:
        return self.streams["availability"]

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices the station should report: the gauge and every dispenser."""
        return ("G",) + tuple(sorted({d for d, _ in self.nozzles}, key=_device_order))

    def complete_through(self, device: str) -> int:
        return min(self.through, self.device_through.get(device, self.through))

    def tank_devices(self, tank: int) -> tuple[str, ...]:
        return ("G",) + tuple(sorted({d for (d, _), t in self.nozzles.items() if t == tank},
                                     key=_device_order))

    def tank_complete_through(self, tank: int) -> int:
        return min(self.complete_through(d) for d in self.tank_devices(tank))

    def incomplete_devices(self, devices: Sequence[str], t: float) -> list[str]:
        return [d for d in devices if self.complete_through(d) < t]

    def cut(self, t: int) -> StationData:
        """The same station as it was known at device time t (data with time ≤ t)."""
        streams, later = {}, {}
        for name, s in self.streams.items():
            streams[name] = s.select(s.time <= t) if name in TIME_COLUMN else s
            if name in DEVICE_STREAMS:
                dev, time, seq, _ = self.made_rows(name)
                m = (time > t) & (time <= t + LATER_S)
                later[name] = (dev[m], time[m], seq[m])
        return StationData(self.station_id, min(self.through, t), dict(self.tanks),
                           dict(self.nozzles), streams,
                           {d: min(v, t) for d, v in self.device_through.items()}, later)

    def offline_stretches(self, device: str) -> list[tuple[int, int]]:
        """Device-time stretches in which the collector reported `device` off line; one
        still open ends at `through`."""
        av = self.availability
        rows = np.flatnonzero(av.device == device)
        out: list[tuple[int, int]] = []
        start: int | None = None
        for i in rows:  # state changes only: a handful
            if not av.online[i] and start is None:
                start = int(av.device_time[i])
            elif av.online[i] and start is not None:
                out.append((start, max(start, int(av.device_time[i]))))
                start = None
        if start is not None:
            out.append((start, self.through))
        return out

    def made_rows(self, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(device, time, seq) of the stream's records followed by those timed after
        `through` (`later`), and how many of them are the stream's own."""
        s = self.streams[stream]
        dev, t, seq = self.later.get(stream, (np.array([], dtype="<U1"),) + (_EMPTY,) * 2)
        return (np.concatenate([s.device, dev]), np.concatenate([s.time, t]),
                np.concatenate([s.seq, seq]), len(s))

    def tx_key(self, i: int) -> str:
        tx = self.transactions
        return (f"{self.station_id}/{tx.device[i]}/transactions/{int(tx.seq[i])}/"
                f"{int(tx.start_time[i])}")


def _device_order(device: str) -> tuple[int, str]:
    return (int(device[1:]) if device[1:].isdigit() else 1 << 30, device)


# -- loading ----------------------------------------------------------------------------------
_QUERIES = {
    "transactions": "SELECT device, nozzle, tank, grade, seq, start_time, end_time, volume_ml, "
                    "amount_fen, unit_price_fen, volume_total_ml, amount_total_fen "
                    "FROM transactions WHERE station_id = ? AND end_time <= ? "
                    "ORDER BY end_time, key",
    "inventory": "SELECT device, tank, seq, device_time, product_level_um, temperature_mc, "
                 "gross_volume_ml, volume_20c_ml, water_level_um, water_volume_ml "
                 "FROM inventory WHERE station_id = ? AND device_time <= ? "
                 "ORDER BY device_time, key",
    "deliveries": "SELECT device, tank, seq, start_time, end_time, start_volume_20c_ml, "
                  "end_volume_20c_ml, start_gross_volume_ml, end_gross_volume_ml, "
                  "start_temperature_mc, end_temperature_mc, bol_volume_20c_ml "
                  "FROM deliveries WHERE station_id = ? AND end_time <= ? "
                  "ORDER BY end_time, key",
    "events": "SELECT device, seq, code, unit, device_time, value_old_e4, value_new_e4 "
              "FROM events WHERE station_id = ? AND device_time <= ? "
              "ORDER BY device_time, key",
    "states": "SELECT device, seq, device_time, serial_number, software_id, mainboard_id, "
              "encoder_id, seal_state, device_status FROM states "
              "WHERE station_id = ? AND device_time <= ? ORDER BY device_time, key",
    "records": "SELECT id, device, COALESCE(nozzle, 0), kind, performed_at, fully_signed, "
               "valid_until_epoch, COALESCE(result, ''), COALESCE(certificate_no, ''), "
               "COALESCE(seals_json, '[]'), COALESCE(signatures_missing, '') "
               "FROM verification_records WHERE station_id = ? AND performed_at <= ? "
               "ORDER BY performed_at, id",
    # changes of a device's reported on-line state only (the log has one row per heartbeat)
    "availability": "SELECT device, online, device_time FROM ("
                    "SELECT device, online, device_time, received_at, msg_seq, "
                    "LAG(online) OVER (PARTITION BY device ORDER BY received_at, msg_seq) "
                    "AS prev FROM availability_log WHERE station_id = ? AND device <> '') x "
                    "WHERE (prev IS NULL OR prev <> online) AND device_time IS NOT NULL "
                    "AND device_time <= ? ORDER BY received_at, msg_seq, device",
}


LATER_S = 86400  # how far after `through` records a clock set back may have made earlier
_EMPTY = np.zeros(0, dtype=np.int64)


def _later(conn: Conn, station_id: str, stream: str, through: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    col = TIME_COLUMN[stream]
    rows = conn.query(f"SELECT device, {col}, seq FROM {stream} WHERE station_id = ? AND "
                      f"{col} > ? AND {col} <= ?", (station_id, through, through + LATER_S))
    return (np.array([str(r[0]) for r in rows], dtype=str) if rows else
            np.array([], dtype="<U1"),
            np.array([int(r[1]) for r in rows], dtype=np.int64),
            np.array([int(r[2]) for r in rows], dtype=np.int64))


def _posted_prices(conn: Conn, station_id: str) -> Stream:
    """The posted prices in force at the station, per grade in time order
    (central/prices.py `price_schedule`: its own rows and the all-station rows)."""
    grades = [str(g) for (g,) in conn.query(
        "SELECT DISTINCT grade FROM posted_prices WHERE station_id IN (?, '') ORDER BY grade",
        (station_id,))]
    rows = [(grade, price, valid_from) for grade in grades
            for valid_from, price in price_schedule(conn, station_id, grade)]
    return Stream.from_rows("prices", rows)


def load_registry(conn: Conn, station_id: str) -> tuple[dict[int, str],
                                                         dict[tuple[str, int], int]]:
    tanks = {int(t): str(g) for t, g in conn.query(
        "SELECT tank, grade FROM station_tanks WHERE station_id = ?", (station_id,))}
    nozzles = {(f"D{int(d)}", int(n)): int(t) for d, n, t in conn.query(
        "SELECT dispenser, nozzle, tank FROM station_nozzles WHERE station_id = ?",
        (station_id,))}
    return tanks, nozzles


def load_station_data(conn: Conn, station_id: str, through: int,
                      device_through: Mapping[str, int | None] | None = None,
                      streams_only: Sequence[str] | None = None) -> StationData:
    """Everything the detectors read for one station, with device time ≤ `through`
    (`streams_only`: just those streams, the others empty — e.g. the metrology audit's
    records, states and events)."""
    tanks, nozzles = load_registry(conn, station_id)
    streams = {name: Stream.from_rows(name, conn.query(sql, (station_id, through)))
               for name, sql in _QUERIES.items()
               if streams_only is None or name in streams_only}
    if streams_only is None or "prices" in streams_only:
        streams["prices"] = _posted_prices(conn, station_id)
    dt = {d: min(int(t), through) for d, t in (device_through or {}).items() if t is not None}
    later = {name: _later(conn, station_id, name, int(through)) for name in DEVICE_STREAMS
             if name in streams}
    return StationData(station_id, int(through), tanks, nozzles, streams, dt, later)
