"""Verify a station's record chain against the stored records (docs/platform-api.md §5.18).

Findings, each naming what it is about:
  altered      a stored record whose current digest (recomputed from its columns) is not the
               chained one, or whose station/device columns disagree with its key (key)
  missing      chained but no longer stored (key)
  unchained    stored but not in the chain: inserted directly, or stored before migration
               0008 (key)
  broken_link  a chain row whose hash does not follow from the previous one, a gap in the
               positions, or a head that is not the last link (position)
  not_anchored the link at a head recorded earlier (e.g. in a run's evidence) is not that
               head: the chain was rebuilt after a change at or before it (position)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.chain import GENESIS, link, stored_digester
from central.db import Conn
from central.store import OPTIONAL_FIELDS, RECORD_FIELDS, TABLE_OF_KIND

MAX_FINDINGS = 100  # kept in a report (the total is counted)


@dataclass
class ChainReport:
    station_id: str
    records: int = 0  # links in the chain
    head: str = GENESIS  # chain_hash of the last link
    findings: list[dict[str, Any]] = field(default_factory=list)
    findings_total: int = 0

    @property
    def intact(self) -> bool:
        return self.findings_total == 0

    def add(self, finding: str, detail: str, **where: Any) -> None:
        self.findings_total += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append({"finding": finding, **where, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        return {"station_id": self.station_id, "records": self.records, "head": self.head,
                "intact": self.intact, "findings_total": self.findings_total,
                "findings": self.findings}


def verify_station(conn: Conn, station_id: str,
                   anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the station's chain and compare it with every record stored for it, and
    with `anchor` (position, chain_hash) recorded outside the database earlier if given."""
    report = ChainReport(station_id)
    chained = _check_links(conn, station_id, report, anchor)
    for stream, key, device, current in _stored(conn, station_id):
        entry = chained.pop(key, None)
        if entry is None:
            report.add("unchained", f"stored in {stream} but not in the chain", key=key)
            continue
        position, chained_stream, digest = entry
        parts = key.split("/")
        if chained_stream != stream:
            report.add("altered", f"stored in {stream}, chained at position {position} as "
                                  f"{chained_stream}", key=key)
        elif parts[:2] != [station_id, device]:
            report.add("altered", f"station/device columns {station_id}/{device} differ from "
                                  "the key's", key=key)
        elif current != digest:
            report.add("altered", f"digest of the stored columns {current[:16]}… ≠ chained "
                                  f"{digest[:16]}… (position {position})", key=key)
    for key, (position, stream, _) in sorted(chained.items(), key=lambda kv: kv[1][0]):
        report.add("missing", f"chained at position {position} in {stream}, not stored",
                   key=key)
    return report


HEADS_FORMAT = "forecourt-chain-heads/1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_heads(path: Path) -> dict[str, tuple[int, str]]:
    """station → (records, head) from a heads file (format forecourt-chain-heads/1, written
    with a run's evidence: docs/platform-api.md §5.18); ValueError naming what is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--heads {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"--heads {path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != HEADS_FORMAT:
        raise ValueError(f"--heads {path}: expected an object with \"format\": "
                         f"\"{HEADS_FORMAT}\"")
    stations = doc.get("stations")
    if not isinstance(stations, dict):
        raise ValueError(f"--heads {path}: stations: expected an object")
    out = {}
    for sid, entry in stations.items():
        records = entry.get("records") if isinstance(entry, dict) else None
        head = entry.get("head") if isinstance(entry, dict) else None
        if (not isinstance(records, int) or isinstance(records, bool) or records < 0
                or not isinstance(head, str) or not _HEX64.fullmatch(head)):
            raise ValueError(f"--heads {path}: stations.{sid}: expected {{\"records\": "
                             "integer ≥ 0, \"head\": 64 lower-case hex}")
        out[str(sid)] = (records, head)
    return out


def stations_to_verify(conn: Conn) -> list[str]:
    """Every station with a chain or a registry entry."""
    rows = conn.query("SELECT station_id FROM chain_heads UNION SELECT station_id FROM stations")
    return sorted(str(r[0]) for r in rows)


def _check_links(conn: Conn, station_id: str, report: ChainReport,
                 anchor: tuple[int, str] | None) -> dict[str, tuple[int, str, str]]:
    """Walk the chain; returns key → (position, stream, digest) of every link."""
    chained: dict[str, tuple[int, str, str]] = {}
    previous, expected = GENESIS, 1
    anchored_at: str | None = GENESIS if anchor is not None and anchor[0] == 0 else None
    cur = conn.execute("SELECT position, stream, key, digest, chain_hash FROM record_chain "
                       "WHERE station_id = ? ORDER BY position", (station_id,))
    for position, stream, key, digest, chain_hash in cur:
        position = int(position)
        if position != expected:
            report.add("broken_link", f"expected position {expected}, found {position} "
                                      "(links removed or renumbered)", position=position)
        elif link(previous, stream, key, digest) != chain_hash:
            report.add("broken_link", "chain_hash does not follow from the previous link "
                                      f"and this link's stream, key and digest ({stream} "
                                      f"{key})", position=position)
        if key in chained:
            report.add("broken_link", f"{key} chained twice (first at position "
                                      f"{chained[key][0]})", position=position)
        chained[key] = (position, stream, digest)
        if anchor is not None and position == anchor[0]:
            anchored_at = chain_hash
        # go on from the stored hash: one edited link is one finding, not all after it
        previous, expected = chain_hash, position + 1
        report.records, report.head = position, chain_hash
    head = conn.query_one("SELECT position, head FROM chain_heads WHERE station_id = ?",
                          (station_id,))
    stored_head = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
    if stored_head != (report.records, report.head):
        report.add("broken_link", f"chain_heads holds position {stored_head[0]} "
                                  f"{stored_head[1][:16]}…, the last link is position "
                                  f"{report.records} {report.head[:16]}…",
                   position=stored_head[0])
    if anchor is not None and anchored_at != anchor[1]:
        found = (f"the link there is {anchored_at[:16]}…" if anchored_at is not None
                 else f"the chain has only {report.records} link(s)")
        report.add("not_anchored", f"a head recorded earlier is {anchor[1][:16]}… at position "
                                   f"{anchor[0]}; {found}", position=anchor[0])
    return chained


def _stored(conn: Conn, station_id: str) -> Iterator[tuple[str, str, str, str]]:
    """(stream, key, device, digest of the stored columns) of every record stored for the
    station."""
    for kind, table in TABLE_OF_KIND.items():
        fields = ("key", "seq", *RECORD_FIELDS[kind], *OPTIONAL_FIELDS.get(kind, ()))
        digest = stored_digester(fields)
        cur = conn.execute(f"SELECT device, {', '.join(fields)} FROM {table} "
                           "WHERE station_id = ? ORDER BY key", (station_id,))
        for row in cur:
            values = row[1:]
            yield table, str(values[0]), str(row[0]), digest(values)
