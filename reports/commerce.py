"""The city report's commerce section (商务运行分析), from the run record only.

`record.tables["commerce_sales"]` holds the platform's sales cells (month, town, ownership,
grade: stations, transactions, volume_ml, amount_fen) and `record.tables["stock_balance"]`
its monthly 进销存 balance per station and tank, each with `agrees` — whether COM-1 found it
equal to the truth's (acceptance/checkers/commerce.py). This module sums the cells over the
run by town, by ownership and by grade, draws the first two as horizontal bar charts (inline
SVG, reports/svg.py), and turns the balances into litres for the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from reports.svg import el, svg, text, title

BAR = "#1f77b4"


class Label(Protocol):
    def __call__(self, key: str, **fields: object) -> str: ...


@dataclass(frozen=True)
class SalesTotal:
    key: str  # town, ownership or grade
    transactions: int
    volume_l: float
    amount_yuan: float


@dataclass(frozen=True)
class BalanceRow:
    station_id: str
    tank: int
    grade: str
    month: str
    partial: bool
    opening_l: float
    received_l: float
    bol_l: float
    sold_l: float
    closing_l: float
    variance_l: float
    variance_pct: float | None
    agrees: bool | None  # None: the record does not say


@dataclass(frozen=True)
class Commerce:
    months: tuple[str, ...]
    by_town: list[SalesTotal]
    by_ownership: list[SalesTotal]
    by_grade: list[SalesTotal]
    total: SalesTotal | None
    balances: list[BalanceRow]
    charts: dict[str, str]  # "town", "grade" → SVG ("" without data)


def _number(row: dict[str, Any], key: str, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key}: expected a number, found {value!r}")
    return float(value)


def _totals(cells: list[dict[str, Any]], by: str) -> list[SalesTotal]:
    """Cells summed over the run by `by`, in descending volume."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault(str(c[by]), []).append(c)
    out = []
    for key, rows in groups.items():
        out.append(SalesTotal(
            key, sum(int(r["transactions"]) for r in rows),
            round(sum(float(r["volume_ml"]) for r in rows) / 1000.0, 2),
            round(sum(float(r["amount_fen"]) for r in rows) / 100.0, 2)))
    return sorted(out, key=lambda s: (-s.volume_l, s.key))


def commerce(tables: dict[str, list[dict[str, Any]]], t: Label) -> Commerce:
    cells = list(tables.get("commerce_sales") or [])
    for i, c in enumerate(cells):
        where = f"record.tables['commerce_sales'][{i}]"
        for key in ("month", "town", "ownership", "grade"):
            if not isinstance(c.get(key), str):
                raise ValueError(f"{where}.{key}: expected text, found {c.get(key)!r}")
        for key in ("stations", "transactions", "volume_ml", "amount_fen"):
            _number(c, key, where)
    balances = [_balance(r, f"record.tables['stock_balance'][{i}]")
                for i, r in enumerate(tables.get("stock_balance") or [])]
    by_town = _totals(cells, "town")
    by_grade = _totals(cells, "grade")
    total = None
    if cells:
        total = SalesTotal("total", sum(s.transactions for s in by_town),
                           round(sum(s.volume_l for s in by_town), 2),
                           round(sum(s.amount_yuan for s in by_town), 2))
    return Commerce(
        months=tuple(sorted({c["month"] for c in cells} | {b.month for b in balances})),
        by_town=by_town, by_ownership=_totals(cells, "ownership"), by_grade=by_grade,
        total=total, balances=balances,
        charts={"town": bar_chart(by_town, t("com.chart.town"), t),
                "grade": bar_chart([SalesTotal(t("com.grade", g=s.key), s.transactions,
                                               s.volume_l, s.amount_yuan)
                                    for s in by_grade], t("com.chart.grade"), t)})


def _balance(r: dict[str, Any], where: str) -> BalanceRow:
    def litres(key: str) -> float:
        value = r.get(key)
        return 0.0 if value is None else round(_number(r, key, where) / 1000.0, 1)

    pct = r.get("variance_pct_of_sales")
    agrees = r.get("agrees")
    return BalanceRow(
        str(r.get("station_id")), int(_number(r, "tank", where)), str(r.get("grade") or "—"),
        str(r.get("month")), bool(r.get("partial")), litres("opening_volume_20c_ml"),
        litres("received_20c_ml"), litres("bol_volume_20c_ml"), litres("sales_20c_ml"),
        litres("closing_volume_20c_ml"), litres("variance_ml"),
        None if pct is None else _number(r, "variance_pct_of_sales", where),
        None if agrees is None else bool(agrees))


def bar_chart(rows: Iterable[SalesTotal], label: str, t: Label) -> str:
    """Horizontal bars of volume (L), one per row, the amount beside each; "" without rows."""
    rows = list(rows)
    if not rows:
        return ""
    label_w, bar_w, right_w, row_h, top, fs = 120.0, 380.0, 200.0, 22.0, 8.0, 12
    peak = max(r.volume_l for r in rows) or 1.0
    body = []
    for i, r in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, bar_w * r.volume_l / peak)
        info = t("com.chart.bar", volume=f"{r.volume_l:,.0f}", amount=f"{r.amount_yuan:,.0f}",
                 n=r.transactions)
        body.append(text(label_w - 6, y + row_h * 0.68, r.key, font_size=fs,
                         text_anchor="end"))
        body.append(el("rect", title(f"{r.key}: {info}"), x=label_w, y=y + 3.0, width=w,
                       height=row_h - 6.0, fill=BAR, class_="bar"))
        body.append(text(label_w + w + 6, y + row_h * 0.68, info, font_size=fs - 1,
                         fill="#344054"))
    height = top * 2 + row_h * len(rows)
    return svg(label_w + bar_w + right_w, height, body, label)
