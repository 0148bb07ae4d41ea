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


def test_a_tax_alert_at_an_honest_period_shows_as_a_wrong_flag(tmp_path):
    """The final comparison is clear, but the platform raised an alert for the period: the
    table shows it flagged, and wrongly."""
    import json

    import pandas as pd

    run = make_run()
    truth = run.truth["tax_declarations"]
    honest = truth[truth["station_id"] == "UMB44"].iloc[0]
    alert = dict(id="t1", station_id="UMB44", kind="tax_under_declaration",
                 severity="warning", as_of=float(honest["period_end"]), status="open",
                 evidence=json.dumps({"grade": str(honest["grade"])}))
    run.alerts = pd.concat([run.alerts, pd.DataFrame([alert])], ignore_index=True)
    record = check_run(run.write(tmp_path / "run"), write=False)
    section = tax_section(record, ["UMB25", "UMB44"])
    wrong = [r for r in section.rows if r.right is False]
    assert section.false_flags == 1 and len(wrong) == 1
    assert wrong[0].station_id == "UMB44" and wrong[0].flagged and wrong[0].truth == "honest"
