"""The platform's records into observed/<stream>.parquet, one station at a time.

Reading every record of a 180-day banner run through the API at once would hold millions
of JSON items in memory. Here each station's items become one Parquet file of their own as
they arrive; the stream's file is then put together from them, one row group per station
(acceptance/station_compare.py reads a station's rows from its row groups), so memory is
bounded by the few stations fetched at once (FETCHERS below). Column types are those of
the whole frame: a column that is an integer at one station and has a null at another
(float in pandas) is float in the file, as pandas would have made it; a field only some
stations' items have is null at the others.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from acceptance.observe import RECORD_RESOURCES, PlatformClient, records_frame

# Stations fetched at once while this process turns the last one into Parquet. While one
# fetch waits for the platform (another process) the other decodes its answer here, so the
# two cores overlap instead of taking turns: 298 477 records exported in 6.2–6.4 s against
# 7.8 one station at a time; three at once were slower (7.4–7.7 s: more GIL contention).
# Memory holds at most FETCHERS + 1 stations' items.
FETCHERS = 2


def write_observed_records(client: PlatformClient, station_ids: Iterable[str],
                           directory: Path) -> dict[str, int]:
    """Write `<resource>.parquet` into `directory` for every record resource, station by
    station; returns the rows written per resource."""
    ids = list(station_ids)
    written: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="export") as pool:
        fetched = _ahead(pool, client, [(r, sid) for r in RECORD_RESOURCES for sid in ids])
        for resource in RECORD_RESOURCES:
            with tempfile.TemporaryDirectory(dir=directory, prefix=f".{resource}-") as tmp:
                parts: list[Path] = []
                for _ in ids:
                    frame = records_frame(resource, next(fetched))
                    if len(frame):
                        parts.append(Path(tmp) / f"{len(parts)}.parquet")
                        frame.to_parquet(parts[-1], index=False)
                written[resource] = _join(parts, resource, directory / f"{resource}.parquet")
    return written


def _ahead(pool: ThreadPoolExecutor, client: PlatformClient,
           jobs: list[tuple[str, str]]) -> Iterator[list[dict[str, Any]]]:
    """Each (resource, station)'s items in turn, the next FETCHERS fetched while the caller
    works on this one."""
    waiting: deque[Future[list[dict[str, Any]]]] = deque()
    for job in jobs:
        waiting.append(pool.submit(_fetch, client, *job))
        if len(waiting) > FETCHERS:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


def _fetch(client: PlatformClient, resource: str, station_id: str) -> list[dict[str, Any]]:
    return list(client.items(resource, station_id=station_id))


def _join(parts: list[Path], resource: str, path: Path) -> int:
    """Write the stations' files one after another as `path` (atomically)."""
    staged = path.with_name(f".{path.name}.tmp")
    if not parts:
        records_frame(resource, []).to_parquet(staged, index=False)
        os.replace(staged, path)
        return 0
    schema = pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in parts],
                              promote_options="permissive")
    rows = 0
    with pq.ParquetWriter(staged, schema) as writer:
        for p in parts:
            table = pq.read_table(p)
            writer.write_table(_conform(table, schema))
            rows += table.num_rows
    os.replace(staged, path)
    return rows


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns, in its order and types (null where it has none)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)
