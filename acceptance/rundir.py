"""A run directory (docs/run-record.md), read lazily into one object for the checkers.

    data = RunData("runs/smoke")
    data.comparison        # ground truth ↔ platform, every record classified, station by
                           # station (compare.py, station_compare.py)
    data.availability      # on-line samples of the platform's GET /stations

Nothing is read until asked for, and each file is read once into memory. The record
streams are never read whole by the checkers, so memory does not grow with the run's length:
the comparison reads the truth and observed/<stream>.parquet station by station,
`station_truths()` gives the truth one station at a time, and `truth_table(name, columns)` /
`observed_columns(stream, columns)` read only the columns a checker needs (`truth` and
`observed` stay for whole-frame use on short runs). A file that is missing or
lacks a column raises RunDataError naming the file, what is missing and who writes it, so
a checker that needs it fails with that message (an `error` outcome) while the others go on.

Files the run writes and their columns, as this module reads them:

- `run.json`: `run_id`, `harness` {`version`, `git_commit`}, `sut`, `sut_versions`,
  `notes` (list of text), `exit_reason`, `wall_start`, `wall_end` — all optional here.
- `observed/availability.parquet`: `station_id`, `device` ("" for the collector itself,
  otherwise `G` / `D<n>`), `wall_time`, `sim_time`, `online` — one row per station and
  device at each sample of GET /stations; the rows of one sample share its times.
- `resources.parquet`: `role`, `pid`, `wall_time`, `sim_time`, `rss_bytes`, `cpu_seconds` of
  every process of the run: the SUT's (`is_sut_role`, judged by STB-1) and the harness's own
  (`harness`, `devices`: sampled to explain where a run's time goes, never judged).
- `latency.parquet`: `key`, `station_id`, `stream`, `emitted_wall` (device emitted the
  record), `visible_wall` (first seen through the platform API; null = never).
- `timeline.json`: a list of `{kind, station_id, device, sim_start, sim_end, wall_start,
  wall_end, detail}`; `kind` is a fault kind, `cheat_off_line` (a cheat took a dispenser
  off line), or the phase `real_time_segment` (where latency is measured).
- `observed/alerts.parquet`: GET /api/v1/alerts, ALERT_COLUMNS (`evidence` as JSON text;
  `as_of` device-clock epoch s, null if the platform gave none).
- `observed/states.parquet`: GET /api/v1/states (device state reports), STATE_COLUMNS.
- `observed/commerce_sales.parquet`, `observed/stock_balance.parquet`: GET
  /api/v1/commerce/sales and /commerce/stock-balance, COMMERCE_SALES_COLUMNS and
  STOCK_BALANCE_COLUMNS; `observed/commerce.json`: whether the platform served each.
- `observed/detection_status.json`: how the wait for the detectors ended (`done`,
  `supported`, `reason`, `through`, `waited_s`, `status` per station).
- `observed/tax_checks.parquet`: GET /api/v1/tax-checks, TAX_CHECK_COLUMNS (the platform's
  sales vs the tax declarations); `observed/tax_checks.json`: `offered` (false: the
  platform answered 404).
- `observed/metrology.parquet`: GET /api/v1/metrology, METROLOGY_COLUMNS (the platform's
  metrology audit per dispenser, nested fields as JSON text); `observed/metrology.json`:
  `offered` (false: the platform answered 404).
- `security.json`: the SEC-1 attack phase (acceptance/attacks/phase.py): `attempts` (each
  `id`, `actor`, `action`, `target`, `layer`, `expected`, `outcome`, `platform_outcome`,
  `passed`, `marker_keys`, `note`), `honest_ingest` {`stations`, `progressed`}, `monitor`,
  `rejection_sample`, `broker_accounts`.
- `observed/credit.parquet`: GET /api/v1/credit, CREDIT_COLUMNS (each station's credit score
  and grade, nested fields as JSON text); `observed/credit.json`: whether the platform served
  it (`served`, `items`) or what it answered instead (`status`, `error`).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from acceptance.commerce import FigurePart, TruthFigures
from acceptance.compare import (
    STREAMS,
    CompareError,
    Comparison,
    Truth,
    dialects_from_endpoints,
    load_truth,
)
from acceptance.faults import KINDS as FAULT_KINDS
from acceptance.observe import (
    COMMERCE_SALES_COLUMNS,
    CREDIT_COLUMNS,
    METROLOGY_COLUMNS,
    STATE_COLUMNS,
    STOCK_BALANCE_COLUMNS,
    TAX_CHECK_COLUMNS,
)
from acceptance.station_compare import TruthReader, compare_parquet
from scenarios.fleet import load_fleet
from scenarios.loader import scenario_digest
from sim.ledger import read_station_truth, read_truth

T = TypeVar("T")
DAY_S = 86400.0
COLLECTOR = ""  # availability rows of the collector itself carry this device
REAL_TIME_SEGMENT = "real_time_segment"
COMMERCE_TRUTH = "commerce:truth"  # RunData.derive key of the truth's commerce figures (COM-1)
# timeline kinds whose off-line time the harness caused: not held against the SUT
CHEAT_OFF_LINE = "cheat_off_line"  # a cheat took a dispenser off line (not the SUT's fault)
# SEC-1's attacks log in with the stations' own accounts, which takes their collectors off
# the broker for a moment (one session per account): the harness's doing, not the SUT's
ATTACK_PHASE = "attack_phase"
EXCUSED_KINDS = (*(k.name for k in FAULT_KINDS.values() if k.excused), CHEAT_OFF_LINE,
                 ATTACK_PHASE)

AVAILABILITY_COLUMNS = ("station_id", "device", "wall_time", "sim_time", "online")
RESOURCE_COLUMNS = ("role", "pid", "wall_time", "sim_time", "rss_bytes", "cpu_seconds")
SUT_ROLES = ("platform", "collector", "collectors", "broker")  # roles in resources.parquet
LATENCY_COLUMNS = ("key", "station_id", "stream", "emitted_wall", "visible_wall")
RECONCILIATION_COLUMNS = ("station_id", "tank", "day", "variance_ml",
                          "cumulative_variance_pct_of_sales")
# Alert fields of the published vocabulary (docs/platform-api.md §5.3) a checker may rely on.
ALERT_FIELDS = ("id", "station_id", "kind", "severity", "raised_at", "as_of", "device",
                "nozzle", "tank", "title", "detail", "evidence", "status", "created_at",
                "detector", "confirmed_at")
ALERT_REQUIRED = ("id", "station_id", "kind", "as_of")  # what the oracle cannot do without


def is_sut_role(role: str) -> bool:
    """A process of the system under test: "platform", "broker", "collector:UMB01",
    "collectors", "collectors1" … (fleet mode, N processes); not "harness" or "devices"."""
    return role.split(":")[0].rstrip("0123456789") in SUT_ROLES


class RunDataError(ValueError):
    """A run directory lacks a file or a column, or a file cannot be read."""


@dataclass(frozen=True)
class TimelineEntry:
    kind: str
    station_id: str | None
    device: str | None
    sim_start: float | None
    sim_end: float | None
    wall_start: float | None
    wall_end: float | None
    detail: Any = None


class RunData:
    """One run directory, read on demand. Treat everything it returns as read-only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise RunDataError(f"run directory {self.root}: not a directory")
        self._memo: dict[str, Any] = {}

    # ---- helpers ---------------------------------------------------------------------

    def path(self, rel: str, writer: str) -> Path:
        p = self.root / rel
        if not p.exists():
            raise RunDataError(f"run directory {self.root}: missing {rel} (written by the "
                               f"{writer}; docs/run-record.md)")
        return p

    def derive(self, name: str, compute: Callable[[], T]) -> T:
        """A result computed once per run directory (shared by checkers and tables)."""
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]

    def _json(self, rel: str, writer: str) -> Any:
        p = self.path(rel, writer)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDataError(f"{p}: not readable JSON ({exc})") from None

    def _parquet_file(self, rel: str, writer: str, columns: tuple[str, ...]) -> Path:
        """A Parquet file whose schema has `columns` (only the schema is read)."""
        p = self.path(rel, writer)
        try:
            names = pq.read_schema(p).names
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise RunDataError(f"{p}: not a readable Parquet file ({exc})") from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise RunDataError(f"{p}: missing column(s) {missing} (found {names})")
        return p

    def _parquet(self, rel: str, writer: str, columns: tuple[str, ...]) -> pd.DataFrame:
        p = self.path(rel, writer)
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise RunDataError(f"{p}: not a readable Parquet file ({exc})") from None
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise RunDataError(f"{p}: missing column(s) {missing} (found {list(df.columns)})")
        return df

    # ---- metadata --------------------------------------------------------------------

    @cached_property
    def run_info(self) -> dict[str, Any]:
        doc = self._json("run.json", "run")
        if not isinstance(doc, dict):
            raise RunDataError(f"{self.root / 'run.json'}: expected a JSON object")
        return doc

    @cached_property
    def scenario_doc(self) -> dict[str, Any]:
        p = self.path("scenario.yaml", "run")
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise RunDataError(f"{p}: not readable YAML ({exc})") from None
        if not isinstance(doc, dict):
            raise RunDataError(f"{p}: expected a scenario (a YAML mapping)")
        return doc

    @cached_property
    def scenario_digest(self) -> str:
        """SHA-256 of the scenario and ledger copies, as scenarios.loader computes it."""
        return scenario_digest(self.path("scenario.yaml", "run").read_bytes(),
                               self.path("fleet.csv", "run").read_bytes())

    @cached_property
    def manifest(self) -> dict[str, Any]:
        doc = self._json("truth/manifest.json", "devices (ground-truth ledger)")
        for key in ("stations", "start", "end", "days"):
            if key not in doc:
                raise RunDataError(f"{self.root / 'truth/manifest.json'}: no {key!r}")
        return doc

    @cached_property
    def station_ids(self) -> list[str]:
        """The stations in scope: those of the ground truth, in world (ledger) order."""
        return [str(s) for s in self.manifest["stations"]]

    @property
    def start(self) -> float:
        return float(self.manifest["start"])

    @property
    def end(self) -> float:
        return float(self.manifest["end"])

    @property
    def days(self) -> float:
        return float(self.manifest["days"])

    @property
    def day_count(self) -> int:
        """Simulated days of the run (a partial last day counts)."""
        return max(1, math.ceil((self.end - self.start) / DAY_S - 1e-9))

    @property
    def timezone(self) -> str:
        return str(self.manifest.get("timezone") or "Asia/Shanghai")

    def simulated_until(self, station_id: str) -> float | None:
        """How far the ground truth of a station goes (None: it has none)."""
        until = (self.manifest.get("simulated_until") or {}).get(station_id, self.end)
        return None if until is None else float(until)

    @cached_property
    def fleet(self) -> list[dict[str, Any]]:
        """Ledger rows of the stations in scope, in scope order."""
        p = self.path("fleet.csv", "run")
        rows, _raw, problems = load_fleet(p)
        if problems:
            raise RunDataError(f"{p}: not a valid fleet ledger: {problems[0]}")
        by_id = {r["station_id"]: r for r in rows}
        missing = [s for s in self.station_ids if s not in by_id]
        if missing:
            raise RunDataError(f"{p}: station(s) {missing} of the ground truth are not in "
                               f"the ledger")
        return [by_id[s] for s in self.station_ids]

    @cached_property
    def criteria_raw(self) -> Any:
        return self.scenario_doc.get("criteria")

    # ---- ground truth ----------------------------------------------------------------

    @cached_property
    def truth(self) -> Truth:
        self.path("truth/manifest.json", "devices (ground-truth ledger)")
        try:
            return load_truth(self.root / "truth")
        except CompareError as exc:
            raise RunDataError(str(exc)) from None

    def truth_table(self, name: str, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
        """A ground-truth table as pandas, only `columns` if given: a checker of a long run
        reads the few columns it needs of a table of millions of rows."""
        def read() -> pd.DataFrame:
            self.path("truth/manifest.json", "devices (ground-truth ledger)")
            try:
                return read_truth(self.root / "truth", name, columns).to_pandas()
            except (OSError, KeyError, pa.ArrowException) as exc:
                raise RunDataError(f"{self.root / 'truth'}: cannot read table {name!r} "
                                   f"({exc})") from None
        return self.derive(f"truth:{name}:{columns}", read)

    def station_truth_table(self, name: str, station_id: str,
                            columns: tuple[str, ...] | None = None) -> pd.DataFrame:
        """One station's rows of a ground-truth table (not kept: read again when asked)."""
        self.path("truth/manifest.json", "devices (ground-truth ledger)")
        try:
            return read_station_truth(self.root / "truth", name, station_id,
                                      columns=columns).to_pandas()
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise RunDataError(f"{self.root / 'truth'}: cannot read table {name!r} of "
                               f"{station_id} ({exc})") from None

    def station_truths(self) -> Iterator[tuple[str, Truth]]:
        """Each station's ground truth (the four record tables), one station at a time."""
        self.path("truth/manifest.json", "devices (ground-truth ledger)")
        try:
            reader = TruthReader(self.root / "truth")
            for sid in reader.stations:
                yield sid, reader.truth(sid)
        except CompareError as exc:
            raise RunDataError(str(exc)) from None

    @cached_property
    def dialects(self) -> dict[str, str]:
        """station → register dialect, from devices/endpoints.json (else the ledger)."""
        endpoints = self.root / "devices" / "endpoints.json"
        if endpoints.is_file():
            try:
                return dialects_from_endpoints(endpoints)
            except CompareError as exc:
                raise RunDataError(str(exc)) from None
        return {r["station_id"]: r["dialect"] for r in self.fleet}

    # ---- platform observations -------------------------------------------------------

    @cached_property
    def observed(self) -> dict[str, pd.DataFrame]:
        """The platform's records, one whole frame per stream (transactions, inventory, …).
        The checkers read `observed_columns` instead: a long run's records do not fit."""
        return {s: self._parquet(f"observed/{s}.parquet", "observer", ("station_id",))
                for s in STREAMS}

    def observed_columns(self, stream: str, columns: tuple[str, ...]) -> pd.DataFrame:
        """Those of `columns` the platform's records of `stream` have (the file must have
        station_id; a column it lacks is left out)."""
        return self.observed_arrow(stream, columns).to_pandas()

    def observed_arrow(self, stream: str, columns: tuple[str, ...],
                       filters: list[tuple[str, str, Any]] | None = None) -> pa.Table:
        """`observed_columns` as Arrow, only the rows `filters` keep (pyarrow's DNF), read
        a row group at a time: a few records among millions cost little memory. A filter on
        a column the file lacks, or has only nulls in (type null), keeps no row."""
        p = self._parquet_file(f"observed/{stream}.parquet", "observer", ("station_id",))
        schema = pq.read_schema(p)
        present = [c for c in columns if c in schema.names]
        if any(f[0] not in schema.names or pa.types.is_null(schema.field(f[0]).type)
               for f in filters or ()):
            return schema.empty_table().select(present)
        try:
            return pq.read_table(p, columns=present, filters=filters)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise RunDataError(f"{p}: not a readable Parquet file ({exc})") from None

    @cached_property
    def comparison(self) -> Comparison:
        """Ground truth ↔ platform, read and compared one station at a time, so memory is
        bounded by the largest station, not by the run's length (station_compare.py).
        The same pass builds the truth's commerce figures (COM-1, `COMMERCE_TRUTH`) from the
        expected records it makes anyway; if they cannot be built, COM-1 builds them itself
        and reports why."""
        self.path("truth/manifest.json", "devices (ground-truth ledger)")
        observed = {s: self._parquet_file(f"observed/{s}.parquet", "observer", ("station_id",))
                    for s in STREAMS}
        figures: TruthFigures | None = None
        with contextlib.suppress(RunDataError):  # no usable ledger: COM-1 will say so
            figures = TruthFigures(self.fleet, ZoneInfo(self.timezone))
        try:
            comparison, parts = compare_parquet(
                self.root / "truth", observed, self.dialects,
                None if figures is None else FigurePart(figures.fleet, figures.zone))
        except CompareError as exc:
            raise RunDataError(f"run directory {self.root}: {exc}") from None
        if figures is not None:
            try:
                for part in parts:
                    figures.add_part(part)
                self.derive(COMMERCE_TRUTH, figures.result)
            except ValueError:  # a station or tank the ledger does not describe
                pass
        return comparison

    @cached_property
    def stations_doc(self) -> list[dict[str, Any]]:
        """GET /api/v1/stations as the observer saved it at the end of the run."""
        doc = self._json("observed/stations.json", "observer")
        if isinstance(doc, dict):
            doc = doc.get("items", doc.get("stations"))
        if not isinstance(doc, list) or not all(isinstance(s, dict) for s in doc):
            raise RunDataError(f"{self.root / 'observed/stations.json'}: expected a list of "
                               f"station objects (GET /api/v1/stations items)")
        return doc

    @cached_property
    def availability(self) -> pd.DataFrame:
        df = self._parquet("observed/availability.parquet", "observer", AVAILABILITY_COLUMNS)
        df = df.assign(station_id=df["station_id"].astype(str),
                       device=df["device"].fillna(COLLECTOR).astype(str)
                       .replace("collector", COLLECTOR),
                       online=df["online"].fillna(False).astype(bool),
                       wall_time=pd.to_numeric(df["wall_time"], errors="coerce"),
                       sim_time=pd.to_numeric(df["sim_time"], errors="coerce"))
        return df

    @cached_property
    def reconciliation(self) -> pd.DataFrame | None:
        """GET /api/v1/reconciliation as observed (None: not written)."""
        if not (self.root / "observed/reconciliation.parquet").exists():
            return None
        return self._parquet("observed/reconciliation.parquet", "observer",
                             RECONCILIATION_COLUMNS)

    @cached_property
    def commerce_served(self) -> dict[str, Any]:
        """observed/commerce.json: per commerce resource whether the platform served it
        (`served`, `items`) or what it answered instead (`status`, `error`)."""
        doc = self._json("observed/commerce.json", "observer")
        if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
            raise RunDataError(f"{self.root / 'observed/commerce.json'}: expected an object "
                               f"of resource → {{served, …}}")
        return doc

    @cached_property
    def commerce_sales(self) -> pd.DataFrame:
        """GET /api/v1/commerce/sales (fleet-wide) as observed at the end."""
        return self._parquet("observed/commerce_sales.parquet", "observer",
                             COMMERCE_SALES_COLUMNS)

    @cached_property
    def stock_balance(self) -> pd.DataFrame:
        """GET /api/v1/commerce/stock-balance of the stations in scope as observed."""
        return self._parquet("observed/stock_balance.parquet", "observer",
                             STOCK_BALANCE_COLUMNS)

    @cached_property
    def alerts(self) -> pd.DataFrame:
        """GET /api/v1/alerts as observed after the detectors finished: ALERT_FIELDS, with
        `as_of`/`raised_at` numeric, `nozzle`/`tank` nullable integers, `evidence` JSON text."""
        df = self._parquet("observed/alerts.parquet", "observer", ALERT_REQUIRED)
        df = df.assign(**{c: None for c in ALERT_FIELDS if c not in df.columns})
        return df.assign(
            station_id=df["station_id"].astype(str),
            as_of=pd.to_numeric(df["as_of"], errors="coerce"),
            raised_at=pd.to_numeric(df["raised_at"], errors="coerce"),
            nozzle=pd.to_numeric(df["nozzle"], errors="coerce").astype("Int64"),
            tank=pd.to_numeric(df["tank"], errors="coerce").astype("Int64"))

    @cached_property
    def states(self) -> pd.DataFrame:
        """GET /api/v1/states: the device state reports the platform holds."""
        return self._parquet("observed/states.parquet", "observer", STATE_COLUMNS)

    @cached_property
    def tax_checks(self) -> pd.DataFrame:
        """GET /api/v1/tax-checks as observed at the end: the platform's comparison of its
        sales with the tax declarations, `period_start`/`period_end` numeric."""
        df = self._parquet("observed/tax_checks.parquet", "observer", TAX_CHECK_COLUMNS)
        return df.assign(station_id=df["station_id"].astype(str),
                         period_start=pd.to_numeric(df["period_start"], errors="coerce"),
                         period_end=pd.to_numeric(df["period_end"], errors="coerce"))

    @cached_property
    def metrology(self) -> pd.DataFrame | None:
        """GET /api/v1/metrology as observed at the end (None: not written, e.g. a run
        before MET-1 had a checker, or a platform that answered 404)."""
        if not (self.root / "observed/metrology.parquet").exists():
            return None
        doc = (self._json("observed/metrology.json", "observer")
               if (self.root / "observed/metrology.json").exists() else {})
        if isinstance(doc, dict) and not doc.get("offered", True):
            return None
        df = self._parquet("observed/metrology.parquet", "observer", METROLOGY_COLUMNS)
        return df.assign(station_id=df["station_id"].astype(str))

    @cached_property
    def credit_served(self) -> dict[str, Any]:
        """observed/credit.json: whether the platform served GET /api/v1/credit (`served`,
        `items`) or what it answered instead (`status`, `error`)."""
        doc = self._json("observed/credit.json", "observer")
        if not isinstance(doc, dict) or "served" not in doc:
            raise RunDataError(f"{self.root / 'observed/credit.json'}: expected an object "
                               f"with 'served'")
        return doc

    @cached_property
    def credit(self) -> pd.DataFrame:
        """GET /api/v1/credit of the stations in scope as observed at the end."""
        df = self._parquet("observed/credit.parquet", "observer", CREDIT_COLUMNS)
        return df.assign(station_id=df["station_id"].astype(str))

    @cached_property
    def tax_checks_offered(self) -> bool:
        """Whether the platform offered GET /api/v1/tax-checks (true when not recorded)."""
        if not (self.root / "observed/tax_checks.json").exists():
            return True
        doc = self._json("observed/tax_checks.json", "observer")
        return not isinstance(doc, dict) or bool(doc.get("offered", True))

    @cached_property
    def detection_status(self) -> dict[str, Any] | None:
        """How the wait for the detectors ended (None: not written, an older run)."""
        if not (self.root / "observed/detection_status.json").exists():
            return None
        doc = self._json("observed/detection_status.json", "observer")
        if not isinstance(doc, dict):
            raise RunDataError(f"{self.root / 'observed/detection_status.json'}: expected a "
                               f"JSON object")
        return doc

    # ---- harness records -------------------------------------------------------------

    @cached_property
    def security(self) -> dict[str, Any]:
        """The SEC-1 attack phase: what was tried and what came of it."""
        doc = self._json("security.json", "attack phase (acceptance/attacks/phase.py)")
        if not isinstance(doc, dict) or not isinstance(doc.get("attempts"), list):
            raise RunDataError(f"{self.root / 'security.json'}: expected an object with "
                               f"\"attempts\": [...]")
        return doc

    @cached_property
    def timeline(self) -> list[TimelineEntry]:
        doc = self._json("timeline.json", "run")
        if isinstance(doc, dict):
            doc = doc.get("entries")
        if not isinstance(doc, list):
            raise RunDataError(f"{self.root / 'timeline.json'}: expected a list of entries")
        out = []
        for i, e in enumerate(doc):
            if not isinstance(e, dict) or not isinstance(e.get("kind"), str):
                raise RunDataError(f"{self.root / 'timeline.json'}: entry {i}: expected an "
                                   f"object with a 'kind'")
            out.append(TimelineEntry(
                e["kind"], e.get("station_id"), e.get("device") or None,
                _num(e.get("sim_start")), _num(e.get("sim_end")), _num(e.get("wall_start")),
                _num(e.get("wall_end")), e.get("detail")))
        return out

    def phases(self, kind: str) -> list[TimelineEntry]:
        return [e for e in self.timeline if e.kind == kind]

    @cached_property
    def resources(self) -> pd.DataFrame:
        return self._parquet("resources.parquet", "run", RESOURCE_COLUMNS)

    @cached_property
    def latency(self) -> pd.DataFrame | None:
        """Real-time segment latencies; None when the run wrote no latency.parquet."""
        if not (self.root / "latency.parquet").exists():
            return None
        return self._parquet("latency.parquet", "run", LATENCY_COLUMNS)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise RunDataError(f"timeline.json: expected a number or null, found {value!r}") from None
    return out if math.isfinite(out) else None
