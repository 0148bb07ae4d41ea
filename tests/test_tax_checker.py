"""TAX-1 (acceptance/checkers/tax.py) on hand-made run directories: the correct run of
test_checkers (UMB25 declares half of its sales every 12 h, UMB44 all; the platform flags
exactly UMB25's periods) passes, and each way a platform can get the cross-check wrong
fails it — or leaves it incomplete when the run could not judge."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_checkers import Run, make_run, measurements, outcome

from acceptance.check import check_run
from acceptance.checkers.tax import late_sales, required, sales_cross_checked
from acceptance.criteria import defaults
from acceptance.record import RunRecord
from acceptance.rundir import RunData


def _check(tmp_path: Path, run: Run) -> RunRecord:
    return check_run(run.write(tmp_path / "run"), write=False)


def _value(record: RunRecord, name: str, station: str | None) -> float | int | None:
    [m] = measurements(record, "TAX-1", name, station)
    return m.value


def _set(run: Run, mask: pd.Series, **values) -> None:
    assert run.tax_checks is not None and mask.any()
    for col, v in values.items():
        run.tax_checks.loc[mask, col] = v


def _rows(run: Run, station: str, first_only: bool = True) -> pd.Series:
    assert run.tax_checks is not None
    mask = run.tax_checks["station_id"] == station
    if first_only:
        mask &= run.tax_checks.index == run.tax_checks[mask].index[0]
    return mask


def test_a_correct_platform_passes(tmp_path):
    record = _check(tmp_path, make_run())
    assert outcome(record, "TAX-1") == "pass"
    [m] = measurements(record, "TAX-1", "tax.under_declarations_missed", "UMB25")
    assert m.value == 0 and len(m.evidence["flagged"]) == 8 and m.evidence["under_declared"] == 8
    assert _value(record, "tax.false_flags", "UMB44") == 0
    assert _value(record, "tax.gap_error", "UMB25") == 0.0
    assert not measurements(record, "TAX-1", "tax.gap_error", "UMB44")  # nothing under-declared
    [fleet] = measurements(record, "TAX-1", "tax.periods_declared", None)
    assert fleet.value == 20 and "shortened" in fleet.evidence["period"]
    table = pd.DataFrame(record.tables["tax"])
    assert len(table) == 20 and set(table["truth"]) == {"must_flag", "honest"}
    assert table.loc[table["truth"] == "must_flag", "flagged"].all()
    assert not table.loc[table["truth"] == "honest", "flagged"].any()


def test_an_under_declaration_not_flagged_fails(tmp_path):
    run = make_run()
    _set(run, _rows(run, "UMB25"), flagged=False)
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.under_declarations_missed", "UMB25")
    assert m.value == 1 and "not flagged" in m.evidence["missed"][0]


def test_an_honest_declaration_flagged_fails(tmp_path):
    run = make_run()
    _set(run, _rows(run, "UMB44"), flagged=True)
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.false_flags", "UMB44")
    assert m.value == 1 and "honest" in m.evidence["flagged_honest"][0]


def test_a_wrong_gap_fails(tmp_path):
    run = make_run()
    assert run.tax_checks is not None
    mask = _rows(run, "UMB25")
    run.tax_checks.loc[mask, "gap_sales_fen"] = run.tax_checks.loc[mask, "gap_sales_fen"] * 6 // 5
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.gap_error", "UMB25")
    assert m.value > defaults()["tax_gap_tolerance"] and not m.passed


def test_a_platform_that_compares_nothing_fails(tmp_path):
    """--platform-mutant no-tax: declarations stored, GET /api/v1/tax-checks lists none."""
    run = make_run()
    assert run.tax_checks is not None
    run.tax_checks = run.tax_checks.iloc[0:0]
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    assert _value(record, "tax.declarations_not_compared", "UMB25") == 8
    assert _value(record, "tax.declarations_not_compared", "UMB44") == 12
    assert _value(record, "tax.under_declarations_missed", "UMB25") == 8


def test_a_platform_without_the_resource_fails(tmp_path):
    run = make_run()
    run.tax_offered = False
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    [fleet] = measurements(record, "TAX-1", "tax.periods_declared", None)
    assert fleet.evidence["tax_checks_offered"] is False


def test_a_period_not_yet_checked_is_incomplete(tmp_path):
    run = make_run()
    _set(run, _rows(run, "UMB44"), status="pending")
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "incomplete"
    [m] = measurements(record, "TAX-1", "tax.declarations_unchecked", "UMB44")
    assert m.scope and m.value == 1 and "pending" in m.evidence["unchecked"][0]


def test_a_pending_period_already_flagged_counts(tmp_path):
    run = make_run()
    _set(run, _rows(run, "UMB25"), status="pending")  # flagged stays True
    assert outcome(_check(tmp_path, run), "TAX-1") == "pass"


def test_declarations_handed_on_late_or_never_are_incomplete(tmp_path):
    run = make_run()
    assert run.inputs_posted is not None
    items = run.inputs_posted["items"]
    items[0] = dict(items[0], source="truth")  # posted after the observation
    items[1] = dict(items[1], status=None, error="no answer")
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "incomplete"
    [m] = measurements(record, "TAX-1", "tax.declarations_unchecked", "UMB25")
    assert m.value == 2


def test_a_refused_declaration_fails(tmp_path):
    run = make_run()
    assert run.inputs_posted is not None
    run.inputs_posted["items"][0] = dict(run.inputs_posted["items"][0], status=400)
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    assert _value(record, "tax.declarations_refused", "UMB25") == 1


def test_a_flag_on_a_period_nobody_declared_fails(tmp_path):
    run = make_run()
    assert run.tax_checks is not None
    stray = run.tax_checks.iloc[[0]].assign(id="x", period_start=1, period_end=2, flagged=True)
    run.tax_checks = pd.concat([run.tax_checks, stray], ignore_index=True)
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "fail"
    assert _value(record, "tax.flags_without_declaration", None) == 1


def test_a_grade_left_out_must_show_as_a_flagged_missing_declaration(tmp_path):
    run = make_run()
    truth = run.truth["tax_declarations"]
    omit = (truth["station_id"] == "UMB25") & (truth["grade"] == "0")
    truth.loc[omit, ["filed", "declared_volume_ml", "declared_amount_fen", "body"]] = [
        False, 0, 0, ""]
    truth.loc[omit, "gap_volume_ml"] = truth.loc[omit, "true_volume_ml"]
    truth.loc[omit, "gap_amount_fen"] = truth.loc[omit, "true_amount_fen"]
    assert run.inputs_posted is not None and run.tax_checks is not None
    run.inputs_posted["items"] = [i for i in run.inputs_posted["items"]
                                  if not (i["what"].startswith("UMB25")
                                          and i["what"].endswith("-0"))]
    checks = run.tax_checks
    left_out = (checks["station_id"] == "UMB25") & (checks["grade"] == "0")
    checks.loc[left_out, ["declaration_id", "reference", "declared_volume_ml",
                          "gap_volume_ml", "tolerance_volume_ml"]] = None
    checks.loc[left_out, "declared_sales_fen"] = 0
    checks.loc[left_out, "gap_sales_fen"] = checks.loc[left_out, "platform_sales_fen"]
    checks.loc[left_out, "missing_declaration"] = True
    assert outcome(_check(tmp_path / "a", run), "TAX-1") == "pass"
    run.tax_checks = checks[~left_out]  # a platform that never notices the missing grade
    record = _check(tmp_path / "b", run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.under_declarations_missed", "UMB25")
    assert m.value == 4 and "grade left out" in m.evidence["missed"][0]


def test_a_run_with_no_declaration_period_is_incomplete_and_says_why(tmp_path):
    run = make_run()
    run.truth["tax_declarations"] = run.truth["tax_declarations"].iloc[0:0]
    run.tax = None
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "incomplete"
    [m] = measurements(record, "TAX-1")
    assert m.name == "tax.periods_declared" and m.value == 0 and m.scope
    assert "no declaration period ended inside the run" in m.evidence["reason"]
    assert m.evidence["period"] == "calendar months"


def test_a_small_under_declaration_is_not_required(tmp_path):
    """Below the published tolerance an under-declaration cannot be told from the honest
    timing difference: not judged either way, and said so."""
    run = make_run()
    truth = run.truth["tax_declarations"]
    rows = late_sales(run.truth["transactions"], truth)
    assert all(required(r) for r in rows[rows["under_declared"]].itertuples(index=False))
    small = rows.iloc[[0]].assign(gap_amount_fen=9_000, gap_volume_ml=9_000)
    assert not required(next(small.itertuples(index=False)))
    # a platform that flags none of UMB25's periods, with every gap below the tolerance
    under = truth["station_id"] == "UMB25"
    truth.loc[under, "declared_amount_fen"] = truth.loc[under, "true_amount_fen"] - 5_000
    truth.loc[under, "declared_volume_ml"] = truth.loc[under, "true_volume_ml"] - 5_000
    truth.loc[under, "gap_amount_fen"] = 5_000
    truth.loc[under, "gap_volume_ml"] = 5_000
    assert run.tax_checks is not None
    _set(run, run.tax_checks["station_id"] == "UMB25", flagged=False)
    record = _check(tmp_path, run)
    assert outcome(record, "TAX-1") == "pass"
    [m] = measurements(record, "TAX-1", "tax.under_declarations_missed", "UMB25")
    assert len(m.evidence["below_tolerance_not_judged"]) == 8


def test_the_checker_reads_only_the_run_directory(tmp_path):
    root = make_run().write(tmp_path / "run")
    out = sales_cross_checked(RunData(root), defaults())
    assert {m.requirement for m in out} == {"TAX-1"}
    (root / "observed" / "tax_checks.parquet").unlink()
    with pytest.raises(Exception, match="tax_checks.parquet"):
        sales_cross_checked(RunData(root), defaults())
    info = json.loads((root / "run.json").read_text())
    assert info["inputs_posted"]["counts"]["tax_declaration"]["posted"] == 20


def _tax_alert(run: Run, ident: str, station: str, period_end: float,
               grade: str | None) -> None:
    """A `tax_under_declaration` alert as the reference platform raises it (§5.3)."""
    evidence = json.dumps({"grade": grade, "missing_declaration": True})
    alert = dict(id=ident, station_id=station, kind="tax_under_declaration", severity="warning",
                 as_of=period_end, raised_at=period_end + 60, status="open", detector="tax",
                 evidence=evidence)
    run.alerts = pd.concat([run.alerts, pd.DataFrame([alert])], ignore_index=True)


def test_a_tax_alert_at_an_honest_period_fails_though_the_final_comparison_is_clear(tmp_path):
    """A grade judged missing between two declarations of one filing: the alert stays,
    the final comparison no longer flags it. TAX-1 counts the alert (banner runs 19–21)."""
    run = make_run()
    truth = run.truth["tax_declarations"]
    honest = truth[truth["station_id"] == "UMB44"].iloc[0]
    cheated = truth[truth["station_id"] == "UMB25"].iloc[0]
    _tax_alert(run, "t1", "UMB25", float(cheated["period_end"]), str(cheated["grade"]))
    assert outcome(_check(tmp_path / "a", run), "TAX-1") == "pass"  # a right alert
    _tax_alert(run, "t2", "UMB44", float(honest["period_end"]), str(honest["grade"]))
    record = _check(tmp_path / "b", run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.false_flags", "UMB44")
    assert m.value == 1 and "alert t2 raised" in m.evidence["flagged_honest"][0]
    table = pd.DataFrame(record.tables["tax"])
    assert table["alerted"].sum() == 2
    assert table.loc[table["alerted"], "truth"].tolist().count("honest") == 1


def test_a_tax_alert_naming_no_grade_or_no_declared_period_fails(tmp_path):
    run = make_run()
    truth = run.truth["tax_declarations"]
    honest = truth[truth["station_id"] == "UMB44"].iloc[0]
    _tax_alert(run, "t3", "UMB44", float(honest["period_end"]), None)
    record = _check(tmp_path / "a", run)
    [m] = measurements(record, "TAX-1", "tax.false_flags", "UMB44")
    assert outcome(record, "TAX-1") == "fail" and m.value >= 1
    run = make_run()
    _tax_alert(run, "t4", "UMB44", 12345.0, "92")
    _tax_alert(run, "t5", "UMB44", float(honest["period_end"]), "no-such-grade")
    record = _check(tmp_path / "b", run)
    assert outcome(record, "TAX-1") == "fail"
    [m] = measurements(record, "TAX-1", "tax.flags_without_declaration", None)
    assert m.value == 2 and m.evidence["tax_alerts"] == 2
