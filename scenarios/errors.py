"""Error reporting for scenario and fleet files: one `Problem` per finding, all raised together."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_MESSAGES = 200  # a broken 10,000-row ledger should not print 10,000 lines


@dataclass(frozen=True)
class Problem:
    """One finding: where (file, line, field path), what was expected, what was found."""

    file: str
    where: str  # field path, e.g. "cheats[0].nozzle" or "fleet row 7 (UMB07) column tanks"
    expected: str
    found: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return f"{loc}: {self.where}: expected {self.expected}, found {self.found}"


class ScenarioError(Exception):
    """A scenario (or its fleet ledger) was rejected; `messages` lists every finding."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))

    @classmethod
    def from_problems(cls, problems: list[Problem]) -> ScenarioError:
        messages = [str(p) for p in problems[:MAX_MESSAGES]]
        if len(problems) > MAX_MESSAGES:
            messages.append(f"... and {len(problems) - MAX_MESSAGES} more errors")
        return cls(messages)


def show(value: object, limit: int = 60) -> str:
    """A value as the user wrote it (YAML/JSON words), for the `found` part of a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value} (integer)"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "infinity" if value > 0 else "-infinity"
        return f"{value!r} (number)"
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return repr(text)
    if isinstance(value, dict):
        return f"an object with {len(value)} field(s)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item(s)"
    return f"a value of type {type(value).__name__}"


def format_path(path: tuple[str | int, ...]) -> str:
    """("cheats", 0, "nozzle") -> "cheats[0].nozzle"; () -> "(top level)"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
