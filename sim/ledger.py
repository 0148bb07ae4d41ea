"""Ground-truth ledger (真值台账): every record of the world, written as Parquet + manifest.

Collection is columnar and compact: records are buffered briefly and folded into typed
arrays (array.array), one set per station. Writing produces one row group per station
and table, stations in world order and rows in event order, with explicit schemas and
fixed writer options, so the same config and seed give byte-identical files whichever
way the world was run (one process, several, or stepped by the device servers).

`simulate` (sim/runner.py) writes station by station as workers finish; a `Ledger`
attached to a live World (device mode) appends complete segment files at each `flush()`
(`flush_in_background()` from the device servers' loop: the rows are taken at once and
written in the ledger's writer thread), atomically, so an interrupted run always leaves
readable, consistent files and a manifest saying how far the truth goes
(docs/ground-truth.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.config import WorldConfig

FORMAT = "forecourt-truth/1"
MANIFEST = "manifest.json"
_BUFFER = 4096  # records buffered before folding into typed columns

_F64, _I64, _I32, _U16, _BOOL, _STR = "f64", "i64", "i32", "u16", "bool", "str"
_TYPECODE = {_F64: "d", _I64: "q", _I32: "i", _U16: "H", _BOOL: "b"}
_NUMPY = {_F64: np.float64, _I64: np.int64, _I32: np.int32, _U16: np.uint16, _BOOL: np.bool_}
_ARROW = {_F64: pa.float64(), _I64: pa.int64(), _I32: pa.int32(), _U16: pa.uint16(),
          _BOOL: pa.bool_(), _STR: pa.string()}

_READING = ("level_mm", "water_level_mm", "temperature_c", "gross_l", "volume_20c_l", "ullage_l",
            "water_l")
_TRUTH = ("level_mm", "water_level_mm", "temperature_c", "gross_l", "volume_20c_l", "water_l")

# table -> [(column, attribute path on the record, kind)]; station_id is added per station.
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "transactions": [
        ("dispenser", "dispenser", _I32), ("nozzle", "nozzle", _I32), ("grade", "grade", _STR),
        ("tank", "tank", _I32), ("seq", "seq", _U16), ("txn_no", "txn_no", _I64),
        ("start_time", "start_time", _F64), ("end_time", "end_time", _F64),
        ("true_volume_l", "true_volume_l", _F64),
        ("true_volume_20c_l", "true_volume_20c_l", _F64),
        ("displayed_volume_ml", "displayed_volume_ml", _I64), ("amount_fen", "amount_fen", _I64),
        ("unit_price_fen", "unit_price_fen", _I64),
        ("volume_total_before_ml", "volume_total_before_ml", _I64),
        ("volume_total_after_ml", "volume_total_after_ml", _I64),
        ("amount_total_before_fen", "amount_total_before_fen", _I64),
        ("amount_total_after_fen", "amount_total_after_fen", _I64),
        ("vehicle", "vehicle", _STR), ("fill_type", "fill_type", _STR),
    ],
    "tank_states": [
        ("tank", "tank", _I32), ("time", "time", _F64), ("kind", "kind", _STR),
        *[(f"true_{f}", f"truth.{f}", _F64) for f in _TRUTH],
        *[(f"gauge_{f}", f"reading.{f}", _F64) for f in _READING],
        ("inventory_seq", "inventory_seq", _I32),
        ("delivered_20c_l", "delivered_20c_l", _F64), ("drawn_20c_l", "drawn_20c_l", _F64),
        ("leaked_20c_l", "leaked_20c_l", _F64), ("evaporated_20c_l", "evaporated_20c_l", _F64),
        ("water_in_l", "water_in_l", _F64),
    ],
    "deliveries": [
        ("tank", "tank", _I32), ("seq", "seq", _U16), ("grade", "grade", _STR),
        ("ordered_time", "ordered_time", _F64), ("start_time", "start_time", _F64),
        ("end_time", "end_time", _F64), ("bol_volume_20c_l", "bol_volume_20c_l", _F64),
        ("true_drop_20c_l", "true_drop_20c_l", _F64),
        ("true_drop_gross_l", "true_drop_gross_l", _F64),
        ("delivery_temperature_c", "delivery_temperature_c", _F64),
        *[(f"start_{f}", f"start_reading.{f}", _F64) for f in _READING],
        *[(f"end_{f}", f"end_reading.{f}", _F64) for f in _READING],
        ("bol_keyed_20c_l", "bol_keyed_20c_l", _F64),
        ("density_20c_kg_m3", "density_20c_kg_m3", _F64),
    ],
    "events": [
        ("device", "device", _STR), ("seq", "seq", _U16), ("time", "time", _F64),
        ("code", "code", _I32), ("name", "name", _STR), ("unit", "unit", _I32),
        ("value_old", "value_old", _F64), ("value_new", "value_new", _F64),
    ],
    "cheats": [
        ("cheat", "cheat", _I32), ("kind", "kind", _STR), ("dispenser", "dispenser", _I32),
        ("nozzle", "nozzle", _I32), ("tank", "tank", _I32), ("time", "time", _F64),
        ("action", "action", _STR), ("value_old", "value_old", _F64),
        ("value_new", "value_new", _F64), ("params", "params", _STR),
    ],
    "nozzles": [
        ("dispenser", "dispenser", _I32), ("nozzle", "nozzle", _I32), ("grade", "grade", _STR),
        ("tank", "tank", _I32), ("meter_error", "meter_error", _F64),
        ("volume_total_open_ml", "volume_total_open_ml", _I64),
        ("amount_total_open_fen", "amount_total_open_fen", _I64),
        ("serial_number", "serial_number", _STR), ("software_id", "software_id", _STR),
        ("mainboard_id", "mainboard_id", _STR), ("encoder_id", "encoder_id", _STR),
        *[(f, f, _F64) for f in ("verified_at", "drift_per_day", "repeatability",
                                 "flow_ref_lpm", "flow_slope", "small_volume")],
    ],
    "tanks": [
        ("tank", "tank", _I32), ("grade", "grade", _STR), ("nominal_m3", "nominal_m3", _I32),
        ("diameter_mm", "diameter_mm", _I32), ("length_mm", "length_mm", _F64),
        ("head_depth_mm", "head_depth_mm", _F64), ("capacity_l", "capacity_l", _F64),
        ("initial_volume_20c_l", "initial_volume_20c_l", _F64),
        ("initial_temperature_c", "initial_temperature_c", _F64),
        ("leak_l_per_h", "leak_l_per_h", _F64),
        ("water_ingress_l_per_day", "water_ingress_l_per_day", _F64),
        ("gauge_serial_number", "gauge_serial_number", _STR),
        ("gauge_software_id", "gauge_software_id", _STR),
        *[(f, f, _F64) for f in (
            "initial_density_kg_m3", "strap_e0", "strap_e1", "strap_e2", "tilt",
            "probe_position_mm", "probe_level_bias_mm", "level_offset_mm", "probe_temp_bias_c",
            "storage_loss_per_month", "working_loss", "expected_sales_l_per_day",
            "variance_bias_day_l", "variance_sd_day_l", "variance_sd_month_l")],
    ],
    # the cheat catalogue (sim/cheats/records.py, docs/ground-truth.md)
    "cheat_instances": [
        ("cheat", "cheat", _I32), ("kind", "kind", _STR), ("class", "cheat_class", _STR),
        ("lookalike", "lookalike", _BOOL), ("device", "device", _STR),
        ("dispenser", "dispenser", _I32), ("nozzle", "nozzle", _I32), ("tank", "tank", _I32),
        ("first_start", "first_start", _F64), ("last_end", "last_end", _F64),
        ("active_s", "active_s", _F64), ("effect_l", "effect_l", _F64),
        ("effect_l_per_day", "effect_l_per_day", _F64), ("trace", "trace", _STR),
        ("expected_alerts", "expected_alerts", _STR), ("attribution", "attribution", _STR),
        ("params", "params", _STR),
    ],
    "device_states": [
        ("device", "device", _STR), ("time", "time", _F64),
        ("serial_number", "serial_number", _STR), ("software_id", "software_id", _STR),
        ("mainboard_id", "mainboard_id", _STR), ("encoder_id", "encoder_id", _STR),
        ("seal_state", "seal_state", _I32), ("device_status", "device_status", _I32),
        ("offline", "offline", _BOOL),
    ],
    "inspections": [("start", "start", _F64), ("end", "end", _F64)],
    "verification_records": [
        ("cheat", "cheat", _I32), ("device", "device", _STR), ("nozzle", "nozzle", _I32),
        ("performed_at", "performed_at", _F64), ("kind", "kind", _STR), ("body", "body", _STR),
        # the metrology paperwork (sim/metrology.py): what a platform must make of the record
        ("valid_until", "valid_until", _F64), ("fully_signed", "fully_signed", _BOOL),
        ("missing_signatures", "missing_signatures", _STR),
        ("seal_mismatch", "seal_mismatch", _BOOL),
    ],
    "verification_lapses": [
        ("device", "device", _STR), ("cheat", "cheat", _I32),
        ("performed_at", "performed_at", _F64), ("expired_at", "expired_at", _F64),
        ("renewed_at", "renewed_at", _F64),
    ],
    "off_book_draws": [
        ("cheat", "cheat", _I32), ("kind", "kind", _STR), ("tank", "tank", _I32),
        ("dispenser", "dispenser", _I32), ("nozzle", "nozzle", _I32),
        ("start_time", "start_time", _F64), ("end_time", "end_time", _F64),
        ("true_volume_l", "true_volume_l", _F64),
        ("true_volume_20c_l", "true_volume_20c_l", _F64),
        ("displayed_volume_ml", "displayed_volume_ml", _I64), ("amount_fen", "amount_fen", _I64),
        ("unit_price_fen", "unit_price_fen", _I64), ("totalized", "totalized", _BOOL),
    ],
    # tax declarations (sim/tax.py, docs/ground-truth.md)
    "tax_declarations": [
        ("period_start", "period_start", _F64), ("period_end", "period_end", _F64),
        ("grade", "grade", _STR), ("reference", "reference", _STR), ("filed", "filed", _BOOL),
        ("filed_at", "filed_at", _F64), ("booked_from", "booked_from", _F64),
        ("booked_to", "booked_to", _F64),
        *[(f, f, _I64) for f in ("declared_volume_ml", "declared_amount_fen",
                                 "declared_tax_base_fen", "declared_tax_fen", "true_volume_ml",
                                 "true_amount_fen", "true_transactions", "gap_volume_ml",
                                 "gap_amount_fen")],
        ("under_declared", "under_declared", _BOOL), ("cheat", "cheat", _I32),
        ("declared_share", "declared_share", _F64), ("body", "body", _STR),
    ],
}
TABLES: tuple[str, ...] = tuple(COLUMNS)
_NULLABLE = {("tank_states", "inventory_seq")}  # -1 in memory, null in the file
_ARROW_OVERRIDE = {("tank_states", "inventory_seq"): pa.uint16()}


def schema(table: str) -> pa.Schema:
    """The explicit Arrow schema of a ground-truth table."""
    fields = [pa.field("station_id", pa.string(), nullable=False)]
    for name, _, kind in COLUMNS[table]:
        typ = _ARROW_OVERRIDE.get((table, name), _ARROW[kind])
        fields.append(pa.field(name, typ, nullable=(table, name) in _NULLABLE))
    return pa.schema(fields)


# Device streams and truth kinds feeding each table (the "inventory" stream is not
# stored: its records are the "interval" rows of tank_states, which carry more).
_STREAM_TABLE = {"transactions": "transactions", "events": "events", "deliveries": "deliveries"}
LEDGER_STREAMS = tuple(_STREAM_TABLE)  # the device streams the ledger listens to
_TRUTH_TABLE = {"tank_state": "tank_states", "cheat": "cheats", "nozzle": "nozzles",
                "tank": "tanks", "cheat_instance": "cheat_instances",
                "device_state": "device_states", "inspection": "inspections",
                "verification_record": "verification_records",
                "verification_lapse": "verification_lapses",
                "off_book_draw": "off_book_draws", "tax_declaration": "tax_declarations"}
# Documents the world files with other parties: a live Ledger also appends each one to
# FILINGS at once, so a harness can hand it on in step with the world (docs/ground-truth.md).
FILED_KINDS = ("tax_declaration",)
FILINGS = "filings.jsonl"

StationColumns = dict[str, dict[str, Any]]  # table -> column -> numpy array | list[str]


class _Table:
    """Typed, append-only columns of one table at one station."""

    __slots__ = ("spec", "getter", "buffer", "columns")

    def __init__(self, spec: list[tuple[str, str, str]]) -> None:
        self.spec = spec
        self.getter = attrgetter(*(path for _, path, _ in spec))
        self.buffer: list[Any] = []
        self.columns: list[Any] = [[] if kind == _STR else array(_TYPECODE[kind])
                                   for _, _, kind in spec]

    def append(self, record: Any) -> None:
        buf = self.buffer
        buf.append(record)
        if len(buf) >= _BUFFER:
            self.fold()

    def fold(self) -> None:
        if not self.buffer:
            return
        rows = list(map(self.getter, self.buffer))
        for column, values in zip(self.columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
        self.buffer.clear()

    def export(self) -> dict[str, Any]:
        self.fold()
        out: dict[str, Any] = {}
        for (name, _, kind), column in zip(self.spec, self.columns, strict=True):
            if kind == _STR:
                out[name] = list(column)
            else:
                out[name] = np.frombuffer(column, dtype=_NUMPY[kind]).copy() if len(column) \
                    else np.empty(0, dtype=_NUMPY[kind])
        return out


def export_tables(tables: dict[str, _Table]) -> StationColumns:
    return {name: table.export() for name, table in tables.items()}


class StationTruth:
    """Ground truth of one station, in typed columns; a RecordListener and truth listener."""

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        self._start()

    def _start(self) -> None:
        self.tables = {name: _Table(spec) for name, spec in COLUMNS.items()}
        self._by_stream = {s: self.tables[t] for s, t in _STREAM_TABLE.items()}
        self._by_kind = {k: self.tables[t] for k, t in _TRUTH_TABLE.items()}

    def __call__(self, station_id: str, device: str, stream: str, record: Any) -> None:
        """RecordListener (the station id is implied)."""
        table = self._by_stream.get(stream)
        if table is not None:
            table.append(record)

    def on_truth(self, station_id: str, kind: str, record: Any) -> None:
        """Truth listener (the station id is implied)."""
        table = self._by_kind.get(kind)
        if table is None:
            raise ValueError(f"ledger: unknown truth record kind {kind!r}")
        table.append(record)

    def export(self) -> StationColumns:
        return export_tables(self.tables)

    def detach(self) -> dict[str, _Table]:
        """Hand over the tables collected since the last detach(); new ones take their place.
        Nothing is copied, so a live world's loop can call it; export them in any thread."""
        old = self.tables
        self._start()
        return old


def _rows(columns: dict[str, Any]) -> int:
    return len(next(iter(columns.values())))


def to_arrow(table: str, station_id: str, columns: dict[str, Any]) -> pa.Table:
    """One station's rows of `table` as an Arrow table with the explicit schema."""
    sch = schema(table)
    n = _rows(columns)
    arrays = [pa.array([station_id] * n, pa.string())]
    for name, _, _kind in COLUMNS[table]:
        typ = sch.field(name).type
        values = columns[name]
        if (table, name) in _NULLABLE:
            arrays.append(pa.array(values, type=typ, mask=values < 0, from_pandas=False)
                          if n else pa.array([], type=typ))
        else:
            arrays.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(arrays, schema=sch)


class TruthWriter:
    """Writes stations' truth, in the order given, to one Parquet file per table.

    Files are written under temporary names and moved into place by `close()`, so a reader
    never sees a half-written file."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.rows = dict.fromkeys(TABLES, 0)
        self._writers = {
            t: pq.ParquetWriter(self._partial(t), schema(t), compression="zstd",
                                compression_level=3, version="2.6", write_statistics=True)
            for t in TABLES
        }

    def _partial(self, table: str) -> Path:
        return self.out_dir / f".{table}.parquet.partial"

    def add(self, station_id: str, columns: StationColumns) -> None:
        """Append one station's rows of every table (one row group each)."""
        for table in TABLES:
            if _rows(columns[table]):
                self.add_arrow(table, to_arrow(table, station_id, columns[table]))

    def add_arrow(self, table: str, rows: pa.Table) -> None:
        """Append one station's rows of `table` as one row group."""
        rows = rows.combine_chunks()  # page layout must not depend on how rows were chunked
        self._writers[table].write_table(rows, row_group_size=max(rows.num_rows, 1))
        self.rows[table] += rows.num_rows

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish every file; returns {file name: {sha256, bytes, rows}}."""
        files = {}
        for table, writer in self._writers.items():
            writer.close()
            final = self.out_dir / f"{table}.parquet"
            os.replace(self._partial(table), final)
            files[final.name] = {**file_digest(final), "rows": self.rows[table]}
        return files

    def abort(self) -> None:
        for table, writer in self._writers.items():
            try:
                writer.close()
            finally:
                self._partial(table).unlink(missing_ok=True)


def file_digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}


def write_extra(out_dir: Path, name: str, table: pa.Table) -> dict[str, Any]:
    """Write an extra table (e.g. the device servers' FIFO drops) alongside the truth."""
    path = out_dir / f"{name}.parquet"
    tmp = out_dir / f".{name}.parquet.partial"
    pq.write_table(table, tmp, compression="zstd", compression_level=3, version="2.6")
    os.replace(tmp, path)
    return {**file_digest(path), "rows": table.num_rows}


def manifest(config: WorldConfig, *, stations: Sequence[str], complete: bool,
             simulated_until: dict[str, float | None], files: dict[str, dict[str, Any]],
             scenario_name: str | None = None, scenario_digest: str | None = None,
             segments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest: what was simulated, how far, and the digest of every file."""
    counts: dict[str, int] = {}
    for name, info in files.items():
        table = _segment_table(name) if segments is not None and name.startswith(SEGMENTS) \
            else name.removesuffix(".parquet")
        counts[table] = counts.get(table, 0) + info["rows"]
    if segments is not None:
        for table in TABLES:
            counts.setdefault(table, 0)
    data: dict[str, Any] = {
        "format": FORMAT,
        "layout": "tables" if segments is None else "segments",
        "complete": complete,
        "scenario": None if scenario_name is None and scenario_digest is None
        else {"name": scenario_name, "digest": scenario_digest},
        "seed": config.seed,
        "start": config.start,
        "end": config.end,
        "days": config.days,
        "timezone": config.timezone,
        "inventory_interval_s": config.inventory_interval_s,
        # wrong device clocks: the device times a reader of the truth must expect
        # (sim/device_clock.py maps true times through them)
        "clock_faults": [asdict(f) for f in config.clock_faults],
        "stations": list(stations),
        "simulated_until": simulated_until,
        "counts": counts,
        "files": files,
    }
    if segments is not None:
        data["segments"] = segments
    return data


def write_manifest(out_dir: str | os.PathLike[str], data: dict[str, Any]) -> None:
    out = Path(out_dir)
    tmp = out / f".{MANIFEST}.partial"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, out / MANIFEST)


SEGMENTS = "segments"


def _segment_table(name: str) -> str:
    """The table of a segment file: segments/transactions-00003.parquet -> transactions."""
    return name.split("/", 1)[1].rsplit("-", 1)[0]


def write_segment(out_dir: Path, number: int, station_ids: Sequence[str],
                  exports: dict[str, StationColumns]) -> list[dict[str, Any]]:
    """Write the rows collected since the previous segment: one file per table that has
    rows, stations in order. Returns the segment index entries (rows per station)."""
    entries = []
    (out_dir / SEGMENTS).mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        parts = [(sid, exports[sid][table]) for sid in station_ids if _rows(exports[sid][table])]
        if not parts:
            continue
        rel = f"{SEGMENTS}/{table}-{number:05d}.parquet"
        tmp = out_dir / f"{rel}.partial"
        # One row group (many tiny ones make reading slow); the index says whose rows are where.
        rows = pa.concat_tables([to_arrow(table, sid, cols) for sid, cols in parts])
        pq.write_table(rows, tmp, row_group_size=max(rows.num_rows, 1), compression="zstd",
                       compression_level=1, version="2.6")
        os.replace(tmp, out_dir / rel)
        entries.append({"table": table, "file": rel,
                        "stations": [[sid, _rows(cols)] for sid, cols in parts]})
    return entries


def consolidate(out_dir: Path, station_ids: Sequence[str],
                segments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge segment files into the standard one-file-per-table layout (stations in order,
    one row group each — the same bytes `simulate` writes) and delete the segments.
    Works one table at a time, so memory is bounded by the largest table."""
    writer = TruthWriter(out_dir)
    try:
        for table in TABLES:
            per_station: dict[str, list[pa.Table]] = {sid: [] for sid in station_ids}
            for seg in segments:
                if seg["table"] != table:
                    continue
                data = pq.ParquetFile(out_dir / seg["file"]).read()
                offset = 0
                for sid, n in seg["stations"]:
                    per_station[sid].append(data.slice(offset, n))
                    offset += n
            for sid in station_ids:
                if per_station[sid]:
                    writer.add_arrow(table, pa.concat_tables(per_station[sid]))
    except BaseException:
        writer.abort()
        raise
    files = writer.close()
    for seg in segments:
        (out_dir / seg["file"]).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (out_dir / SEGMENTS).rmdir()
    return files


def read_truth(out_dir: str | os.PathLike[str], table: str,
               columns: Sequence[str] | None = None) -> pa.Table:
    """One ground-truth table of a run directory, in either layout (rows in station order,
    then time), as the manifest describes it; only `columns` if given (a long run's
    checkers read a few columns of millions of rows)."""
    if table not in TABLES:
        raise ValueError(f"ledger: unknown table {table!r}; tables: {list(TABLES)}")
    out = Path(out_dir)
    data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    names = None if columns is None else list(columns)
    if data.get("layout", "tables") == "tables":
        return pq.read_table(out / f"{table}.parquet", schema=schema(table), columns=names)
    per_station: dict[str, list[pa.Table]] = {sid: [] for sid in data["stations"]}
    for seg in data["segments"]:
        if seg["table"] == table:
            rows = pq.ParquetFile(out / seg["file"]).read(columns=names)
            offset = 0
            for sid, n in seg["stations"]:
                per_station[sid].append(rows.slice(offset, n))
                offset += n
    parts = [t for sid in data["stations"] for t in per_station[sid]]
    return pa.concat_tables(parts).combine_chunks() if parts else _empty(table, columns)


def _empty(table: str, columns: Sequence[str] | None) -> pa.Table:
    full = schema(table)
    return (full if columns is None else pa.schema([full.field(c) for c in columns])
            ).empty_table()


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a ground-truth directory."""
    data: dict[str, Any] = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    return data


def read_station_truth(out_dir: str | os.PathLike[str], table: str, station_id: str,
                       manifest_data: dict[str, Any] | None = None,
                       columns: Sequence[str] | None = None) -> pa.Table:
    """One station's rows of a ground-truth table (in time order), in either layout, reading
    no other station's rows into the result: the files are filtered on station_id, so the
    "tables" layout (one row group per station, with statistics) skips the others' row
    groups, and the segment layout reads only the segments whose index lists the station.
    `manifest_data` saves re-reading the manifest when reading many stations; only
    `columns` if given."""
    if table not in TABLES:
        raise ValueError(f"ledger: unknown table {table!r}; tables: {list(TABLES)}")
    out = Path(out_dir)
    data = manifest_data if manifest_data is not None else read_manifest(out)
    if data.get("layout", "tables") == "tables":
        return _station_rows(out / f"{table}.parquet", table, station_id, columns)
    parts = [_station_rows(out / seg["file"], table, station_id, columns)
             for seg in data["segments"]
             if seg["table"] == table and any(sid == station_id for sid, _ in seg["stations"])]
    return pa.concat_tables(parts).combine_chunks() if parts else _empty(table, columns)


def _station_rows(path: Path, table: str, station_id: str,
                  columns: Sequence[str] | None = None) -> pa.Table:
    # A filter copies the station's rows, so the result keeps no other rows' buffers alive.
    return pq.read_table(path, schema=schema(table), filters=[("station_id", "=", station_id)],
                         columns=None if columns is None else list(columns))


def recover(out_dir: str | os.PathLike[str], config: WorldConfig) -> dict[str, Any]:
    """After a crash in device mode (the process died between flushes, no close()): turn
    the last flushed segments into the standard layout; returns the new manifest."""
    out = Path(out_dir)
    data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    if data.get("layout") != "segments":
        return data
    files = consolidate(out, data["stations"], data["segments"])
    for name, info in data["files"].items():
        if not name.startswith(SEGMENTS) and name not in files:
            files[name] = info  # extra tables stay as they are
    scenario = data.get("scenario") or {}
    new = manifest(config, stations=data["stations"], complete=False,
                   simulated_until=data["simulated_until"], files=files,
                   scenario_name=scenario.get("name"), scenario_digest=scenario.get("digest"))
    write_manifest(out, new)
    return new


class Ledger:
    """Ground truth of a live World, for incremental use (device mode).

    `attach(world)` subscribes to every record. `flush()` appends what was collected since
    the previous flush as segment files (`segments/<table>-NNNNN.parquet`, complete files)
    and rewrites the manifest ("layout": "segments", "complete": false), so its cost and
    the ledger's memory stay proportional to one flush interval however long the run.
    `close()` merges the segments into the standard files ("layout": "tables") —
    byte-identical to what `simulate` writes for the same stretch of time — and "complete"
    is true when the world has finished. After a crash, `recover(out_dir, config)` does
    that merge from the last flush.
    """

    def __init__(self, out_dir: str | os.PathLike[str], config: WorldConfig, *,
                 station_ids: Iterable[str] | None = None, scenario_name: str | None = None,
                 scenario_digest: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.config = config
        wanted = None if station_ids is None else set(station_ids)
        self.station_ids = [s.station_id for s in config.stations
                            if wanted is None or s.station_id in wanted]
        self._truth = {sid: StationTruth(sid) for sid in self.station_ids}
        self._extra: dict[str, pa.Table] = {}
        self._segments: list[dict[str, Any]] = []
        self._segment_files: dict[str, dict[str, Any]] = {}
        self._next_segment = 1
        self._world: Any = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Future[dict[str, Any]] | None = None
        self.scenario_name = scenario_name
        self.scenario_digest = scenario_digest
        self.closed = False

    def attach(self, world: Any) -> Ledger:
        """Subscribe to `world` (a sim.world.World over the same stations)."""
        if list(world.stations) != self.station_ids:
            raise ValueError(f"ledger: world stations {list(world.stations)} differ from the "
                             f"ledger's {self.station_ids}")
        world.add_listener(self, streams=LEDGER_STREAMS)
        world.add_truth_listener(self.on_truth)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / FILINGS).unlink(missing_ok=True)  # this run's documents only
        self._world = world
        return self

    def __call__(self, station_id: str, device: str, stream: str, record: object) -> None:
        self._station(station_id)(station_id, device, stream, record)

    def on_truth(self, station_id: str, kind: str, record: object) -> None:
        self._station(station_id).on_truth(station_id, kind, record)
        if kind in FILED_KINDS:
            self._file(kind, record)

    def _file(self, kind: str, record: object) -> None:
        """One line of FILINGS: {kind, the record's fields} (the rows are in the truth table
        too, at the next flush)."""
        line = {"kind": kind, **{f: getattr(record, f) for f in getattr(record, "__slots__", ())}}
        with open(self.out_dir / FILINGS, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _station(self, station_id: str) -> StationTruth:
        try:
            return self._truth[station_id]
        except KeyError:
            raise ValueError(f"ledger: record for station {station_id!r}, which is not in "
                             f"this ledger ({self.station_ids})") from None

    def set_extra_table(self, name: str, table: pa.Table) -> None:
        """Also write `name`.parquet (and list it in the manifest) on every flush/close."""
        if name in TABLES or name in ("manifest", SEGMENTS):
            raise ValueError(f"ledger: extra table name {name!r} is taken")
        self._extra[name] = table

    def flush(self) -> dict[str, Any]:
        """Write everything collected so far (complete files); returns the manifest."""
        self._check_open()
        self._wait()
        return self._write(*self._take())

    def flush_in_background(self) -> None:
        """flush(), but only the taking of the rows happens now; the ledger's writer thread
        writes them, so a live world's event loop does not stall on Parquet (a banner run's
        flush took 1.3-1.5 s, longer than a collector's request timeout). Writes happen one
        at a time, in order; the next flush or close waits for this one and raises its
        error."""
        self._check_open()
        self._wait()
        job = self._take()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="ledger-flush")
        self._pending = self._writer.submit(self._write, *job)

    def close(self, complete: bool | None = None) -> dict[str, Any]:
        """Write the final files; returns the manifest."""
        self._check_open()
        self._wait()
        if self._writer is not None:
            self._writer.shutdown()
        if complete is None:
            complete = bool(self._world is not None and self._world.finished)
        truth, extra, now = self._take()
        self._write_segment(truth)
        files = consolidate(self.out_dir, self.station_ids, self._segments)
        files.update(self._write_extra(extra))
        self.closed = True
        return self._write_manifest(files, now, complete=complete, segments=None)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("ledger: already closed")

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _take(self) -> tuple[dict[str, dict[str, _Table]], dict[str, pa.Table], float | None]:
        """What a write needs, taken in the world's thread: the rows since the last take,
        the extra tables and how far the world is."""
        return ({sid: self._truth[sid].detach() for sid in self.station_ids},
                dict(self._extra), None if self._world is None else self._world.now)

    def _write(self, truth: dict[str, dict[str, _Table]], extra: dict[str, pa.Table],
               now: float | None) -> dict[str, Any]:
        self._write_segment(truth)
        files = dict(self._segment_files)
        files.update(self._write_extra(extra))
        return self._write_manifest(files, now, complete=False, segments=self._segments)

    def _write_segment(self, truth: dict[str, dict[str, _Table]]) -> None:
        exports = {sid: export_tables(tables) for sid, tables in truth.items()}
        entries = write_segment(self.out_dir, self._next_segment, self.station_ids, exports)
        self._next_segment += 1
        for entry in entries:
            path = self.out_dir / entry["file"]
            rows = sum(n for _, n in entry["stations"])
            self._segment_files[entry["file"]] = {**file_digest(path), "rows": rows}
        self._segments.extend(entries)

    def _write_extra(self, extra: dict[str, pa.Table]) -> dict[str, dict[str, Any]]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return {f"{name}.parquet": write_extra(self.out_dir, name, table)
                for name, table in sorted(extra.items())}

    def _write_manifest(self, files: dict[str, dict[str, Any]], now: float | None, *,
                        complete: bool, segments: list[dict[str, Any]] | None
                        ) -> dict[str, Any]:
        data = manifest(self.config, stations=self.station_ids, complete=complete,
                        simulated_until=dict.fromkeys(self.station_ids, now), files=files,
                        scenario_name=self.scenario_name, scenario_digest=self.scenario_digest,
                        segments=segments)
        write_manifest(self.out_dir, data)
        return data
