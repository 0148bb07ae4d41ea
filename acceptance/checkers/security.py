"""SEC-1: forged, tampered and replayed messages are refused, a station publishes only as
itself, and nobody reads or writes without the right account (数据安全).

From the attack phase (security.json, acceptance/attacks/phase.py), one measurement per
attempt: `attack.<id>` is 1 when the broker, the platform or the API refused it as a
correct SUT must (docs/requirements.md, SEC-1), 0 when it got through, and has no value —
the requirement is then incomplete, not passed — when the run could not try it (e.g. a run
of one station cannot try another station's topic, or the harness has no subscriber on an
external broker). Then two figures over the whole run: no forged fill may ever be served as
data (`attack.forged_records_served`), and honest ingest went on: every station's messages
were still ingested after the attacks (`attack.honest_ingest_ratio`).
"""

from __future__ import annotations

from typing import Any

from acceptance.checkers.common import first
from acceptance.compare import STREAMS
from acceptance.record import Measurement
from acceptance.rundir import RunData

EVIDENCE_FIELDS = ("id", "actor", "action", "target", "layer", "expected", "outcome",
                   "platform_outcome", "note")


def attacks_refused(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    doc = data.security
    out = []
    for a in doc["attempts"]:
        passed = a.get("passed")
        value = None if passed is None else int(bool(passed))
        out.append(Measurement("SEC-1", f"attack.{a['id']}", value, "==", 1, "attempt",
                               a.get("station_id"), scope=value is None,
                               evidence={k: a.get(k) for k in EVIDENCE_FIELDS}))
    markers = {k for a in doc["attempts"] for k in a.get("marker_keys") or ()}
    served: set[str] = set()
    for stream in STREAMS if markers else ():
        found = data.observed_arrow(stream, ("key",), [("key", "in", sorted(markers))])
        served |= {str(k) for k in found.column("key").to_pylist()} if found.num_columns \
            else set()
    out.append(Measurement("SEC-1", "attack.forged_records_served", len(served), "==", 0,
                           "records", evidence={"forged_records": len(markers),
                                                "served": first(sorted(served))}))
    honest = doc.get("honest_ingest") or {}
    stations = int(honest.get("stations") or 0)
    progressed = list(honest.get("progressed") or [])
    missing = sorted(set(data.station_ids) - set(progressed))
    out.append(Measurement("SEC-1", "attack.honest_ingest_ratio",
                           len(progressed) / stations if stations else None, ">=", 1.0,
                           "ratio", evidence={"stations_not_ingested_after": first(missing),
                                              "monitor": doc.get("monitor"),
                                              "waited_s": honest.get("waited_s")}))
    return out
