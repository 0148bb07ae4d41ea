"""MET-1 (计量器具强制检定, 三方签字) on hand-made run directories: the correct run (a lapsed
verification and an unsigned record, both flagged, the audit faithful) passes; a finding not
flagged, flagged at the wrong dispenser, an unsigned change not flagged, signed work
flagged, a platform without an audit or a refused record each fail with the finding named;
a run with nothing to judge, or one that ends before the limit, proves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from test_checkers import (
    CHEAT,
    END,
    HOUR,
    LAPSE,
    METROLOGY_ALERTS,
    START,
    WALL0,
    Run,
    faithful_metrology,
    make_run,
    outcome,
    verification_record,
)

from acceptance.check import check_run
from acceptance.record import RunRecord
from sim.ledger import schema


def met1(record: RunRecord, name: str | None = None) -> list:
    return [m for m in record.measurements if m.requirement == "MET-1"
            and (name is None or m.name == name)]


def checked(run: Run, tmp_path: Path) -> RunRecord:
    return check_run(run.write(tmp_path / "run"))


def alerts(*extra: dict[str, Any], drop: tuple[str, ...] = ()) -> pd.DataFrame:
    base = [dict(id="a1", station_id="UMB25", kind="meter_skim", severity="warning",
                 as_of=END - 3600, raised_at=WALL0, device="D1", nozzle=2, tank=2,
                 status="open"), *METROLOGY_ALERTS]
    return pd.DataFrame([a for a in base if a["id"] not in drop] + list(extra))


def table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=schema(name).names)


def test_the_correct_run_passes_and_its_ledger_names_each_finding(tmp_path: Path) -> None:
    record = checked(make_run(), tmp_path)
    assert outcome(record, "MET-1") == "pass", [m for m in met1(record) if not m.passed]
    flags = met1(record, "metrology.days_to_flag")
    assert sorted((m.station_id, m.evidence["finding"], m.value) for m in flags) == [
        ("UMB25", "unsigned_record", 0.0), ("UMB44", "expired", 0.0)]
    (judged,) = met1(record, "metrology.findings_judged")
    assert judged.value == 2 and judged.scope
    ledger = {(r["station_id"], r["finding"]): r for r in record.tables["metrology_findings"]}
    assert ledger[("UMB44", "expired")]["outcome"] == "in_time"
    assert ledger[("UMB25", "unsigned_record")]["responsible"] == "旗市场监管局"
    status = {(r["station_id"], r["device"]): r["status"] for r in record.tables["metrology"]}
    assert status == {("UMB25", "D1"): "valid", ("UMB25", "D2"): "valid",
                      ("UMB44", "D1"): "valid", ("UMB44", "D2"): "valid"}  # renewed late


def test_an_expired_verification_not_flagged_fails(tmp_path: Path) -> None:
    run = make_run()
    run.alerts = alerts(drop=("m1",))
    record = checked(run, tmp_path)
    assert outcome(record, "MET-1") == "fail"
    (bad,) = [m for m in met1(record, "metrology.days_to_flag") if not m.passed]
    assert bad.station_id == "UMB44" and bad.value is None and not bad.scope
    assert bad.evidence["finding"] == "expired" and bad.evidence["device"] == "D2"
    assert "not flagged" in bad.evidence["reason"]


def test_a_flag_at_the_wrong_dispenser_does_not_count(tmp_path: Path) -> None:
    run = make_run()
    run.alerts = alerts({**METROLOGY_ALERTS[0], "id": "m9", "device": "D1"}, drop=("m1",))
    record = checked(run, tmp_path)
    assert outcome(record, "MET-1") == "fail"
    bad = [m for m in met1(record, "metrology.days_to_flag") if not m.passed]
    assert bad[0].evidence["alerts_elsewhere"] == [
        f"verification_expired D1 as_of {LAPSE[2]}"]
    (unexplained,) = met1(record, "metrology.unexplained_flags")
    assert unexplained.value == 1


def test_an_unsigned_change_must_be_flagged_by_the_identity_alerts(tmp_path: Path) -> None:
    # a counterfeit mainboard fitted at the start (the run's two days = the 2-day limit)
    swap = dict(CHEAT, cheat=5, kind="mainboard_swap", **{"class": "PART"}, device="D1",
                dispenser=1, nozzle=0, first_start=START, last_end=END,
                trace='["ids", "seal", "tank_gain"]',
                expected_alerts='["component_change", "seal_broken", "tank_gain"]',
                attribution="device")
    run = make_run()
    run.truth["cheat_instances"] = table("cheat_instances", [CHEAT, swap])
    record = checked(run, tmp_path)
    assert outcome(record, "MET-1") == "fail"
    (bad,) = [m for m in met1(record, "metrology.days_to_flag") if not m.passed]
    assert bad.evidence["finding"] == "unsigned_change" and bad.evidence["kind"] == \
        "mainboard_swap"
    assert bad.limit == 2.0 and bad.evidence["alert_kinds"] == ["component_change",
                                                               "seal_broken"]
    run.alerts = alerts(dict(id="p1", station_id="UMB25", kind="component_change",
                             severity="critical", as_of=START + 24 * HOUR, raised_at=WALL0,
                             device="D1", nozzle=None, tank=None, status="open"))
    record = checked(run, tmp_path / "flagged")
    assert outcome(record, "MET-1") == "pass"


def test_signed_work_flagged_fails(tmp_path: Path) -> None:
    run = make_run()
    run.alerts = alerts(
        dict(id="x1", station_id="UMB25", kind="record_unsigned", severity="warning",
             as_of=START - 100 * 86400.0, raised_at=WALL0, device="D1", nozzle=None,
             tank=None, status="open"),
        dict(id="x2", station_id="UMB44", kind="seal_broken", severity="critical",
             as_of=START + 31 * HOUR, raised_at=WALL0, device="D2", nozzle=None, tank=None,
             status="open"))
    record = checked(run, tmp_path)
    assert outcome(record, "MET-1") == "fail"
    (m,) = met1(record, "metrology.unexplained_flags")
    assert m.value == 2 and m.evidence["metrology_alerts_without_finding"] == 1
    assert m.evidence["identity_alerts_without_cheat"] == 1


def test_a_platform_without_an_audit_or_with_a_wrong_status_fails(tmp_path: Path) -> None:
    run = make_run()
    run.metrology = None
    record = checked(run, tmp_path / "none")
    assert outcome(record, "MET-1") == "fail"
    wrong = met1(record, "metrology.audit_status_wrong")
    assert [m.value for m in wrong] == [2, 2] and "offers no metrology audit" in \
        wrong[0].evidence["reason"]
    run = make_run()  # the audit taken at noon on day 1, UMB44 D2 expired then: "valid"
    audit = faithful_metrology(run.truth, as_of=START + 12 * HOUR)
    audit.loc[(audit["station_id"] == "UMB44") & (audit["device"] == "D2"), "status"] = "valid"
    audit["unsigned_records"] = json.dumps([])
    run.metrology = audit
    record = checked(run, tmp_path / "wrong")
    assert outcome(record, "MET-1") == "fail"
    (m,) = [m for m in met1(record, "metrology.audit_status_wrong") if not m.passed]
    assert m.evidence["wrong"] == [f"D2: valid at {START + 12 * HOUR:.0f}, truth expired"]
    (m,) = [m for m in met1(record, "metrology.audit_unlisted") if not m.passed]
    assert "unsigned record" in m.evidence["unlisted"][0]


def test_a_refused_record_fails(tmp_path: Path) -> None:
    run = make_run()
    assert run.inputs_posted is not None
    run.inputs_posted["items"].append(
        {"kind": "verification_record", "what": "UMB25/D2 maintenance WX-UMB25-D2-002",
         "status": 400, "error": "bad_body: signatures.verifier", "wall": WALL0,
         "sim_time": START + 8 * HOUR, "produced_at": START + 8 * HOUR, "source": "devices"})
    record = checked(run, tmp_path)
    assert outcome(record, "MET-1") == "fail"
    (m,) = met1(record, "metrology.records_refused")
    assert m.value == 1 and m.evidence["refused"][0].startswith("UMB25 WX-UMB25-D2-002")


def test_nothing_to_judge_or_a_run_too_short_proves_nothing(tmp_path: Path) -> None:
    run = make_run()  # only the periodic verifications before the run: nothing to flag
    recs = [verification_record(sid, dev, START - 100 * 86400.0)
            for sid in ("UMB25", "UMB44") for dev in ("D1", "D2")]
    run.truth["verification_records"] = table("verification_records", recs)
    run.truth["verification_lapses"] = table("verification_lapses", [])
    run.alerts = alerts(drop=("m1", "m2"))
    run.metrology = faithful_metrology(run.truth)
    record = checked(run, tmp_path / "nothing")
    assert outcome(record, "MET-1") == "incomplete"
    (m,) = met1(record, "metrology.findings_judged")
    assert m.value == 0 and "not exercised" in m.evidence["reason"]
    # a verification that lapses six hours before the end, not flagged yet: not a miss
    expiry = END - 6 * HOUR
    recs[3] = verification_record("UMB44", "D2", expiry - 182 * 86400.0)
    run.truth["verification_records"] = table("verification_records", recs)
    run.truth["verification_lapses"] = table("verification_lapses", [dict(
        station_id="UMB44", device="D2", cheat=0, performed_at=expiry - 182 * 86400.0,
        expired_at=expiry, renewed_at=END + 86400.0)])  # renewed after the run
    run.metrology = faithful_metrology(run.truth)
    record = checked(run, tmp_path / "short")
    assert outcome(record, "MET-1") == "incomplete"
    (m,) = met1(record, "metrology.days_to_flag")
    assert m.value is None and m.scope and "run too short" in m.evidence["reason"]
