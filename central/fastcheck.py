"""A compiled yes/no validator for the JSON Schema subset the uplink schemas use.

jsonschema explains errors well but costs ~35 ms per 100-record message, which would cap
ingest near 3,000 records/s. This module turns a schema into straight-line Python source
(one function per `$defs` entry) once; a valid message passes in a fraction of that time,
and only a message it refuses is re-validated by jsonschema for the error message.
Compilation refuses any keyword it does not implement, so a schema edit cannot silently
widen what passes; tests check that both validators agree on generated payloads.

Semantics follow JSON Schema 2020-12 with the uplink's strict integers: "integer" is a
JSON integer literal (never 1.0, never a boolean); constraints of one type ignore values
of other types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = {"$schema", "$id", "$defs", "title", "description", "format", "examples"}


@cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A JSON Schema pattern with its ECMA-262 meaning: `$` is the end of the string, where
    Python's also matches before a final newline (so "D1\\n" would pass ^(G|D[1-9])$)."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


_KEYWORDS = {"$ref", "type", "const", "enum", "pattern", "minLength", "maxLength", "minimum",
             "maximum", "minItems", "maxItems", "items", "required", "properties",
             "additionalProperties", "minProperties"}
_TYPE_TEST = {
    "null": "{v} is None",
    "boolean": "type({v}) is bool",
    "object": "type({v}) is dict",
    "array": "type({v}) is list",
    "string": "type({v}) is str",
    "integer": "type({v}) is int",
    "number": "type({v}) in (int, float)",
}
# Keywords by the instance type they constrain.
_GROUPS = {
    "string": ("pattern", "minLength", "maxLength"),
    "number": ("minimum", "maximum"),
    "array": ("minItems", "maxItems", "items"),
    "object": ("required", "properties", "additionalProperties", "minProperties"),
}


def _is_number(v: Any) -> bool:
    return type(v) in (int, float)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as JSON Schema defines it: 1 == 1.0, but true ≠ 1."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.env: dict[str, Any] = {"json_equal": json_equal}
        self.functions: list[str] = []
        self.defs: dict[str, str] = {}
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def value(self, obj: Any) -> str:
        name = self.fresh("k")
        self.env[name] = obj
        return name

    def function(self, node: dict[str, Any]) -> str:
        name = self.fresh("f")
        body = self.body(node, "v", 1)
        self.functions.append("\n".join([f"def {name}(v):", *body, "    return True"]))
        return name

    def ref(self, pointer: str) -> str:
        if not pointer.startswith("#/$defs/"):
            raise ValueError(f"fastcheck: only #/$defs/ references, not {pointer!r}")
        key = pointer[len("#/$defs/"):]
        if key not in self.defs:
            self.defs[key] = self.fresh("d")  # reserve the name first: recursion is fine
            inner = self.function(self.root["$defs"][key])
            self.env_alias(self.defs[key], inner)
        return self.defs[key]

    def env_alias(self, alias: str, target: str) -> None:
        self.functions.append(f"{alias} = {target}")

    def body(self, node: Any, v: str, depth: int) -> list[str]:
        pad = "    " * depth
        if node is True or node == {}:
            return []
        if node is False:
            return [f"{pad}return False"]
        unknown = set(node) - _KEYWORDS - _IGNORED
        if unknown:
            raise ValueError(f"fastcheck does not implement keyword(s) {sorted(unknown)}")
        out: list[str] = []
        types = node.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        if types:
            cond = " or ".join(f"({_TYPE_TEST[t].format(v=v)})" for t in types)
            out.append(f"{pad}if not ({cond}): return False")
        if "$ref" in node:
            out.append(f"{pad}if not {self.ref(node['$ref'])}({v}): return False")
        if "const" in node:
            out.append(f"{pad}if not json_equal({v}, {self.value(node['const'])}): "
                       "return False")
        if "enum" in node:
            out.append(f"{pad}if not any(json_equal({v}, c) for c in "
                       f"{self.value(list(node['enum']))}): return False")
        for group, keywords in _GROUPS.items():
            present = [k for k in keywords if k in node]
            if not present:
                continue
            lines = self.group(group, node, v, depth + 1)
            certain = bool(types) and all(
                t == group or (group == "number" and t == "integer") for t in types)
            if certain:
                out.extend(line[4:] for line in lines)  # the type test above already holds
            else:
                test = _TYPE_TEST[group].format(v=v)
                out.append(f"{pad}if {test}:")
                out.extend(lines)
        return out

    def group(self, group: str, node: dict[str, Any], v: str, depth: int) -> list[str]:
        pad = "    " * depth
        out: list[str] = []
        if group == "string":
            if "pattern" in node:
                rx = self.value(ecma_regex(node["pattern"]))
                out.append(f"{pad}if {rx}.search({v}) is None: return False")
            if "minLength" in node:
                out.append(f"{pad}if len({v}) < {int(node['minLength'])}: return False")
            if "maxLength" in node:
                out.append(f"{pad}if len({v}) > {int(node['maxLength'])}: return False")
        elif group == "number":
            if "minimum" in node:
                out.append(f"{pad}if {v} < {self.value(node['minimum'])}: return False")
            if "maximum" in node:
                out.append(f"{pad}if {v} > {self.value(node['maximum'])}: return False")
        elif group == "array":
            if "minItems" in node:
                out.append(f"{pad}if len({v}) < {int(node['minItems'])}: return False")
            if "maxItems" in node:
                out.append(f"{pad}if len({v}) > {int(node['maxItems'])}: return False")
            if "items" in node:
                item = self.fresh("i")
                inner = self.body(node["items"], item, depth + 1)
                if inner:
                    out.append(f"{pad}for {item} in {v}:")
                    out.extend(inner)
        else:
            out.extend(self.object(node, v, depth))
        return out

    def object(self, node: dict[str, Any], v: str, depth: int) -> list[str]:
        pad = "    " * depth
        out: list[str] = []
        required = list(node.get("required", ()))
        props: dict[str, Any] = node.get("properties", {})
        for key in required:
            out.append(f"{pad}if {key!r} not in {v}: return False")
        if "minProperties" in node:
            out.append(f"{pad}if len({v}) < {int(node['minProperties'])}: return False")
        extra = node.get("additionalProperties", True)
        if extra is False:
            out.append(f"{pad}if not {v}.keys() <= {self.value(frozenset(props))}: "
                       "return False")
        elif isinstance(extra, dict):
            key, item = self.fresh("key"), self.fresh("x")
            inner = self.body(extra, item, depth + 2)
            if inner:
                out.append(f"{pad}for {key}, {item} in {v}.items():")
                out.append(f"{pad}    if {key} not in {self.value(frozenset(props))}:")
                out.extend(inner)
        elif extra is not True:
            raise ValueError("additionalProperties must be a boolean or a schema")
        for key, sub in props.items():
            item = self.fresh("p")
            if key in required:
                inner = self.body(sub, item, depth)
                if inner:
                    out.append(f"{pad}{item} = {v}[{key!r}]")
                    out.extend(inner)
            else:
                inner = self.body(sub, item, depth + 1)
                if inner:
                    out.append(f"{pad}if {key!r} in {v}:")
                    out.append(f"{pad}    {item} = {v}[{key!r}]")
                    out.extend(inner)
        return out


def compile_schema(schema: dict[str, Any]) -> Check:
    """A function instance → bool equivalent to validating against `schema`."""
    comp = _Compiler(schema)
    entry = comp.function(schema)
    source = "\n\n".join(comp.functions)
    env = dict(comp.env)
    exec(compile(source, "<fastcheck>", "exec"), env)  # noqa: S102 (our own generated code)
    check = env[entry]
    check.source = source  # for debugging
    return check
