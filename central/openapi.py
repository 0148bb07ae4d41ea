"""The OpenAPI 3.1 document of the platform API, built from the same resource definitions
that answer the requests (so the document cannot drift from the behaviour)."""

from __future__ import annotations

from typing import Any

from central import stations
from central.alerts import STATUSES, TRANSITIONS
from central.auth import roles_for
from central.inputs import TAX_DECLARATION_SCHEMA, VERIFICATION_RECORD_SCHEMA
from central.params import DEFAULT_LIMIT, MAX_LIMIT
from central.prices import POSTED_PRICE_SCHEMA
from central.resources import COMPUTED_RESOURCES, TABLE_RESOURCES, ListResource

# 1.5: GET /api/v1/integrity/chain; 1.4: department roles, GET /api/v1/audit; 1.3: credit
API_VERSION = "1.5.0"
PREFIX = "/api/v1"

_LIFECYCLE = "; ".join(f"{a} → {' | '.join(b)}" for a, b in TRANSITIONS.items() if b)
ALERT_STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Status change of an alert (an inspector confirms or closes it)",
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {"enum": list(STATUSES),
                   "description": f"the new status; allowed changes: {_LIFECYCLE} (any other "
                                  f"answers 409)"},
        "note": {"type": "string", "maxLength": 2000,
                 "description": "why (the inspection's finding, the rectification)"},
    },
}

_COMMON: dict[str, dict[str, Any]] = {
    "station_id": {"name": "station_id", "in": "query", "required": False,
                   "description": "only this station",
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}},
    "from": {"name": "from", "in": "query", "required": False,
             "description": "inclusive lower bound of the resource's time field: epoch "
                            "seconds or ISO 8601 (a date or date-time; no offset = platform "
                            "time zone, Asia/Shanghai by default)",
             "schema": {"type": "string"}},
    "to": {"name": "to", "in": "query", "required": False,
           "description": "exclusive upper bound of the time field (same formats as from)",
           "schema": {"type": "string"}},
    "limit": {"name": "limit", "in": "query", "required": False,
              "description": f"page size, default {DEFAULT_LIMIT}, at most {MAX_LIMIT} "
                             f"(a larger one is a 400 naming limit)",
              "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    "cursor": {"name": "cursor", "in": "query", "required": False,
               "description": "opaque next_cursor of the previous page; only valid with the "
                              "same filters",
               "schema": {"type": "string"}},
}

_ERRORS = {
    "400": {"description": "bad parameter or body; error.parameter names it",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    "401": {"description": "no or unknown bearer token",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
}
_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _access(method: str, route: str) -> dict[str, Any]:
    """`x-roles` (who may call it, docs/platform-api.md §2) and, when not every role may,
    the 403 answer."""
    roles = roles_for(method, route)
    out: dict[str, Any] = {"x-roles": list(roles)}
    if method != "GET" or roles != roles_for("GET", "/"):
        out["403"] = {"description": f"the token's role is not {' or '.join(roles)}", **_ERR}
    return out


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"],
            "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": item},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "null on the last page"}}}


def _schema_name(name: str) -> str:
    return "".join(p.capitalize() for p in name.replace("/", "-").split("-"))


def _list_operation(res: ListResource, schema_ref: str) -> dict[str, Any]:
    access = _access("GET", f"{PREFIX}/{res.name}")
    roles = access.pop("x-roles")
    params = [dict(_COMMON[p]) for p in res.params if p in _COMMON]
    for p in params:
        if p["name"] in ("from", "to"):
            p["description"] = f"{p['description']}; applies to {res.time_doc}"
    params += [{"name": f.name, "in": "query", "required": False, "description": f.description,
                "schema": f.schema()} for f in res.filters]
    return {
        "summary": res.summary,
        "operationId": f"list{_schema_name(res.name)}",
        "security": [{"bearer": []}],
        "x-roles": roles,
        "parameters": params,
        "responses": {"200": {"description": "one page",
                              "content": {"application/json": {"schema": _page(
                                  {"$ref": schema_ref})}}}, **_ERRORS, **access},
    }


def _post_operation(name: str, body_ref: str, summary: str) -> dict[str, Any]:
    err = _ERR
    access = _access("POST", f"{PREFIX}/{name}")
    roles = access.pop("x-roles")
    return {
        "summary": f"{summary} ({', '.join(roles)})",
        "operationId": f"create{_schema_name(name)}",
        "security": [{"bearer": []}],
        "x-roles": roles,
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": body_ref}}}},
        "responses": {
            "201": {"description": "stored; the body is echoed with its new id",
                    "content": {"application/json": {"schema": {"type": "object",
                                                                "required": ["id"]}}}},
            **_ERRORS,
            **access,
            "409": {"description": "already stored (same reference)", **err},
            "413": {"description": "body larger than 1 MiB", **err},
            "415": {"description": "Content-Type is not application/json", **err},
        },
    }


def _alert_status_operation() -> dict[str, Any]:
    err = _ERR
    access = _access("POST", f"{PREFIX}/alerts/{{id}}/status")
    roles = access.pop("x-roles")
    return {
        "summary": f"Confirm or close an alert ({', '.join(roles)}): lifecycle open → "
                   f"confirmed → closed",
        "operationId": "setAlertStatus",
        "security": [{"bearer": []}],
        "x-roles": roles,
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string"}, "description": "the alert's id"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/AlertStatusInput"}}}},
        "responses": {
            "200": {"description": "changed; the alert as GET /api/v1/alerts lists it",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Alerts"}}}},
            **_ERRORS,
            **access,
            "404": {"description": "no alert with this id", **err},
            "409": {"description": "a change the lifecycle does not allow", **err},
            "413": {"description": "body larger than 1 MiB", **err},
            "415": {"description": "Content-Type is not application/json", **err},
        },
    }


CHAIN_REPORT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["station_id", "records", "head", "intact", "findings_total", "findings"],
    "properties": {
        "station_id": {"type": "string"},
        "records": {"type": "integer", "description": "links in the station's chain"},
        "head": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                 "description": "chain_hash of the last link (64 zeros: empty chain); record "
                                "it elsewhere to detect a rewritten chain later"},
        "intact": {"type": "boolean", "description": "no finding"},
        "findings_total": {"type": "integer"},
        "findings": {"type": "array", "maxItems": 100, "description": "the first 100",
                     "items": {"type": "object", "required": ["finding", "detail"],
                               "properties": {
                                   "finding": {"enum": ["altered", "missing", "unchained",
                                                        "broken_link"]},
                                   "key": {"type": "string", "description": "the record's "
                                           "key (altered, missing, unchained)"},
                                   "position": {"type": "integer", "description": "the "
                                                "link's position (broken_link)"},
                                   "detail": {"type": "string"}}}},
    },
}


def _chain_operation() -> dict[str, Any]:
    access = _access("GET", f"{PREFIX}/integrity/chain")
    roles = access.pop("x-roles")
    return {
        "summary": "Verify a station's record hash chain against the stored records "
                   "(tamper evidence; admin)",
        "operationId": "verifyChain", "security": [{"bearer": []}], "x-roles": roles,
        "parameters": [dict(_COMMON["station_id"], required=True,
                            description="the station whose chain to verify")],
        "responses": {"200": {"description": "the verification (intact or not)",
                              "content": {"application/json": {"schema": {
                                  "$ref": "#/components/schemas/ChainReport"}}}},
                      **_ERRORS, **access,
                      "404": {"description": "no such station in the registry", **_ERR}},
    }


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["status", "code", "message"],
            "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                           "parameter": {"type": ["string", "null"],
                                         "description": "query parameter or body field "
                                                        "(JSON path) at fault"},
                           "message": {"type": "string"}}}}},
        "Station": stations.STATION_ITEM,
        "IngestStats": stations.STATS_ITEM,
        "TaxDeclarationInput": {k: v for k, v in TAX_DECLARATION_SCHEMA.items()
                                if k != "$schema"},
        "VerificationRecordInput": {k: v for k, v in VERIFICATION_RECORD_SCHEMA.items()
                                    if k != "$schema"},
        "PostedPriceInput": {k: v for k, v in POSTED_PRICE_SCHEMA.items() if k != "$schema"},
        "AlertStatusInput": {k: v for k, v in ALERT_STATUS_SCHEMA.items() if k != "$schema"},
        "ChainReport": CHAIN_REPORT,
    }
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "liveness and readiness (no token needed)",
                             "operationId": "health", "security": [],
                             "responses": {"200": {"description": "up", "content": {
                                 "application/json": {"schema": {"type": "object"}}}},
                                 "503": {"description": "database unavailable"}}}},
        "/openapi.json": {"get": {"summary": "this document (no token needed)",
                                  "operationId": "openapi", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        f"{PREFIX}/stations": {"get": {
            "summary": "Station registry (站点台账) with collector and per-device on-line "
                       "state and last-seen device time",
            "operationId": "listStations", "security": [{"bearer": []}],
            "x-roles": list(roles_for("GET", f"{PREFIX}/stations")),
            "parameters": [_COMMON["station_id"],
                           {"name": "town", "in": "query", "schema": {"type": "string"}},
                           {"name": "ownership", "in": "query",
                            "schema": {"enum": ["private", "state"]}},
                           _COMMON["limit"], _COMMON["cursor"]],
            "responses": {"200": {"description": "one page", "content": {"application/json": {
                "schema": _page({"$ref": "#/components/schemas/Station"})}}}, **_ERRORS}}},
        f"{PREFIX}/stats/ingest": {"get": {
            "summary": "Ingest counters: records accepted and duplicate, messages rejected "
                       "by reason (persisted)",
            "operationId": "ingestStats", "security": [{"bearer": []}],
            "x-roles": list(roles_for("GET", f"{PREFIX}/stats/ingest")),
            "parameters": [_COMMON["station_id"]],
            "responses": {"200": {"description": "counters", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/IngestStats"}}}}, **_ERRORS}}},
    }
    for res in (*TABLE_RESOURCES, *COMPUTED_RESOURCES):
        name = _schema_name(res.name)
        schemas[name] = res.item_schema()
        paths[f"{PREFIX}/{res.name}"] = {"get": _list_operation(res,
                                                                f"#/components/schemas/{name}")}
    paths[f"{PREFIX}/tax-declarations"]["post"] = _post_operation(
        "tax-declarations", "#/components/schemas/TaxDeclarationInput",
        "Store a tax declaration")
    paths[f"{PREFIX}/verification-records"]["post"] = _post_operation(
        "verification-records", "#/components/schemas/VerificationRecordInput",
        "Store a metrology verification or maintenance record")
    paths[f"{PREFIX}/posted-prices"]["post"] = _post_operation(
        "posted-prices", "#/components/schemas/PostedPriceInput",
        "Store a posted price (挂牌价) of the price authority; 409 on a repeat of "
        "(station, grade, valid_from)")
    paths[f"{PREFIX}/alerts/{{id}}/status"] = {"post": _alert_status_operation()}
    paths[f"{PREFIX}/integrity/chain"] = {"get": _chain_operation()}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "Forecourt reference platform API (市级监管平台)",
                 "version": API_VERSION,
                 "description": "The HTTP API a supervision platform offers the acceptance "
                                "harness; see docs/platform-api.md. Volumes in mL, money in "
                                "fen, levels in µm, temperatures in m°C, times in epoch "
                                "seconds."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": schemas},
        "paths": paths,
    }
