"""A minimal SVG writer: elements as escaped strings, so the charts need no plotting library."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from reports.text import xml_safe

SVG_NS = "http://www.w3.org/2000/svg"


def num(v: float) -> str:
    """Coordinates to 0.01 px, without trailing zeros."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _attrs(attrs: dict[str, object]) -> str:
    out = []
    for k, v in attrs.items():
        if v is None:
            continue
        name = k.rstrip("_").replace("_", "-")  # class_ → class, font_size → font-size
        value = num(v) if isinstance(v, float) else str(v)
        out.append(f" {name}={quoteattr(xml_safe(value))}")
    return "".join(out)


def el(tag: str, children: str = "", **attrs: object) -> str:
    """`<tag attrs>children</tag>`; children must already be SVG (escaped) text."""
    return f"<{tag}{_attrs(attrs)}>{children}</{tag}>" if children else f"<{tag}{_attrs(attrs)}/>"


def text(x: float, y: float, content: str, **attrs: object) -> str:
    return el("text", escape(xml_safe(content)), x=float(x), y=float(y), **attrs)


def title(content: str) -> str:
    """A tooltip (and accessible name) for the enclosing element."""
    return el("title", escape(xml_safe(content)))


def svg(width: float, height: float, body: list[str], label: str) -> str:
    """A root element of its natural size in CSS px; the report's CSS (max-width: 100%,
    height: auto) shrinks a wide one to the page and keeps its aspect ratio."""
    return el("svg", title(label) + "".join(body), xmlns=SVG_NS,
              viewBox=f"0 0 {num(width)} {num(height)}", width=float(width),
              height=float(height), role="img", class_="chart", font_family="sans-serif")
