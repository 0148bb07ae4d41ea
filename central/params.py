"""Query parameters of the HTTP API: strict parsing, errors naming the parameter, and
opaque keyset-pagination cursors bound to the query they came from."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class ParamError(Exception):
    """A bad request: `parameter` names the query parameter or body field at fault."""

    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message
        self.status = status


def single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ParamError(name, "given more than once")
    return values[0]


def parse_time(text: str, name: str, zone: ZoneInfo) -> float:
    """Epoch seconds, or ISO 8601 (date or date-time; without an offset: platform zone)."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise ParamError(name, f"not a finite number: {text!r}")
        return value
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            stamp = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        else:
            stamp = dt.datetime.fromisoformat(text)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=zone)
    except ValueError:
        raise ParamError(name, f"expected epoch seconds or ISO 8601 (e.g. "
                               f"2026-04-01T08:00:00+08:00), found {text!r}") from None
    return stamp.timestamp()


def parse_int(text: str, name: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ParamError(name, f"expected an integer, found {text!r}") from None
    if not lo <= value <= hi:
        raise ParamError(name, f"must be between {lo} and {hi}, found {value}")
    return value


def parse_limit(text: str | None) -> int:
    return DEFAULT_LIMIT if text is None else parse_int(text, "limit", 1, MAX_LIMIT)


def fingerprint(filters: Mapping[str, Any]) -> str:
    """Identifies a query's filters, so a cursor cannot be replayed on another query."""
    canon = json.dumps(sorted((k, v) for k, v in filters.items()), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def encode_cursor(position: list[Any], filters_fp: str) -> str:
    raw = json.dumps({"p": position, "q": filters_fp}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, filters_fp: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        position, fp = doc["p"], doc["q"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise ParamError("cursor", "not a cursor returned by this API") from None
    if fp != filters_fp:
        raise ParamError("cursor", "belongs to a query with other filters; repeat the "
                                   "query with the same filters, or start without a cursor")
    # the fingerprint is no secret: a cursor may be made by hand. Its position is what the
    # API writes — a flat list of texts and 64-bit numbers — or it is refused, never a 500
    if not isinstance(position, list) or not all(map(_cursor_value, position)):
        raise ParamError("cursor", "not a cursor returned by this API")
    return position


def _cursor_value(v: Any) -> bool:
    """A value a position may hold: null, a 64-bit integer, a finite float, or a text the
    database can compare (UTF-8, no NUL)."""
    if v is None:
        return True
    if isinstance(v, str):
        return storable_text(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return -(1 << 63) <= v < 1 << 63
    return isinstance(v, float) and math.isfinite(v)


def storable_text(text: str) -> bool:
    """Whether the database can store and compare `text` as it is: UTF-8 encodable (no lone
    UTF-16 surrogate) and without U+0000 (PostgreSQL refuses it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
