"""Text helpers shared by the renderers: XML-safe strings, numbers, money, bounded evidence."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

# XML 1.0 forbids most C0 controls even as character references; a hostile station name
# carrying one would make the SVG and JUnit files unparseable, so they are replaced.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

EVIDENCE_ITEMS = 10  # list items shown per evidence field
EVIDENCE_FIELDS = 8  # evidence fields shown per measurement
TEXT_CHARS = 240  # longest free text shown


def xml_safe(text: Any) -> str:
    """`text` as a string that XML 1.0 accepts (illegal control characters become U+FFFD)."""
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def clip(text: Any, limit: int = TEXT_CHARS) -> str:
    s = xml_safe(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def fmt_number(value: Any) -> str:
    """Compact, locale-neutral number: ints whole, floats to 6 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.6g}"
    return clip(value)


def fmt_quantity(value: Any, unit: str, unit_label: str) -> str:
    """A measured value with its unit; ratios are shown as percentages."""
    if value is None:
        return "—"
    if unit == "ratio" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{fmt_number(float(value) * 100)}%"
    label = f" {unit_label}" if unit_label else ""
    return f"{fmt_number(value)}{label}"


def fmt_money(amount: int) -> str:
    """Yuan with thousands separators, e.g. ¥810,000."""
    return f"¥{amount:,}"


def fmt_evidence(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """Evidence as (key, text) pairs, bounded in fields, list items and characters."""
    if not isinstance(evidence, dict):
        return [("evidence", clip(evidence))]
    pairs: list[tuple[str, str]] = []
    for key in sorted(evidence)[:EVIDENCE_FIELDS]:
        pairs.append((clip(key, 60), _fmt_evidence_value(evidence[key])))
    hidden = len(evidence) - EVIDENCE_FIELDS
    if hidden > 0:
        pairs.append(("…", f"+{hidden}"))
    return pairs


def _fmt_evidence_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        shown = ", ".join(_fmt_scalar(v) for v in value[:EVIDENCE_ITEMS])
        more = len(value) - EVIDENCE_ITEMS
        return clip(shown + (f", … (+{more})" if more > 0 else ""))
    if isinstance(value, dict):
        items = list(value.items())
        shown = ", ".join(f"{k}={_fmt_scalar(v)}" for k, v in items[:EVIDENCE_ITEMS])
        more = len(items) - EVIDENCE_ITEMS
        return clip(shown + (f", … (+{more})" if more > 0 else ""))
    return _fmt_scalar(value)


def _fmt_scalar(value: Any) -> str:
    if isinstance(value, float | int) or value is None:
        return fmt_number(value)
    if isinstance(value, list | tuple | dict):
        return clip(repr(value), 80)
    return clip(value, 120)


def target_text(t: Callable[..., str], device: str | None, nozzle: object, tank: object) -> str:
    """A target in words, e.g. "dispenser D1 · nozzle 2 · tank 1": the parts that apply
    (0 = not applicable; "G" is the tank gauge; nothing at all: the whole station)."""
    parts = []
    if device == "G":
        parts.append(t("target.gauge"))
    elif device:
        parts.append(t("target.device", device=device))
    if nozzle not in (None, 0, "0", ""):
        parts.append(t("target.nozzle", n=nozzle))
    if tank not in (None, 0, "0", ""):
        parts.append(t("target.tank", n=tank))
    return " · ".join(parts) if parts else t("target.station")
