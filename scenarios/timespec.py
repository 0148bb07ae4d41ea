"""Instants and durations as written in scenario files.

Instant: an ISO 8601 date-time with a UTC offset ("2026-04-01T00:00:00+08:00", "...Z"), or an
offset from the scenario's start ("+1d12h"). Duration: "30min", "2h", "1d12h", "90s"
(units d, h, min, s, in that order, each optional, at least one). A bare number is not
accepted: "3600" could mean seconds or minutes, so the unit is always written.
The regular expressions are also in scenario.schema.json (a test keeps them equal).
"""

from __future__ import annotations

import re
from datetime import datetime

_NUM = r"\d+(?:\.\d+)?"
DURATION_RE = rf"(?=\d)(?:({_NUM})d)?(?:({_NUM})h)?(?:({_NUM})min)?(?:({_NUM})s)?"
DATETIME_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})"

DURATION_PATTERN = rf"^{DURATION_RE}$"
DATETIME_PATTERN = rf"^{DATETIME_RE}$"
INSTANT_PATTERN = rf"^(?:{DATETIME_RE}|\+{DURATION_RE})$"

_DURATION = re.compile(DURATION_PATTERN)


class TimeSpecError(ValueError):
    """A malformed instant or duration; `expected` and `found` are phrased for a message."""

    def __init__(self, expected: str, found: str) -> None:
        self.expected, self.found = expected, found
        super().__init__(f"expected {expected}, found {found}")
_UNIT_S = (86400.0, 3600.0, 60.0, 1.0)


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "1d12h" or "30min"; TimeSpecError if malformed."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise TimeSpecError("a duration such as '30min', '2h' or '1d12h'", repr(text))
    return sum(float(g) * unit for g, unit in zip(match.groups(), _UNIT_S, strict=True) if g)


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time that carries a UTC offset; TimeSpecError if malformed."""
    if not isinstance(text, str) or re.match(DATETIME_PATTERN, text) is None:
        raise TimeSpecError("a date-time with UTC offset such as '2026-04-01T00:00:00+08:00'",
                            repr(text))
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:  # e.g. 2026-02-30 or hour 25: the pattern cannot see that
        raise TimeSpecError("a valid calendar date-time", f"{text!r} ({exc})") from None
    return value


def parse_instant(text: str, start_epoch: float) -> float:
    """Epoch seconds of an absolute date-time or of "+<duration>" after `start_epoch`."""
    if isinstance(text, str) and text.startswith("+"):
        return start_epoch + parse_duration(text[1:])
    return parse_datetime(text).timestamp()
