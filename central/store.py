"""Batch ingest into the database: replay check, de-duplication, storage, status, counters.

`Ingestor.process(batch)` handles a batch of received MQTT messages in ONE transaction
and returns, per message, what happened and the signed acknowledgement to publish after
the commit. Nothing here talks MQTT, so it is tested without a broker.

Replay rule (docs/uplink.md §6): an authenticated message whose (station_id, msg_seq) was
processed before is a redelivery if the platform's clock is within `replay_window_s` of
its `sent_at` and its content is the same — it is acknowledged again (records come out as
duplicates); otherwise it is rejected with reason `replay`. A retained `online` message
that the broker hands out again on (re)subscription is ignored, not counted as a replay.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from central import signing
from central.chain import ChainAppender
from central.checks import (
    Inbound,
    Rejection,
    Verified,
    check_message,
    expected_key,
    record_digest,
)
from central.db import Conn, in_chunks, placeholders
from central.keys import KeyRing
from central.registry import Station
from central.topics import STREAM_OF_KIND, ack_topic

log = logging.getLogger(__name__)

# Columns of each data table after (key, station_id, device, seq), in insert order.
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "transaction": ("nozzle", "grade", "tank", "start_time", "end_time", "volume_ml",
                    "amount_fen", "unit_price_fen", "volume_total_ml", "amount_total_fen"),
    "inventory": ("tank", "device_time", "product_level_um", "water_level_um",
                  "temperature_mc", "gross_volume_ml", "volume_20c_ml", "ullage_ml",
                  "water_volume_ml"),
    "delivery": ("tank", "start_time", "end_time", "start_gross_volume_ml",
                 "start_volume_20c_ml", "end_gross_volume_ml", "end_volume_20c_ml",
                 "start_temperature_mc", "end_temperature_mc", "start_level_um",
                 "end_level_um"),
    "event": ("code", "unit", "device_time", "value_old_e4", "value_new_e4"),
    "state": ("device_time", "serial_number", "software_id", "mainboard_id", "encoder_id",
              "seal_state", "device_status"),
}
# Fields a record may leave out (uplink 1.1 additions; stored as NULL = not reported).
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"delivery": ("bol_volume_20c_ml",)}
# Free text from a device (stored through `text`: PostgreSQL refuses NUL).
TEXT_FIELDS = frozenset(("serial_number", "software_id", "mainboard_id", "encoder_id"))
TABLE_OF_KIND = STREAM_OF_KIND  # table names equal stream names
_TEXT_OF_KIND = {kind: tuple(f for f in fields if f in TEXT_FIELDS)
                 for kind, fields in RECORD_FIELDS.items()}


def _columns(kind: str) -> tuple[str, ...]:
    return ("key", "station_id", "device", "seq", *RECORD_FIELDS[kind],
            *OPTIONAL_FIELDS.get(kind, ()), "collected_at", "received_at", "msg_seq", "digest")


_COLUMNS = {kind: _columns(kind) for kind in RECORD_FIELDS}
EXCERPT_BYTES = 512


@dataclass
class Outcome:
    """What became of one inbound message."""

    status: str  # "stored" | "redelivery" | "rejected" | "ignored"
    reason: str | None = None
    detail: str = ""
    station_id: str = ""
    ack: tuple[str, bytes] | None = None  # (topic, payload) to publish after commit
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class _Tally:
    """Counter increments of one batch, written with one upsert per (station, name)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, station_id: str, name: str, n: int = 1) -> None:
        if n:
            self.counts[(station_id, name)] += n

    def flush(self, conn: Conn) -> None:
        conn.executemany(
            "INSERT INTO ingest_counters (station_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (station_id, name) DO UPDATE SET "
            "value = ingest_counters.value + excluded.value",
            [(s, n, v) for (s, n), v in sorted(self.counts.items())])


# Rejected messages kept as a sample per station ('' = not attributable): every one is
# counted (ingest_counters), but a flood of garbage must not grow the database without bound.
REJECTION_SAMPLE = 1000


class RejectionLog:
    """Rejections logged at WARNING, at most `per_minute` per station per minute: a flood is
    counted in full (ingest_counters) but must not flood the log; what was left out is said
    once the minute is over."""

    def __init__(self, per_minute: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._windows: dict[str, list[float]] = {}  # station → [start, logged, suppressed]

    def log(self, station_id: str, topic: str, reason: str | None, detail: str | None) -> None:
        now = self.clock()
        w = self._windows.setdefault(station_id, [now, 0, 0])
        if now - w[0] >= 60.0:
            if w[2]:
                log.warning("%d more rejected message(s) of station %r not logged in the last "
                            "minute (all are counted: GET /api/v1/stats/ingest)", w[2],
                            station_id)
            w[:] = [now, 0, 0]
        if w[1] < self.per_minute:
            w[1] += 1
            log.warning("rejected message on %s: %s (%s)", topic[:120], reason, detail)
        else:
            w[2] += 1


class Ingestor:
    def __init__(self, conn: Conn, stations: Mapping[str, Station],
                 keys: Callable[[], KeyRing], replay_window_s: float = 600.0,
                 clock: Callable[[], float] = time.time,
                 rejection_sample: int = REJECTION_SAMPLE) -> None:
        self.conn = conn
        self.stations = stations
        self.keys = keys
        self.replay_window_s = replay_window_s
        self.clock = clock
        self.rejection_sample = rejection_sample
        self._rejection_log = RejectionLog()
        # the batch in progress, looked up and written in bulk (a few statements per batch,
        # not four per message: each is a round trip on PostgreSQL)
        self._new: dict[str, dict[str, tuple]] = {}  # kind → key → new row
        self._stored: dict[str, dict[str, str]] = {}  # table → key → digest, before the batch
        self._seen: dict[tuple[str, int], tuple[str, float]] = {}  # message → (digest, sent_at)
        self._fresh: set[tuple[str, int]] = set()  # messages this batch stored first
        self._acks: list[tuple[str, int, Outcome, str, bytes]] = []

    # -- public -------------------------------------------------------------------------
    def process(self, batch: list[Inbound]) -> list[Outcome]:
        """Admit, store and count a batch in one transaction; acks are built, not sent."""
        ring = self.keys()
        now = self.clock()
        checked = [check_message(m, self.stations, ring) for m in batch]
        tally = _Tally()
        rejections: list[tuple] = []
        outcomes: list[Outcome] = []
        self._new, self._acks = {}, []
        verified = [r for r in checked if isinstance(r, Verified)]
        with self.conn.transaction():
            chain = ChainAppender(self.conn)
            chain.lock(v.payload["station_id"] for v in verified
                       if v.topic.kind in TABLE_OF_KIND)
            # after the lock: another instance's commit of the same stations is visible
            self._look_up_messages(verified, now)
            self._look_up_records(verified)
            for msg, result in zip(batch, checked, strict=True):
                if isinstance(result, Rejection):
                    outcome = Outcome("rejected", result.reason, result.detail,
                                      result.station_id)
                else:
                    outcome = self._admitted(msg, result, ring, now, tally, rejections,
                                             chain)
                if outcome.status == "rejected":
                    tally.add(outcome.station_id, f"rejected:{outcome.reason}")
                    rejections.append(_rejection_row(msg, outcome.station_id, "message", None,
                                                     outcome.reason or "", outcome.detail))
                    self._rejection_log.log(outcome.station_id, msg.topic, outcome.reason,
                                            outcome.detail)
                outcomes.append(outcome)
            self._issue_acks(now)
            for kind, rows in self._new.items():
                self.conn.insert(TABLE_OF_KIND[kind], _COLUMNS[kind], list(rows.values()),
                                 skip_conflict_on="key")
            chain.flush()
            self._write_rejections(rejections)
            tally.flush(self.conn)
        return outcomes

    def reject_internal(self, msg: Inbound, detail: str) -> Outcome:
        """Record a message the platform failed to process (a bug, not the sender's fault)."""
        outcome = Outcome("rejected", "internal_error", detail[:500], "")
        tally = _Tally()
        tally.add("", "rejected:internal_error")
        with self.conn.transaction():
            self._write_rejections([_rejection_row(msg, "", "message", None, "internal_error",
                                                   outcome.detail)])
            tally.flush(self.conn)
        log.error("internal error on message %s: %s", msg.topic[:120], detail)
        return outcome

    # -- per message --------------------------------------------------------------------
    def _admitted(self, msg: Inbound, v: Verified, ring: KeyRing, now: float, tally: _Tally,
                  rejections: list[tuple], chain: ChainAppender) -> Outcome:
        p = v.payload
        sid = p["station_id"]
        ident = (sid, p["msg_seq"])
        seen = self._seen.get(ident)
        redelivery = seen is not None
        if ident in self._fresh:  # this copy stored it; a later copy in the batch is seen
            self._fresh.discard(ident)
            self._seen[ident] = (v.digest, p["sent_at"])
            tally.add(sid, f"messages:{p['type']}")
        elif seen is None:
            # another platform instance on this database stored it since our look-up (both
            # subscribe to the broker): a redelivery, not a primary-key error
            redelivery = True
            tally.add(sid, "messages:redelivered")
        else:
            digest, sent_at = seen
            if msg.retained and digest == v.digest:
                tally.add(sid, "ignored:retained_redelivery")
                return Outcome("ignored", "retained_redelivery", station_id=sid)
            if digest != v.digest:
                return Outcome("rejected", "replay", f"msg_seq {p['msg_seq']} was already "
                               "processed with different content", sid)
            if now - float(sent_at) > self.replay_window_s:
                return Outcome("rejected", "replay", f"msg_seq {p['msg_seq']} already processed;"
                               f" sent_at {float(sent_at):.0f} is {now - float(sent_at):.0f} s "
                               f"old (window {self.replay_window_s:.0f} s)", sid)
            tally.add(sid, "messages:redelivered")

        kind = v.topic.kind
        if kind == "heartbeat":
            if not redelivery:
                self._heartbeat(p, now)
            return Outcome("redelivery" if redelivery else "stored", station_id=sid)
        if kind == "online":
            if not redelivery:
                self._online(p, now)
            return Outcome("redelivery" if redelivery else "stored", station_id=sid)

        outcome = self._records(msg, v, now, tally, rejections, chain)
        outcome.status = "redelivery" if redelivery else "stored"
        active = ring.active(sid)
        if active is not None:  # verified with this station's key, so it has one
            self._acks.append((sid, p["msg_seq"], outcome, *active))
        return outcome

    def _look_up_messages(self, verified: list[Verified], now: float) -> None:
        """What the database knew of the batch's messages before it (`_seen`), and store
        those it did not know (`_fresh`: the ones this batch inserted)."""
        self._seen, self._fresh = {}, set()
        first: dict[tuple[str, int], Verified] = {}
        for v in verified:
            first.setdefault((v.payload["station_id"], v.payload["msg_seq"]), v)
        idents = list(first)
        for chunk in in_chunks(idents):
            self._seen.update(((sid, int(seq)), (digest, float(sent_at)))
                              for sid, seq, digest, sent_at in self.conn.query(
                "SELECT m.station_id, m.msg_seq, m.digest, m.sent_at FROM ingest_messages m "
                f"JOIN (VALUES {', '.join(['(?, ?)'] * len(chunk))}) v "
                "ON m.station_id = v.column1 AND m.msg_seq = v.column2",
                [x for ident in chunk for x in ident]))
        new = [ident for ident in idents if ident not in self._seen]
        for chunk in in_chunks(new):
            rows = [_message_row(first[ident], now) for ident in chunk]
            self._fresh.update((sid, int(seq)) for sid, seq in self.conn.query(
                "INSERT INTO ingest_messages (station_id, msg_seq, type, device, sent_at, "
                "received_at, digest, records) VALUES "
                f"{', '.join(['(' + placeholders(8) + ')'] * len(rows))} "
                "ON CONFLICT (station_id, msg_seq) DO NOTHING RETURNING station_id, msg_seq",
                [x for row in rows for x in row]))

    def _look_up_records(self, verified: list[Verified]) -> None:
        """The digests already stored under the keys the batch's records carry."""
        keys: dict[str, set[str]] = {}
        for v in verified:
            if v.topic.kind in TABLE_OF_KIND:
                keys.setdefault(TABLE_OF_KIND[v.topic.kind], set()).update(
                    rec["key"] for rec in v.payload["records"])
        self._stored = {}
        for table, wanted in keys.items():
            stored = self._stored[table] = {}
            for chunk in in_chunks(sorted(wanted)):
                stored.update(self.conn.query(
                    f"SELECT key, digest FROM {table} WHERE key IN "
                    f"({placeholders(len(chunk))})", chunk))

    def _records(self, msg: Inbound, v: Verified, now: float, tally: _Tally,
                 rejections: list[tuple], chain: ChainAppender) -> Outcome:
        p = v.payload
        sid, device, kind = p["station_id"], p["device"], v.topic.kind
        out = Outcome("stored", station_id=sid)
        candidates: dict[str, tuple[dict[str, Any], str]] = {}
        order: list[str] = []
        for rec in p["records"]:
            key = rec["key"]
            want = expected_key(sid, device, kind, rec)
            if key != want:
                out.rejected.append((key, "key_mismatch"))
                rejections.append(_rejection_row(msg, sid, "record", key, "key_mismatch",
                                                 f"expected key {want}"))
                continue
            digest = record_digest(rec)
            if key in candidates:  # the same key twice in one message
                if candidates[key][1] == digest:
                    out.duplicates.append(key)
                else:
                    out.rejected.append((key, "conflict"))
                    rejections.append(_rejection_row(msg, sid, "record", key, "conflict",
                                                     "same key twice in one message with "
                                                     "different values"))
                continue
            candidates[key] = (rec, digest)
            order.append(key)

        table = TABLE_OF_KIND[kind]
        new_rows = self._new.setdefault(kind, {})
        before = self._stored.get(table, {})
        for key in order:
            rec, digest = candidates[key]
            # an earlier message of this batch may carry the key too (a resend): staged
            stored = new_rows[key][-1] if key in new_rows else before.get(key)
            if stored is not None:
                if stored == digest:
                    out.duplicates.append(key)
                else:
                    out.rejected.append((key, "conflict"))
                    rejections.append(_rejection_row(
                        msg, sid, "record", key, "conflict",
                        "a record with this key but different values is already stored"))
                continue
            out.accepted.append(key)
            new_rows[key] = ((key, sid, device, rec["seq"],
                             *(text(rec[f]) if f in TEXT_FIELDS else rec[f]
                               for f in RECORD_FIELDS[kind]),
                             *(rec.get(f) for f in OPTIONAL_FIELDS.get(kind, ())),
                             rec["collected_at"], now, p["msg_seq"], digest))
            chain.append(sid, table, key, _stored_digest(kind, rec, digest))
        # `records:` counts the devices' own records (what their FIFOs served); state reports
        # are the collector's, counted apart (GET /stats/ingest `states`).
        counted = "states" if kind == "state" else "records"
        tally.add(sid, f"{counted}:accepted", len(out.accepted))
        tally.add(sid, f"{counted}:duplicates", len(out.duplicates))
        for _, reason in out.rejected:
            tally.add(sid, f"records:rejected:{reason}")
        if out.rejected:
            log.warning("station %s: %d record(s) rejected: %s", sid, len(out.rejected),
                        ", ".join(f"{k} ({r})" for k, r in out.rejected[:5]))
        return out

    def _issue_acks(self, now: float) -> None:
        """Number and sign the batch's acks: one upsert of every station's ack counter."""
        if not self._acks:
            return
        counts = Counter(sid for sid, *_ in self._acks)
        rows = list(counts.items())
        last = dict(self.conn.query(
            "INSERT INTO ack_counters (station_id, msg_seq) VALUES "
            f"{', '.join(['(?, ?)'] * len(rows))} ON CONFLICT (station_id) DO UPDATE SET "
            "msg_seq = ack_counters.msg_seq + excluded.msg_seq RETURNING station_id, msg_seq",
            [x for row in rows for x in row]))
        if set(last) != set(counts):  # RETURNING gives every row; a database that does not is broken
            raise RuntimeError(f"ack counters: the database returned {sorted(last)} for "
                               f"{sorted(counts)}")
        seq = {sid: int(last[sid]) - n for sid, n in counts.items()}
        for sid, acked, out, kid, key in self._acks:
            seq[sid] += 1
            topic = ack_topic(sid)
            body = {"v": 1, "type": "ack", "station_id": sid, "msg_seq": seq[sid],
                    "sent_at": now, "acked_msg_seq": acked, "accepted": out.accepted,
                    "duplicates": out.duplicates,
                    "rejected": [{"key": k, "reason": r} for k, r in out.rejected]}
            signed = signing.sign(key, kid, topic, body)
            out.ack = topic, json.dumps(signed, separators=(",", ":"),
                                        ensure_ascii=False).encode()

    # -- status -------------------------------------------------------------------------
    def _heartbeat(self, p: dict[str, Any], now: float) -> None:
        sid, seq, boot = p["station_id"], p["msg_seq"], text(p["boot_id"])
        self._collector_state(sid, seq, p["sent_at"], now, online=True, boot_id=boot,
                              version=text(p["collector_version"]), backlog=p["backlog"],
                              heartbeat=True, force=False)
        log_rows = [(sid, "", now, p["sent_at"], seq, "heartbeat", 1, None, boot)]
        # one statement for every device (a heartbeat of 46 stations every few seconds)
        # drained_through (uplink 1.1): null or absent keeps what was known; a 1.0 collector
        # never sends it.
        self.conn.executemany(
            "INSERT INTO device_status (station_id, device, online, device_time, "
            "last_ok_at, failures, error, reported_at, msg_seq, drained_through, boot_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station_id, device) DO "
            "UPDATE SET online = excluded.online, device_time = excluded.device_time, "
            "last_ok_at = excluded.last_ok_at, failures = excluded.failures, "
            "error = excluded.error, reported_at = excluded.reported_at, "
            "msg_seq = excluded.msg_seq, drained_through = "
            "COALESCE(excluded.drained_through, device_status.drained_through), "
            "boot_id = excluded.boot_id "
            "WHERE device_status.msg_seq < excluded.msg_seq",
            [(sid, d["device"], int(d["online"]), d["device_time"], d["last_ok_at"],
              d["failures"], text(d["error"]), now, seq, d.get("drained_through"), boot)
             for d in p["devices"]])
        log_rows += [(sid, d["device"], now, p["sent_at"], seq, "heartbeat", int(d["online"]),
                      d["device_time"], boot) for d in p["devices"]]
        self._log_availability(log_rows)

    def _online(self, p: dict[str, Any], now: float) -> None:
        sid, seq, online = p["station_id"], p["msg_seq"], bool(p["online"])
        boot = text(p["boot_id"])
        current = self.conn.query_one(
            "SELECT boot_id FROM collector_status WHERE station_id = ?", (sid,))
        # The last will is signed at connect time, so it carries an older msg_seq than the
        # heartbeats after it: an offline message of the current boot always applies.
        force = not online and current is not None and current[0] == boot
        self._collector_state(sid, seq, p["sent_at"], now, online=online, boot_id=boot,
                              version=None, backlog=None, heartbeat=False, force=force)
        self._log_availability([(sid, "", now, p["sent_at"], seq, "online", int(online), None,
                                 boot)])

    def _collector_state(self, sid: str, seq: int, sent_at: float, now: float, *, online: bool,
                         boot_id: str | None, version: str | None, backlog: int | None,
                         heartbeat: bool, force: bool) -> None:
        row = self.conn.query_one(
            "SELECT online, status_msg_seq FROM collector_status WHERE station_id = ?", (sid,))
        if row is None:
            self.conn.execute(
                "INSERT INTO collector_status (station_id, online, boot_id, collector_version, "
                "backlog, status_msg_seq, status_sent_at, last_heartbeat_at, last_seen_at, "
                "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (station_id) DO NOTHING",  # another instance was first
                (sid, int(online), boot_id, version, backlog, seq, sent_at,
                 now if heartbeat else None, now, now))
            return
        was_online, last_seq = int(row[0]), int(row[1])
        if seq > last_seq or force:
            changed = now if int(online) != was_online else None
            self.conn.execute(
                "UPDATE collector_status SET online = ?, boot_id = ?, "
                "collector_version = COALESCE(?, collector_version), "
                "backlog = COALESCE(?, backlog), status_msg_seq = ?, status_sent_at = ?, "
                "last_heartbeat_at = CASE WHEN ? = 1 THEN ? ELSE last_heartbeat_at END, "
                "last_seen_at = ?, changed_at = COALESCE(?, changed_at) WHERE station_id = ?",
                (int(online), boot_id, version, backlog, max(seq, last_seq), sent_at,
                 int(heartbeat), now, now, changed, sid))
        else:  # a late, older status message: the station was heard, state unchanged
            self.conn.execute("UPDATE collector_status SET last_seen_at = ? "
                              "WHERE station_id = ?", (now, sid))

    def _log_availability(self, rows: list[tuple]) -> None:
        self.conn.executemany(
            "INSERT INTO availability_log (station_id, device, received_at, sent_at, msg_seq, "
            "kind, online, device_time, boot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _write_rejections(self, rows: list[tuple]) -> None:
        self.conn.executemany(
            "INSERT INTO ingest_rejections (id, received_at, topic, station_id, scope, "
            "record_key, reason, detail, payload_sha256, payload_excerpt) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for sid in sorted({r[3] for r in rows}):  # keep each station's newest sample only
            self.conn.execute(
                "DELETE FROM ingest_rejections WHERE station_id = ? AND id NOT IN ("
                "SELECT id FROM ingest_rejections WHERE station_id = ? "
                "ORDER BY received_at DESC, id DESC LIMIT ?)",
                (sid, sid, self.rejection_sample))


def _message_row(v: Verified, now: float) -> tuple:
    p = v.payload
    return (p["station_id"], p["msg_seq"], p["type"], p.get("device"), p["sent_at"], now,
            v.digest, len(p.get("records", ())))


def _stored_digest(kind: str, rec: Mapping[str, Any], digest: str) -> str:
    """The digest of the record as its row stores it (what the chain holds): the uplink
    digest, unless `text` had to change a free-text field (NUL, length)."""
    stored = {f: text(rec[f]) for f in _TEXT_OF_KIND[kind]}
    if all(stored[f] == rec[f] for f in stored):
        return digest
    return record_digest({**{k: v for k, v in rec.items() if k != "collected_at"}, **stored})


def text(value: str | None, limit: int = 1000) -> str | None:
    """Free text from a message, safe for both engines (PostgreSQL refuses NUL)."""
    if value is None:
        return None
    return value[:limit].replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _rejection_row(msg: Inbound, station_id: str, scope: str, key: str | None, reason: str,
                   detail: str) -> tuple:
    excerpt = msg.payload[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return (uuid.uuid4().hex, msg.received_at, text(msg.topic, 300), station_id, scope,
            text(key, 200), reason, text(detail), hashlib.sha256(msg.payload).hexdigest(),
            text(excerpt, EXCERPT_BYTES))
