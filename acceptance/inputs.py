"""What the harness hands the platform as the other departments (docs/platform-api.md §5.8):
the price authority's posted prices (挂牌价), the signed verification records (检定记录)
of the world's maintenance work, and — playing the tax bureau — the stations' tax
declarations (纳税申报).

- Posted prices are the scenario's `prices`, for every station (no `station_id`), posted
  before the devices start producing (`post_prices`).
- Verification records happen in the world as it runs. The devices write each one to
  `inputs.jsonl` (docs/register-map.md §12) the moment it happens, and the ground truth has
  them as `verification_records.parquet` (columns station_id, device, nozzle, kind,
  performed_at, body — `body` is the JSON request body). `poll` posts new lines of the
  file while the run goes on; `post_truth_table` posts whatever the final ground truth holds
  that was not posted yet (late, which run.json shows).
- Tax declarations are made by the world at each period's end (sim/tax.py); the ground-truth
  ledger appends each to `filings.jsonl` at once (docs/ground-truth.md) and the truth has
  them as `tax_declarations.parquet`. `poll_filings` holds each filed one until the world
  reaches its `filed_at` (the period's end + the filing lag) and posts it then;
  `post_held_declarations` posts, at the end of the run, those whose filing time the run
  did not reach (late), and `post_tax_truth_table` any the file did not carry.

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
from sim.ledger import FILINGS

INPUTS_FILE = "inputs.jsonl"
TRUTH_TABLE = "verification_records"
TAX_TABLE = "tax_declarations"
PATHS = {"posted_price": "posted-prices", "verification_record": "verification-records",
         "tax_declaration": "tax-declarations"}


@dataclass
class Posted:
    kind: str  # posted_price | verification_record | tax_declaration
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
        self._filings_offset = 0  # bytes of filings.jsonl consumed
        self._held: list[dict[str, Any]] = []  # filed declarations before their filing time
        self._declared: set[tuple[str, str]] = set()  # (station, reference) posted or tried
        self._lock = threading.Lock()

    def _post(self, kind: str, what: str, body: dict[str, Any], source: str,
              produced_at: float | None = None) -> Posted:
        path = f"{API_PREFIX}/{PATHS[kind]}"
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

    # -- tax declarations (the harness plays the tax bureau) ---------------------------

    def poll_filings(self, devices_dir: Path) -> int:
        """Take the new lines of the ledger's filings.jsonl; post the held declarations whose
        filing time the world has reached. Returns how many were posted now."""
        path = Path(devices_dir) / FILINGS
        try:
            with open(path, "rb") as f:
                f.seek(self._filings_offset)
                chunk = f.read()
        except OSError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self._filings_offset += end
        with self._lock:
            for line in chunk[:end].splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "tax_declaration" \
                        and doc.get("filed"):
                    self._held.append(doc)
        now = self.sim_time()
        if now is None:
            return 0
        return self._post_due(lambda d: float(d.get("filed_at") or 0.0) <= now, "devices")

    def post_held_declarations(self) -> int:
        """Post every held declaration now (the run ended before their filing time: late)."""
        return self._post_due(lambda _d: True, "devices")

    def _post_due(self, due: Callable[[dict[str, Any]], bool], source: str) -> int:
        with self._lock:
            ready = [d for d in self._held if due(d)]
            self._held = [d for d in self._held if not due(d)]
        return self.post_tax_rows(ready, source)

    def post_tax_rows(self, rows: Iterable[dict[str, Any]], source: str) -> int:
        """Post rows of the ground-truth table `tax_declarations` (or filings.jsonl lines) that
        were filed and not posted before; returns how many were posted now."""
        n = 0
        for row in rows:
            key = (str(row.get("station_id")), str(row.get("reference")))
            text = row.get("body")
            if not row.get("filed") or not isinstance(text, str) or not text:
                continue
            with self._lock:
                if key in self._declared:
                    continue
                self._declared.add(key)
            try:
                body = json.loads(text)
            except ValueError as exc:
                self.posted.append(Posted("tax_declaration", key[1], None,
                                          f"body is not JSON: {exc}", time.time(),
                                          self.sim_time(), None, source))
                continue
            filed_at = row.get("filed_at")
            self._post("tax_declaration", f"{key[0]} {key[1]}", body, source,
                       None if filed_at is None else float(filed_at))
            n += 1
        return n

    def post_tax_truth_table(self, truth_dir: Path) -> int:
        """Post the filed rows of the ground-truth table `tax_declarations` not posted yet."""
        path = Path(truth_dir) / f"{TAX_TABLE}.parquet"
        if not path.is_file():
            return 0
        import pandas as pd

        frame = pd.read_parquet(path)
        return self.post_tax_rows(cast(list[dict[str, Any]], frame.to_dict("records")), "truth")

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
    """Polls the devices' inputs.jsonl and the ledger's filings.jsonl every `interval` s while
    the run goes on."""

    def __init__(self, poster: InputPoster, devices_dir: Path, interval: float = 0.2) -> None:
        super().__init__(name="inputs", daemon=True)
        self.poster, self.devices_dir, self.interval = poster, Path(devices_dir), interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.poster.poll(self.devices_dir)
            self.poster.poll_filings(self.devices_dir)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.poster.poll(self.devices_dir)  # what came in the last interval
        self.poster.poll_filings(self.devices_dir)


def _message(answer: Any) -> str:
    try:
        err = answer["error"]
        return f"{err.get('code')}: {err.get('message')} ({err.get('parameter')})"
    except (TypeError, KeyError):
        return str(answer)[:200]
