"""CRD-1 (信用记录、分级分类监管) on hand-made run directories: the correct run (the reference
platform's grades of the alerts) passes; a wrong grade, flat grades, grades that ignore the
lifecycle or a platform that does not serve the resource fail with the station named; a
station with nothing found must be A; a run where no finding costs points proves nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from test_checkers import METROLOGY_ALERTS, START, Run, faithful_credit, make_run, outcome

from acceptance.check import check_run
from acceptance.record import RunRecord


def crd1(record: RunRecord, name: str | None = None) -> list:
    return [m for m in record.measurements if m.requirement == "CRD-1"
            and (name is None or m.name == name)]


def checked(run: Run, tmp_path: Path) -> RunRecord:
    return check_run(run.write(tmp_path / "run"))


def failing(record: RunRecord) -> list[tuple[str, str | None]]:
    return sorted((m.name, m.station_id) for m in crd1(record) if not m.passed)


def test_the_correct_run_passes_and_its_table_names_each_grade(tmp_path: Path) -> None:
    record = checked(make_run(), tmp_path)
    assert outcome(record, "CRD-1") == "pass", failing(record)
    # UMB25: a skim alert (cheat, warning: 32) and an unsigned record (metrology: 24)
    table = {r["station_id"]: r for r in record.tables["credit"]}
    assert {s: (r["grade"], r["score"], r["findings"]) for s, r in table.items()} == {
        "UMB25": ("C", 44, 2), "UMB44": ("B", 76, 1)}
    assert table["UMB44"]["town"] == "新忽热苏木" and table["UMB44"]["ownership"] == "state"
    assert all(r["agrees"] and r["responsible"] == "旗商务局" for r in table.values())
    (truth,) = crd1(record, "credit.grades_against_truth")
    assert truth.value == 0 and len(truth.evidence["judged"]) == 2  # both flagged: not A
    (graded,) = crd1(record, "credit.findings_graded")
    assert graded.value == 2 and graded.scope


def test_a_wrong_grade_fails_at_its_station(tmp_path: Path) -> None:
    run = make_run()
    credit = faithful_credit(run.alerts)
    credit.loc[credit["station_id"] == "UMB44", "grade"] = "A"
    run.credit = credit
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "fail"
    assert failing(record) == [("credit.differs_from_rule", "UMB44"),
                               ("credit.grades_against_truth", None)]
    (bad,) = [m for m in crd1(record, "credit.differs_from_rule") if not m.passed]
    assert bad.value == 1 and bad.evidence["differs"] == ["grade"]
    assert bad.evidence["rule"]["grade"] == "B" and bad.evidence["findings"] == ["m1"]
    (truth,) = crd1(record, "credit.grades_against_truth")
    assert truth.evidence["contradicting"][0].startswith("UMB44: graded A although")


def test_flat_grades_fail_everywhere(tmp_path: Path) -> None:
    run = make_run()
    run.credit = faithful_credit(run.alerts, flat=True)  # --platform-mutant flat-credit
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "fail"
    assert failing(record) == [("credit.differs_from_rule", "UMB25"),
                               ("credit.differs_from_rule", "UMB44"),
                               ("credit.grades_against_truth", None)]
    assert crd1(record, "credit.grades_against_truth")[0].value == 2


def test_the_lifecycle_weights(tmp_path: Path) -> None:
    """The skim confirmed and rectified counts half, the unsigned record dismissed nothing."""
    run = make_run()
    al = run.alerts.assign(status=["closed", "open", "closed"],
                           confirmed_at=[2e9, math.nan, math.nan])
    run.alerts = al
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "pass", failing(record)
    table = {r["station_id"]: (r["grade"], r["score"]) for r in record.tables["credit"]}
    assert table == {"UMB25": ("B", 84), "UMB44": ("B", 76)}
    # a platform that ignores the lifecycle (grades every alert as open) fails at UMB25
    run.credit = faithful_credit(al.assign(status="open", confirmed_at=math.nan))
    record = checked(run, tmp_path / "ignores")
    assert failing(record) == [("credit.differs_from_rule", "UMB25")]


def test_a_station_with_nothing_found_must_be_a(tmp_path: Path) -> None:
    run = make_run()
    # UMB44's verification never lapses: its opening one is valid through the run
    recs = run.truth["verification_records"]
    keep = ~((recs["station_id"] == "UMB44") & (recs["cheat"] == 2))
    recs = recs[keep].reset_index(drop=True)
    opening = (recs["station_id"] == "UMB44") & (recs["device"] == "D2")
    recs.loc[opening, "performed_at"] = START - 100 * 86400.0
    recs.loc[opening, "valid_until"] = START + 82 * 86400.0
    run.truth["verification_records"] = recs
    run.truth["verification_lapses"] = run.truth["verification_lapses"].iloc[0:0]
    run.alerts = run.alerts[run.alerts["id"] != METROLOGY_ALERTS[0]["id"]]
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "pass", failing(record)
    (truth,) = crd1(record, "credit.grades_against_truth")
    assert "UMB44: A (no finding in the truth or at the platform)" in truth.evidence["judged"]
    credit = faithful_credit(run.alerts)
    credit.loc[credit["station_id"] == "UMB44", ["grade", "score"]] = ["B", 76]
    run.credit = credit
    record = checked(run, tmp_path / "b")
    assert ("credit.grades_against_truth", None) in failing(record)
    (truth,) = crd1(record, "credit.grades_against_truth")
    assert truth.evidence["contradicting"] == [
        "UMB44: graded B with no finding in the truth or at the platform"]


def test_a_dismissed_true_finding_is_not_held_against_the_grade(tmp_path: Path) -> None:
    run = make_run()
    run.alerts = run.alerts.assign(status="closed", confirmed_at=math.nan)  # all dismissed
    record = checked(run, tmp_path)
    assert crd1(record, "credit.grades_against_truth")[0].passed
    assert {r["grade"] for r in record.tables["credit"]} == {"A"}
    # … but nothing then costs points: a flat platform could not be told apart
    assert outcome(record, "CRD-1") == "incomplete"
    (graded,) = crd1(record, "credit.findings_graded")
    assert graded.value == 0 and "could not be told apart" in graded.evidence["reason"]


def test_nothing_to_grade_is_incomplete_not_passed(tmp_path: Path) -> None:
    run = make_run()
    run.alerts = run.alerts.iloc[0:0]
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "incomplete"
    assert failing(record) == [("credit.findings_graded", None)]
    (truth,) = crd1(record, "credit.grades_against_truth")
    assert truth.evidence["judged"] == [] and len(truth.evidence["not_judged"]) == 2


def test_a_platform_without_the_resource_fails_naming_the_answer(tmp_path: Path) -> None:
    run = make_run()
    run.credit = pd.DataFrame(columns=["station_id", "score", "grade", "period", "counts",
                                       "points", "findings", "findings_total"])
    run.credit_served = {"resource": "GET /api/v1/credit", "served": False, "status": 404,
                         "error": "platform API …/api/v1/credit: HTTP 404: not_found"}
    record = checked(run, tmp_path)
    assert outcome(record, "CRD-1") == "fail"
    bad = [m for m in crd1(record, "credit.differs_from_rule") if not m.passed]
    assert [m.station_id for m in bad] == ["UMB25", "UMB44"]
    assert all(m.value is None and "HTTP 404" in m.evidence["reason"] for m in bad)


def test_a_run_directory_without_the_files_errs(tmp_path: Path) -> None:
    run = make_run()
    run.credit_served = None
    record = checked(run, tmp_path)
    (err,) = [r for r in record.requirements if r.id == "CRD-1"]
    assert err.outcome == "error" and "observed/credit.json" in str(err.error)
    assert json.loads((tmp_path / "run" / "record.json").read_text())["tables"]["credit"] == []
