"""What the harness hands the platform as the other departments (docs/platform-api.md §5.8):
the price authority's posted prices (挂牌价) and the signed verification records (检定记录)
of the world's maintenance work.

- Posted prices are the scenario's `prices`, for every station (no `station_id`), posted
  before the devices start producing (`post_prices`).
- Verification records happen in the world as it runs. The devices write each one to
  `inputs.jsonl` (docs/register-map.md §12) the moment it happens, and the ground truth has
  them as `verification_records.parquet` (columns station_id, device, nozzle, kind,
  performed_at, body — `body` is the JSON request body). `poll` posts new lines of the
  file while the run goes on; `post_truth_table` posts whatever the final ground truth holds
  that was not posted yet (late, which run.json shows).

Every post is recorded (`summary()` → run.json `inputs_posted`): kind, what, HTTP status
(409 = the platform had it already), the simulated time the world produced it and the
simulated time it was posted. A failed post never stops the run; it is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from acceptance.observe import API_PREFIX, ApiError, PlatformClient
from scenarios.loader import Scenario

INPUTS_FILE = "inputs.jsonl"
TRUTH_TABLE = "verification_records"


@dataclass
class Posted:
    kind: str  # posted_price | verification_record
    what: str  # e.g. "92 from 2026-04-02T00:00:00+08:00", "UMB01/D1 verification …"
    status: int | None  # HTTP status; None = no answer
    error: str | None
    wall: float
    sim_time: float | None  # world time when posted (None: before the world started)
    produced_at: float | None = None  # world time the document came into being
    source: str = ""  # scenario | devices (inputs.jsonl) | truth (final table)


def scenario_prices(scenario: Scenario) -> list[dict[str, Any]]:
    """POST /api/v1/posted-prices bodies of the scenario's `prices` (every station)."""
    zone = ZoneInfo(scenario.timezone)
    out = []
    for i, item in enumerate(scenario.data["prices"]):
        at = dt.datetime.fromtimestamp(scenario.instant(item["from"]), zone)
        out.append({"grade": str(item["grade"]), "price_fen": round(float(item["price"]) * 100),
                    "valid_from": at.isoformat(timespec="seconds"),
                    "authority": "scenario", "reference": f"{scenario.name} prices[{i}]"})
    return out


class InputPoster:
    """Posts the other departments' documents to a platform (admin token) and records it."""

    def __init__(self, client: PlatformClient,
                 sim_time: Callable[[], float | None] = lambda: None) -> None:
        self.client = client
        self.sim_time = sim_time
        self.posted: list[Posted] = []
        self._bodies: set[str] = set()  # verification bodies posted (or tried) already
        self._offset = 0  # bytes of inputs.jsonl consumed
        self._lock = threading.Lock()

    def _post(self, kind: str, what: str, body: dict[str, Any], source: str,
              produced_at: float | None = None) -> Posted:
        path = f"{API_PREFIX}/{'posted-prices' if kind == 'posted_price' else 'verification-records'}"
        status: int | None
        try:
            status, answer = self.client.post(path, body)
            error = None if status in (200, 201, 409) else _message(answer)
        except ApiError as exc:
            status, error = exc.status, str(exc)
        entry = Posted(kind, what, status, error, time.time(), self.sim_time(), produced_at,
                       source)
        self.posted.append(entry)
        return entry

    def post_prices(self, scenario: Scenario) -> None:
        for body in scenario_prices(scenario):
            self._post("posted_price", f"{body['grade']} {body['price_fen']} fen/L from "
                       f"{body['valid_from']}", body, "scenario")

    def post_verification_rows(self, rows: Iterable[dict[str, Any]], source: str) -> int:
        """Post rows {station_id, device, nozzle, kind, performed_at, body (JSON text)} not
        posted before; returns how many were posted now."""
        n = 0
        with self._lock:
            for row in rows:
                text = row.get("body")
                if not isinstance(text, str) or text in self._bodies:
                    continue
                self._bodies.add(text)
                try:
                    body = json.loads(text)
                except ValueError as exc:
                    self.posted.append(Posted("verification_record", str(text)[:80], None,
                                              f"body is not JSON: {exc}", time.time(),
                                              self.sim_time(), None, source))
                    continue
                what = (f"{row.get('station_id')}/{row.get('device')} {row.get('kind')} "
                        f"{body.get('certificate_no') or body.get('performed_at', '')}")
                produced = row.get("sim_time", row.get("performed_at"))
                self._post("verification_record", what, body, source,
                           None if produced is None else float(produced))
                n += 1
        return n

    def poll(self, devices_dir: Path) -> int:
        """Post the new complete lines of the devices' inputs.jsonl."""
        path = Path(devices_dir) / INPUTS_FILE
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return 0
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self._offset += end
        rows = []
        for line in chunk[:end].splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("kind") == "verification_record":
                rows.append(doc)
        return self.post_verification_rows(rows, "devices")

    def post_truth_table(self, truth_dir: Path) -> int:
        """Post the rows of the ground-truth table `verification_records` not posted yet
        (nothing if the ground truth has no such table)."""
        path = Path(truth_dir) / f"{TRUTH_TABLE}.parquet"
        if not path.is_file():
            return 0
        import pandas as pd

        frame = pd.read_parquet(path)
        rows = cast(list[dict[str, Any]], frame.to_dict("records"))  # parquet: text column names
        return self.post_verification_rows(rows, "truth")

    def summary(self) -> dict[str, Any]:
        """run.json `inputs_posted`."""
        items = [asdict(p) for p in self.posted]
        by_kind: dict[str, dict[str, int]] = {}
        for p in self.posted:
            k = by_kind.setdefault(p.kind, {"posted": 0, "already_there": 0, "failed": 0})
            if p.status in (200, 201):
                k["posted"] += 1
            elif p.status == 409:
                k["already_there"] += 1
            else:
                k["failed"] += 1
        return {"counts": by_kind, "items": items}


class InputPump(threading.Thread):
    """Polls the devices' inputs.jsonl every `interval` s while the run goes on."""

    def __init__(self, poster: InputPoster, devices_dir: Path, interval: float = 0.2) -> None:
        super().__init__(name="inputs", daemon=True)
        self.poster, self.devices_dir, self.interval = poster, Path(devices_dir), interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.poster.poll(self.devices_dir)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.poster.poll(self.devices_dir)  # what came in the last interval


def _message(answer: Any) -> str:
    try:
        err = answer["error"]
        return f"{err.get('code')}: {err.get('message')} ({err.get('parameter')})"
    except (TypeError, KeyError):
        return str(answer)[:200]
