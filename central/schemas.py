"""Validation against the published uplink JSON Schemas (contracts/uplink_schemas/).

JSON Schema's "integer" admits 1.0; the uplink carries exact integers, so here an
integer must be a JSON integer literal (and never a boolean). Patterns have their ECMA-262
meaning (`$` ends the string: "D1\\n" is no device).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match

from central.fastcheck import compile_schema, ecma_regex
from contracts import UPLINK_SCHEMAS

SCHEMA_DIR = UPLINK_SCHEMAS
KINDS = ("transaction", "inventory", "delivery", "event", "state", "heartbeat", "online",
         "ack")


def _strict_integer(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Any:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer)
StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern},
                                    type_checker=_TYPES)


# ISO 8601 date-times of the inputs (docs/platform-api.md §5.8), the offset optional: none
# means the platform zone. jsonschema's own "date-time" check needs an optional package
# (rfc3339-validator) and then requires an offset, so the answer would depend on what
# happens to be installed.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                        r"(Z|[+-]\d{2}:\d{2})?", re.ASCII)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if _DATE_TIME.fullmatch(instance) is None:
        return False
    dt.datetime.fromisoformat(instance)  # ValueError: no such day or time of day
    return True


INPUT_FORMATS = FormatChecker()  # every format jsonschema checks, "date-time" as above
INPUT_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)


@cache
def schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise KeyError(f"no uplink schema for message kind {kind!r}; kinds: {KINDS}")
    return json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))


@cache
def validator(kind: str) -> Any:
    s = schema(kind)
    Draft202012Validator.check_schema(s)
    return StrictValidator(s)


@cache
def fast(kind: str) -> Any:
    return compile_schema(schema(kind))


def json_path(path: Any) -> str:
    """A jsonschema error path as `records[3].volume_ml` (`$` for the top level)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def first_error(kind: str, payload: Any) -> str | None:
    """None if `payload` is a valid `kind` message, else "<path>: <problem>"."""
    if fast(kind)(payload):
        return None
    err = best_match(validator(kind).iter_errors(payload))
    if err is None:
        return None
    message = err.message if len(err.message) <= 200 else err.message[:200] + "…"
    return f"{json_path(err.absolute_path)}: {message}"
