"""Totalizer continuity per nozzle and sequence continuity per device stream (on demand).

Totalizer: for consecutive fills of one nozzle (by start time), the previous volume
totalizer plus this fill's volume must equal this fill's totalizer (same for amount); a
break means fills that never reached the platform (filtered, lost) or a totalizer reset.
Found with a window function inside the database.

Sequence: each device stream (transactions, inventory, deliveries, events of one device)
numbers its records 0…65535 and wraps; consecutive records (by device time) must differ
by 1 modulo 65536. Records with the same device time (several tanks read at once) are put
in sequence order relative to the record before them, which keeps the wrap exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from central.db import Conn

MAX_LISTED = 1000  # breaks/gaps listed per item; the counts are always complete
SEQ_MOD = 65536
STREAM_TIME = {"transactions": "end_time", "inventory": "device_time",
               "deliveries": "end_time", "events": "device_time"}


def _where(station_id: str, device: str | None, time_col: str, t_from: float | None,
           t_to: float | None) -> tuple[str, list[Any]]:
    clauses = ["station_id = ?"]
    params: list[Any] = [station_id]
    if device is not None:
        clauses.append("device = ?")
        params.append(device)
    if t_from is not None:
        clauses.append(f"{time_col} >= ?")
        params.append(t_from)
    if t_to is not None:
        clauses.append(f"{time_col} < ?")
        params.append(t_to)
    return " AND ".join(clauses), params


def totalizer_checks(conn: Conn, station_id: str, device: str | None = None,
                     t_from: float | None = None, t_to: float | None = None) -> list[dict]:
    where, params = _where(station_id, device, "end_time", t_from, t_to)
    summary_sql = f"""
SELECT device, nozzle, COUNT(*), SUM(volume_ml), SUM(amount_fen), MIN(start_time), MAX(end_time),
       MAX(CASE WHEN rn_first = 1 THEN volume_total_ml - volume_ml END),
       MAX(CASE WHEN rn_last = 1 THEN volume_total_ml END),
       MAX(CASE WHEN rn_first = 1 THEN amount_total_fen - amount_fen END),
       MAX(CASE WHEN rn_last = 1 THEN amount_total_fen END)
  FROM (SELECT device, nozzle, volume_ml, amount_fen, start_time, end_time,
               volume_total_ml, amount_total_fen,
               ROW_NUMBER() OVER (PARTITION BY device, nozzle ORDER BY start_time, seq, key)
                 AS rn_first,
               ROW_NUMBER() OVER (PARTITION BY device, nozzle
                                  ORDER BY start_time DESC, seq DESC, key DESC) AS rn_last
          FROM transactions WHERE {where}) x
 GROUP BY device, nozzle ORDER BY device, nozzle"""
    breaks_sql = f"""
SELECT device, nozzle, prev_key, key, prev_vt + volume_ml, volume_total_ml,
       prev_at + amount_fen, amount_total_fen
  FROM (SELECT device, nozzle, key, start_time, seq, volume_ml, amount_fen,
               volume_total_ml, amount_total_fen,
               LAG(key) OVER w AS prev_key, LAG(volume_total_ml) OVER w AS prev_vt,
               LAG(amount_total_fen) OVER w AS prev_at
          FROM transactions WHERE {where}
        WINDOW w AS (PARTITION BY device, nozzle ORDER BY start_time, seq, key)) x
 WHERE prev_key IS NOT NULL
   AND (prev_vt + volume_ml <> volume_total_ml OR prev_at + amount_fen <> amount_total_fen)
 ORDER BY device, nozzle, start_time, seq, key"""
    breaks: dict[tuple[str, int], list[dict]] = {}
    counts: dict[tuple[str, int], list[int]] = {}
    for dev, noz, prev_key, key, exp_v, got_v, exp_a, got_a in conn.query(breaks_sql, params):
        k = (dev, int(noz))
        c = counts.setdefault(k, [0, 0, 0])
        c[0] += 1
        c[1] += int(got_v) - int(exp_v)
        c[2] += int(got_a) - int(exp_a)
        listed = breaks.setdefault(k, [])
        if len(listed) < MAX_LISTED:
            listed.append({"after_key": prev_key, "key": key,
                           "expected_volume_total_ml": int(exp_v),
                           "found_volume_total_ml": int(got_v),
                           "volume_gap_ml": int(got_v) - int(exp_v),
                           "expected_amount_total_fen": int(exp_a),
                           "found_amount_total_fen": int(got_a),
                           "amount_gap_fen": int(got_a) - int(exp_a)})
    items = []
    for dev, noz, n, vol, amt, t0, t1, vt0, vt1, at0, at1 in conn.query(summary_sql, params):
        k = (dev, int(noz))
        n_breaks, v_gap, a_gap = counts.get(k, [0, 0, 0])
        items.append({
            "check": "totalizer", "station_id": station_id, "device": dev, "nozzle": int(noz),
            "transactions": int(n), "first_time": int(t0), "last_time": int(t1),
            "volume_sum_ml": int(vol), "volume_total_start_ml": int(vt0),
            "volume_total_end_ml": int(vt1), "volume_totalizer_delta_ml": int(vt1) - int(vt0),
            "volume_unexplained_ml": int(vt1) - int(vt0) - int(vol),
            "amount_sum_fen": int(amt), "amount_total_start_fen": int(at0),
            "amount_total_end_fen": int(at1),
            "amount_totalizer_delta_fen": int(at1) - int(at0),
            "amount_unexplained_fen": int(at1) - int(at0) - int(amt),
            "break_count": n_breaks, "breaks_volume_gap_ml": v_gap,
            "breaks_amount_gap_fen": a_gap, "breaks": breaks.get(k, []),
            "continuous": n_breaks == 0,
        })
    return items


def _ordered(rows: Iterator[tuple]) -> Iterator[tuple[str, int, int, str]]:
    """(device, time, seq, key) rows sorted by (device, time, seq) → the same order, except
    that records sharing a device time follow sequence order relative to the record before
    them (so 65535, 0, 1 at one instant stay in that order across the wrap)."""
    prev_seq: int | None = None
    prev_device: str | None = None
    group: list[tuple[str, int, int, str]] = []

    def flush() -> list[tuple[str, int, int, str]]:
        nonlocal prev_seq
        ordered = _sort_group(group, prev_seq)
        prev_seq = ordered[-1][2]
        return ordered

    for row in rows:
        if group and (row[0], row[1]) != (group[0][0], group[0][1]):
            yield from flush()
            group = []
        if row[0] != prev_device:
            prev_device, prev_seq = row[0], None
        group.append(row)
    if group:
        yield from flush()


def _sort_group(group: list[tuple], prev_seq: int | None) -> list[tuple]:
    if len(group) == 1:
        return list(group)
    if prev_seq is None:  # first records of a device: start after the largest circular gap
        seqs = sorted({r[2] for r in group})
        gaps = [((seqs[(i + 1) % len(seqs)] - s) % SEQ_MOD, i) for i, s in enumerate(seqs)]
        _, i = max(gaps)
        base = seqs[(i + 1) % len(seqs)]
    else:
        base = prev_seq + 1
    return sorted(group, key=lambda r: ((r[2] - base) % SEQ_MOD, r[3]))


def _fetch(cur: Any) -> Iterator[tuple[str, int, int, str]]:
    """Stream (device, time, seq, key) rows without loading them all at once."""
    while True:
        chunk = cur.fetchmany(5000)
        if not chunk:
            return
        for r in chunk:
            yield (r[0], int(r[1]), int(r[2]), r[3])


def sequence_checks(conn: Conn, station_id: str, device: str | None = None,
                    t_from: float | None = None, t_to: float | None = None) -> list[dict]:
    items = []
    for stream, time_col in STREAM_TIME.items():
        where, params = _where(station_id, device, time_col, t_from, t_to)
        cur = conn.execute(f"SELECT device, {time_col}, seq, key FROM {stream} WHERE {where} "
                           f"ORDER BY device, {time_col}, seq, key", params)
        current: dict[str, Any] | None = None
        prev: tuple | None = None
        for dev, t, seq, key in _ordered(_fetch(cur)):
            if current is None or current["device"] != dev:
                if current is not None:
                    items.append(current)
                current = {"check": "sequence", "station_id": station_id, "device": dev,
                           "stream": stream, "records": 0, "first_time": t, "last_time": t,
                           "first_seq": seq, "last_seq": seq, "gap_count": 0,
                           "missing_records": 0, "out_of_order": 0, "repeated": 0,
                           "gaps": [], "continuous": True}
                prev = None
            current["records"] += 1
            current["last_time"], current["last_seq"] = t, seq
            if prev is not None:
                step = (seq - prev[2]) % SEQ_MOD
                if step != 1:
                    kind = ("repeat" if step == 0 else
                            "out_of_order" if step > SEQ_MOD // 2 else "gap")
                    current["continuous"] = False
                    if kind == "gap":
                        current["gap_count"] += 1
                        current["missing_records"] += step - 1
                    else:
                        current["out_of_order" if kind == "out_of_order" else "repeated"] += 1
                    if len(current["gaps"]) < MAX_LISTED:
                        current["gaps"].append({"kind": kind, "after_key": prev[3], "key": key,
                                                "after_seq": prev[2], "seq": seq,
                                                "missing": step - 1 if kind == "gap" else 0})
            prev = (dev, t, seq, key)
        if current is not None:
            items.append(current)
    return items


def station_continuity(conn: Conn, station_id: str, device: str | None = None,
                       t_from: float | None = None, t_to: float | None = None) -> list[dict]:
    """All checks of one station, sorted by (device, check, nozzle or stream)."""
    items = totalizer_checks(conn, station_id, device, t_from, t_to)
    items += sequence_checks(conn, station_id, device, t_from, t_to)
    items.sort(key=lambda it: (it["device"], it["check"], it.get("nozzle", 0),
                               it.get("stream", "")))
    return items
