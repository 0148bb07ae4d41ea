"""The city report's credit section (reports/credit.py) from a checked run record: every
station with its town, ownership, grade, score and findings, and whether the rule agrees."""

from __future__ import annotations

import re

from test_checkers import faithful_credit, make_run

from acceptance.check import check_run
from reports.credit import credit_section
from reports.render import render_reports


def _row(html: str, sid: str) -> list[str]:
    row = re.search(rf'<tr data-credit="{sid}">(.*?)</tr>', html, re.S)
    assert row, sid
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


def test_the_city_report_shows_each_stations_grade(tmp_path):
    record = check_run(make_run().write(tmp_path / "run"), write=False)
    section = credit_section(record, ["UMB44", "UMB25"])
    assert [(r.station_id, r.grade, r.score, r.findings) for r in section.rows] == [
        ("UMB44", "B", 76, 1), ("UMB25", "C", 44, 2)]  # ledger order
    assert section.by_grade == {"A": 0, "B": 1, "C": 1, "D": 0} and section.disagreeing == 0
    render_reports(record, tmp_path / "zh")
    city = (tmp_path / "zh" / "report-city.html").read_text(encoding="utf-8")
    assert "九、信用记录与分级分类监管（商务）" in city and "十二、" in city
    assert _row(city, "UMB25") == ["UMB25 石哈河镇利民加油站", "石哈河镇", "民营", "C （失信）", "44",
                                   "2", "一致"]
    assert "每两周现场检查一次" in city
    county = (tmp_path / "zh" / "report.html").read_text(encoding="utf-8")
    assert 'data-credit="' not in county  # the city's section only
    en = render_reports(record, tmp_path / "en", lang="en")[1].read_text(encoding="utf-8")
    assert "Credit record and graded supervision" in en and "(dishonest)" in en


def test_a_grade_against_the_rule_is_shown(tmp_path):
    run = make_run()
    run.credit = faithful_credit(run.alerts, flat=True)
    record = check_run(run.write(tmp_path / "run"), write=False)
    render_reports(record, tmp_path / "out", lang="en")
    city = (tmp_path / "out" / "report-city.html").read_text(encoding="utf-8")
    assert _row(city, "UMB25")[3:] == ["A (honest)", "100", "0", "rule: C, 44"]
    assert "2 station(s) graded otherwise than the rule" in city
