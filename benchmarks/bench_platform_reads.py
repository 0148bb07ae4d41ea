"""Benchmark: the platform's end-of-run reads over a run's database, in this process —
the chain check (every station's record chain recomputed and compared with the stored
records, GET /api/v1/integrity/chain), the record listings the harness exports
(transactions, inventory, deliveries, events: every page of 1000 per station, encoded as
the API encodes it, with orjson), and the data views computed from them (every station's
daily reconciliation and monthly stock balance, GET /api/v1/reconciliation and
/api/v1/commerce/stock-balance: each loads all of the station's readings). HTTP is left
out: what is timed is the platform's own work.

    python benchmarks/bench_platform_reads.py --db sqlite:///RUN/platform.db [--repeat 2]
        [--only chain|listings|views]

The database is only read. A chain that is not intact is an error (the figures would mean
nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from zoneinfo import ZoneInfo

from central import integrity
from central import resources as res
from central.commerce import station_balances
from central.db import Conn, Database
from central.http_api import encode
from central.reconciliation import reconcile_station
from central.vcf import Vcf

RECORDS = (res.TRANSACTIONS, res.INVENTORY, res.DELIVERIES, res.EVENTS)


def chain_check(conn: Conn, _stations: list[str]) -> tuple[int, float]:
    t0 = time.perf_counter()
    records = 0
    for sid in integrity.stations_to_verify(conn):
        report = integrity.verify_station(conn, sid)
        if not report.intact:
            raise SystemExit(f"{sid}: chain not intact: {report.findings[:3]}")
        records += report.records
    return records, time.perf_counter() - t0


def listings(conn: Conn, stations: list[str]) -> tuple[int, float]:
    ctx = res.Context(ZoneInfo("Asia/Shanghai"), None, 60.0, time.time)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    items = 0
    for resource in RECORDS:
        for sid in stations:
            cursor = None
            while True:
                query = {"station_id": [sid], "limit": ["1000"]}
                if cursor:
                    query["cursor"] = [cursor]
                page = resource.list(conn, query, ctx)
                encode(page)  # as the API encodes it (orjson)
                items += len(page["items"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
    return items, time.perf_counter() - t0


def data_views(conn: Conn, stations: list[str]) -> tuple[int, float]:
    """Rows of both views; their readings are loaded once for each."""
    zone, vcf = ZoneInfo("Asia/Shanghai"), Vcf()
    t0 = time.perf_counter()
    rows = 0
    for sid in stations:
        rows += len(reconcile_station(conn, sid, zone, vcf))
        rows += len(station_balances(conn, sid, zone, vcf))
    return rows, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="the run's platform database URL")
    p.add_argument("--repeat", type=int, default=2, help="runs of each (the best is shown)")
    p.add_argument("--only", choices=("chain", "listings", "views"), help="time one read")
    args = p.parse_args(argv)
    conn = Database(args.db).connect()
    stations = [str(r[0]) for r in conn.query(
        "SELECT station_id FROM chain_heads ORDER BY station_id")]
    reads = {"chain": ("chain check", chain_check, "records"),
             "listings": ("record listings", listings, "records"),
             "views": ("data views", data_views, "rows (tank-days and tank-months)")}
    for name, (what, read, unit) in reads.items():
        if args.only in (None, name):
            n, wall = min((read(conn, stations) for _ in range(args.repeat)),
                          key=lambda r: r[1])
            print(f"{what}: {n:,} {unit} in {wall:.2f} s = {n / wall:,.0f}/s "
                  f"({1e6 * wall / n:.1f} µs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
