"""Read a platform's HTTP API (docs/platform-api.md) into pandas DataFrames.

The harness observes a platform under test only through this API, exactly as a vendor's
platform would be observed: bearer token, JSON, cursor pagination (`limit`, `cursor`,
`next_cursor`). Record resources come back with the uplink's field names and integer units
(docs/uplink.md §3), so `acceptance.compare` can match them against the ground truth.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
import pandas as pd

API_PREFIX = "/api/v1"
MAX_PAGE = 1000  # the API's largest `limit`

# Fields of each record resource (docs/uplink.md §3): present in every frame, even an empty
# one, so a platform that leaves a field out shows up as altered values, not a KeyError.
RECORD_HEAD = ("key", "station_id", "device", "seq")
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "transactions": ("nozzle", "grade", "tank", "start_time", "end_time", "volume_ml",
                     "amount_fen", "unit_price_fen", "volume_total_ml", "amount_total_fen"),
    "inventory": ("tank", "device_time", "product_level_um", "water_level_um",
                  "temperature_mc", "gross_volume_ml", "volume_20c_ml", "ullage_ml",
                  "water_volume_ml"),
    "deliveries": ("tank", "start_time", "end_time", "start_gross_volume_ml",
                   "start_volume_20c_ml", "end_gross_volume_ml", "end_volume_20c_ml",
                   "start_temperature_mc", "end_temperature_mc", "start_level_um",
                   "end_level_um", "bol_volume_20c_ml"),
    "events": ("code", "unit", "device_time", "value_old_e4", "value_new_e4"),
}
RECORD_TAIL = ("collected_at", "received_at", "msg_seq")
RECORD_RESOURCES = tuple(RECORD_FIELDS)
# Device state reports (uplink 1.1): observed, not compared record by record (their seq is
# the collector's own counter, not the device's).
STATE_COLUMNS = ("key", "station_id", "device", "seq", "device_time", "serial_number",
                 "software_id", "mainboard_id", "encoder_id", "seal_state", "device_status",
                 *RECORD_TAIL)
# GET /api/v1/alerts items (docs/platform-api.md §5.3); `evidence` kept as JSON text.
ALERT_COLUMNS = ("id", "station_id", "kind", "severity", "raised_at", "as_of", "device",
                 "nozzle", "tank", "title", "detail", "evidence", "status", "created_at",
                 "detector", "status_note", "status_changed_at", "status_changed_by",
                 "confirmed_at")


class ApiError(RuntimeError):
    """A request to the platform failed: names the URL, the HTTP status and the reason."""

    def __init__(self, url: str, status: int | None, message: str) -> None:
        self.url, self.status = url, status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"platform API {url}: {where}: {message}")


class PlatformClient:
    """A read client of one platform's API (base URL such as http://127.0.0.1:8080)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"platform base URL {base_url!r}: expected http(s)://host:port")
        if not token:
            raise ValueError("platform API token: expected a non-empty bearer token")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items()
                                        if v is not None})
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            auth: bool = True) -> Any:
        """GET `path` (e.g. /api/v1/stations) and return the decoded JSON body."""
        url = self.url(path, params)
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(url, exc.code, _error_message(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(url, None, str(reason)) from None
        except http.client.HTTPException as exc:  # a body cut short, no HTTP status line
            raise ApiError(url, None, f"{type(exc).__name__}: {exc}") from None
        try:
            return orjson.loads(body)  # a run's export reads millions of records
        except ValueError as exc:
            raise ApiError(url, 200, f"body is not JSON ({exc})") from None

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST a JSON body; returns (HTTP status, decoded answer) for any HTTP answer,
        raises ApiError only when there is none (or it is not JSON)."""
        url = self.url(path)
        request = urllib.request.Request(
            url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), method="POST",
            headers={"Accept": "application/json", "Content-Type": "application/json",
                     "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(url, None, str(getattr(exc, "reason", exc))) from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            raise ApiError(url, status, "body is not JSON") from None

    def healthz(self) -> dict[str, Any]:
        """The platform's health document (no token needed); ApiError if it is down."""
        return self.get("/healthz", auth=False)

    def items(self, resource: str, *, page_size: int = MAX_PAGE, max_pages: int = 100_000,
              **filters: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list resource, following `next_cursor` to the end."""
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size: expected 1..{MAX_PAGE}, found {page_size}")
        path = f"{API_PREFIX}/{resource}"
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            page = self.get(path, {**filters, "limit": page_size, "cursor": cursor})
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise ApiError(self.url(path), 200, "expected {\"items\": [...], "
                                                    "\"next_cursor\": ...}")
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            if cursor in seen:  # a platform bug would otherwise loop for ever
                raise ApiError(self.url(path), 200, f"next_cursor {cursor[:40]!r} repeats")
            seen.add(cursor)
        raise ApiError(self.url(path), 200, f"more than {max_pages} pages")

    def frame(self, resource: str, **filters: Any) -> pd.DataFrame:
        """A list resource as a DataFrame (record resources always have their fields)."""
        return records_frame(resource, self.items(resource, **filters))

    def stations(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.items("stations", **filters))

    def ingest_stats(self, station_id: str | None = None) -> dict[str, Any]:
        return self.get(f"{API_PREFIX}/stats/ingest", {"station_id": station_id})


def _with_columns(rows: Iterable[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a DataFrame with `columns` first (null where the platform gave no such field),
    then any others it gave."""
    df = pd.DataFrame(list(rows))
    for col in columns:
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), dtype=object)
    return df[list(columns) + [c for c in df.columns if c not in columns]]


def _json_fields(items: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Items with the nested fields `keys` as JSON text (a Parquet column of one type)."""
    return [{**item, **{k: json.dumps(item.get(k), ensure_ascii=False, sort_keys=True)
                        for k in keys}} for item in items]


def records_frame(resource: str, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Items as a DataFrame; a record resource gets every field of its kind as a column."""
    if resource not in RECORD_FIELDS:
        return pd.DataFrame(list(rows))
    return _with_columns(rows, tuple(RECORD_HEAD + RECORD_FIELDS[resource] + RECORD_TAIL))


def _error_message(body: bytes) -> str:
    try:
        doc = json.loads(body)
        err = doc["error"]
        return f"{err.get('code')}: {err.get('message')}"
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace") or "(empty body)"


def observe_records(client: PlatformClient, station_ids: Iterable[str] | None = None
                    ) -> dict[str, pd.DataFrame]:
    """Every transaction, inventory reading, delivery and event the platform holds (for the
    given stations, or all), one DataFrame per record resource."""
    ids = None if station_ids is None else list(station_ids)
    out: dict[str, pd.DataFrame] = {}
    for resource in RECORD_RESOURCES:
        if ids is None:
            out[resource] = client.frame(resource)
        else:
            rows = [item for sid in ids
                    for item in client.items(resource, station_id=sid)]
            out[resource] = records_frame(resource, rows)
    return out


def _per_station(client: PlatformClient, resource: str,
                 station_ids: Iterable[str] | None) -> list[dict[str, Any]]:
    if station_ids is None:
        return list(client.items(resource))
    return [item for sid in station_ids for item in client.items(resource, station_id=sid)]


def observe_alerts(client: PlatformClient,
                   station_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """GET /api/v1/alerts: one row per alert, ALERT_COLUMNS first; `evidence` as JSON text
    (a platform without a field shows null there)."""
    rows = _json_fields(_per_station(client, "alerts", station_ids), ("evidence",))
    return _with_columns(rows, ALERT_COLUMNS)


def observe_states(client: PlatformClient,
                   station_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """GET /api/v1/states (a platform without it: an empty frame with STATE_COLUMNS)."""
    try:
        rows = _per_station(client, "states", station_ids)
    except ApiError as exc:
        if exc.status != 404:
            raise
        rows = []
    return _with_columns(rows, STATE_COLUMNS)


# GET /api/v1/tax-checks items (docs/platform-api.md §5.13): the platform's comparison of its
# sales with the tax declarations (以销核税).
TAX_CHECK_COLUMNS = ("id", "station_id", "declaration_id", "reference", "grade",
                     "period_start", "period_end", "declared_volume_ml", "declared_sales_fen",
                     "platform_volume_ml", "platform_sales_fen", "transactions",
                     "gap_volume_ml", "gap_sales_fen", "tolerance_volume_ml",
                     "tolerance_sales_fen", "flagged", "missing_declaration", "status")


def observe_tax_checks(client: PlatformClient,
                       station_ids: Iterable[str] | None = None) -> tuple[pd.DataFrame, bool]:
    """GET /api/v1/tax-checks: (one row per check, TAX_CHECK_COLUMNS first; whether the
    platform offers the resource — a 404 gives an empty frame and False)."""
    offered = True
    try:
        rows = _per_station(client, "tax-checks", station_ids)
    except ApiError as exc:
        if exc.status != 404:
            raise
        rows, offered = [], False
    return _with_columns(rows, TAX_CHECK_COLUMNS), offered


# GET /api/v1/metrology items (docs/platform-api.md §5.14): the platform's metrology audit
# per dispenser (计量器具检定台账); list and object fields kept as JSON text.
METROLOGY_COLUMNS = ("station_id", "device", "as_of", "status", "valid_until", "overdue_since",
                     "overdue_days", "records", "flagged", "last_verification", "expired",
                     "unsigned_records", "seal_mismatches", "unsigned_changes")
_METROLOGY_JSON = ("last_verification", "expired", "unsigned_records", "seal_mismatches",
                   "unsigned_changes")


def observe_metrology(client: PlatformClient,
                      station_ids: Iterable[str] | None = None) -> tuple[pd.DataFrame, bool]:
    """GET /api/v1/metrology: (one row per device, METROLOGY_COLUMNS first, nested fields
    as JSON text; whether the platform offers the resource — a 404 gives an empty frame and
    False)."""
    offered = True
    try:
        items = _per_station(client, "metrology", station_ids)
    except ApiError as exc:
        if exc.status != 404:
            raise
        items, offered = [], False
    return _with_columns(_json_fields(items, _METROLOGY_JSON), METROLOGY_COLUMNS), offered


def detection_status(client: PlatformClient) -> list[dict[str, Any]] | None:
    """GET /api/v1/detection/status items, or None if the platform does not offer it (404)."""
    try:
        return list(client.items("detection/status"))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


STATUS_COLUMNS = ("station_id", "device", "collector_online", "collector_backlog",
                  "last_heartbeat_at", "device_online", "reported_online", "device_time",
                  "failures", "error")


def station_status(stations: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (station, device) of GET /stations: on-line state as the platform sees it."""
    rows = []
    for st in stations:
        col = st.get("collector") or {}
        for dev in st.get("devices") or []:
            rows.append({
                "station_id": st.get("station_id"), "device": dev.get("device"),
                "collector_online": col.get("online"), "collector_backlog": col.get("backlog"),
                "last_heartbeat_at": col.get("last_heartbeat_at"),
                "device_online": dev.get("online"), "reported_online": dev.get("reported_online"),
                "device_time": dev.get("device_time"), "failures": dev.get("failures"),
                "error": dev.get("error")})
    return pd.DataFrame(rows, columns=list(STATUS_COLUMNS))


# Commerce analytics (商务运行分析, docs/platform-api.md §5.15): the platform's fleet-wide sales
# cells and each station's monthly stock balances, as served; a field it leaves out is null.
COMMERCE_SALES_COLUMNS = ("month", "period_start", "period_end", "town", "ownership", "grade",
                          "stations", "transactions", "volume_ml", "amount_fen")
STOCK_BALANCE_COLUMNS = ("station_id", "tank", "grade", "month", "period_start", "period_end",
                         "partial", "opening_time", "opening_volume_20c_ml", "deliveries",
                         "received_20c_ml", "bol_volume_20c_ml", "deliveries_without_bol",
                         "transactions", "sales_ml", "sales_20c_ml", "closing_time",
                         "closing_volume_20c_ml", "variance_ml", "variance_pct_of_sales")
# run-directory name → (resource, columns, read per station)
COMMERCE_RESOURCES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "commerce_sales": ("commerce/sales", COMMERCE_SALES_COLUMNS, False),
    "stock_balance": ("commerce/stock-balance", STOCK_BALANCE_COLUMNS, True),
}


def observe_commerce(client: PlatformClient, station_ids: Iterable[str] | None = None
                     ) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    """The commerce resources as frames (sales fleet-wide: the bureau's view; balances per
    station), and per resource whether the platform served it: {`resource`, `served`,
    `items`} or, when it answered an error or not at all, {`served`: false, `status`,
    `error`} — recorded, never raised, so COM-1 fails with the reason instead of the run."""
    ids = None if station_ids is None else list(station_ids)
    frames: dict[str, pd.DataFrame] = {}
    served: dict[str, dict[str, Any]] = {}
    for name, (resource, columns, per_station) in COMMERCE_RESOURCES.items():
        where = {"resource": f"GET {API_PREFIX}/{resource}"}
        try:
            rows = (_per_station(client, resource, ids) if per_station
                    else list(client.items(resource)))
        except ApiError as exc:
            rows = []
            served[name] = {**where, "served": False, "status": exc.status, "error": str(exc)}
        else:
            served[name] = {**where, "served": True, "items": len(rows)}
        frames[name] = _with_columns(rows, columns)
    return frames, served


# GET /api/v1/credit items (docs/platform-api.md §5.16): each station's credit score and grade
# (信用记录、分级分类监管); nested fields kept as JSON text.
CREDIT_COLUMNS = ("station_id", "score", "grade", "period", "counts", "points", "findings",
                  "findings_total")
_CREDIT_JSON = ("period", "counts", "points", "findings")


def observe_credit(client: PlatformClient, station_ids: Iterable[str] | None = None
                   ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """GET /api/v1/credit of the stations (CREDIT_COLUMNS first, nested fields as JSON
    text) and whether the platform served it: {`resource`, `served`, `items`}, or
    {`served`: false, `status`, `error`} when it answered an error or not at all —
    recorded, never raised, so CRD-1 fails with the reason instead of the run."""
    where = {"resource": f"GET {API_PREFIX}/credit"}
    try:
        items = _per_station(client, "credit", station_ids)
    except ApiError as exc:
        items, served = [], {**where, "served": False, "status": exc.status, "error": str(exc)}
    else:
        served = {**where, "served": True, "items": len(items)}
    return _with_columns(_json_fields(items, _CREDIT_JSON), CREDIT_COLUMNS), served
