"""Benchmark the reference platform's ingest alone: records stored per second (issue 11).

    python benchmarks/bench_ingest.py                                   # SQLite
    python benchmarks/bench_ingest.py --db postgresql://user@host:port/db
    python benchmarks/bench_ingest.py --records-per-message 5 --json out.json

`central.store.Ingestor` on a fresh, migrated database with the banner's fleet ledger:
signed transaction messages of the 46 stations, in batches of `--batch` messages (the ingest
worker takes up to 500 from its queue), each batch one transaction — check, dedupe, insert,
hash chain, counters, signed acks. No broker: this is the platform's own ceiling. Every
message is checked to be stored, none rejected.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from central.checks import Inbound
from central.db import POSTGRESQL, Database
from central.keys import parse_key_file
from central.migrate import migrate
from central.registry import import_registry, parse_registry
from central.signing import signature
from central.store import Ingestor

REPO = Path(__file__).resolve().parent.parent
REGISTRY = REPO / "scenarios" / "fleets" / "urad-middle-banner.csv"
T0 = 1_775_001_600  # 2026-04-01 00:00 UTC


def message(sid: str, key: bytes, msg_seq: int, first_seq: int, n: int,
            now: float) -> Inbound:
    """A signed message of `n` fills of dispenser D1 nozzle 1 (tank 1, grade 92)."""
    records = []
    for seq in range(first_seq, first_seq + n):
        start = T0 + seq * 120
        records.append({"key": f"{sid}/D1/transactions/{seq % 65536}/{start}",
                        "seq": seq % 65536, "collected_at": start + 91.5, "nozzle": 1,
                        "grade": "92", "tank": 1, "start_time": start, "end_time": start + 90,
                        "volume_ml": 40_000, "amount_fen": 28_480, "unit_price_fen": 712,
                        "volume_total_ml": 40_000 * (seq + 1),
                        "amount_total_fen": 28_480 * (seq + 1)})
    topic = f"fsx/v1/{sid}/D1/evt/transaction"
    body = {"v": 1, "type": "transaction", "station_id": sid, "msg_seq": msg_seq,
            "sent_at": now, "device": "D1", "records": records, "kid": "k1"}
    body["sig"] = signature(key, topic, body)
    return Inbound(topic, json.dumps(body).encode(), now, False)


def run(url: str, records: int, per_message: int, batch: int) -> dict:
    stations = parse_registry(REGISTRY.read_text(encoding="utf-8"), str(REGISTRY))
    keys = {s.station_id: uuid.uuid4().hex * 2 for s in stations}
    ring = parse_key_file(json.dumps({"format": "forecourt-keys/1", "stations": {
        sid: {"active": "k1", "keys": {"k1": k}} for sid, k in keys.items()}}), "bench")
    db = Database(url)
    migrate(db)
    with db.borrow() as conn:
        import_registry(conn, stations)
    now = time.time()
    messages, seqs = [], dict.fromkeys(keys, 0)
    for i in range(max(1, records // per_message)):
        sid = stations[i % len(stations)].station_id
        messages.append(message(sid, bytes.fromhex(keys[sid]), i // len(stations) + 1,
                                seqs[sid], per_message, now))
        seqs[sid] += per_message
    ingestor = Ingestor(db.connect(), {s.station_id: s for s in stations}, lambda: ring,
                        clock=lambda: now)
    # Untimed warm-up of a tenth, then ANALYZE on PostgreSQL, as autovacuum would within a
    # minute: planned on an empty table's statistics, the key lookups scan the whole table.
    warm = len(messages) // 10
    outcomes = []
    for i in range(0, warm, batch):
        outcomes += ingestor.process(messages[i:min(i + batch, warm)])
    if db.dialect == POSTGRESQL:
        with db.borrow() as conn:
            conn.execute("ANALYZE")
    t = time.perf_counter()
    cpu = time.process_time()
    for i in range(warm, len(messages), batch):
        outcomes += ingestor.process(messages[i:i + batch])
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    stored = sum(len(o.accepted) for o in outcomes)
    bad = [o for o in outcomes if o.status != "stored" or o.rejected]
    if bad or stored != len(messages) * per_message:
        raise SystemExit(f"ingest did not store everything: {stored} of "
                         f"{len(messages) * per_message}; first problem {bad[:1]}")
    db.close()
    timed = (len(messages) - warm) * per_message
    return {"engine": db.dialect, "records": timed, "messages": len(messages) - warm,
            "records_per_message": per_message, "batch": batch, "wall_s": round(wall, 3),
            "records_per_s": round(timed / wall), "cpu_s_harness": round(cpu, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", help="database URL (default: SQLite in a temporary directory); "
                                "PostgreSQL: an empty database")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--records-per-message", type=int, default=100)
    p.add_argument("--batch", type=int, default=100, help="messages per transaction")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'platform.db'}"
        result = run(url, args.records, args.records_per_message, args.batch)
    print(f"{result['engine']}: {result['records']:,} records (after a tenth untimed) in "
          f"{result['messages']:,} messages of {result['records_per_message']}, "
          f"{result['batch']} per transaction: "
          f"{result['wall_s']} s → {result['records_per_s']:,} records/s "
          f"(this process's CPU {result['cpu_s_harness']} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
