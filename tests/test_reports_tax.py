"""The city report's 以销核税 section (reports/tax.py) from a checked run record."""

from __future__ import annotations

from test_checkers import make_run

from acceptance.check import check_run
from reports.render import render_reports
from reports.tax import tax_section


def test_the_city_report_lists_every_declared_period_with_both_gaps(tmp_path):
    root = make_run().write(tmp_path / "run")
    record = check_run(root, write=False)
    section = tax_section(record, ["UMB25", "UMB44"])
    assert len(section.rows) == 20 and section.must_flag == section.flagged_right == 8
    assert section.false_flags == 0 and "shortened" in (section.period or "")
    assert [r.station_id for r in section.rows[:8]] == ["UMB25"] * 8  # ledger order
    first = section.rows[0]
    assert first.period == "2026-04-01 00:00 – 2026-04-01 12:00" and first.right is True
    assert first.platform_gap_yuan == first.true_gap_yuan > 0
    zh, _ = (p.read_text(encoding="utf-8") for p in render_reports(record, tmp_path / "zh"))
    city = (tmp_path / "zh" / "report-city.html").read_text(encoding="utf-8")
    assert city.count('data-tax="') == 20 and "以销核税" in city and "少报" in city
    en = render_reports(record, tmp_path / "en", lang="en")[1].read_text(encoding="utf-8")
    assert "Sales vs tax declarations" in en and "under-declared" in en
    assert zh  # the county report renders too (TAX-1 among the requirements)
