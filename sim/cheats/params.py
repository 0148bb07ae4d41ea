"""Parameters of a cheat kind: one `Param` per field, validated with messages that name it.

A kind declares `params = {"factor": Param("number", required=True, minimum=0, ...)}`;
`check_params` turns a CheatConfig's params into validated values with defaults filled in.
The scenario schema (scenarios/scenario.schema.json) states the same rules for files; a test
keeps the two in step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_KINDS = ("number", "integer", "boolean", "choice")


@dataclass(frozen=True)
class Param:
    """One parameter: its type, whether it is required, its default and its range."""

    kind: str  # "number" | "integer" | "boolean" | "choice"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # minimum itself is not allowed
    choices: tuple[Any, ...] = ()
    nonzero: bool = False  # 0 is not allowed (it would do nothing)
    unit: str = ""  # for the docs, e.g. "L", "fraction"
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Param kind {self.kind!r} is not one of {_KINDS}")

    def describe(self) -> str:
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = "a whole number" if self.kind == "integer" else "a number"
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.nonzero:
            parts.append("not 0")
        return what + (" " + " and ".join(parts) if parts else "")

    def check(self, where: str, name: str, value: Any, label: str = "params") -> Any:
        """The validated value; ValueError naming `where` and `label`.`name` if it is wrong."""
        bad = ValueError(f"{where}: {label}.{name} must be {self.describe()}, got {value!r}")
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if self.kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if self.minimum is not None and (value < self.minimum or (
                self.exclusive_minimum and value == self.minimum)):
            raise bad
        if self.maximum is not None and value > self.maximum:
            raise bad
        if self.nonzero and value == 0:
            raise bad
        return value


def check_params(where: str, kind: str, spec: dict[str, Param], given: dict[str, Any],
                 label: str = "params") -> dict[str, Any]:
    """Validated params of a cheat (or schedule) of `kind`, defaults filled in; ValueError on
    the first unknown, missing or wrong one."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"{where}: unknown {label} {unknown} for kind {kind!r}; "
                         f"allowed: {sorted(spec)}")
    out: dict[str, Any] = {}
    for name, param in spec.items():
        if name in given:
            out[name] = param.check(where, name, given[name], label)
        elif param.required:
            raise ValueError(f"{where}: kind {kind!r} needs {label}.{name} "
                             f"({param.describe()})")
        else:
            out[name] = param.default
    return out
