"""The cheat part of scenarios/scenario.schema.json, generated from the cheat registry.

scenarios/ may not import sim/, so the schema states the catalogue as data (per kind: its
fields, their ranges and `x-expected` texts; its class, target, resources and span for the
overlap check in scenarios/crosscheck.py). tests/test_cheats.py checks the file equals what
this module generates; after changing a kind, regenerate:

    python tests/cheat_schema.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sim.cheats import CHEAT_KINDS, RESOURCES
from sim.cheats.params import Param
from sim.cheats.schedule import SCHEDULE_OPTIONS, SCHEDULES

ROOT = Path(__file__).resolve().parents[1]

SCHEMA = ROOT / "scenarios" / "scenario.schema.json"
ADDRESS = {"nozzle": ("dispenser", "nozzle"), "dispenser": ("dispenser", "nozzle"),
           "tank": ("tank",), "gauge": ("tank",), "station": ()}
REQUIRED = {"nozzle": ["dispenser", "nozzle"], "dispenser": ["dispenser"], "tank": ["tank"],
            "gauge": ["tank"], "station": []}
_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}


def param_schema(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.kind == "choice":
        out["enum"] = list(p.choices)
    else:
        out["type"] = _TYPES[p.kind]
    if p.minimum is not None:
        out["exclusiveMinimum" if p.exclusive_minimum else "minimum"] = p.minimum
    if p.maximum is not None:
        out["maximum"] = p.maximum
    if p.nonzero:
        out["not"] = {"const": 0}
    if p.default is not None:
        out["x-default"] = p.default
    unit = f" [{p.unit}]" if p.unit else ""
    out["x-expected"] = f"{p.doc}{unit}: {p.describe()}"
    return out


def schedule_def() -> dict[str, Any]:
    options: dict[str, Any] = {"kind": {"enum": list(SCHEDULES)}}
    for spec in SCHEDULE_OPTIONS.values():
        for name, p in spec.items():
            options[name] = param_schema(p)
    cases = []
    for kind, spec in SCHEDULE_OPTIONS.items():
        allowed = ["kind", *spec]
        cases.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                      "then": {"propertyNames": {
                          "enum": allowed,
                          "x-expected": f"a field of a {kind} schedule ({', '.join(allowed)})"}}})
    return {"additionalProperties": False, "properties": options,  # type: the cheat's
            "allOf": cases,
            "x-expected": "a schedule {kind: constant | remote | nights | off_during_inspections, "
                          "options…} (docs/cheats.md)"}


def cheat_def(old: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {
        "kind": {"enum": list(CHEAT_KINDS),
                 "x-expected": "a cheat kind of docs/cheats.md (" + ", ".join(CHEAT_KINDS) + ")"},
        "station": {"$ref": "#/$defs/station_id"},
        "dispenser": {"type": "integer", "minimum": 1, "maximum": 99},
        "nozzle": {"type": "integer", "minimum": 1, "maximum": 4},
        "tank": {"type": "integer", "minimum": 1, "maximum": 9},
        "start": {"$ref": "#/$defs/instant"},
        "end": old["properties"]["end"],
        "schedule": {"type": ["string", "object"],
                     "if": {"type": "string"},
                     "then": {"enum": list(SCHEDULES),
                              "x-expected": "a schedule kind: " + ", ".join(SCHEDULES)},
                     "else": {"$ref": "#/$defs/schedule"},
                     "x-expected": "a schedule: constant, remote, nights, "
                                   "off_during_inspections, or {kind: …, options…}"},
    }
    users: dict[str, list[str]] = {}
    for kind, cls in CHEAT_KINDS.items():
        for name in cls.param_spec:
            users.setdefault(name, []).append(kind)
    for name, kinds in sorted(users.items()):
        props[name] = {"x-kinds": kinds}  # the kinds' own rules are in allOf
    cases = []
    for kind, cls in CHEAT_KINDS.items():
        allowed = ["kind", "station", *ADDRESS[cls.target], "start", "end", "schedule",
                   *cls.param_spec]
        if kind in ("dispenser_offline", "totalizer_reset"):
            allowed.remove("nozzle")
        then: dict[str, Any] = {
            "required": REQUIRED[cls.target] + [n for n, p in cls.param_spec.items()
                                                if p.required],
            "propertyNames": {"enum": allowed, "x-expected":
                              f"a field of a {kind} cheat ({', '.join(allowed)})"},
            "properties": {n: param_schema(p) for n, p in cls.param_spec.items()},
        }
        if set(cls.schedules) != set(SCHEDULES):
            allowed_kinds = {"enum": list(cls.schedules),
                             "x-expected": f"a schedule of kind {' or '.join(cls.schedules)}"}
            then["properties"]["schedule"] = {
                "if": {"type": "string"}, "then": allowed_kinds,
                "else": {"properties": {"kind": allowed_kinds}}}
        cases.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                      "then": then})
    return {"type": "object", "additionalProperties": False,
            "required": ["kind", "station", "start"], "properties": props, "allOf": cases}


def catalogue() -> dict[str, Any]:
    """x-cheat-kinds: what scenarios/crosscheck.py needs to know of each kind."""
    out = {}
    for kind, cls in CHEAT_KINDS.items():
        span = None
        if cls.span_param is not None:
            name, scale_s, extra_s = cls.span_param
            span = {"param": name, "default": cls.param_spec[name].default, "scale_s": scale_s,
                    "extra_s": extra_s}
        out[kind] = {"class": cls.cheat_class, "target": cls.target,
                     "resources": list(cls.resources), "span": span,
                     "schedules": list(cls.schedules),
                     "defaults": {n: p.default for n, p in cls.param_spec.items()
                                  if p.default is not None},
                     "default_schedule": cls.default_schedule.get("kind", "constant")}
    return out


def generate(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its cheat parts regenerated."""
    new = dict(schema)
    defs = dict(new["$defs"])
    defs["cheat"] = cheat_def(schema["$defs"]["cheat"])
    defs["schedule"] = schedule_def()
    new["$defs"] = defs
    new["x-cheat-kinds"] = catalogue()
    new["x-cheat-resources"] = {res: {"scope": scope, "what": what}
                                for res, (scope, what) in RESOURCES.items()}
    return new


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    current = json.loads(SCHEMA.read_text(encoding="utf-8"))
    text = render(generate(current))
    if "--write" in sys.argv:
        SCHEMA.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA}")
    else:
        print("up to date" if text == SCHEMA.read_text(encoding="utf-8") else "out of date")
