"""Each station's record-chain head as the platform states it at the end of a run
(docs/platform-api.md §5.18), kept with the run's signed evidence (chain-heads.json, format
forecourt-chain-heads/1): whoever later rewrites a stored record and recomputes the chain
in the platform's database is caught against it (`forecourt platform --verify-chain
--heads RUN/chain-heads.json`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from acceptance.observe import ApiError, PlatformClient
from acceptance.record import write_json

FILE = "chain-heads.json"
FORMAT = "forecourt-chain-heads/1"


def record_chain_heads(api: PlatformClient, station_ids: list[str], out: Path
                       ) -> dict[str, Any]:
    """Write out/chain-heads.json; returns the run.json summary. Evidence, not a verdict: a
    platform that does not offer the endpoint (a vendor's, 404), refuses the token or
    answers something else gets no file, and the summary says why."""
    stations: dict[str, dict[str, Any]] = {}
    for sid in station_ids:
        try:
            doc = api.get("/api/v1/integrity/chain", {"station_id": sid})
            stations[sid] = {"records": int(doc["records"]), "head": str(doc["head"]),
                             "intact": bool(doc["intact"]),
                             "findings_total": int(doc["findings_total"])}
        except ApiError as exc:
            return {"recorded": False, "reason": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"recorded": False, "reason": f"GET /api/v1/integrity/chain?station_id="
                                                 f"{sid}: unexpected answer ({exc!r})"}
    write_json(out / FILE, {"format": FORMAT, "platform": api.base_url,
                            "recorded_at": time.time(), "stations": stations})
    return {"recorded": True, "file": FILE, "stations": len(stations),
            "not_intact": sorted(s for s, d in stations.items() if not d["intact"])}
