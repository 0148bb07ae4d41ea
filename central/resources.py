"""The API's list resources: filters, keyset pagination and item schemas, defined once and
used both to answer requests and to write the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from central.alerts import STATUSES as ALERT_STATUSES
from central.audit import OUTCOMES as AUDIT_OUTCOMES
from central.auth import ROLES
from central.commerce import SALES_ITEM, STOCK_BALANCE_ITEM, sales_cells, station_balances
from central.continuity import station_continuity
from central.credit import CREDIT_ITEM, GRADES, station_credit
from central.db import Conn
from central.metrology import STATUSES as METROLOGY_STATUSES
from central.metrology import station_audit
from central.params import (
    ParamError,
    decode_cursor,
    encode_cursor,
    fingerprint,
    parse_int,
    parse_limit,
    parse_time,
    single,
)
from central.reconciliation import reconcile_station
from central.registry import OWNERSHIP
from central.tax import STATUSES as TAX_STATUSES
from central.tax import station_tax_checks
from central.topics import DEVICE_RE, STATION_RE
from central.vcf import Vcf

COMMON_PARAMS = ("station_id", "from", "to", "limit", "cursor")


@dataclass(frozen=True)
class Context:
    zone: ZoneInfo
    vcf: Vcf
    heartbeat_timeout_s: float
    now: Callable[[], float]
    tax: bool = True  # False (--no-tax): declarations are stored but never compared
    metrology: bool = True  # False (--no-metrology): records are stored, never audited
    flat_credit: bool = False  # True (--flat-credit, a QA mutant): every station graded A


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # integer | number | string | json (stored as text, returned parsed)
    description: str = ""
    nullable: bool = False
    sql: str | None = None  # SQL column when it differs from `name`

    def schema(self) -> dict[str, Any]:
        base: dict[str, Any] = ({} if self.type == "json" else {"type": self.type})
        if self.nullable and self.type != "json":
            base["type"] = [self.type, "null"]
        if self.description:
            base["description"] = self.description
        return base


@dataclass(frozen=True)
class Filter:
    name: str
    column: str
    kind: str  # "int" | "text" | "device" | "enum" | "time" (epoch s or ISO 8601)
    description: str
    choices: tuple[str, ...] = ()
    lo: int = 0
    hi: int = 65535
    op: str = "="  # SQL comparison: "=", or ">=" / "<" for a range bound

    def parse(self, text: str, zone: ZoneInfo | None = None) -> Any:
        if self.kind == "time":
            return parse_time(text, self.name, zone or ZoneInfo("UTC"))
        if self.kind == "int":
            return parse_int(text, self.name, self.lo, self.hi)
        if self.kind == "device" and not DEVICE_RE.fullmatch(text):
            raise ParamError(self.name, f"expected G or D<n>, found {text!r}")
        if self.kind == "enum" and text not in self.choices:
            raise ParamError(self.name, f"expected one of {list(self.choices)}, found {text!r}")
        if len(text) > 200:
            raise ParamError(self.name, "longer than 200 characters")
        return text

    def schema(self) -> dict[str, Any]:
        if self.kind == "time":
            return {"type": "string"}
        if self.kind == "int":
            return {"type": "integer", "minimum": self.lo, "maximum": self.hi}
        if self.kind == "enum":
            return {"type": "string", "enum": list(self.choices)}
        if self.kind == "device":
            return {"type": "string", "pattern": DEVICE_RE.pattern}
        return {"type": "string", "maxLength": 200}


def station_param(query: Mapping[str, list[str]]) -> str | None:
    sid = single(query, "station_id")
    if sid is not None and not STATION_RE.fullmatch(sid):
        raise ParamError("station_id", f"expected ^[A-Za-z0-9_-]{{1,32}}$, found {sid[:40]!r}")
    return sid


def check_known_params(query: Mapping[str, list[str]], allowed: tuple[str, ...]) -> None:
    for name in query:
        if name not in allowed:
            raise ParamError(name, f"unknown query parameter; this endpoint takes "
                                   f"{', '.join(allowed)}")


def _time_range(query: Mapping[str, list[str]], zone: ZoneInfo) -> tuple[float | None,
                                                                        float | None]:
    t_from = single(query, "from")
    t_to = single(query, "to")
    lo = parse_time(t_from, "from", zone) if t_from is not None else None
    hi = parse_time(t_to, "to", zone) if t_to is not None else None
    if lo is not None and hi is not None and hi < lo:
        raise ParamError("to", "is before from")
    return lo, hi


# how a column type's non-NULL stored value becomes its JSON value (json: stored as text)
_CONVERT: dict[str, Callable[[Any], Any]] = {"json": json.loads, "integer": int, "number": float}


@dataclass(frozen=True)
class TableResource:
    """A stored table listed in (time, id) order with keyset pagination."""

    name: str
    table: str
    summary: str
    time_column: str
    time_doc: str
    id_column: str
    columns: tuple[Column, ...]
    filters: tuple[Filter, ...] = ()
    station_scoped: bool = True

    @property
    def params(self) -> tuple[str, ...]:
        return COMMON_PARAMS + tuple(f.name for f in self.filters)

    def item_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "required": [c.name for c in self.columns],
                "properties": {c.name: c.schema() for c in self.columns}}

    def list(self, conn: Conn, query: Mapping[str, list[str]], ctx: Context) -> dict[str, Any]:
        check_known_params(query, self.params)
        limit = parse_limit(single(query, "limit"))
        clauses: list[str] = []
        args: list[Any] = []
        filters: dict[str, Any] = {}
        sid = station_param(query)
        if sid is not None:
            clauses.append("station_id = ?")
            args.append(sid)
            filters["station_id"] = sid
        lo, hi = _time_range(query, ctx.zone)
        if lo is not None:
            clauses.append(f"{self.time_column} >= ?")
            args.append(lo)
            filters["from"] = lo
        if hi is not None:
            clauses.append(f"{self.time_column} < ?")
            args.append(hi)
            filters["to"] = hi
        for f in self.filters:
            text = single(query, f.name)
            if text is not None:
                value = f.parse(text, ctx.zone)
                clauses.append(f"{f.column} {f.op} ?")
                args.append(value)
                filters[f.name] = value
        fp = fingerprint({"resource": self.name, **filters})
        cursor = single(query, "cursor")
        if cursor is not None:
            position = decode_cursor(cursor, fp)
            if (len(position) != 2 or not isinstance(position[0], int | float)
                    or isinstance(position[0], bool) or not isinstance(position[1], str)):
                raise ParamError("cursor", "not a cursor returned by this API")
            clauses.append(f"({self.time_column}, {self.id_column}) > (?, ?)")
            args.extend(position)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cols = ", ".join(c.sql or c.name for c in self.columns)
        rows = conn.query(f"SELECT {cols}, {self.time_column}, {self.id_column} FROM "
                          f"{self.table} {where} ORDER BY {self.time_column}, {self.id_column} "
                          f"LIMIT ?", [*args, limit + 1])
        items = [self.item(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last[-2], last[-1]], fp)
        return {"items": items, "next_cursor": next_cursor}

    def one(self, conn: Conn, item_id: str) -> dict[str, Any] | None:
        """The item with this id, or None."""
        cols = ", ".join(c.sql or c.name for c in self.columns)
        row = conn.query_one(f"SELECT {cols} FROM {self.table} WHERE {self.id_column} = ?",
                             (item_id,))
        return None if row is None else self.item(row)

    def item(self, row: tuple) -> dict[str, Any]:
        return {name: value if value is None or convert is None else convert(value)
                for (name, convert), value in zip(self._converters, row, strict=False)}

    @cached_property
    def _converters(self) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
        """(name, conversion of a non-NULL value) per column: the listings build millions."""
        return tuple((c.name, _CONVERT.get(c.type)) for c in self.columns)


def _c(name: str, type_: str, description: str = "", nullable: bool = False,
       sql: str | None = None) -> Column:
    return Column(name, type_, description, nullable, sql)


_RECORD_TAIL = (
    _c("collected_at", "number", "collector wall clock when it read the record, epoch s"),
    _c("received_at", "number", "platform wall clock when it stored the record, epoch s"),
    _c("msg_seq", "integer", "msg_seq of the uplink message that delivered it first"),
)
_RECORD_HEAD = (
    _c("key", "string", "idempotency key <station_id>/<device>/<stream>/<seq>/<device_time>"),
    _c("station_id", "string"), _c("device", "string", "G or D<n>"),
    _c("seq", "integer", "device FIFO sequence number (16-bit, wraps)"),
)
_DEVICE = Filter("device", "device", "device", "device key, G or D<n>")
_TANK = Filter("tank", "tank", "int", "tank number", lo=1, hi=99)

TRANSACTIONS = TableResource(
    "transactions", "transactions", "Transactions (加油交易), exactly once each",
    "end_time", "end_time (device clock)", "key",
    _RECORD_HEAD + (
        _c("nozzle", "integer"), _c("grade", "string", "92, 95, 0 …"), _c("tank", "integer"),
        _c("start_time", "integer", "device clock, epoch s"),
        _c("end_time", "integer", "device clock, epoch s"),
        _c("volume_ml", "integer"), _c("amount_fen", "integer"),
        _c("unit_price_fen", "integer", "fen per litre"),
        _c("volume_total_ml", "integer", "volume totalizer after the fill"),
        _c("amount_total_fen", "integer", "amount totalizer after the fill"),
    ) + _RECORD_TAIL,
    (_DEVICE, Filter("nozzle", "nozzle", "int", "nozzle number", lo=1, hi=99), _TANK,
     Filter("grade", "grade", "text", "fuel grade")))

INVENTORY = TableResource(
    "inventory", "inventory", "Periodic tank inventory readings (库存)",
    "device_time", "device_time (device clock)", "key",
    _RECORD_HEAD + (
        _c("tank", "integer"), _c("device_time", "integer", "device clock, epoch s"),
        _c("product_level_um", "integer"), _c("water_level_um", "integer"),
        _c("temperature_mc", "integer", "m°C"), _c("gross_volume_ml", "integer"),
        _c("volume_20c_ml", "integer"), _c("ullage_ml", "integer"),
        _c("water_volume_ml", "integer"),
    ) + _RECORD_TAIL,
    (_DEVICE, _TANK))

DELIVERIES = TableResource(
    "deliveries", "deliveries", "Deliveries (卸油) detected by the tank gauge",
    "end_time", "end_time (device clock)", "key",
    _RECORD_HEAD + (
        _c("tank", "integer"), _c("start_time", "integer"), _c("end_time", "integer"),
        _c("start_gross_volume_ml", "integer"), _c("start_volume_20c_ml", "integer"),
        _c("end_gross_volume_ml", "integer"), _c("end_volume_20c_ml", "integer"),
        _c("start_temperature_mc", "integer"), _c("end_temperature_mc", "integer"),
        _c("start_level_um", "integer"), _c("end_level_um", "integer"),
        _c("bol_volume_20c_ml", "integer", "bill of lading (提单) at 20 °C keyed in at the "
           "gauge for this drop, mL; 0 = none keyed in; null = not reported (uplink 1.0)",
           nullable=True),
    ) + _RECORD_TAIL,
    (_DEVICE, _TANK))

EVENTS = TableResource(
    "events", "events", "Device events (事件): price changes, seals, parts, power, faults",
    "device_time", "device_time (device clock)", "key",
    _RECORD_HEAD + (
        _c("code", "integer", "event code of the device profile"),
        _c("unit", "integer", "nozzle or tank; 0 = whole device"),
        _c("device_time", "integer", "device clock, epoch s"),
        _c("value_old_e4", "integer", "old value × 10⁴"),
        _c("value_new_e4", "integer", "new value × 10⁴"),
    ) + _RECORD_TAIL,
    (_DEVICE, Filter("code", "code", "int", "event code", lo=0, hi=65535)))

STATES = TableResource(
    "states", "states",
    "Device identity and status reports (设备状态: ids, seals, lock) as the collector read them",
    "device_time", "device_time (device clock)", "key",
    (_c("key", "string", "idempotency key <station_id>/<device>/states/<seq>/<device_time>"),
     _c("station_id", "string"), _c("device", "string", "G or D<n>"),
     _c("seq", "integer", "the collector's per-device report counter (16-bit, wraps)"),
     _c("device_time", "integer", "device clock (RTC) read with the header, epoch s"),
     _c("serial_number", "string"), _c("software_id", "string"),
     _c("mainboard_id", "string", "\"\" for a tank gauge"),
     _c("encoder_id", "string", "\"\" for a tank gauge"),
     _c("seal_state", "integer", "bit0 transducer, bit1 encoder, bit2 mainboard seal broken"),
     _c("device_status", "integer", "bit0 locked (自锁), bit1 encoder fault, bit2 mainboard "
                                    "fault"),
     ) + _RECORD_TAIL,
    (_DEVICE,))

_ALERT_STATUS_DOC = " | ".join(ALERT_STATUSES)
ALERTS = TableResource(
    "alerts", "alerts", "Alerts (预警) raised by the platform's detectors",
    "raised_at", "raised_at (platform wall clock)", "id",
    (_c("id", "string"), _c("station_id", "string"), _c("kind", "string"),
     _c("severity", "string", "info | warning | critical"),
     _c("raised_at", "number", "platform wall clock when it was raised, epoch s"),
     _c("as_of", "number", "device clock, epoch s: the detection instant (the time up to which "
                          "the data proving the alert was examined)", nullable=True),
     _c("device", "string", nullable=True),
     _c("nozzle", "integer", nullable=True), _c("tank", "integer", nullable=True),
     _c("title", "string"), _c("detail", "string"),
     _c("evidence", "json", "detector-specific evidence", sql="evidence_json"),
     _c("status", "string", _ALERT_STATUS_DOC),
     _c("status_note", "string", "note of the last status change", nullable=True),
     _c("status_changed_at", "number", "platform wall clock of the last status change",
        nullable=True),
     _c("status_changed_by", "string", "token name that changed the status last",
        nullable=True),
     _c("confirmed_at", "number", "platform wall clock when an inspector confirmed it (kept "
        "after closing: a closed alert with it was rectified, 已整改; without it, dismissed)",
        nullable=True),
     _c("created_at", "number", "platform wall clock, epoch s"),
     _c("detector", "string", "the detector that raised it", nullable=True)),
    (Filter("kind", "kind", "text", "alert kind"),
     Filter("severity", "severity", "enum", "severity",
            choices=("info", "warning", "critical")),
     Filter("status", "status", "enum", "status", choices=ALERT_STATUSES),
     _DEVICE, Filter("nozzle", "nozzle", "int", "nozzle", lo=1, hi=99), _TANK,
     Filter("detector", "detector", "text", "detector that raised it"),
     Filter("as_of_from", "as_of", "time", "as_of ≥ this (epoch s or ISO 8601)", op=">="),
     Filter("as_of_to", "as_of", "time", "as_of < this (epoch s or ISO 8601)", op="<")))

POSTED_PRICES = TableResource(
    "posted-prices", "posted_prices", "Posted prices (挂牌价) received from the price authority",
    "valid_from", "valid_from", "id",
    (_c("id", "string"),
     _c("station_id", "string", "the station it applies to; null = every station",
        nullable=True, sql="NULLIF(station_id, '')"),
     _c("grade", "string"), _c("price_fen", "integer", "fen per litre"),
     _c("valid_from", "number", "in force from, epoch s"),
     _c("body", "json", "the posting as submitted", sql="body_json"),
     _c("created_at", "number"), _c("created_by", "string")),
    (Filter("grade", "grade", "text", "fuel grade"),))

REJECTIONS = TableResource(
    "ingest/rejections", "ingest_rejections",
    "Rejected uplink messages and records, with the reason (never stored as data)",
    "received_at", "received_at (platform wall clock)", "id",
    (_c("id", "string"), _c("received_at", "number"), _c("topic", "string"),
     _c("station_id", "string", "registered station it is attributed to, or empty"),
     _c("scope", "string", "message | record"),
     _c("record_key", "string", nullable=True), _c("reason", "string"),
     _c("detail", "string"), _c("payload_sha256", "string"),
     _c("payload_excerpt", "string", "first 512 bytes, UTF-8 with replacement")),
    (Filter("reason", "reason", "text", "rejection reason"),
     Filter("scope", "scope", "enum", "message or record", choices=("message", "record"))))

TAX_DECLARATIONS = TableResource(
    "tax-declarations", "tax_declarations", "Tax declarations (纳税申报) received",
    "period_start_epoch", "start of the period (a date: its local midnight; a "
    "date-time: that instant)", "id",
    (_c("id", "string"), _c("station_id", "string"), _c("period_start", "string"),
     _c("period_end", "string"), _c("grade", "string", nullable=True),
     _c("declared_volume_ml", "integer", nullable=True),
     _c("declared_sales_fen", "integer"), _c("declared_tax_fen", "integer", nullable=True),
     _c("reference", "string", nullable=True),
     _c("body", "json", "the declaration as submitted", sql="body_json"),
     _c("created_at", "number"), _c("created_by", "string")))

VERIFICATION_RECORDS = TableResource(
    "verification-records", "verification_records",
    "Metrology verification and maintenance records (检定/维修记录) received",
    "performed_at", "performed_at", "id",
    (_c("id", "string"), _c("station_id", "string"), _c("device", "string"),
     _c("nozzle", "integer", nullable=True), _c("tank", "integer", nullable=True),
     _c("kind", "string"), _c("performed_at", "number", "epoch s"),
     _c("valid_until", "string", nullable=True), _c("result", "string", nullable=True),
     _c("certificate_no", "string", nullable=True), _c("organisation", "string"),
     _c("fully_signed", "integer", "1 if all three parties signed"),
     _c("signatures_missing", "string", "signatories who did not sign, comma-separated "
        "('' = fully signed; null: stored before API 1.2)", nullable=True),
     _c("valid_until_epoch", "number", "end of the verification's validity, epoch s (a date "
        "valid_until: the local midnight after it)", nullable=True),
     _c("body", "json", "the record as submitted", sql="body_json"),
     _c("created_at", "number"), _c("created_by", "string")),
    (_DEVICE, Filter("kind", "kind", "text", "record kind")))

AUDIT = TableResource(
    "audit", "api_audit",
    "Audit log of the API's writes (审计日志, admin only): every POST to a write route, "
    "accepted or refused",
    "at", "at (platform wall clock)", "id",
    (_c("id", "string"), _c("at", "number", "platform wall clock of the request, epoch s"),
     _c("principal", "string", "name of the token; '' when no known token was sent"),
     _c("role", "string", "role of the token; '' when no known token was sent"),
     _c("client", "string", "the client's IP address"),
     _c("method", "string"), _c("path", "string"),
     _c("status", "integer", "HTTP status of the answer"),
     _c("outcome", "string", " | ".join(AUDIT_OUTCOMES) + " (2xx | 401, 403 | other 4xx | "
        "5xx)"),
     _c("station_id", "string", "the station written to; '' if none or not accepted"),
     _c("summary", "string", "what was written (ids, station, key fields) or why it was "
        "refused; at most 500 characters"),
     _c("body_sha256", "string", "SHA-256 of the request body, hex; '' when not read"),
     _c("body_bytes", "integer", "length of the body (declared, when not read)")),
    (Filter("principal", "principal", "text", "token name"),
     Filter("role", "role", "enum", "token role", choices=ROLES),
     Filter("outcome", "outcome", "enum", "how the write ended", choices=AUDIT_OUTCOMES),
     Filter("status", "status", "int", "HTTP status", lo=100, hi=599),
     Filter("path", "path", "text", "request path, e.g. /api/v1/tax-declarations")))

TABLE_RESOURCES = (TRANSACTIONS, INVENTORY, DELIVERIES, EVENTS, STATES, ALERTS, REJECTIONS,
                   TAX_DECLARATIONS, VERIFICATION_RECORDS, POSTED_PRICES, AUDIT)


# -- computed resources, paginated per station ---------------------------------------------
@dataclass(frozen=True)
class ComputedResource:
    name: str
    summary: str
    time_doc: str
    item: dict[str, Any]
    sort_key: Callable[[dict[str, Any]], list[Any]]
    compute: Callable[[Conn, str, dict[str, Any], Context], list[dict[str, Any]]]
    filters: tuple[Filter, ...] = field(default=())
    has_time: bool = True

    @property
    def params(self) -> tuple[str, ...]:
        base = COMMON_PARAMS if self.has_time else ("station_id", "limit", "cursor")
        return base + tuple(f.name for f in self.filters)

    def item_schema(self) -> dict[str, Any]:
        return self.item

    def list(self, conn: Conn, query: Mapping[str, list[str]], ctx: Context) -> dict[str, Any]:
        check_known_params(query, self.params)
        limit = parse_limit(single(query, "limit"))
        sid = station_param(query)
        opts: dict[str, Any] = {}
        if self.has_time:
            opts["from"], opts["to"] = _time_range(query, ctx.zone)
        for f in self.filters:
            text = single(query, f.name)
            opts[f.name] = f.parse(text) if text is not None else None
        fp = fingerprint({"resource": self.name, "station_id": sid, **opts})
        cursor = single(query, "cursor")
        after = decode_cursor(cursor, fp) if cursor is not None else None
        if sid is not None:  # one not in the registry has no item (not a clean grade A)
            stations = [sid] if conn.query_one(
                "SELECT 1 FROM stations WHERE station_id = ?", (sid,)) is not None else []
        else:
            # sorted here: the cursor compares in Python (code points), not in the
            # database's collation (PostgreSQL's en_US puts "UMB01" before "UMB-1")
            stations = sorted(str(r[0]) for r in conn.query("SELECT station_id FROM stations"))
        if after is not None:
            if not after or not isinstance(after[0], str):
                raise ParamError("cursor", "not a cursor returned by this API")
            stations = [s for s in stations if s >= after[0]]
        items: list[dict[str, Any]] = []
        more = False
        for station in stations:
            rows = self.compute(conn, station, opts, ctx)
            for row in rows:
                key = self.sort_key(row)
                try:
                    if after is not None and key <= after:
                        continue
                except TypeError:
                    raise ParamError("cursor", "not a cursor returned by this API") from None
                if len(items) == limit:
                    more = True
                    break
                items.append(row)
            if more:
                break
        next_cursor = encode_cursor(self.sort_key(items[-1]), fp) if more else None
        return {"items": items, "next_cursor": next_cursor}


def _reconciliation(conn: Conn, station: str, opts: dict[str, Any],
                    ctx: Context) -> list[dict[str, Any]]:
    rows = reconcile_station(conn, station, ctx.zone, ctx.vcf)
    lo, hi, tank = opts.get("from"), opts.get("to"), opts.get("tank")
    return [r for r in rows
            if (lo is None or r["day_start"] >= lo) and (hi is None or r["day_start"] < hi)
            and (tank is None or r["tank"] == tank)]


def _continuity(conn: Conn, station: str, opts: dict[str, Any],
                ctx: Context) -> list[dict[str, Any]]:
    return station_continuity(conn, station, opts.get("device"), opts.get("from"),
                              opts.get("to"))


def _int(desc: str = "", nullable: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"type": ["integer", "null"] if nullable else "integer"}
    if desc:
        d["description"] = desc
    return d


_PCT = {"type": ["number", "null"], "description": "percent; null when sales are 0"}

RECONCILIATION_ITEM: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "station_id": {"type": "string"}, "tank": _int(),
        "grade": {"type": ["string", "null"]},
        "day": {"type": "string", "format": "date", "description": "local date"},
        "day_start": _int("epoch s of local midnight"), "day_end": _int("epoch s"),
        "opening_time": _int("device time of the opening reading"),
        "opening_volume_20c_ml": _int(), "closing_time": _int(),
        "closing_volume_20c_ml": _int(),
        "readings": _int("inventory readings after the opening up to the closing"),
        "transactions": _int(), "sales_ml": _int("metered volume"),
        "sales_20c_ml": _int("sales converted to 20 °C"), "deliveries": _int(),
        "deliveries_20c_ml": _int("gauge-observed delivered volume at 20 °C"),
        "variance_ml": _int("opening + deliveries − sales − closing; positive = missing"),
        "variance_pct_of_sales": _PCT, "cumulative_sales_20c_ml": _int(),
        "cumulative_variance_ml": _int(), "cumulative_variance_pct_of_sales": _PCT,
    },
}
RECONCILIATION_ITEM["required"] = list(RECONCILIATION_ITEM["properties"])

_BREAK = {"type": "object", "properties": {
    "after_key": {"type": "string"}, "key": {"type": "string"},
    "expected_volume_total_ml": _int(), "found_volume_total_ml": _int(),
    "volume_gap_ml": _int(), "expected_amount_total_fen": _int(),
    "found_amount_total_fen": _int(), "amount_gap_fen": _int()}}
_GAP = {"type": "object", "properties": {
    "kind": {"enum": ["gap", "repeat", "out_of_order"]}, "after_key": {"type": "string"},
    "key": {"type": "string"}, "after_seq": _int(), "seq": _int(),
    "missing": _int("records missing between the two (gap only)")}}
CONTINUITY_ITEM: dict[str, Any] = {
    "oneOf": [
        {"type": "object", "description": "totalizer continuity of one nozzle",
         "required": ["check", "station_id", "device", "nozzle", "transactions", "break_count",
                      "breaks", "continuous"],
         "properties": {
             "check": {"const": "totalizer"}, "station_id": {"type": "string"},
             "device": {"type": "string"}, "nozzle": _int(), "transactions": _int(),
             "first_time": _int(), "last_time": _int(), "volume_sum_ml": _int(),
             "volume_total_start_ml": _int(), "volume_total_end_ml": _int(),
             "volume_totalizer_delta_ml": _int(),
             "volume_unexplained_ml": _int("totalizer delta − Σ volume"),
             "amount_sum_fen": _int(), "amount_total_start_fen": _int(),
             "amount_total_end_fen": _int(), "amount_totalizer_delta_fen": _int(),
             "amount_unexplained_fen": _int(), "break_count": _int(),
             "breaks_volume_gap_ml": _int(), "breaks_amount_gap_fen": _int(),
             "breaks": {"type": "array", "items": _BREAK, "maxItems": 1000},
             "continuous": {"type": "boolean"}}},
        {"type": "object", "description": "sequence continuity of one device stream",
         "required": ["check", "station_id", "device", "stream", "records", "gap_count",
                      "missing_records", "gaps", "continuous"],
         "properties": {
             "check": {"const": "sequence"}, "station_id": {"type": "string"},
             "device": {"type": "string"},
             "stream": {"enum": ["transactions", "inventory", "deliveries", "events"]},
             "records": _int(), "first_time": _int(), "last_time": _int(),
             "first_seq": _int(), "last_seq": _int(), "gap_count": _int(),
             "missing_records": _int(), "out_of_order": _int(), "repeated": _int(),
             "gaps": {"type": "array", "items": _GAP, "maxItems": 1000},
             "continuous": {"type": "boolean"}}},
    ]
}

RECONCILIATION = ComputedResource(
    "reconciliation", "Daily wetstock reconciliation per tank at 20 °C (进销存日对账)",
    "day_start (local midnight of the day)", RECONCILIATION_ITEM,
    lambda r: [r["station_id"], r["tank"], r["day"]], _reconciliation, (_TANK,))

CONTINUITY = ComputedResource(
    "totalizer-continuity",
    "Totalizer continuity per nozzle and sequence continuity per device stream",
    "end_time of transactions / device_time of records", CONTINUITY_ITEM,
    lambda r: [r["station_id"], r["device"], r["check"], r.get("nozzle", 0),
               r.get("stream", "")], _continuity, (_DEVICE,))

def _detection_status(conn: Conn, station: str, opts: dict[str, Any],
                      ctx: Context) -> list[dict[str, Any]]:
    row = conn.query_one("SELECT watermark, evaluated_through, updated_at FROM "
                         "detection_progress WHERE station_id = ?", (station,))
    watermark, evaluated, updated = row if row is not None else (None, None, None)
    return [{"station_id": station,
             "watermark": None if watermark is None else int(watermark),
             "evaluated_through": None if evaluated is None else int(evaluated),
             "updated_at": None if updated is None else float(updated)}]


DETECTION_STATUS_ITEM: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["station_id", "watermark", "evaluated_through", "updated_at"],
    "properties": {
        "station_id": {"type": "string"},
        "watermark": _int("device clock, epoch s: the station's data with a device time "
                          "before this is complete (minimum over its devices' "
                          "drained_through); null = not yet known", nullable=True),
        "evaluated_through": _int("device clock, epoch s: the detectors have evaluated the "
                                  "station's data up to here; null = not yet", nullable=True),
        "updated_at": {"type": ["number", "null"],
                       "description": "platform wall clock of the last update"},
    },
}

DETECTION_STATUS = ComputedResource(
    "detection/status", "How far the detectors have evaluated each station (检测进度)",
    "(no time filter)", DETECTION_STATUS_ITEM, lambda r: [r["station_id"]], _detection_status,
    has_time=False)

def _tax_checks(conn: Conn, station: str, opts: dict[str, Any],
                ctx: Context) -> list[dict[str, Any]]:
    if not ctx.tax:
        return []
    lo, hi = opts.get("from"), opts.get("to")
    grade, flagged, status = opts.get("grade"), opts.get("flagged"), opts.get("status")
    return [r for r in station_tax_checks(conn, station, ctx.zone)
            if (lo is None or r["period_start"] >= lo) and (hi is None or r["period_start"] < hi)
            and (grade is None or r["grade"] == grade)
            and (flagged is None or r["flagged"] == (flagged == "true"))
            and (status is None or r["status"] == status)]


_NULL_INT = {"type": ["integer", "null"]}
TAX_CHECK_ITEM: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "description": "the declaration's id, or "
                                                "missing/<station>/<start>/<end>/<grade>"},
        "station_id": {"type": "string"},
        "declaration_id": {"type": ["string", "null"],
                           "description": "null: no declaration of this grade in the period"},
        "reference": {"type": ["string", "null"]},
        "grade": {"type": ["string", "null"], "description": "null = all grades"},
        "period_start": _int("epoch s"), "period_end": _int("epoch s, exclusive"),
        "declared_volume_ml": {**_NULL_INT, "description": "null: not declared"},
        "declared_sales_fen": _int(),
        "platform_volume_ml": _int("Σ volume_ml of the transactions with end_time in the "
                                   "period (device clock)"),
        "platform_sales_fen": _int("Σ amount_fen of those transactions"),
        "transactions": _int(),
        "gap_volume_ml": {**_NULL_INT, "description": "platform − declared"},
        "gap_sales_fen": _int("platform − declared (> 0: less declared than sold)"),
        "late_volume_ml": _int("platform sales in the 30 min before the period's end (a "
                               "station may book them in the next period)"),
        "late_sales_fen": _int(),
        "tolerance_volume_ml": _NULL_INT,
        "tolerance_sales_fen": _int("late sales + max(absolute, relative × sales)"),
        "flagged": {"type": "boolean", "description": "under-declared: a gap beyond the "
                                                      "tolerance"},
        "missing_declaration": {"type": "boolean"},
        "status": {"enum": list(TAX_STATUSES), "description": "checked: the station's data is "
                   "complete through the period's end; pending: not yet"},
        "data_through": {**_NULL_INT, "description": "the station's watermark, device clock"},
    },
}
TAX_CHECK_ITEM["required"] = list(TAX_CHECK_ITEM["properties"])

TAX_CHECKS = ComputedResource(
    "tax-checks", "Sales vs tax declarations per station, period and grade (以销核税)",
    "period_start", TAX_CHECK_ITEM,
    lambda r: [r["station_id"], r["period_start"], r["period_end"], r["grade"] or "", r["id"]],
    _tax_checks,
    (Filter("grade", "grade", "text", "fuel grade"),
     Filter("flagged", "flagged", "enum", "only flagged (true) or unflagged (false) rows",
            choices=("true", "false")),
     Filter("status", "status", "enum", "checked or pending", choices=TAX_STATUSES)))

# -- commerce bureau (商务运行分析): fleet-wide aggregates, monthly stock balance ------------
@dataclass(frozen=True)
class FleetResource:
    """Aggregates over the whole fleet (or the one station of `station_id`), computed on
    demand, sorted and paged by their sort key."""

    name: str
    summary: str
    time_doc: str
    item: dict[str, Any]
    sort_key: Callable[[dict[str, Any]], list[Any]]
    compute: Callable[[Conn, str | None, dict[str, Any], Context], list[dict[str, Any]]]
    filters: tuple[Filter, ...] = field(default=())

    @property
    def params(self) -> tuple[str, ...]:
        return COMMON_PARAMS + tuple(f.name for f in self.filters)

    def item_schema(self) -> dict[str, Any]:
        return self.item

    def list(self, conn: Conn, query: Mapping[str, list[str]], ctx: Context) -> dict[str, Any]:
        check_known_params(query, self.params)
        limit = parse_limit(single(query, "limit"))
        sid = station_param(query)
        opts: dict[str, Any] = {}
        opts["from"], opts["to"] = _time_range(query, ctx.zone)
        for f in self.filters:
            text = single(query, f.name)
            opts[f.name] = f.parse(text, ctx.zone) if text is not None else None
        fp = fingerprint({"resource": self.name, "station_id": sid, **opts})
        cursor = single(query, "cursor")
        rows = sorted(self.compute(conn, sid, opts, ctx), key=self.sort_key)
        if cursor is not None:
            after = decode_cursor(cursor, fp)
            try:
                rows = [r for r in rows if self.sort_key(r) > after]
            except TypeError:
                raise ParamError("cursor", "not a cursor returned by this API") from None
        items = rows[:limit]
        more = len(rows) > limit
        return {"items": items,
                "next_cursor": encode_cursor(self.sort_key(items[-1]), fp) if more else None}


def _commerce_sales(conn: Conn, station: str | None, opts: dict[str, Any],
                    ctx: Context) -> list[dict[str, Any]]:
    return sales_cells(conn, ctx.zone, station_id=station, lo=opts["from"], hi=opts["to"],
                       town=opts["town"], ownership=opts["ownership"], grade=opts["grade"])


def _stock_balance(conn: Conn, station: str, opts: dict[str, Any],
                   ctx: Context) -> list[dict[str, Any]]:
    return station_balances(conn, station, ctx.zone, ctx.vcf, lo=opts["from"], hi=opts["to"],
                            tank=opts["tank"], grade=opts["grade"])


_GRADE = Filter("grade", "grade", "text", "fuel grade")
COMMERCE_SALES = FleetResource(
    "commerce/sales", "Sales by month, town, ownership and grade (商务运行分析：销售统计)",
    "end_time of the transactions (device clock); a month is cut to the range",
    SALES_ITEM, lambda r: [r["month"], r["town"], r["ownership"], r["grade"]],
    _commerce_sales,
    (Filter("town", "town", "text", "town or sumu of the station registry"),
     Filter("ownership", "ownership", "enum", "private (民营) or state (国营)",
            choices=OWNERSHIP), _GRADE))

STOCK_BALANCE = ComputedResource(
    "commerce/stock-balance",
    "Monthly purchase–sales–inventory balance per tank at 20 °C (进销存月度平衡)",
    "the month's period (a month is cut to the range)", STOCK_BALANCE_ITEM,
    lambda r: [r["station_id"], r["tank"], r["month"]], _stock_balance, (_TANK, _GRADE))


def _metrology(conn: Conn, station: str, opts: dict[str, Any],
               ctx: Context) -> list[dict[str, Any]]:
    if not ctx.metrology:
        return []
    device, status, flagged = opts.get("device"), opts.get("status"), opts.get("flagged")
    return sorted((r for r in station_audit(conn, station)
                   if (device is None or r["device"] == device)
                   and (status is None or r["status"] == status)
                   and (flagged is None or r["flagged"] == (flagged == "true"))),
                  key=lambda r: _device_order(r["device"]))


def _device_order(device: str) -> list[Any]:
    """G, then D1, D2 … D10 by number: the listing's order, which its cursor compares (as
    texts, "D10" < "D2" would skip D10 and on when paging)."""
    if device[:1] == "D" and device[1:].isdigit():
        return [1, int(device[1:])]
    return [0, 0] if device == "G" else [2, device]


_RECORD_REF = {"type": ["object", "null"], "properties": {
    "id": {"type": "string"}, "kind": {"type": "string"},
    "certificate_no": {"type": ["string", "null"]}, "performed_at": {"type": "number"},
    "nozzle": {"type": ["integer", "null"]},
    "valid_until": {"type": "number", "description": "epoch s (last_verification only)"}}}
_FINDING = {"type": "object", "required": ["kind", "time", "detail"], "properties": {
    "kind": {"enum": ["verification_expired", "record_unsigned", "seal_mismatch"]},
    "time": _int("device clock, epoch s: when it became true (the alert's as_of)"),
    "nozzle": {"type": ["integer", "null"]}, "detail": {"type": "string"},
    "record": _RECORD_REF,
    "missing": {"type": "array", "items": {"enum": ["maintainer", "verifier", "station"]}},
    "seals": {"type": "array", "items": {"type": "object", "properties": {
        "position": {"type": "string"}, "found": {"type": "string"},
        "expected": {"type": "string"}, "expected_from": _RECORD_REF}}},
    "valid_until": {"type": "number"}}}
METROLOGY_ITEM: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "station_id": {"type": "string"},
        "device": {"type": "string", "description": "D<n> (or G when records name it)"},
        "as_of": {**_NULL_INT, "description": "device clock, epoch s: the audit's instant "
                  "(the detectors' progress for the station); null = no data yet"},
        "status": {"enum": list(METROLOGY_STATUSES), "description": "valid: a verification "
                   "performed by as_of is valid after it; expired: none is (检定过期); "
                   "no_record: no verification stating valid_until on file; unknown: no "
                   "as_of yet"},
        "last_verification": _RECORD_REF,
        "valid_until": {"type": ["number", "null"],
                        "description": "end of the latest validity on file, epoch s"},
        "overdue_since": {"type": ["number", "null"]},
        "overdue_days": {"type": ["number", "null"]},
        "records": _int("verification and maintenance records on file for the device"),
        "expired": {"type": "array", "items": _FINDING,
                    "description": "every expiry with no renewal in time (past and current)"},
        "unsigned_records": {"type": "array", "items": _FINDING},
        "seal_mismatches": {"type": "array", "items": _FINDING},
        "unsigned_changes": {"type": "array", "maxItems": 100, "description": (
            "component, seal and parameter changes no fully signed record covers (the "
            "identity detector's rule), decided one day after each"),
            "items": {"type": "object", "properties": {
                "kind": {"type": "string"}, "what": {"type": "string"}, "old": {},
                "new": {}, "time": _int(), "nozzle": {"type": ["integer", "null"]},
                "source": {"enum": ["state", "event"]}}}},
        "flagged": {"type": "boolean", "description": "expired now, or any finding or "
                                                      "unsigned change on file"},
    },
}
METROLOGY_ITEM["required"] = list(METROLOGY_ITEM["properties"])

METROLOGY = ComputedResource(
    "metrology", "Metrology audit per dispenser: verification status, unsigned records, seal "
    "mismatches, changes without a signed record (计量器具检定台账)",
    "(no time filter)", METROLOGY_ITEM,
    lambda r: [r["station_id"], *_device_order(r["device"])], _metrology,
    (_DEVICE, Filter("status", "status", "enum", "verification status",
                     choices=METROLOGY_STATUSES),
     Filter("flagged", "flagged", "enum", "only flagged (true) or unflagged (false) devices",
            choices=("true", "false"))),
    has_time=False)


def _credit(conn: Conn, station: str, opts: dict[str, Any],
            ctx: Context) -> list[dict[str, Any]]:
    item = station_credit(conn, station, opts["from"], opts["to"], flat=ctx.flat_credit)
    return [item] if opts["grade"] in (None, item["grade"]) else []


CREDIT = ComputedResource(
    "credit", "Credit record and grade per station (信用记录、分级分类监管): score and grade A–D "
    "from the platform's findings, weighted by severity and lifecycle",
    "the findings' as_of (device clock): the grading period", CREDIT_ITEM,
    lambda r: [r["station_id"]], _credit,
    (Filter("grade", "grade", "enum", "only stations of this grade", choices=GRADES),))

COMPUTED_RESOURCES = (RECONCILIATION, CONTINUITY, DETECTION_STATUS, TAX_CHECKS,
                      COMMERCE_SALES, STOCK_BALANCE, METROLOGY, CREDIT)
ListResource = TableResource | ComputedResource | FleetResource
