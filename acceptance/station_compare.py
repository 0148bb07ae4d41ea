"""Ground truth ↔ platform one station at a time, with memory bounded by the largest station.

`compare_by_station` classifies every record exactly as acceptance.compare.compare does, but
holds only one station's ground truth and platform records at a time: for each station of
the ground truth it reads that station's rows (`ParquetInputs`: the truth by a Parquet filter
on station_id, sim.ledger.read_station_truth; the platform's files through an index of
their station_id column; `FrameInputs`: slices of frames already in memory), compares them
exactly as `compare` does (compare.compare_streams), and keeps a compact records frame (categorical stream / station_id / device / status, int32 seq and
copies). Platform records of stations the ground truth does not have are compared last, so
they still come out `unexpected`.

The records come out in `compare`'s order — stream by stream, ground-truth records then
unexpected ones — whenever the ground truth's and the platform's rows are grouped by station
in the truth's order (as the ledger and the observer write them); otherwise only the order
of stations within a stream differs, never a value.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from acceptance.compare import (
    RECORD_COLUMNS,
    STREAMS,
    CompareError,
    Comparison,
    Truth,
    compare_streams,
    expected_records,
    load_profiles,
)
from devices.profile import Profile
from sim.ledger import read_manifest, read_station_truth, schema

TRUTH_TABLES = ("transactions", "tank_states", "deliveries", "events")
DROPS_COLUMNS = ("station_id", "device", "stream", "seq", "time", "dropped_total")
CATEGORICAL = ("stream", "station_id", "device", "status")
_INT32 = np.iinfo(np.int32)


class StationInputs(Protocol):
    """Ground truth and platform records, one station at a time."""

    @property
    def stations(self) -> list[str]:
        """The ground truth's stations, in its order."""
        ...

    def truth(self, station_id: str) -> Truth:
        """The station's ground truth (every table a comparison needs)."""
        ...

    def empty_truth(self) -> Truth:
        """A ground truth with no rows (to compare records of stations it does not have)."""
        ...

    def platform(self, stream: str, station_id: str) -> pd.DataFrame:
        """The platform's records of `stream` at the station."""
        ...

    def platform_elsewhere(self, stream: str, stations: Sequence[str]) -> pd.DataFrame:
        """The platform's records of `stream` at no station of `stations` (or none named)."""
        ...


# ---- the comparison -------------------------------------------------------------------

def compare_by_station(inputs: StationInputs, dialects: Mapping[str, str],
                       profiles: Mapping[str, Profile] | None = None,
                       on_expected: Callable[[Mapping[str, pd.DataFrame]], None] | None = None
                       ) -> Comparison:
    """Classify every ground-truth record and every platform record, station by station
    (the same records as acceptance.compare.compare; module doc). `on_expected` gets each
    station's expected records too (`expected_records`), for figures that need them."""
    profs = load_profiles(profiles)  # once, not per station
    return _assemble(_compare_group(truth, platform, dialects, profs, on_expected)
                     for truth, platform in _groups(inputs))


Group = dict[str, pd.DataFrame]  # stream → one group's compact records


def _compare_group(truth: Truth, platform: Mapping[str, pd.DataFrame],
                   dialects: Mapping[str, str], profs: Mapping[str, Profile],
                   on_expected: Callable[[Mapping[str, pd.DataFrame]], None] | None
                   ) -> Group:
    expected = expected_records(truth, dialects, profs)
    if on_expected is not None:
        on_expected(expected)
    out = {stream: compact(records) for stream, records in
           compare_streams(truth, platform, dialects, profs, expected).items()}
    # Arrow's allocator (mimalloc) keeps the pages a station's reads freed; handing them
    # back keeps the peak near one station's, not the high-water mark of several
    pa.default_memory_pool().release_unused()
    return out


def _assemble(groups: Iterable[Group]) -> Comparison:
    """compare's order: per stream, the ground-truth records of every group, then the
    unexpected ones."""
    truth_parts: dict[str, list[pd.DataFrame]] = {s: [] for s in STREAMS}
    extra_parts: dict[str, list[pd.DataFrame]] = {s: [] for s in STREAMS}
    for group in groups:
        for stream, records in group.items():
            unexpected = (records["status"] == "unexpected").to_numpy()
            truth_parts[stream].append(records[~unexpected])
            extra_parts[stream].append(records[unexpected])
    parts = [p for s in STREAMS for p in (*truth_parts[s], *extra_parts[s]) if len(p)]
    return Comparison(concat_compact(parts))


def _groups(inputs: StationInputs) -> Iterator[tuple[Truth, dict[str, pd.DataFrame]]]:
    """(ground truth, platform frames) per station, then the platform's other records."""
    stations = inputs.stations
    for sid in stations:
        yield _station_group(inputs, sid)
    elsewhere = _elsewhere_group(inputs)
    if elsewhere is not None:
        yield elsewhere


def _station_group(inputs: StationInputs, sid: str) -> tuple[Truth, dict[str, pd.DataFrame]]:
    return inputs.truth(sid), {s: inputs.platform(s, sid) for s in STREAMS}


def _elsewhere_group(inputs: StationInputs) -> tuple[Truth, dict[str, pd.DataFrame]] | None:
    elsewhere = {s: inputs.platform_elsewhere(s, inputs.stations) for s in STREAMS}
    return (inputs.empty_truth(), elsewhere) if any(len(f) for f in elsewhere.values()) \
        else None


# ---- the same, over processes ------------------------------------------------------------

MIN_STATIONS_PER_WORKER = 8  # a worker costs ≈ 1–2 s to start; a banner station ≈ 0.5 s


def compare_parquet(truth_dir: str | Path, observed: Mapping[str, str | Path],
                    dialects: Mapping[str, str],
                    summarise: Callable[[Mapping[str, pd.DataFrame]], Any] | None = None,
                    workers: int | None = None) -> tuple[Comparison, list[Any]]:
    """`compare_by_station(ParquetInputs(truth_dir, observed), dialects)`, with the stations
    dealt over `workers` processes (default: one per core, at most 4, with at least
    `MIN_STATIONS_PER_WORKER` stations each), each reading its stations' rows from the files
    itself (memory: one station per process). The same records in the same order, whatever
    `workers`. `summarise` (picklable) is called on each station's expected records; its
    results come back in the ground truth's order of stations. A CompareError in a worker
    is raised here."""
    stations = TruthReader(truth_dir).stations
    if workers is None:
        workers = min(os.cpu_count() or 1, 4, len(stations) // MIN_STATIONS_PER_WORKER)
    if workers <= 1:
        summaries: list[Any] = []
        hook = None if summarise is None else (lambda e: summaries.append(summarise(e)))
        return compare_by_station(ParquetInputs(truth_dir, observed), dialects,
                                  on_expected=hook), summaries
    context = multiprocessing.get_context("spawn")  # no copy of this process's threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_up_worker,
                             initargs=(truth_dir, dict(observed), dict(dialects),
                                       summarise)) as pool:
        done = list(pool.map(_compare_station, [*stations, None]))
    groups = [(group, summary) for group, summary in done if group is not None]
    return _assemble(group for group, _ in groups), [summary for _, summary in groups]


_WORKER: dict[str, Any] = {}  # a worker process's inputs (compare_parquet)


def _set_up_worker(truth_dir: str | Path, observed: dict[str, str | Path],
                 dialects: dict[str, str], summarise: Callable[..., Any] | None) -> None:
    _WORKER.update(files=(truth_dir, observed), dialects=dialects,
                   profiles=load_profiles(None), summarise=summarise)


def _compare_station(sid: str | None) -> tuple[Group | None, Any]:
    """A station's compact records and summary; None: the platform's other records."""
    w = _WORKER
    if "inputs" not in w:  # opened by the first task, so that its errors reach the caller
        w["inputs"] = ParquetInputs(*w["files"])
    group = _station_group(w["inputs"], sid) if sid is not None else _elsewhere_group(
        w["inputs"])
    if group is None:
        return None, None
    summary: list[Any] = []
    hook = None if w["summarise"] is None else \
        (lambda expected: summary.append(w["summarise"](expected)))
    records = _compare_group(*group, w["dialects"], w["profiles"], hook)
    return records, (summary[0] if summary else None)


def compact(records: pd.DataFrame) -> pd.DataFrame:
    """A records frame in fewer bytes: categorical labels, int32 where the values fit."""
    out = records.astype({c: "category" for c in CATEGORICAL}).astype(
        {"dropped_at_device": bool})
    for col in ("seq", "copies"):
        values = out[col]
        if values.dtype.kind in "iu" and (not len(values) or (
                values.min() >= _INT32.min and values.max() <= _INT32.max)):
            out[col] = values.astype(np.int32)
    return out


def concat_compact(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Compact frames one after another; categories united (sorted, so sorting and grouping
    by a label orders as with plain strings)."""
    if not parts:
        return compact(pd.DataFrame({c: pd.Series(dtype=object) for c in RECORD_COLUMNS}))
    for col in CATEGORICAL:
        dtype = pd.CategoricalDtype(sorted(set().union(*(p[col].cat.categories for p in parts))))
        for p in parts:  # in place: one part's copy at a time
            p[col] = p[col].cat.set_categories(dtype.categories)
    return pd.concat(parts, ignore_index=True)


# ---- frames in memory -----------------------------------------------------------------

class FrameInputs:
    """A ground truth and platform frames already in memory, sliced by station."""

    def __init__(self, truth: Truth, platform: Mapping[str, pd.DataFrame]) -> None:
        missing = [s for s in STREAMS if s not in platform]
        if missing:
            raise CompareError(f"platform records: no frame for {missing}")
        self._truth = truth
        self._platform = platform
        self._rows = {t: _positions(truth.table(t)["station_id"])
                      for t in (*TRUTH_TABLES, "fifo_drops")}
        self._platform_ids = {s: f["station_id"].astype(str) if "station_id" in f else None
                              for s, f in platform.items()}

    @property
    def stations(self) -> list[str]:
        """The manifest's stations, then any other the tables have rows of."""
        named = [str(s) for s in self._truth.manifest.get("stations", [])]
        return list(dict.fromkeys([*named, *(sid for t in TRUTH_TABLES for sid in self._rows[t])]))

    def truth(self, station_id: str) -> Truth:
        tables = {t: self._truth.table(t).iloc[self._rows[t].get(station_id, [])]
                  for t in (*TRUTH_TABLES, "fifo_drops")}
        return Truth(**tables, manifest=self._truth.manifest)

    def empty_truth(self) -> Truth:
        tables = {t: self._truth.table(t).iloc[:0] for t in (*TRUTH_TABLES, "fifo_drops")}
        return Truth(**tables, manifest=self._truth.manifest)

    def platform(self, stream: str, station_id: str) -> pd.DataFrame:
        ids = self._platform_ids[stream]
        frame = self._platform[stream]
        return frame if ids is None else frame[(ids == station_id).to_numpy(bool)]

    def platform_elsewhere(self, stream: str, stations: Sequence[str]) -> pd.DataFrame:
        ids = self._platform_ids[stream]
        frame = self._platform[stream]
        # without a station_id column: compare's own error, once (from the first station)
        return frame.iloc[:0] if ids is None else frame[~ids.isin(stations).to_numpy(bool)]


def _positions(ids: pd.Series) -> dict[str, np.ndarray]:
    """station → positions of its rows."""
    text = ids.astype(str)
    return {str(k): np.asarray(v) for k, v in text.groupby(text).indices.items()}


# ---- Parquet files (a run directory) ---------------------------------------------------

class TruthReader:
    """A ground-truth directory (either layout, sim/ledger.py), read one station at a time."""

    def __init__(self, truth_dir: str | Path) -> None:
        self.truth_dir = Path(truth_dir)
        if not (self.truth_dir / "manifest.json").is_file():
            raise CompareError(f"ground truth {self.truth_dir}: no manifest.json (not a "
                               f"ground-truth directory, or the devices were not stopped yet)")
        self.manifest = read_manifest(self.truth_dir)
        self._drops = self._read_drops()

    @property
    def stations(self) -> list[str]:
        return [str(s) for s in self.manifest.get("stations", [])]

    def truth(self, station_id: str) -> Truth:
        frames = {t: self._table(t, station_id) for t in TRUTH_TABLES}
        drops = self._drops[self._drops["station_id"].astype(str) == station_id]
        return Truth(**frames, fifo_drops=drops, manifest=self.manifest)

    def empty_truth(self) -> Truth:
        frames = {t: schema(t).empty_table().to_pandas() for t in TRUTH_TABLES}
        return Truth(**frames, fifo_drops=self._drops.iloc[:0], manifest=self.manifest)

    def _table(self, table: str, station_id: str) -> pd.DataFrame:
        try:
            return read_station_truth(self.truth_dir, table, station_id,
                                      self.manifest).to_pandas()
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise CompareError(f"ground truth {self.truth_dir}: cannot read table {table!r} "
                               f"({exc})") from None

    def _read_drops(self) -> pd.DataFrame:
        path = self.truth_dir / "fifo_drops.parquet"
        if not path.is_file():
            return pd.DataFrame(columns=list(DROPS_COLUMNS))
        try:
            return pd.read_parquet(path)  # a row per overflow: small whatever the run's length
        except (OSError, pa.ArrowException) as exc:
            raise CompareError(f"ground truth {path}: cannot read ({exc})") from None


class ParquetInputs:
    """A ground-truth directory and the platform's records as one Parquet file per stream
    with a station_id column (a run's observed/<stream>.parquet), read one station at a
    time."""

    def __init__(self, truth_dir: str | Path, observed: Mapping[str, str | Path]) -> None:
        self._truth = TruthReader(truth_dir)
        missing = [s for s in STREAMS if s not in observed]
        if missing:
            raise CompareError(f"platform records: no file for {missing}")
        self._files = {s: _PlatformFile(Path(observed[s])) for s in STREAMS}

    @property
    def stations(self) -> list[str]:
        return self._truth.stations

    def truth(self, station_id: str) -> Truth:
        return self._truth.truth(station_id)

    def empty_truth(self) -> Truth:
        return self._truth.empty_truth()

    def platform(self, stream: str, station_id: str) -> pd.DataFrame:
        return self._files[stream].station(station_id)

    def platform_elsewhere(self, stream: str, stations: Sequence[str]) -> pd.DataFrame:
        return self._files[stream].elsewhere(stations)


class _PlatformFile:
    """One stream's platform records, one station at a time. Opening the file reads only its
    station_id column, to index where each station's rows are (per row group: a contiguous
    run, as the observer writes stations one after another, or positions). A station's read
    decodes only the row groups holding its rows, one column at a time, keeping just its rows
    — never a whole row group (up to 2²⁰ rows) in memory.

    Converted as pandas converts the whole file: a column with nulls anywhere in the file
    (int → float, bool → object) has that type in every station's frame, so values print the
    same in `altered` details."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
            self._schema = self._file.schema_arrow
            if "station_id" not in self._schema.names:
                raise CompareError(f"platform records {path}: no column 'station_id' (found "
                                   f"{self._schema.names})")
            self._with_nulls = _columns_with_nulls(path, self._file)
            self._index = [self._station_rows(g) for g in range(self._file.num_row_groups)]
        except (OSError, pa.ArrowException) as exc:
            raise CompareError(f"platform records {path}: not a readable Parquet file "
                               f"({exc})") from None

    def _station_rows(self, group: int) -> dict[str | None, slice | np.ndarray]:
        ids = self._file.read_row_group(group, columns=["station_id"]).column("station_id")
        text = pd.Series(ids.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        out: dict[str | None, slice | np.ndarray] = {}
        for sid, found in text.groupby(text, dropna=False, sort=False).indices.items():
            key = sid if isinstance(sid, str) else None  # null: NaN as a group key
            rows = np.asarray(found)
            contiguous = rows[-1] - rows[0] == len(rows) - 1
            out[key] = slice(int(rows[0]), int(rows[-1]) + 1) if contiguous else \
                rows.astype(np.int32)
        return out

    def station(self, station_id: str) -> pd.DataFrame:
        return self._read(lambda sid: sid == station_id)

    def elsewhere(self, stations: Sequence[str]) -> pd.DataFrame:
        """Rows of no station of `stations`, a null station_id included."""
        known = set(stations)
        return self._read(lambda sid: sid not in known)

    def _read(self, wanted: Callable[[str | None], bool]) -> pd.DataFrame:
        parts = []
        try:
            for group, index in enumerate(self._index):
                picked = [_positions_of(rows) for sid, rows in index.items() if wanted(sid)]
                if picked:
                    parts.append(self._take(group, np.sort(np.concatenate(picked))))
        except (OSError, pa.ArrowException) as exc:
            raise CompareError(f"platform records {self.path}: cannot read ({exc})") from None
        table = pa.concat_tables(parts) if parts else self._schema.empty_table()
        frame = table.to_pandas()  # pyarrow maps types as pd.read_parquet does
        for col in self._with_nulls & set(frame.columns):
            kind = frame[col].dtype.kind
            if kind in "iu":
                frame[col] = frame[col].astype(np.float64)
            elif kind == "b":
                frame[col] = frame[col].astype(object)
        return frame

    def _take(self, group: int, rows: np.ndarray) -> pa.Table:
        """Rows of a row group, decoded a column at a time (take copies: no column chunk
        stays alive behind the result)."""
        positions = pa.array(rows)
        columns = [self._file.read_row_group(group, columns=[name]).column(name).take(positions)
                   for name in self._schema.names]
        return pa.Table.from_arrays(columns, schema=self._schema)


def _positions_of(rows: slice | np.ndarray) -> np.ndarray:
    return np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows


def _columns_with_nulls(path: Path, meta: pq.ParquetFile) -> set[str]:
    """Top-level columns with a null anywhere in the file: from the row groups' statistics,
    else by reading the column alone."""
    md = meta.metadata
    counts: dict[str, int] = {}
    unknown: set[str] = set()
    for j in range(md.num_columns):
        name = md.schema.column(j).path.split(".")[0]
        for g in range(md.num_row_groups):
            stats = md.row_group(g).column(j).statistics
            if stats is None or not stats.has_null_count:
                unknown.add(name)
            else:
                counts[name] = counts.get(name, 0) + stats.null_count
    for name in unknown:
        counts[name] = pq.read_table(path, columns=[name]).column(name).null_count
    return {name for name, n in counts.items() if n}
