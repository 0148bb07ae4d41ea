"""Inputs from other departments: tax declarations (税务申报) and metrology verification /
maintenance records (计量检定、维修记录, with the three-party signatures 维修单位、检定机构、加油站).

Validated against the JSON Schemas below (also published in the OpenAPI document) and
stored as given, with a few columns extracted for queries. The tax declarations are
compared with the platform's sales by central/tax.py (以销核税).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from central.db import Conn
from central.schemas import INPUT_FORMATS, StrictValidator, json_path

GRADE = {"type": "string", "pattern": "^(89|92|95|98|0|-10|-20|-35)$"}
STATION = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}
FEN = {"type": "integer", "minimum": 0, "maximum": 9007199254740991}
TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
SIGNATORIES = ("maintainer", "verifier", "station")  # 维修单位、检定机构、加油站
SEAL_POSITIONS = ("transducer", "encoder", "mainboard", "other")

TAX_DECLARATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Tax declaration (纳税申报) of a station for a period",
    "type": "object",
    "additionalProperties": False,
    "required": ["station_id", "period_start", "period_end", "declared_sales_fen"],
    "properties": {
        "station_id": STATION,
        "period_start": {"type": "string", "anyOf": [{"format": "date"},
                                                      {"format": "date-time"}],
                         "description": "first day of the period (local date), or its first "
                                        "instant (ISO 8601 date-time; no offset = platform "
                                        "zone) for a period shorter than a day"},
        "period_end": {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}],
                       "description": "last day of the period, inclusive (a date, end >= "
                                      "start); or, with a date-time period_start, the instant "
                                      "the period ends, exclusive (end > start)"},
        "grade": {**GRADE, "description": "fuel grade; omitted = all grades"},
        "declared_volume_ml": {**FEN, "description": "declared sales volume, mL"},
        "declared_sales_fen": {**FEN, "description": "declared turnover, fen"},
        "declared_tax_fen": {**FEN, "description": "tax declared, fen"},
        "declared_at": {"type": "string", "format": "date-time",
                        "description": "when the station filed it; a grade the period's "
                                       "declarations leave out is judged 1 day after the "
                                       "latest (GET /api/v1/tax-checks)"},
        "authority": TEXT,
        "reference": {**TEXT, "description": "declaration number; unique per station"},
    },
}

VERIFICATION_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Metrology verification or maintenance record (检定/维修记录)",
    "type": "object",
    "additionalProperties": False,
    "required": ["station_id", "device", "kind", "performed_at", "organisation", "signatures"],
    "properties": {
        "station_id": STATION,
        "device": {"type": "string", "pattern": "^(G|D[1-9][0-9]{0,2})$"},
        "nozzle": {"type": "integer", "minimum": 1, "maximum": 99},
        "tank": {"type": "integer", "minimum": 1, "maximum": 99},
        "kind": {"enum": ["verification", "maintenance", "parameter_change",
                          "component_replacement", "seal_replacement"],
                 "description": "verification = 检定; the others are maintenance acts"},
        "performed_at": {"type": "string", "format": "date-time"},
        "valid_until": {"type": "string", "anyOf": [{"format": "date"},
                                                    {"format": "date-time"}],
                        "description": "end of the verification's validity (检定有效期): a "
                                       "date = valid through that local day; a date-time "
                                       "(no offset = platform zone) = valid until that "
                                       "instant. After performed_at"},
        "result": {"enum": ["pass", "fail"]},
        "certificate_no": TEXT,
        "organisation": {**TEXT, "description": "verification body or maintenance company"},
        "signatures": {
            "type": "object", "additionalProperties": False, "minProperties": 1,
            "description": "three-party signatures: maintainer (维修单位), verifier "
                           "(检定机构), station (加油站). The party that did the work must "
                           "sign (a verification: verifier; other kinds: maintainer); a "
                           "record without another party's signature is stored, "
                           "fully_signed false, and flagged (record_unsigned)",
            "properties": {"maintainer": TEXT, "verifier": TEXT, "station": TEXT},
        },
        "seals": {
            "type": "array", "maxItems": 20,
            "description": "lead seals (铅封) as found (before) and as left (after) by the "
                           "work; a seal found must be the one the device's previous record "
                           "left, else the platform flags seal_mismatch",
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["position"],
                      "anyOf": [{"required": ["before"]}, {"required": ["after"]}],
                      "properties": {
                          "position": {"enum": list(SEAL_POSITIONS)},
                          "before": {**TEXT, "description": "seal number found"},
                          "after": {**TEXT, "description": "seal number left"}}},
        },
        "components": {
            "type": "array", "maxItems": 50,
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["component"],
                      "properties": {"component": {"enum": ["mainboard", "encoder", "pulser",
                                                            "software", "seal", "other"]},
                                     "old_id": TEXT, "new_id": TEXT}},
        },
        "parameters": {
            "type": "array", "maxItems": 50,
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["name"],
                      "properties": {"name": TEXT, "old_value": {"type": "number"},
                                     "new_value": {"type": "number"}}},
        },
        "notes": {"type": "string", "maxLength": 2000},
    },
}

_VALIDATORS = {
    "tax": StrictValidator(TAX_DECLARATION_SCHEMA,
                           format_checker=INPUT_FORMATS),
    "verification": StrictValidator(VERIFICATION_RECORD_SCHEMA,
                                    format_checker=INPUT_FORMATS),
}


class InputError(ValueError):
    """Bad input: `field` is the JSON path of the problem."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


def _validate(which: str, body: Any) -> None:
    errors = sorted(_VALIDATORS[which].iter_errors(body),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        e = errors[0]
        raise InputError(json_path(e.absolute_path), e.message[:300])


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(field, f"expected a date YYYY-MM-DD, found {text!r}") from None


def _day_after(day: dt.date, field: str) -> dt.date:
    try:
        return day + dt.timedelta(days=1)
    except OverflowError:  # 9999-12-31: no later day in the calendar
        raise InputError(field, f"{day} is the last day the calendar holds") from None


def _datetime(text: str, field: str, zone: ZoneInfo) -> float:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(field, f"expected an ISO 8601 date-time, found {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def _station_known(conn: Conn, station_id: str) -> None:
    if conn.query_one("SELECT 1 FROM stations WHERE station_id = ? AND active = 1",
                      (station_id,)) is None:
        raise InputError("station_id", f"station {station_id!r} is not in the registry")


# For the other inputs (central/prices.py).
datetime_epoch = _datetime
station_known = _station_known


def _is_date(text: str) -> bool:
    return len(text) == 10  # YYYY-MM-DD (the schema allows only a date or a date-time)


def period_epochs(start_text: str, end_text: str, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a declaration's period in epoch s: dates are whole local days (the
    end inclusive), date-times instants (the end exclusive). InputError names the field."""
    if _is_date(start_text) != _is_date(end_text):
        raise InputError("period_end", f"expected the same form as period_start (both dates "
                                       f"or both date-times), found {end_text!r} after "
                                       f"{start_text!r}")
    if _is_date(start_text):
        first = _date(start_text, "period_start")
        last = _date(end_text, "period_end")
        if last < first:
            raise InputError("period_end", f"{last} is before period_start {first}")
        after = _day_after(last, "period_end")
        return (int(dt.datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()),
                int(dt.datetime(after.year, after.month, after.day, tzinfo=zone).timestamp()))
    a = _datetime(start_text, "period_start", zone)
    b = _datetime(end_text, "period_end", zone)
    if b <= a:
        raise InputError("period_end", f"{end_text} is not after period_start {start_text} "
                                       f"(a date-time period is half-open: end > start)")
    return int(a), int(b)


def store_tax_declaration(conn: Conn, body: Any, zone: ZoneInfo, created_by: str) -> dict:
    _validate("tax", body)
    start_epoch, end_epoch = period_epochs(body["period_start"], body["period_end"], zone)
    _station_known(conn, body["station_id"])
    ref = body.get("reference")
    if ref is not None and conn.query_one(
            "SELECT 1 FROM tax_declarations WHERE station_id = ? AND reference = ?",
            (body["station_id"], ref)) is not None:
        raise InputError("reference", f"declaration {ref!r} of {body['station_id']} is "
                         "already stored", status=409)
    declared_at = body.get("declared_at")
    declared_epoch = None if declared_at is None else int(_datetime(declared_at, "declared_at",
                                                                    zone))
    row_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO tax_declarations (id, station_id, period_start, period_end, "
        "period_start_epoch, period_end_epoch, grade, declared_volume_ml, declared_sales_fen, "
        "declared_tax_fen, reference, body_json, created_at, created_by, declared_at_epoch) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, body["station_id"], body["period_start"], body["period_end"], start_epoch,
         end_epoch, body.get("grade"), body.get("declared_volume_ml"), body["declared_sales_fen"],
         body.get("declared_tax_fen"), ref, json.dumps(body, ensure_ascii=False,
                                                        sort_keys=True),
         time.time(), created_by, declared_epoch))
    return {"id": row_id, **body}


def author(kind: str) -> str:
    """The signatory who did the work of a record `kind` and must sign it: the verification
    institute a verification (检定), the maintenance company any other kind."""
    return "verifier" if kind == "verification" else "maintainer"


def valid_until_epoch(text: str, zone: ZoneInfo) -> float:
    """The instant a verification's validity ends: a date is valid through that local day
    (the next local midnight), a date-time until that instant."""
    if _is_date(text):
        after = _day_after(_date(text, "valid_until"), "valid_until")
        return dt.datetime(after.year, after.month, after.day, tzinfo=zone).timestamp()
    return _datetime(text, "valid_until", zone)


def _device_known(conn: Conn, station_id: str, device: str, nozzle: int | None) -> None:
    if device == "G":
        return
    nozzles = [int(n) for (n,) in conn.query(
        "SELECT nozzle FROM station_nozzles WHERE station_id = ? AND dispenser = ?",
        (station_id, int(device[1:])))]
    if not nozzles:
        raise InputError("device", f"station {station_id} has no dispenser {device} in the "
                                   f"registry")
    if nozzle is not None and nozzle not in nozzles:
        raise InputError("nozzle", f"dispenser {device} of {station_id} has nozzles "
                                   f"{sorted(nozzles)}, not {nozzle}")


def _duplicate(conn: Conn, body: dict[str, Any], performed: float) -> None:
    """409 for a record already stored: the same kind and certificate number at the station
    (a verification certificate and a work order are different series), or the same device,
    nozzle, kind and instant."""
    cert = body.get("certificate_no")
    if cert is not None and conn.query_one(
            "SELECT 1 FROM verification_records WHERE station_id = ? AND certificate_no = ? "
            "AND kind = ?", (body["station_id"], cert, body["kind"])) is not None:
        raise InputError("certificate_no", f"{body['kind']} record {cert!r} of "
                         f"{body['station_id']} is already stored", status=409)
    if conn.query_one(
            "SELECT 1 FROM verification_records WHERE station_id = ? AND device = ? AND "
            "COALESCE(nozzle, 0) = ? AND kind = ? AND performed_at = ?",
            (body["station_id"], body["device"], body.get("nozzle") or 0, body["kind"],
             performed)) is not None:
        raise InputError("performed_at", f"a {body['kind']} record of {body['station_id']} "
                         f"{body['device']} performed at {body['performed_at']} is already "
                         "stored", status=409)


def store_verification_record(conn: Conn, body: Any, zone: ZoneInfo, created_by: str) -> dict:
    """Validate and store a verification / maintenance record; 400 (InputError) names the
    field of a bad one, 409 a duplicate; nothing is stored then (docs/platform-api.md §5.8)."""
    _validate("verification", body)
    performed = _datetime(body["performed_at"], "performed_at", zone)
    until = None
    if "valid_until" in body:
        until = valid_until_epoch(body["valid_until"], zone)
        if until <= performed:
            raise InputError("valid_until", f"{body['valid_until']} is not after performed_at "
                                            f"{body['performed_at']}")
    signed = body["signatures"]
    who = author(body["kind"])
    if not signed.get(who):
        raise InputError(f"signatures.{who}", f"a {body['kind']} record is signed by the "
                         f"{who} who did the work; it is missing (the other parties' "
                         "signatures may be missing: the record is then stored and flagged)")
    positions = [s["position"] for s in body.get("seals", [])]
    for i, pos in enumerate(positions):
        if pos in positions[:i]:
            raise InputError(f"seals[{i}].position", f"seal position {pos!r} appears twice")
    _station_known(conn, body["station_id"])
    _device_known(conn, body["station_id"], body["device"], body.get("nozzle"))
    _duplicate(conn, body, performed)
    missing = [k for k in SIGNATORIES if not signed.get(k)]
    fully = not missing
    row_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO verification_records (id, station_id, device, nozzle, tank, kind, "
        "performed_at, valid_until, result, certificate_no, organisation, fully_signed, "
        "body_json, created_at, created_by, valid_until_epoch, seals_json, signatures_missing) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, body["station_id"], body["device"], body.get("nozzle"), body.get("tank"),
         body["kind"], performed, body.get("valid_until"), body.get("result"),
         body.get("certificate_no"), body["organisation"], int(fully),
         json.dumps(body, ensure_ascii=False, sort_keys=True), time.time(), created_by,
         until, json.dumps(body.get("seals", []), ensure_ascii=False, sort_keys=True),
         ",".join(missing)))
    return {"id": row_id, "fully_signed": fully, "signatures_missing": missing, **body}
