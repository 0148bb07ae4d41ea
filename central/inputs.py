"""Inputs from other departments: tax declarations (税务申报) and metrology verification /
maintenance records (计量检定、维修记录, with the three-party signatures 维修单位、检定机构、加油站).

Validated against the JSON Schemas below (also published in the OpenAPI document) and
stored as given, with a few columns extracted for queries. Used by later detectors.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from central.db import Conn
from central.schemas import StrictValidator, json_path

GRADE = {"type": "string", "pattern": "^(89|92|95|98|0|-10|-20|-35)$"}
STATION = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}
FEN = {"type": "integer", "minimum": 0, "maximum": 9007199254740991}
TEXT = {"type": "string", "minLength": 1, "maxLength": 200}

TAX_DECLARATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Tax declaration (纳税申报) of a station for a period",
    "type": "object",
    "additionalProperties": False,
    "required": ["station_id", "period_start", "period_end", "declared_sales_fen"],
    "properties": {
        "station_id": STATION,
        "period_start": {"type": "string", "format": "date",
                         "description": "first day of the period (local date)"},
        "period_end": {"type": "string", "format": "date",
                       "description": "last day of the period, inclusive"},
        "grade": {**GRADE, "description": "fuel grade; omitted = all grades"},
        "declared_volume_ml": {**FEN, "description": "declared sales volume, mL"},
        "declared_sales_fen": {**FEN, "description": "declared turnover, fen"},
        "declared_tax_fen": {**FEN, "description": "tax declared, fen"},
        "declared_at": {"type": "string", "format": "date-time"},
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
        "valid_until": {"type": "string", "format": "date",
                        "description": "end of the verification's validity (检定有效期)"},
        "result": {"enum": ["pass", "fail"]},
        "certificate_no": TEXT,
        "organisation": {**TEXT, "description": "verification body or maintenance company"},
        "signatures": {
            "type": "object", "additionalProperties": False, "minProperties": 1,
            "description": "three-party signatures: maintainer (维修单位), verifier "
                           "(检定机构), station (加油站)",
            "properties": {"maintainer": TEXT, "verifier": TEXT, "station": TEXT},
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
                           format_checker=StrictValidator.FORMAT_CHECKER),
    "verification": StrictValidator(VERIFICATION_RECORD_SCHEMA,
                                    format_checker=StrictValidator.FORMAT_CHECKER),
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


def store_tax_declaration(conn: Conn, body: Any, zone: ZoneInfo, created_by: str) -> dict:
    _validate("tax", body)
    start = _date(body["period_start"], "period_start")
    end = _date(body["period_end"], "period_end")
    if end < start:
        raise InputError("period_end", f"{end} is before period_start {start}")
    _station_known(conn, body["station_id"])
    ref = body.get("reference")
    if ref is not None and conn.query_one(
            "SELECT 1 FROM tax_declarations WHERE station_id = ? AND reference = ?",
            (body["station_id"], ref)) is not None:
        raise InputError("reference", f"declaration {ref!r} of {body['station_id']} is "
                         "already stored", status=409)
    row_id = uuid.uuid4().hex
    start_epoch = int(dt.datetime(start.year, start.month, start.day, tzinfo=zone).timestamp())
    conn.execute(
        "INSERT INTO tax_declarations (id, station_id, period_start, period_end, "
        "period_start_epoch, grade, declared_volume_ml, declared_sales_fen, declared_tax_fen, "
        "reference, body_json, created_at, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, body["station_id"], start.isoformat(), end.isoformat(), start_epoch,
         body.get("grade"), body.get("declared_volume_ml"), body["declared_sales_fen"],
         body.get("declared_tax_fen"), ref, json.dumps(body, ensure_ascii=False,
                                                        sort_keys=True),
         time.time(), created_by))
    return {"id": row_id, **body}


def store_verification_record(conn: Conn, body: Any, zone: ZoneInfo, created_by: str) -> dict:
    _validate("verification", body)
    performed = _datetime(body["performed_at"], "performed_at", zone)
    if "valid_until" in body:
        _date(body["valid_until"], "valid_until")
    _station_known(conn, body["station_id"])
    signed = body["signatures"]
    fully = all(signed.get(k) for k in ("maintainer", "verifier", "station"))
    row_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO verification_records (id, station_id, device, nozzle, tank, kind, "
        "performed_at, valid_until, result, certificate_no, organisation, fully_signed, "
        "body_json, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, body["station_id"], body["device"], body.get("nozzle"), body.get("tank"),
         body["kind"], performed, body.get("valid_until"), body.get("result"),
         body.get("certificate_no"), body["organisation"], int(fully),
         json.dumps(body, ensure_ascii=False, sort_keys=True), time.time(), created_by))
    return {"id": row_id, "fully_signed": fully, **body}
