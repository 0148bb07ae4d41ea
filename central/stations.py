"""Station registry with live status (GET /api/v1/stations) and ingest statistics.

A collector is on line when its last status said so and it was heard (any heartbeat or
online message) within `heartbeat_timeout_s` of platform wall time; a device is on line
when its collector is, and the collector's last report — from its current boot — said the
device answers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from central.db import Conn
from central.params import ParamError, decode_cursor, encode_cursor, fingerprint, parse_limit
from central.params import single as _single
from central.resources import Context, check_known_params, station_param

PARAMS = ("station_id", "town", "ownership", "limit", "cursor")

_DEVICE_ITEM = {
    "type": "object",
    "required": ["device", "expected", "online", "reported_online", "device_time",
                 "last_ok_at", "failures", "error", "reported_at", "drained_through"],
    "properties": {
        "device": {"type": "string", "description": "G or D<n>"},
        "expected": {"type": "boolean", "description": "listed in the station ledger"},
        "online": {"type": "boolean", "description": "effective: collector on line and the "
                                                     "device answering"},
        "reported_online": {"type": ["boolean", "null"]},
        "device_time": {"type": ["number", "null"],
                        "description": "last-seen device clock (RTC), epoch s"},
        "last_ok_at": {"type": ["number", "null"]},
        "failures": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
        "reported_at": {"type": ["number", "null"], "description": "platform wall clock"},
        "drained_through": {"type": ["integer", "null"],
                            "description": "device clock, epoch s: every record the device "
                                           "produced before this instant (device time < "
                                           "this) is at the platform, as the collector "
                                           "last reported (uplink 1.1); null = never "
                                           "reported"},
    },
}
STATION_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["station_id", "name", "town", "ownership", "active", "tanks", "dispensers",
                 "collector", "devices"],
    "properties": {
        "station_id": {"type": "string"}, "name": {"type": "string"},
        "town": {"type": "string"}, "ownership": {"enum": ["private", "state"]},
        "active": {"type": "boolean", "description": "listed in the current ledger"},
        "extra": {"type": "object", "description": "other ledger columns, as text"},
        "tanks": {"type": "array", "items": {"type": "object", "properties": {
            "tank": {"type": "integer"}, "grade": {"type": "string"},
            "nominal_m3": {"type": "integer"}}}},
        "dispensers": {"type": "array", "items": {"type": "object", "properties": {
            "dispenser": {"type": "integer"},
            "nozzles": {"type": "array", "items": {"type": "object", "properties": {
                "nozzle": {"type": "integer"}, "tank": {"type": "integer"}}}}}}},
        "collector": {"type": "object", "required": ["online", "heard"], "properties": {
            "heard": {"type": "boolean", "description": "any status message ever received"},
            "online": {"type": "boolean", "description": "effective on-line state"},
            "reported_online": {"type": ["boolean", "null"]},
            "stale": {"type": ["boolean", "null"],
                      "description": "not heard within the heartbeat timeout"},
            "boot_id": {"type": ["string", "null"]},
            "collector_version": {"type": ["string", "null"]},
            "backlog": {"type": ["integer", "null"]},
            "last_heartbeat_at": {"type": ["number", "null"]},
            "last_seen_at": {"type": ["number", "null"]},
            "changed_at": {"type": ["number", "null"]}}},
        "devices": {"type": "array", "items": _DEVICE_ITEM},
    },
}


def list_stations(conn: Conn, query: Mapping[str, list[str]], ctx: Context) -> dict[str, Any]:
    check_known_params(query, PARAMS)
    limit = parse_limit(_single(query, "limit"))
    clauses, args = [], []
    filters: dict[str, Any] = {}
    sid = station_param(query)
    if sid is not None:
        clauses.append("station_id = ?")
        args.append(sid)
        filters["station_id"] = sid
    for name in ("town", "ownership"):
        value = _single(query, name)
        if value is not None:
            if name == "ownership" and value not in ("private", "state"):
                raise ParamError(name, f"expected private or state, found {value!r}")
            clauses.append(f"{name} = ?")
            args.append(value)
            filters[name] = value
    fp = fingerprint({"resource": "stations", **filters})
    cursor = _single(query, "cursor")
    if cursor is not None:
        position = decode_cursor(cursor, fp)
        if len(position) != 1 or not isinstance(position[0], str):
            raise ParamError("cursor", "not a cursor returned by this API")
        clauses.append("station_id > ?")
        args.append(position[0])
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.query(f"SELECT station_id, name, town, ownership, active, extra_json FROM "
                      f"stations {where} ORDER BY station_id LIMIT ?", [*args, limit + 1])
    page = rows[:limit]
    ids = [r[0] for r in page]
    items = [_station(conn, r, ctx) for r in page] if ids else []
    next_cursor = encode_cursor([page[-1][0]], fp) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def _station(conn: Conn, row: tuple, ctx: Context) -> dict[str, Any]:
    sid, name, town, ownership, active, extra = row
    tanks = [{"tank": int(t), "grade": g, "nominal_m3": int(m)} for t, g, m in conn.query(
        "SELECT tank, grade, nominal_m3 FROM station_tanks WHERE station_id = ? ORDER BY tank",
        (sid,))]
    nozzles: dict[int, list[dict[str, int]]] = defaultdict(list)
    for d, n, t in conn.query("SELECT dispenser, nozzle, tank FROM station_nozzles WHERE "
                              "station_id = ? ORDER BY dispenser, nozzle", (sid,)):
        nozzles[int(d)].append({"nozzle": int(n), "tank": int(t)})
    now = ctx.now()
    status = conn.query_one(
        "SELECT online, boot_id, collector_version, backlog, last_heartbeat_at, last_seen_at, "
        "changed_at FROM collector_status WHERE station_id = ?", (sid,))
    if status is None:
        collector: dict[str, Any] = {"heard": False, "online": False, "reported_online": None,
                                     "stale": None, "boot_id": None, "collector_version": None,
                                     "backlog": None, "last_heartbeat_at": None,
                                     "last_seen_at": None, "changed_at": None}
    else:
        online, boot, version, backlog, hb_at, seen_at, changed = status
        stale = now - float(seen_at) > ctx.heartbeat_timeout_s
        collector = {"heard": True, "online": bool(online) and not stale,
                     "reported_online": bool(online), "stale": stale, "boot_id": boot,
                     "collector_version": version,
                     "backlog": int(backlog) if backlog is not None else None,
                     "last_heartbeat_at": hb_at, "last_seen_at": seen_at, "changed_at": changed}
    reported = {r[0]: r for r in conn.query(
        "SELECT device, online, device_time, last_ok_at, failures, error, reported_at, "
        "drained_through, boot_id FROM device_status WHERE station_id = ?", (sid,))}
    expected = ["G"] + [f"D{d}" for d in sorted(nozzles)]
    devices = []
    for dev in expected + sorted(set(reported) - set(expected)):
        r = reported.get(dev)
        # a restarted collector has not read its devices yet: the last boot's word is old
        fresh = (r is not None and now - float(r[6]) <= ctx.heartbeat_timeout_s
                 and (r[8] is None or r[8] == collector["boot_id"]))
        devices.append({
            "device": dev, "expected": dev in expected,
            "online": bool(collector["online"] and r is not None and r[1] and fresh),
            "reported_online": bool(r[1]) if r is not None else None,
            "device_time": r[2] if r else None, "last_ok_at": r[3] if r else None,
            "failures": int(r[4]) if r else None, "error": r[5] if r else None,
            "reported_at": r[6] if r else None,
            "drained_through": int(r[7]) if r is not None and r[7] is not None else None})
    return {"station_id": sid, "name": name, "town": town, "ownership": ownership,
            "active": bool(active), "extra": json.loads(extra),
            "tanks": tanks,
            "dispensers": [{"dispenser": d, "nozzles": nozzles[d]} for d in sorted(nozzles)],
            "collector": collector, "devices": devices}


STATS_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["station_id", "accepted", "duplicates", "rejected", "rejected_total",
                 "rejected_records", "messages", "ignored"],
    "properties": {
        "station_id": {"type": ["string", "null"]},
        "accepted": {"type": "integer", "description": "device records stored (transactions, "
                                                      "inventory, deliveries, events)"},
        "duplicates": {"type": "integer", "description": "device records received again, "
                                                        "acked"},
        "states": {"type": "object", "description": "state reports (uplink 1.1): accepted, "
                                                    "duplicates",
                   "properties": {"accepted": {"type": "integer"},
                                  "duplicates": {"type": "integer"}}},
        "rejected": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "messages rejected as a whole, by reason"},
        "rejected_total": {"type": "integer"},
        "rejected_records": {"type": "object", "additionalProperties": {"type": "integer"},
                             "description": "single records rejected (listed in the ack)"},
        "messages": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "authenticated messages by type, and redelivered"},
        "ignored": {"type": "object", "additionalProperties": {"type": "integer"}},
        "ingest": {"type": "object", "description": "live state of the ingest service"},
    },
}


def ingest_stats(conn: Conn, query: Mapping[str, list[str]]) -> dict[str, Any]:
    check_known_params(query, ("station_id",))
    sid = station_param(query)
    if sid is None:
        rows = conn.query("SELECT name, SUM(value) FROM ingest_counters GROUP BY name")
    else:
        rows = conn.query("SELECT name, value FROM ingest_counters WHERE station_id = ?",
                          (sid,))
    out: dict[str, Any] = {"station_id": sid, "accepted": 0, "duplicates": 0,
                           "states": {"accepted": 0, "duplicates": 0}, "rejected": {},
                           "rejected_total": 0, "rejected_records": {}, "messages": {},
                           "ignored": {}}
    for name, value in rows:
        value = int(value)
        if name == "records:accepted":
            out["accepted"] = value
        elif name == "records:duplicates":
            out["duplicates"] = value
        elif name.startswith("states:"):
            out["states"][name.split(":", 1)[1]] = value
        elif name.startswith("records:rejected:"):
            out["rejected_records"][name.split(":", 2)[2]] = value
        elif name.startswith("rejected:"):
            out["rejected"][name.split(":", 1)[1]] = value
            out["rejected_total"] += value
        elif name.startswith("messages:"):
            out["messages"][name.split(":", 1)[1]] = value
        elif name.startswith("ignored:"):
            out["ignored"][name.split(":", 1)[1]] = value
    return out
