"""JSON Schema validation of a scenario, with messages a person can act on, and defaults.

jsonschema's own messages ("0 is less than the minimum of 1") do not say which field in
which file; this turns each error into a Problem: file:line:column, the field path, what
was expected (from the schema, or its `x-expected` phrase) and what was found.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from scenarios.errors import Problem, format_path, show
from scenarios.yamlsource import Positions, locate

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")

_TYPE_WORDS = {"string": "text", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "an object (field: value)",
               "array": "a list", "null": "null"}


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def _first_repeat(items: list[Any]) -> Any:
    seen: list[Any] = []  # a list, not a set: items may be unhashable
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _expected(error: ValidationError) -> tuple[str, str | None]:
    """(expected, override of `found` or None) for one schema error."""
    # Errors from iter_errors carry the failed keyword's value and the instance (JSON values).
    kind, schema = error.validator, error.schema
    value: Any = error.validator_value
    instance: Any = error.instance
    phrase = schema.get("x-expected") if isinstance(schema, dict) else None
    if kind == "type":
        types: list[str] = value if isinstance(value, list) else [value]
        return phrase or " or ".join(_TYPE_WORDS.get(t, t) for t in types), None
    if kind == "enum":
        return phrase or "one of " + ", ".join(json.dumps(v) for v in value), None
    if kind == "const":
        return json.dumps(value), None
    if kind == "minimum":
        return f"a value of at least {value}", None
    if kind == "maximum":
        return f"a value of at most {value}", None
    if kind == "exclusiveMinimum":
        return f"a value above {value}", None
    if kind == "exclusiveMaximum":
        return f"a value below {value}", None
    if kind == "minItems":
        return phrase or f"at least {value} item(s)", None
    if kind == "maxItems":
        return phrase or f"at most {value} item(s)", None
    if kind == "uniqueItems":
        return "each item once", f"{show(_first_repeat(instance))} more than once"
    if kind == "minLength":
        return phrase or "a non-empty text", None
    if kind == "pattern":
        return phrase or f"text matching {value}", None
    return phrase or error.message, None


def _problem(error: ValidationError, file: str, positions: Positions) -> list[Problem]:
    path = tuple(error.absolute_path)
    # Errors from iter_errors carry the failed keyword's value and the instance (JSON values).
    value: Any = error.validator_value
    instance: Any = error.instance
    if error.validator == "required":
        missing = [f for f in value if isinstance(instance, dict) and f not in instance]
        line, col = locate(positions, path)
        return [Problem(file, format_path((*path, f)), "a value (required field)", "nothing",
                        line, col) for f in missing]
    if error.validator == "additionalProperties":
        # an object schema: a boolean schema never fails on additionalProperties
        schema = cast(dict[str, Any], error.schema)
        allowed = list(schema.get("properties", {}))
        problems = []
        for key in instance:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            unknown = f"unknown field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            line, col = locate(positions, (*path, key))
            problems.append(Problem(file, format_path((*path, key)),
                                    "one of the fields " + ", ".join(allowed), unknown, line, col))
        return problems
    expected, found = _expected(error)
    line, col = locate(positions, path)
    return [Problem(file, format_path(path), expected, found or show(instance), line, col)]


def _non_finite(value: Any, path: tuple, out: list[tuple]) -> None:
    # NaN passes every minimum/maximum test (all comparisons are false), so catch it first.
    if isinstance(value, float) and not math.isfinite(value):
        out.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _non_finite(item, (*path, key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _non_finite(item, (*path, index), out)


def schema_problems(data: Any, file: str, positions: Positions) -> list[Problem]:
    """Every schema violation in `data`, in file order."""
    bad: list[tuple] = []
    _non_finite(data, (), bad)
    problems = [Problem(file, format_path(p), "a finite number", show(_get(data, p)),
                        *locate(positions, p)) for p in bad]
    if bad:
        return problems
    for error in _validator().iter_errors(data):
        for problem in _problem(error, file, positions):
            if problem not in problems:  # one `required` error per missing field names them all
                problems.append(problem)
    problems.sort(key=lambda p: (p.line or 0, p.column or 0, p.where))
    return problems


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return load_schema()["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def apply_defaults(data: Any, schema: dict[str, Any] | None = None) -> Any:
    """A copy of (schema-valid) `data` with every omitted field that has a default filled in."""
    schema = _resolve(load_schema() if schema is None else schema)
    if isinstance(data, dict):
        out = {}
        props = schema.get("properties", {})
        for key, sub in props.items():
            sub = _resolve(sub)
            if key in data:
                out[key] = apply_defaults(data[key], sub)
            elif "default" in sub:
                out[key] = apply_defaults(copy.deepcopy(sub["default"]), sub)
        for key, value in data.items():  # free-form objects (criteria) keep their fields
            out.setdefault(key, copy.deepcopy(value))
        return out
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in data]
    return data
