"""reports/: county and city reports, JUnit XML, charts, summary — from hand-built run records."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acceptance.record import Measurement, RequirementOutcome, RunRecord, decide
from reports import charts
from reports.cli import main as reports_main
from reports.i18n import LANGS, labels
from reports.json_summary import summary, summary_lines
from reports.junit import junit_tree, write_junit
from reports.rectification import rectification_ledger
from reports.render import TEMPLATES, render_reports
from reports.stations import coverage, station_results
from reports.subsidy import subsidy

SVG_NS = "{http://www.w3.org/2000/svg}"

CATALOGUE = [
    {"id": "COV-1", "level": "MUST", "title_zh": "所有在营加油站接入平台并在线",
     "title_en": "Every station's collector on line", "clause": "确保所有在营加油站全覆盖、无死角",
     "section": "一（二）", "department_zh": "旗市场监管局、商务局、税务局",
     "department_en": "Market regulation, commerce and tax", "checker": "c.cov"},
    {"id": "DAT-1", "level": "MUST", "title_zh": "每笔交易恰好一次汇集至平台",
     "title_en": "Every transaction exactly once", "clause": "数据及时、准确、完整汇集至市级“平台”",
     "section": "一（二）", "department_zh": "旗商务局", "department_en": "Commerce bureau",
     "checker": "c.dat1"},
    {"id": "DAT-5", "level": "SHOULD", "title_zh": "数据时延达标", "title_en": "Latency p95",
     "clause": "及时", "section": "一（二）", "department_zh": "旗政务服务与数据管理局",
     "department_en": "Data administration", "checker": "c.dat5"},
    {"id": "STB-1", "level": "MUST", "title_zh": "连续稳定运行", "title_en": "Stable operation",
     "clause": "确保连续稳定运行6个月以上", "section": "一（四）",
     "department_zh": "旗市场监管局、财政局", "department_en": "Market regulation and finance",
     "checker": "c.stb1"},
    {"id": "MET-1", "level": "MUST", "title_zh": "计量器具变更须有三方签字记录",
     "title_en": "Metrology changes signed", "clause": "联合维修单位、检定机构、加油站做好现场签字确认",
     "section": "一（五）", "department_zh": "旗市场监管局", "department_en": "Market regulation",
     "checker": None},
]
STATIONS = [
    {"station_id": "S1", "name": "甲镇第一加油站", "town": "甲镇", "ownership": "private", "tanks": 3},
    {"station_id": "S2", "name": "甲镇国营加油站", "town": "甲镇", "ownership": "state", "tanks": 2},
    {"station_id": "S3", "name": "乙苏木加油站", "town": "乙苏木", "ownership": "private", "tanks": 2},
    {"station_id": "S4", "name": "乙苏木国营加油站", "town": "乙苏木", "ownership": "state", "tanks": 2},
    {"station_id": "S5", "name": "乙苏木新建加油站", "town": "乙苏木", "ownership": "private", "tanks": 1},
]
MEASURED = ("S1", "S2", "S3", "S4")  # S5 has no station-level measurement: not checked
DAYS = ["2026-04-01", "2026-04-02", "2026-04-03"]


def _measurements(fail: bool) -> list[Measurement]:
    ms = [Measurement("COV-1", "stations.online_ratio", 1.0, ">=", 1.0, "ratio")]
    for sid in MEASURED:
        ms.append(Measurement("COV-1", "station.online_seen", 1, ">=", 1, "ratio", sid))
        lost = {"S1": 2, "S3": 1}.get(sid, 0) if fail else 0
        ms.append(Measurement("DAT-1", "transactions.lost", lost, "<=", 0, "records", sid,
                              {"keys": [f"{sid}/D1/tx/{i}" for i in range(lost)]}))
        dup = 3 if fail and sid == "S3" else 0
        ms.append(Measurement("DAT-1", "transactions.duplicated", dup, "<=", 0, "records", sid))
        days = 120 if fail and sid == "S2" else 180
        ms.append(Measurement("STB-1", "longest_compliant_days", days, ">=", 180, "days", sid))
    ms.append(Measurement("DAT-5", "latency.p95", 90.0 if fail else 12.5, "<=", 60, "s"))
    return ms


def _tables(stations: list[dict]) -> dict[str, list[dict]]:
    daily, recon = [], []
    for s in stations:
        for i, day in enumerate(DAYS):
            bad = s["station_id"] == "S2" and i == 1
            daily.append({"station_id": s["station_id"], "day": day,
                          "completeness": 0.5 if bad else 1.0,
                          "online_ratio": None if s["station_id"] == "S5" else 0.99,
                          "compliant": not bad and s["station_id"] != "S5"})
            for tank in range(1, s["tanks"] + 1):
                recon.append({"station_id": s["station_id"], "tank": tank, "day": day,
                              "variance_l": 1.5 * i - tank,
                              "cumulative_pct": None if i == 0 else 0.3 * i * (-1) ** tank})
    return {"daily": daily, "reconciliation": recon}


def make_record(fail: bool = False, stations: list[dict] | None = None,
                measurements: list[Measurement] | None = None, errors: dict | None = None,
                criteria: dict | None = None, notes: list[str] | None = None,
                catalogue: list[dict] = CATALOGUE) -> RunRecord:
    stations = STATIONS if stations is None else stations
    ms = _measurements(fail) if measurements is None else measurements
    reqs, verdict = decide(ms, catalogue, errors)
    return RunRecord(
        run_id="run-0001", created_at="2026-04-10T18:00:00+08:00",
        scenario={"name": "smoke", "path": "scenarios/smoke.yaml", "digest": "sha256:feedbeef",
                  "seed": 20260401, "start": "2026-04-01T00:00:00+08:00", "days": 3},
        harness={"version": "0.1.0", "git_commit": "abc1234"},
        sut={"collector": {"kind": "reference", "version": "0.1.0"}, "platform": "reference"},
        stations=stations, criteria=criteria if criteria is not None else {},
        measurements=ms, requirements=reqs, accepted=verdict == "accepted", verdict=verdict,
        catalogue=catalogue, tables=_tables(stations), notes=notes or [])


def redecide(record: RunRecord, catalogue: list[dict]) -> RunRecord:
    """The record judged again against another catalogue."""
    reqs, verdict = decide(record.measurements, catalogue)
    record.catalogue, record.requirements = catalogue, reqs
    record.verdict, record.accepted = verdict, verdict == "accepted"
    return record


CHECKED = [e for e in CATALOGUE if e["checker"]]  # every MUST has a checker: can be accepted


# --- a small HTML reader for the tests ----------------------------------------------------

class _Grab(HTMLParser):
    """Text of every element carrying attr=value (nested elements included)."""

    def __init__(self, attr: str, value: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attr, self.value = attr, value
        self.depth = 0
        self.found: list[str] = []
        self.attrs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "rect", "line", "circle", "polyline"):
            return
        d = dict(attrs)
        if self.depth:
            self.depth += 1
        elif d.get(self.attr) == self.value:
            self.depth = 1
            self.found.append("")
            self.attrs.append(d)

    def handle_endtag(self, tag):
        if self.depth and tag not in ("br", "img", "meta", "rect", "line", "circle", "polyline"):
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.found[-1] += data


def grab(html: str, attr: str, value: str) -> list[str]:
    g = _Grab(attr, value)
    g.feed(html)
    return [re.sub(r"\s+", " ", s).strip() for s in g.found]


def rows_with(html: str, attr: str) -> dict[str, list[dict]]:
    """Elements carrying `attr`, by its value: [{attributes}]."""
    out: dict[str, list[dict]] = {}
    for m in re.finditer(r"<tr ([^>]*)>", html):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
        if attr in attrs:
            out.setdefault(attrs[attr], []).append(attrs)
    return out


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


@pytest.fixture
def rendered(tmp_path):
    def go(record: RunRecord, lang: str = "zh-CN") -> tuple[str, str]:
        out = tmp_path / lang
        paths = render_reports(record, out, lang=lang)
        assert [p.name for p in paths] == ["report.html", "report-city.html"]
        return tuple(p.read_text(encoding="utf-8") for p in paths)
    return go


# --- verdict and requirements -------------------------------------------------------------

def test_passing_record_is_accepted_and_says_so(rendered):
    record = make_record(fail=False, catalogue=CHECKED)
    assert record.verdict == "accepted" and record.exit_code == 0
    county, city = rendered(record)
    for html in (county, city):
        assert grab(html, "class", "word")[0] == "通过"
        assert grab(html, "data-ownership", "total")[0].endswith("¥90,000")


def test_unchecked_must_makes_the_record_incomplete_and_pays_nothing(rendered):
    record = make_record(fail=False)  # MET-1 is a MUST without a checker
    assert record.verdict == "incomplete" and record.exit_code == 3 and not record.accepted
    assert record.unproven_must() == ["MET-1"]
    assert record.verdict_line() == "INCOMPLETE (not proven MET-1)"
    county, city = rendered(record)
    for html in (county, city):
        verdict = grab(html, "id", "verdict")[0]
        assert verdict.startswith("未完成") and grab(html, "class", "word")[0] == "未完成"
        assert "MET-1" in verdict and "未检查" in verdict
        assert grab(html, "data-ownership", "total")[0].endswith("¥0")
        assert "验收未完成" in grab(html, "id", "subsidy-not-payable")[0]


def test_a_run_shorter_than_the_stability_period_is_incomplete_not_passed(rendered):
    ms = _measurements(fail=False) + [
        Measurement("STB-1", "stability.run_days", 3, ">=", 180, "days", scope=True)]
    record = make_record(measurements=ms, catalogue=CHECKED)
    stb = next(r for r in record.requirements if r.id == "STB-1")
    assert stb.outcome == "incomplete" and "not covered by the run: stability.run_days" in stb.summary
    assert record.verdict == "incomplete"
    # the stations met everything measured: none fails, none is blamed in the ledger
    assert {r.outcome for r in station_results(record)} == {"pass", "not_checked"}  # S5
    assert rectification_ledger(record) == []
    props = {p.get("name"): p.get("value")
             for p in junit_tree(record).getroot().iter("property")}
    assert props["verdict"] == "incomplete"
    # a SUT failure still fails, whatever the run's length
    ms[-2] = Measurement("STB-1", "longest_compliant_days", 1, ">=", 3, "days", "S1")
    assert make_record(measurements=ms, catalogue=CHECKED).verdict == "not_accepted"


def test_shortened_stability_period_is_said_next_to_the_verdict(rendered):
    def run_days(shortened: bool) -> Measurement:
        return Measurement("STB-1", "stability.run_days", 3, ">=", 3, "days", scope=True,
                           evidence={"stability_days": 3, "shortened": shortened})

    record = make_record(measurements=_measurements(False) + [run_days(True)], catalogue=CHECKED)
    for html in rendered(record):
        assert "缩短的稳定性检查" in grab(html, "id", "shortened-stability")[0]
    county, _ = rendered(make_record(measurements=_measurements(False) + [run_days(False)],
                                     catalogue=CHECKED))
    assert not grab(county, "id", "shortened-stability")


def test_failing_record_names_the_failing_requirements(rendered):
    county, city = rendered(make_record(fail=True))
    for html in (county, city):
        verdict = grab(html, "id", "verdict")[0]
        assert verdict.startswith("不通过")
        assert grab(html, "class", "failed-ids") == ["DAT-1, STB-1"]
        assert "DAT-5" in verdict  # the failing SHOULD is named, apart from the MUSTs


@pytest.mark.parametrize("fail", [False, True])
def test_every_requirement_is_listed_with_its_outcome(rendered, fail):
    record = make_record(fail=fail)
    expected = {r.id: r.outcome for r in record.requirements}
    assert expected["MET-1"] == "not_checked"
    for html in rendered(record):
        listed = rows_with(html, "data-requirement")
        summary_rows = {k: [a for a in v if "data-outcome" in a] for k, v in listed.items()}
        assert {k: v[0]["data-outcome"] for k, v in summary_rows.items() if v} == expected
    county, _ = rendered(record)
    met = grab(county, "id", "req-MET-1")[0]
    assert "未检查" in met and "不计为通过" in met
    assert " 通过" not in met.replace("不计为通过", "")


def test_not_checked_is_never_counted_as_passed(rendered):
    record = make_record(fail=False)
    results = {r.station_id: r for r in station_results(record)}
    assert results["S5"].outcome == "not_checked"
    county, _ = rendered(record)
    station_rows = rows_with(county, "data-station")
    assert station_rows["S5"][0]["data-outcome"] == "not_checked"
    # S5 is private and unchecked: not paid, not counted in "passed"
    rows, total = subsidy(list(results.values()), accepted=True)
    private = next(r for r in rows if r.ownership == "private")
    assert (private.in_scope, private.passed, private.payable) == (3, 2, 60_000)
    assert total.passed == 4


# --- station rule, coverage and subsidy ---------------------------------------------------

def test_station_outcomes_follow_the_pass_rule():
    results = {r.station_id: r for r in station_results(make_record(fail=True))}
    assert {s: r.outcome for s, r in results.items()} == {
        "S1": "fail", "S2": "fail", "S3": "fail", "S4": "pass", "S5": "not_checked"}
    assert results["S1"].failed_here == ("DAT-1",)
    assert results["S2"].failed_here == ("STB-1",)
    assert results["S4"].blocked_by == ()  # DAT-5 failed fleet-wide, but it is a SHOULD
    assert all(r.covered for s, r in results.items() if s != "S5")
    assert not results["S5"].covered


def test_fleet_wide_must_failure_fails_every_station():
    ms = _measurements(fail=False)
    ms[0] = Measurement("COV-1", "stations.online_ratio", 0.8, ">=", 1.0, "ratio")
    record = make_record(measurements=ms)
    results = station_results(record)
    assert {r.outcome for r in results} == {"fail"}
    assert all(r.blocked_by == ("COV-1",) for r in results)
    assert subsidy(results, accepted=True)[1].payable == 0


def test_checker_error_fails_every_station_and_reports_error(rendered, tmp_path):
    record = make_record(errors={"STB-1": "KeyError: 'availability'"})
    assert not record.accepted
    assert {r.outcome for r in station_results(record)} == {"fail"}
    county, _ = rendered(record)
    assert "KeyError: &#39;availability&#39;" in county
    items = rectification_ledger(record)
    assert [(i.requirement, i.station_id, i.kind) for i in items] == [("STB-1", None, "error")]


def test_subsidy_payable_from_the_pass_rule(rendered):
    # hand-computed, were the run accepted: failing record → only S4 (state) passed → ¥15,000
    rows, total = subsidy(station_results(make_record(fail=True)), accepted=True)
    by = {r.ownership: r for r in rows}
    assert (by["private"].passed, by["private"].payable) == (0, 0)
    assert (by["state"].passed, by["state"].payable) == (1, 15_000)
    assert total.payable == 15_000
    # the plan's figures beside them: 27×3万=81万, 19×1.5万=28.5万
    assert (by["private"].plan_stations, by["private"].plan_amount) == (27, 810_000)
    assert (by["state"].plan_stations, by["state"].plan_amount) == (19, 285_000)
    assert total.plan_amount == 1_095_000
    # passing record → S1, S3 private (2 × 30,000) + S2, S4 state (2 × 15,000) = 90,000
    assert subsidy(station_results(make_record(fail=False)), accepted=True)[1].payable == 90_000
    # a run that is not accepted pays nothing (验收合格后，按规定支付相关款项)
    assert subsidy(station_results(make_record(fail=True)), accepted=False)[1].payable == 0
    county, city = rendered(make_record(fail=True))
    for html in (county, city):
        total_row = grab(html, "data-ownership", "total")[0]
        assert total_row.endswith("¥0")
        assert "¥1,095,000" in total_row
        assert "81 万元" in html and "28.5 万元" in html


def test_coverage_by_town_and_ownership():
    cov = coverage(station_results(make_record(fail=True)))
    towns = {r.key: (r.ledger, r.covered, r.passed, r.failed, r.not_checked) for r in cov.by_town}
    assert towns == {"甲镇": (2, 2, 0, 2, 0), "乙苏木": (3, 2, 1, 1, 1)}
    owners = {r.key: (r.ledger, r.covered, r.passed, r.failed, r.not_checked)
              for r in cov.by_ownership}
    assert owners == {"private": (3, 2, 0, 2, 1), "state": (2, 2, 1, 1, 0)}
    t = cov.total
    assert (t.ledger, t.covered, t.passed, t.failed, t.not_checked) == (5, 4, 1, 3, 1)
    assert t.covered_pct == pytest.approx(80.0)


# --- rectification ledger -----------------------------------------------------------------

def test_rectification_rows_for_each_failure(rendered):
    record = make_record(fail=True)
    items = rectification_ledger(record)
    assert [(i.requirement, i.station_id, len(i.measurements)) for i in items] == [
        ("DAT-1", "S1", 1), ("DAT-1", "S3", 2), ("DAT-5", None, 1), ("STB-1", "S2", 1)]
    assert {i.deadline for i in items} == {dt.date(2026, 4, 25)}  # 2026-04-10 + 15 days
    county, city = rendered(record)
    for html in (county, city):
        rows = grab(html, "data-requirement", "DAT-1")
        ledger_rows = [r for r in rows if "2026-04-25" in r]
        assert len(ledger_rows) == 2
        assert all("旗商务局" in r for r in ledger_rows)
        stb = [r for r in grab(html, "data-station", "S2") if "2026-04-25" in r]
        assert len(stb) == 1 and "旗市场监管局、财政局" in stb[0] and "2026-04-25" in stb[0]
        assert "longest_compliant_days 为 120 天" in stb[0]
        fleet = [r for r in grab(html, "data-requirement", "DAT-5") if "2026-04-25" in r]
        assert len(fleet) == 1 and fleet[0].startswith("3 全旗")
        assert "旗政务服务与数据管理局" in fleet[0]


def test_rectification_days_come_from_the_criteria():
    items = rectification_ledger(make_record(fail=True, criteria={"rectification_days": 10}))
    assert {i.deadline for i in items} == {dt.date(2026, 4, 20)}


def test_no_failure_no_rectification(rendered):
    county, _ = rendered(make_record(fail=False))
    assert rectification_ledger(make_record(fail=False)) == []
    assert "本次验收未发现需要整改的问题" in county


# --- charts -------------------------------------------------------------------------------

def test_charts_are_well_formed_svg(rendered):
    county, city = rendered(make_record(fail=True))
    for html in (county, city):
        roots = svgs(html)
        assert len(roots) == 3  # completeness, on-line rate, reconciliation
        for root in roots:
            assert root.tag == f"{SVG_NS}svg"
            assert root.find(f"{SVG_NS}title") is not None
    completeness = svgs(county)[0]
    texts = ["".join(t.itertext()) for t in completeness.iter(f"{SVG_NS}text")]
    assert "合规 2/3 天 · 最长连续 1 天" in texts  # S2: day 2 not compliant
    assert "合规 0/3 天 · 最长连续 0 天" in texts  # S5: never compliant
    red = [r for r in completeness.iter(f"{SVG_NS}rect") if r.get("fill") == charts.band(0.5)[0]]
    assert len(red) == 2  # S2's day 2 cell, and the legend swatch
    online = svgs(county)[1]
    grey = [r for r in online.iter(f"{SVG_NS}rect") if r.get("fill") == charts.NO_DATA]
    assert len(grey) == 2  # S5 (no data, one merged run of 3 days) + the legend swatch
    for chart in (completeness, online):  # S2's day 2 and S5's three days, as two runs
        bars = [r for r in chart.iter(f"{SVG_NS}rect") if r.get("class") == "non-compliant"]
        assert [float(r.get("width")) for r in bars] == [40.0, 120.0]
    recon = svgs(county)[2]
    assert len(recon.findall(f".//{SVG_NS}g[@class='panel']")) == len(STATIONS)


def test_charts_without_data_say_so(rendered):
    record = make_record(fail=False)
    record.tables = {}
    county, _ = rendered(record)
    assert svgs(county) == []
    assert county.count("运行记录中没有这项数据") == 3


def test_big_fleet_charts_are_split_for_print():
    t = labels("zh-CN")
    stations = [f"UMB{i:02d}" for i in range(1, 47)]
    rows = [charts.DailyRow(s, d, 1.0, 1.0, True) for s in stations for d in range(180)]
    assert len(charts.daily_heatmap(rows, "completeness", stations, t)) == 1
    assert len(charts.daily_heatmap(rows, "completeness", stations, t, per_chart=20)) == 3
    recon = [{"station_id": s, "tank": 1, "day": d, "cumulative_pct": 0.1}
             for s in stations for d in range(3)]
    parts = charts.reconciliation_panels(recon, stations, t)
    assert len(parts) == 4  # 12 panels per part
    for p in parts:
        ET.fromstring(p)


day_values = st.one_of(st.none(), st.floats(0.0, 1.0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 30), day_values,
                          day_values, st.booleans()), max_size=40, unique_by=lambda r: r[:2]))
def test_heatmap_is_well_formed_for_any_table(rows):
    t = labels("en")
    daily = [charts.DailyRow(*r) for r in rows]
    parts = charts.daily_heatmap(daily, "online_ratio", [], t)
    assert len(parts) == (1 if rows else 0)
    for p in parts:
        root = ET.fromstring(p)
        cells = [r for r in root.iter(f"{SVG_NS}rect") if r.find(f"{SVG_NS}title") is not None]
        # merged runs never overlap and cover every station's row exactly once
        width = sum(float(r.get("width")) for r in cells)
        ndays = len({r[1] for r in rows})
        cw = min(40.0, max(3.0, 700.0 / ndays))
        assert width == pytest.approx(cw * ndays * len({r[0] for r in rows}), rel=1e-3)


def test_bad_table_rows_are_named():
    with pytest.raises(ValueError, match=r"record.tables\['daily'\]\[0\]: missing \['compliant'\]"):
        charts.daily_rows([{"station_id": "S1", "day": "d", "completeness": 1.0,
                            "online_ratio": 1.0}])
    with pytest.raises(ValueError, match=r"\[1\]\.completeness: expected a ratio"):
        charts.daily_rows([{"station_id": "S1", "day": 1, "completeness": 1.0,
                            "online_ratio": 1.0, "compliant": True},
                           {"station_id": "S1", "day": 2, "completeness": 7,
                            "online_ratio": 1.0, "compliant": True}])


# --- languages, escaping, determinism -----------------------------------------------------

def test_english_variant(rendered):
    county, city = rendered(make_record(fail=True), lang="en")
    assert '<html lang="en">' in county
    assert "County Self-Inspection Acceptance Report" in county
    assert "City Acceptance Report" in city
    assert grab(county, "id", "verdict")[0].startswith("NOT ACCEPTED")
    assert "Every transaction exactly once" in county
    assert "Commerce bureau" in county
    assert "旗级自查验收报告" not in county
    total_row = grab(county, "data-ownership", "total")[0]
    assert total_row.endswith("¥0")
    assert "no installation subsidy" in grab(county, "id", "subsidy-not-payable")[0]
    assert "compliant 2/3 d · longest run 1 d" in county


def test_labels_are_complete_in_every_language():
    keys = [labels(lang).keys() for lang in LANGS]
    assert all(k == keys[0] for k in keys)
    used = set()
    for path in TEMPLATES.glob("*.j2"):
        used |= {k for k in re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8"))
                 if not k.endswith(".")}  # "chart." ~ key: dynamic, exercised by rendering
    for path in Path(charts.__file__).parent.glob("*.py"):
        if path.name == "i18n.py":
            continue
        used |= set(re.findall(r'\bt\("([\w.]+)"', path.read_text(encoding="utf-8")))
    assert used - keys[0] == set()
    with pytest.raises(ValueError, match="not supported"):
        labels("fr")


HOSTILE = "<script>alert('x')</script>&\"\x01"


def test_hostile_text_is_escaped_everywhere(rendered, tmp_path):
    stations = [dict(s) for s in STATIONS]
    stations[0]["name"] = HOSTILE
    stations[1]["town"] = "<b>town</b>"
    ms = _measurements(fail=True)
    ms[2] = Measurement("DAT-1", "transactions.lost", 2, "<=", 0, "records", "S1",
                        {"keys": [HOSTILE], HOSTILE: "<img src=x onerror=alert(1)>"})
    record = make_record(stations=stations, measurements=ms, notes=[HOSTILE])
    record.tables["daily"][0]["station_id"] = "S<1>&"
    for html in rendered(record) + rendered(record, lang="en"):
        assert "<script>" not in html
        assert "<img" not in html
        assert "<b>town" not in html
        assert "\x01" not in html
        assert "&lt;script&gt;" in html
        for root in svgs(html):  # still well-formed with hostile ids in the chart labels
            assert root is not None
    junit = write_junit(record, tmp_path / "junit.xml")
    ET.parse(junit)  # the control character does not break the XML


def test_same_record_same_bytes(tmp_path):
    record = make_record(fail=True)
    a = [p.read_bytes() for p in render_reports(record, tmp_path / "a")]
    b = [p.read_bytes() for p in render_reports(record, tmp_path / "b")]
    assert a == b
    write_junit(record, tmp_path / "a.xml")
    write_junit(record, tmp_path / "b.xml")
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes()


def test_provenance_is_shown(rendered):
    county, city = rendered(make_record(fail=False))
    for html in (county, city):
        for text in ("sha256:feedbeef", "20260401", "abc1234", "0.1.0", "sut.collector.kind",
                     "scenarios/smoke.yaml"):
            assert text in html


def test_signature_blocks(rendered):
    county, city = rendered(make_record(fail=False))
    for dept in ("旗市场监管局", "旗商务局", "旗税务局", "旗财政局"):
        assert f'<div class="who">{dept}</div>' in county
    assert '<div class="who">市级专项工作组</div>' in city
    for party in ("维修单位", "检定机构", "加油站"):
        assert f"{party}：签字" in county  # one three-party row per station
        assert f'<div class="who">{party}</div>' in city
    assert "旗级自查验收报告" in city  # the city report refers to the county one


# --- bad input ----------------------------------------------------------------------------

def test_bad_records_get_clear_errors(tmp_path):
    stations = [dict(s) for s in STATIONS]
    stations[2]["ownership"] = "collective"
    with pytest.raises(ValueError, match=r"record.stations\[2\] \(S3\): ownership 'collective'"):
        render_reports(make_record(stations=stations), tmp_path)
    record = make_record(fail=True)
    record.accepted, record.verdict = True, "accepted"
    with pytest.raises(ValueError, match="record.verdict is 'accepted' but .*DAT-1"):
        render_reports(record, tmp_path)
    record = make_record()
    record.catalogue = CATALOGUE[:-1]
    with pytest.raises(ValueError, match="'MET-1' has no entry in record.catalogue"):
        render_reports(record, tmp_path)
    record = make_record()
    record.created_at = "yesterday"
    with pytest.raises(ValueError, match="record.created_at"):
        render_reports(record, tmp_path)
    with pytest.raises(ValueError, match="rectification_days"):
        render_reports(make_record(criteria={"rectification_days": "2 weeks"}), tmp_path)
    with pytest.raises(ValueError, match="not supported"):
        render_reports(make_record(), tmp_path, lang="de")
    assert not (tmp_path / "report.html").exists()


def test_pdf_without_weasyprint_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import raises ImportError
    with pytest.raises(RuntimeError, match="pip install weasyprint"):
        render_reports(make_record(), tmp_path / "out", pdf=True)
    assert not (tmp_path / "out").exists()  # nothing half-written


# --- JUnit, summary, CLI ------------------------------------------------------------------

def test_junit_counts_and_failures(tmp_path):
    record = make_record(fail=True, errors={"COV-1": "boom"})
    root = ET.parse(write_junit(record, tmp_path / "junit.xml")).getroot()
    suite = root.find("testsuite")
    assert suite.get("name") == "forecourt.smoke"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5", "failures": "3", "errors": "1", "skipped": "1"}
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["scenario_digest"] == "sha256:feedbeef"
    assert props["seed"] == "20260401" and props["git_commit"] == "abc1234"
    assert props["accepted"] == "false"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"COV-1 Every station's collector on line",
                          "DAT-1 Every transaction exactly once", "DAT-5 Latency p95",
                          "STB-1 Stable operation", "MET-1 Metrology changes signed"}
    assert all(c.get("classname") == "forecourt.smoke" for c in cases.values())
    dat1 = cases["DAT-1 Every transaction exactly once"].find("failure")
    assert dat1.get("type") == "MUST"
    assert dat1.get("message").startswith("3 of 8 measurements out of limits")
    assert "S1: transactions.lost = 2 records, required <= 0" in dat1.text
    assert "S3: transactions.duplicated = 3 records" in dat1.text
    assert "S1/D1/tx/0" in dat1.text  # evidence
    assert cases["DAT-5 Latency p95"].find("failure").get("type") == "SHOULD"
    assert cases["COV-1 Every station's collector on line"].find("error").get("message") == "boom"
    assert cases["MET-1 Metrology changes signed"].find("skipped") is not None
    assert cases["STB-1 Stable operation"].find("failure") is not None


def test_junit_of_a_passing_record(tmp_path):
    suite = ET.parse(write_junit(make_record(), tmp_path / "j.xml")).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "1")
    assert not list(suite.iter("failure"))


def test_summary_for_ci():
    s = summary(make_record(fail=True))
    assert s["accepted"] is False and s["failed"] == ["DAT-1", "DAT-5", "STB-1"]
    assert s["requirements"] == {"pass": 1, "fail": 3, "not_checked": 1, "error": 0,
                                 "incomplete": 0}
    assert s["stations"] == {"pass": 1, "fail": 3, "not_checked": 1}
    assert s["verdict"] == "not_accepted" and s["subsidy_payable_yuan"] == 0
    json.dumps(s)
    assert summary_lines(make_record())[0].startswith("INCOMPLETE: smoke")
    assert summary_lines(make_record(catalogue=CHECKED))[0].startswith("ACCEPTED: smoke")


def test_cli_rerenders_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    make_record(fail=True).write(run / "record.json")
    assert reports_main([str(run), "--junit", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("NOT ACCEPTED: smoke")
    for name in ("report.html", "report-city.html", "junit.xml"):
        assert (run / name).is_file()
    assert reports_main([str(tmp_path / "nowhere")]) == 2


def test_real_catalogue_renders(rendered):
    """The harness's own catalogue (acceptance.requirements) renders, checkers or not."""
    from acceptance.requirements import catalogue

    entries = catalogue()
    record = make_record()
    record.measurements = []
    redecide(record, entries)  # no measurement: checked ones err, others unchecked
    county, city = rendered(record)
    listed = rows_with(county, "data-requirement")
    assert {e["id"] for e in entries} <= set(listed)
    assert {r.id for r in record.requirements} == {e["id"] for e in entries}
    assert grab(county, "id", "verdict")[0].startswith("未完成")  # errors prove nothing
    assert {r.outcome for r in station_results(record)} == {"fail"}  # MUST checks erred


def test_requirement_outcome_without_catalogue_entry_is_rejected(tmp_path):
    record = make_record()
    record.requirements.append(RequirementOutcome("ZZZ-9", "MUST", "pass", "x"))
    with pytest.raises(ValueError, match="'ZZZ-9' has no entry"):
        render_reports(record, tmp_path)


def test_minimal_catalogue_entries_render(rendered):
    """Only id and level are required of a catalogue entry; the rest falls back visibly."""
    record = make_record(fail=True)
    record.catalogue = [{"id": e["id"], "level": e["level"], "checker": e["checker"]}
                        for e in CATALOGUE]
    county, city = rendered(record)
    assert "未指定" in county  # no department in the entry
    assert grab(county, "class", "failed-ids") == ["DAT-1, STB-1"]


def test_reports_import_only_the_record_jinja2_and_the_standard_library():
    allowed_ours = {"acceptance.record", "reports"}
    for path in Path(charts.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                ok = (name in allowed_ours or top == "reports" or top == "jinja2"
                      or top in sys.stdlib_module_names or top == "__future__")
                assert ok, f"{path.name} imports {name}"


# --- cheat warning (作弊预警) ----------------------------------------------------------------

T0 = dt.datetime(2026, 4, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
DAY = 86400.0
ALM_CATALOGUE = [
    {"id": f"ALM-{cls}", "level": "MUST", "title_zh": f"{cls} 类作弊在时限内预警并正确定位",
     "title_en": f"{cls} cheats alerted in time", "department_zh": dept_zh,
     "department_en": dept_en, "checker": f"c.{cls.lower()}"}
    for cls, dept_zh, dept_en in (
        ("PULSE", "旗市场监管局", "Market regulation"), ("PART", "旗市场监管局", "Market regulation"),
        ("PRICE", "旗市场监管局", "Market regulation"),
        ("STOCK", "旗市场监管局、商务局", "Market regulation and commerce"),
        ("DELIV", "旗商务局、税务局", "Commerce and tax"),
        ("FP", "旗市场监管局", "Market regulation"))]


def _cheat(sid, cheat, kind, cls, start, end=None, *, device="", nozzle=0, tank=0,
           attribution="nozzle", detected=None, days=None, attributed=None, alert=None):
    return {"station_id": sid, "cheat": cheat, "kind": kind, "class": cls,
            "lookalike": cls == "LOOK", "device": device, "nozzle": nozzle, "tank": tank,
            "attribution": attribution, "first_start": None if start is None else T0 + start * DAY,
            "last_end": None if end is None else T0 + end * DAY, "detected": detected,
            "days_to_detect": days, "attributed": attributed,
            "first_alert_kind": alert, "first_alert_as_of":
            None if days is None else T0 + (start + days) * DAY}


def _alert(i, sid, kind, day, judgement, device=None, nozzle=None, tank=None):
    return {"id": f"a{i}", "station_id": sid, "kind": kind,
            "as_of": None if day is None else T0 + day * DAY, "device": device,
            "nozzle": nozzle, "tank": tank, "judgement": judgement}


CHEATS = [  # a 10-day run: in time, late and mis-attributed, missed, too short, two look-alikes
    _cheat("S1", 0, "price_tamper", "PRICE", 2.0, device="D1", attribution="device",
           detected=True, days=0.25, attributed=True, alert="price_mismatch"),
    _cheat("S1", 1, "pulse_factor", "PULSE", 1.0, 7.0, device="D2", nozzle=1, tank=2,
           detected=True, days=8.0, attributed=False, alert="meter_skim"),
    _cheat("S3", 2, "blind_sales", "STOCK", 1.0, tank=1, attribution="tank", detected=False,
           attributed=False),
    _cheat("S3", 3, "delivery_short_drop", "DELIV", 9.5, tank=2, attribution="tank",
           detected=False, attributed=False),
    _cheat("S2", 4, "meter_drift", "LOOK", 0.5, device="D1", nozzle=1),
    _cheat("S4", 5, "leak", "LOOK", 3.0, tank=1, attribution="tank"),
]
ALERTS = [
    _alert(1, "S1", "price_mismatch", 2.25, "explained", "D1", 1, 1),
    _alert(2, "S1", "price_mismatch", 3.0, "explained", "D1", 2, 2),
    _alert(3, "S1", "meter_skim", 9.0, "explained", "D2", 2, 2),
    _alert(4, "S2", "meter_skim", 4.0, "false", "D1", 1, 1),
    _alert(5, "S4", "leak_suspected", 5.0, "operational", tank=1),
    _alert(6, "S5", "seal_broken", 6.0, "false", "D1"),
    _alert(7, "S3", "device_offline", None, "operational", "D2"),
]


def _alm_measurements() -> list[Measurement]:
    def detect(rid, sid, cheat, kind, value, limit, reason=None):
        ev = {"cheat": cheat, "kind": kind} | ({"reason": reason} if reason else {})
        return Measurement(rid, "cheat.days_to_detect", value, "<=", limit, "days", sid, ev)

    def attributed(rid, sid, cheat, kind, ok):
        return Measurement(rid, "cheat.attributed", int(ok), "==", 1, "", sid,
                           {"cheat": cheat, "kind": kind})

    def unexplained(rid, n):
        return Measurement(rid, "alerts.unexplained", n, "==", 0, "alerts")

    return [
        detect("ALM-PRICE", "S1", 0, "price_tamper", 0.25, 1.0),
        attributed("ALM-PRICE", "S1", 0, "price_tamper", True), unexplained("ALM-PRICE", 0),
        detect("ALM-PULSE", "S1", 1, "pulse_factor", 8.0, 7.0),
        attributed("ALM-PULSE", "S1", 1, "pulse_factor", False), unexplained("ALM-PULSE", 1),
        detect("ALM-STOCK", "S3", 2, "blind_sales", None, 7.0,
               "no matching alert (kinds expected: see docs/cheats.md)"),
        attributed("ALM-STOCK", "S3", 2, "blind_sales", False), unexplained("ALM-STOCK", 0),
        detect("ALM-DELIV", "S3", 3, "delivery_short_drop", None, 1.0,
               "run too short to judge: it ended 0.50 days after the activation, before "
               "the 1-day limit, with no alert yet"),
        attributed("ALM-DELIV", "S3", 3, "delivery_short_drop", False),
        unexplained("ALM-DELIV", 0), unexplained("ALM-PART", 1),
        Measurement("ALM-FP", "alerts.false_per_station_month", 1.2175, "<=", 0.01,
                    "alerts/station-month"),
    ]


def make_cheat_record(cheats=CHEATS, alerts=ALERTS) -> RunRecord:
    ms = _measurements(fail=False) + _alm_measurements()
    catalogue = CATALOGUE + ALM_CATALOGUE
    record = make_record(measurements=ms, criteria={
        f"alarm_days_{c}": d for c, d in (("pulse", 7.0), ("part", 1.0), ("data", 7.0),
                                          ("price", 1.0), ("stock", 7.0), ("deliv", 1.0))})
    redecide(record, catalogue)
    record.scenario = dict(record.scenario, days=10)
    record.tables = dict(record.tables, cheats=[dict(c) for c in cheats],
                         alerts=[dict(a) for a in alerts])
    return record


def timeline(html: str) -> ET.Element:
    roots = [r for r in svgs(html) if r.get("class") == "chart"
             and (r.findtext(f"{SVG_NS}title") or "") in ("作弊与预警时间线",
                                                         "Cheats and alerts over time")]
    assert len(roots) == 1
    return roots[0]


def _of_class(root: ET.Element, prefix: str) -> list[ET.Element]:
    return [e for e in root.iter() if (e.get("class") or "").split(" ")[0] == prefix]


@pytest.mark.parametrize("lang", LANGS)
def test_cheat_detection_table(rendered, lang):
    record = make_cheat_record()
    for html in rendered(record, lang=lang):
        cheats = {k: v[0]["data-cheat-outcome"] for k, v in rows_with(html, "data-cheat").items()}
        assert cheats == {"S1/0": "in_time", "S1/1": "late", "S3/2": "missed",
                          "S3/3": "too_short"}
        look = {k: v[0]["data-lookalike-outcome"]
                for k, v in rows_with(html, "data-lookalike").items()}
        assert look == {"S2/4": "fail", "S4/5": "pass"}  # the drift raised a false alert
        assert list(rows_with(html, "data-false-alert")) == ["a4", "a6"]  # by time
        price, pulse = grab(html, "data-cheat", "S1/0")[0], grab(html, "data-cheat", "S1/1")[0]
        missed, short = grab(html, "data-cheat", "S3/2")[0], grab(html, "data-cheat", "S3/3")[0]
        drift = grab(html, "data-lookalike", "S2/4")[0]
        leak = grab(html, "data-lookalike", "S4/5")[0]
        false_a4 = grab(html, "data-false-alert", "a4")[0]
        # local time (UTC+8): price_tamper from day 2 00:00, first alert 6 h later
        assert "2026-04-03 00:00" in price and "2026-04-03 06:00" in price
        assert "甲镇第一加油站" in price  # the station's name, from the ledger
        if lang == "zh-CN":
            assert "篡改单价" in price and "价格作弊" in price and "单价与挂牌价不符" in price
            assert "加油机 D1" in price
            assert "0.25 天（≤ 1 天）" in price and "正确（按加油机判定）" in price
            assert price.endswith("按时预警")
            assert "8.00 天（≤ 7 天）" in pulse and "错误（按油枪判定）" in pulse
            assert pulse.endswith("预警超时") and "加油机 D2 · 1号枪 · 2号罐" in pulse
            assert missed.endswith("未预警") and "无预警可定位" in missed
            assert short.endswith("运行时长不足以判定") and "短卸" in short
            assert "诚信干扰项" in html and "不产生作弊预警" in drift
            assert "油枪计量偏差 2026-04-05 00:00" in drift and drift.endswith("误报 1 条")
            assert "运行类告警 1 条（允许）" in leak and leak.endswith("未误报")
            assert "发生于诚信干扰项“计量器具正常漂移”期间" in false_a4
            assert "ALM-FP 误报率：1.2175 条/站·月（要求 ≤ 0.01 条/站·月）" in html
        else:
            assert "Price tampering" in price and "Price mismatch" in price
            assert "0.25 days (≤ 1 days)" in price and "right (judged by dispenser)" in price
            assert price.endswith("detected in time") and pulse.endswith("detected late")
            assert "wrong (judged by nozzle)" in pulse
            assert missed.endswith("not detected")
            assert short.endswith("run too short to judge")
            assert "no cheat alert" in drift and drift.endswith("1 false alert(s)")
            assert 'during the honest look-alike "Honest meter drift"' in false_a4
            assert "不产生作弊预警" not in html


@pytest.mark.parametrize("lang", LANGS)
def test_cheat_timeline_chart(rendered, lang):
    for html in rendered(make_cheat_record(), lang=lang):
        root = timeline(html)
        bars = _of_class(root, "cheat")
        assert sorted(b.get("class") for b in bars) == [
            "cheat cls-DELIV", "cheat cls-PRICE", "cheat cls-PULSE", "cheat cls-STOCK"]
        assert {b.get("fill") for b in bars} == {charts.CLASS_COLOURS[c] for c in
                                                 ("DELIV", "PRICE", "PULSE", "STOCK")}
        looks = _of_class(root, "lookalike")
        assert len(looks) == 2 and {b.get("fill") for b in looks} == {charts.LOOK_FILL}
        markers = _of_class(root, "alert")
        by = {j: [m for m in markers if m.get("class") == f"alert alert-{j}"]
              for j in ("explained", "false", "operational")}
        assert {j: len(v) for j, v in by.items()} == {"explained": 3, "false": 2,
                                                       "operational": 1}  # a7 has no time
        assert {m.tag for m in by["explained"]} == {f"{SVG_NS}circle"}
        assert {m.tag for m in by["false"]} == {f"{SVG_NS}path"}
        assert all(m.find(f"{SVG_NS}title") is not None for m in markers + bars + looks)
        tips = [m.findtext(f"{SVG_NS}title") for m in by["false"]]
        nozzle = "1号枪" if lang == "zh-CN" else "nozzle 1"
        assert "S2 · " in tips[0] and "(meter_skim)" in tips[0] and nozzle in tips[0]
        assert "(seal_broken)" in tips[1] and "D1" in tips[1]
        # the class limit: day 3 (price), day 8 (pulse, blind sales); the short drop's
        # limit (day 10.5) falls after the run's end
        assert len(_of_class(root, "deadline")) == 3
        texts = ["".join(e.itertext()) for e in root.iter(f"{SVG_NS}text")]
        assert sum(t.startswith(("S1 ", "S2 ", "S3 ", "S4 ", "S5 ")) for t in texts) == 5
        assert any("1" in t and ("未画出" in t or "not drawn" in t) for t in texts)
        # bars span the run: the price cheat runs from day 2 to the end of the run
        price = next(b for b in bars if b.get("class") == "cheat cls-PRICE")
        pulse = next(b for b in bars if b.get("class") == "cheat cls-PULSE")
        assert float(price.get("width")) == pytest.approx(620 * 8 / 10, abs=0.02)
        assert float(pulse.get("width")) == pytest.approx(620 * 6 / 10, abs=0.02)


@pytest.mark.parametrize("lang", LANGS)
def test_cheat_warning_empty_states(rendered, lang):
    empty = make_cheat_record(cheats=[], alerts=[])
    county, city = rendered(empty, lang=lang)
    words = {"zh-CN": ("本次运行无作弊实例。", "本次运行无诚信干扰项。", "本次运行无误报警。",
                       "本次运行无作弊实例，也无告警。"),
             "en": ("No cheat instance ran in this run.", "No honest look-alike ran in this run.",
                    "No false alert in this run.", "No cheat instance and no alert in this run.")}
    for html in (county, city):
        for w in words[lang]:
            assert w in html
        assert not rows_with(html, "data-cheat") and not rows_with(html, "data-false-alert")
        assert len(svgs(html)) == 3  # only the daily and reconciliation charts
    # a record from before the cheat tables (or whose tables could not be built)
    county, _ = rendered(make_record(), lang=lang)
    assert ("运行记录中没有作弊实例与告警表" if lang == "zh-CN" else
            "The run record has no cheat or alert table") in county
    # look-alikes only, no alert at all: their row says no false alert, the chart has bars
    only = make_cheat_record(cheats=CHEATS[4:], alerts=[])
    county, _ = rendered(only, lang=lang)
    assert {v[0]["data-lookalike-outcome"] for v in rows_with(county, "data-lookalike").values()} \
        == {"pass"}
    root = timeline(county)
    assert len(_of_class(root, "lookalike")) == 2 and not _of_class(root, "alert")


def test_cheat_failures_in_the_rectification_ledger(rendered):
    record = make_cheat_record()
    items = rectification_ledger(record)
    assert [(i.requirement, i.station_id) for i in items] == [
        ("ALM-PULSE", None), ("ALM-PULSE", "S1"), ("ALM-PART", None), ("ALM-STOCK", "S3"),
        ("ALM-DELIV", "S3"), ("ALM-FP", None)]
    county, city = rendered(record)
    for html in (county, city):
        stock = [r for r in grab(html, "data-requirement", "ALM-STOCK") if "2026-04-25" in r]
        assert len(stock) == 1
        assert "暗管销售 cheat.days_to_detect 为 未预警（要求 ≤ 7 天）" in stock[0]
        assert "旗市场监管局、商务局" in stock[0]
        fp = [r for r in grab(html, "data-requirement", "ALM-FP") if "2026-04-25" in r]
        assert "1.2175 条/站·月（要求 ≤ 0.01 条/站·月）" in fp[0] and fp[0].startswith("6 全旗")
    county, _ = rendered(record, lang="en")
    stock = [r for r in grab(county, "data-requirement", "ALM-STOCK") if "2026-04-25" in r]
    assert "Blind sales (hidden line) cheat.days_to_detect = no alert" in stock[0]


def test_cheat_reports_are_byte_identical(tmp_path):
    record = make_cheat_record()
    for lang in LANGS:
        a = [p.read_bytes() for p in render_reports(record, tmp_path / f"a-{lang}", lang=lang)]
        b = [p.read_bytes() for p in render_reports(record, tmp_path / f"b-{lang}", lang=lang)]
        assert a == b
    t = labels("zh-CN")
    from reports.cheats import cheat_warning

    ids = [s["station_id"] for s in STATIONS]
    one = charts.cheat_timeline(cheat_warning(record, ids), {}, t)
    shuffled = make_cheat_record(cheats=CHEATS[::-1], alerts=ALERTS[::-1])
    assert charts.cheat_timeline(cheat_warning(shuffled, ids), {}, t) == one  # row order


def test_cheat_labels_cover_every_kind_and_class():
    from acceptance.oracle import CHEAT_ALERT_KINDS, CLASSES, OPERATIONAL_ALERT_KINDS
    from sim.cheats import CHEAT_KINDS

    assert len(CHEAT_KINDS) == 29
    for lang in LANGS:
        keys = labels(lang).keys()
        assert {f"kind.{k}" for k in CHEAT_KINDS} <= keys
        assert {f"class.{c}" for c in (*CLASSES, "LOOK")} <= keys
        assert {f"alert.{k}" for k in (*CHEAT_ALERT_KINDS, *OPERATIONAL_ALERT_KINDS)} <= keys
    assert set(charts.CLASS_COLOURS) == set(CLASSES)


def test_hostile_cheat_rows_are_escaped(rendered):
    cheats = [dict(c) for c in CHEATS]
    cheats[0].update(station_id=HOSTILE, kind="<b>kind</b>", device="<i>D1</i>")
    alerts = [dict(a) for a in ALERTS]
    alerts[3].update(station_id=HOSTILE, kind=HOSTILE, nozzle="<x>")
    record = make_cheat_record(cheats=cheats, alerts=alerts)
    for html in rendered(record) + rendered(record, lang="en"):
        assert "<script>" not in html and "<b>kind" not in html and "<i>D1" not in html
        assert "\x01" not in html
        root = timeline(html)  # well-formed despite the hostile text
        assert len(_of_class(root, "alert")) == 6


def test_bad_cheat_rows_are_named(tmp_path):
    record = make_cheat_record()
    del record.tables["cheats"][2]["detected"]
    with pytest.raises(ValueError, match=r"record.tables\['cheats'\]\[2\]: missing \['detected'\]"):
        render_reports(record, tmp_path)
    record = make_cheat_record()
    record.tables["alerts"][1]["judgement"] = "maybe"
    with pytest.raises(ValueError, match=r"record.tables\['alerts'\]\[1\].judgement"):
        render_reports(record, tmp_path)
    record = make_cheat_record()
    record.tables["cheats"][0]["first_start"] = "yesterday"
    with pytest.raises(ValueError, match=r"\['cheats'\]\[0\]\.first_start: expected a number"):
        render_reports(record, tmp_path)
    assert not (tmp_path / "report.html").exists()


timeline_rows = st.lists(st.tuples(st.sampled_from(["S1", "S2", "X<&>"]),
                                   st.sampled_from(["PULSE", "STOCK", "LOOK", "ODD"]),
                                   st.one_of(st.none(), st.floats(-2, 12)),
                                   st.one_of(st.none(), st.floats(-2, 12))), max_size=8)
timeline_alerts = st.lists(st.tuples(st.sampled_from(["S1", "S3"]),
                                     st.sampled_from(["explained", "false", "operational"]),
                                     st.one_of(st.none(), st.floats(-2, 12))), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timeline_rows, timeline_alerts)
def test_timeline_is_well_formed_for_any_table(rows, alerts):
    from reports.cheats import cheat_warning

    cheats = [_cheat(sid, i, "k", cls, start, end) for i, (sid, cls, start, end) in enumerate(rows)]
    al = [_alert(i, sid, "k", day, j) for i, (sid, j, day) in enumerate(alerts)]
    record = make_cheat_record(cheats=cheats, alerts=al)
    parts = charts.cheat_timeline(cheat_warning(record, ["S1", "S2"]), {}, labels("en"))
    drawn = [c for c in cheats if c["first_start"] is not None]
    placed = [a for a in al if a["as_of"] is not None]
    assert len(parts) == (1 if drawn or placed else 0)
    for p in parts:
        root = ET.fromstring(p)
        assert len(_of_class(root, "cheat")) + len(_of_class(root, "lookalike")) == len(drawn)
        assert len(_of_class(root, "alert")) == len(placed)
        width = float(root.get("width"))
        for e in _of_class(root, "cheat") + _of_class(root, "lookalike"):
            x = float(e.get("x"))
            assert x >= 0 and x + float(e.get("width")) <= width
