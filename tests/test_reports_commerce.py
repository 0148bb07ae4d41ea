"""The city report's commerce section (商务运行分析) from a hand-built run record: sales by
town, ownership and grade over the run (tables and SVG bar charts), the monthly 进销存
balance per station and tank with COM-1's check, and malformed or hostile rows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_reports import grab, make_record

from acceptance.record import RunRecord
from reports.commerce import commerce
from reports.i18n import labels
from reports.render import render_reports

SALES = [
    {"month": "2026-03", "town": "甲镇", "ownership": "private", "grade": "92", "stations": 1,
     "transactions": 10, "volume_ml": 400_000, "amount_fen": 284_800},
    {"month": "2026-04", "town": "甲镇", "ownership": "private", "grade": "92", "stations": 1,
     "transactions": 5, "volume_ml": 200_000, "amount_fen": 142_400},
    {"month": "2026-04", "town": "甲镇", "ownership": "state", "grade": "0", "stations": 1,
     "transactions": 2, "volume_ml": 900_000, "amount_fen": 621_000},
    {"month": "2026-04", "town": "乙苏木", "ownership": "private", "grade": "95",
     "stations": 2, "transactions": 3, "volume_ml": 120_000, "amount_fen": 91_200},
]
BALANCES = [
    {"station_id": "S1", "tank": 1, "grade": "92", "month": "2026-04", "partial": True,
     "opening_volume_20c_ml": 20_000_000, "received_20c_ml": 9_100_000,
     "bol_volume_20c_ml": 9_200_000, "sales_20c_ml": 600_000,
     "closing_volume_20c_ml": 28_490_000, "variance_ml": 10_000,
     "variance_pct_of_sales": 1.6667, "agrees": True},
    {"station_id": "S2", "tank": 2, "grade": "0", "month": "2026-04", "partial": False,
     "opening_volume_20c_ml": 30_000_000, "received_20c_ml": 0, "bol_volume_20c_ml": 0,
     "sales_20c_ml": 0, "closing_volume_20c_ml": 30_000_000, "variance_ml": 0,
     "variance_pct_of_sales": None, "agrees": False},
]


def record_with(sales: list[dict] = SALES, balances: list[dict] = BALANCES) -> RunRecord:
    record = make_record()
    record.tables["commerce_sales"] = [dict(r) for r in sales]
    record.tables["stock_balance"] = [dict(r) for r in balances]
    return record


def table_rows(html: str, by: str) -> list[list[str]]:
    """The cell texts of each body row of the sales table `by`."""
    table = html.split(f'data-by="{by}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[re.sub(r"<[^>]+>|\s+", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def render(record: RunRecord, tmp_path: Path, lang: str = "zh-CN") -> tuple[str, str]:
    county, city = render_reports(record, tmp_path / lang, lang=lang)
    return county.read_text(encoding="utf-8"), city.read_text(encoding="utf-8")


def test_totals_over_the_run() -> None:
    com = commerce(record_with().tables, labels("en"))
    assert [(s.key, s.transactions, s.volume_l, s.amount_yuan) for s in com.by_town] == [
        ("甲镇", 17, 1500.0, 10482.0), ("乙苏木", 3, 120.0, 912.0)]
    assert [(s.key, s.volume_l) for s in com.by_grade] == [("0", 900.0), ("92", 600.0),
                                                           ("95", 120.0)]
    assert [(s.key, s.volume_l) for s in com.by_ownership] == [("state", 900.0),
                                                               ("private", 720.0)]
    assert com.total is not None and com.total.volume_l == 1620.0
    assert com.total.transactions == 20 and com.months == ("2026-03", "2026-04")
    b = com.balances[0]
    assert (b.opening_l, b.received_l, b.bol_l, b.sold_l, b.closing_l, b.variance_l) == (
        20000.0, 9100.0, 9200.0, 600.0, 28490.0, 10.0)


def test_city_report_shows_sales_charts_and_balances(tmp_path: Path) -> None:
    county, city = render(record_with(), tmp_path)
    assert "商务运行分析" in city and "商务运行分析" not in county
    assert "六、商务运行分析" in city and "九、" in city  # the sections after it move down
    assert table_rows(city, "com.by_town") == [
        ["甲镇", "17", "1,500.00", "10,482.00"], ["乙苏木", "3", "120.00", "912.00"],
        ["合计", "20", "1,620.00", "11,394.00"]]
    assert table_rows(city, "com.by_grade")[0] == ["0#", "2", "900.00", "6,210.00"]
    assert [r[0] for r in table_rows(city, "com.by_ownership")] == ["国营", "民营", "合计"]
    s1 = grab(city, "data-balance", "S1/1/2026-04")[0]
    assert "（部分月）" in s1 and "9,200.0" in s1 and "10.0 (1.67%)" in s1 and "一致" in s1
    assert "不一致" in grab(city, "data-balance", "S2/2/2026-04")[0]
    charts = re.findall(r"<svg.*?</svg>", city.split("商务运行分析", 1)[1], re.S)[:2]
    assert len(charts) == 2
    for chart in charts:
        root = ET.fromstring(chart)
        bars = root.findall(".//{http://www.w3.org/2000/svg}rect[@class='bar']")
        assert bars and all(float(b.get("width", 0)) > 0 for b in bars)
    _, city_en = render(record_with(), tmp_path, "en")
    assert "Operations analysis (commerce bureau)" in city_en and "(partial)" in city_en


def test_no_commerce_figures_say_so(tmp_path: Path) -> None:
    _, city = render(record_with([], []), tmp_path)
    assert "平台没有提供销售统计" in city and "平台没有提供进销存平衡" in city


def test_hostile_town_is_escaped(tmp_path: Path) -> None:
    sales = [dict(SALES[0], town="<script>alert(1)</script>\x01")]
    _, city = render(record_with(sales, []), tmp_path)
    assert "<script>alert(1)" not in city and "\x01" not in city
    chart = re.findall(r"<svg.*?</svg>", city.split("商务运行分析", 1)[1], re.S)[0]
    ET.fromstring(chart)  # well-formed despite it


@pytest.mark.parametrize(("table", "row", "message"), [
    ("commerce_sales", dict(SALES[0], volume_ml="lots"),
     r"commerce_sales'\]\[0\]\.volume_ml: expected a number"),
    ("commerce_sales", dict(SALES[0], town=None), r"commerce_sales'\]\[0\]\.town: expected text"),
    ("stock_balance", dict(BALANCES[0], tank=None), r"stock_balance'\]\[0\]\.tank"),
])
def test_malformed_rows_name_the_field(table: str, row: dict, message: str) -> None:
    tables = {"commerce_sales": [], "stock_balance": [], table: [row]}
    with pytest.raises(ValueError, match=message):
        commerce(tables, labels("zh-CN"))
