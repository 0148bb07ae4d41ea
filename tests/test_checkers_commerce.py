"""COM-1 (商务运行分析) on hand-made run directories: the correct run passes; a lost or altered
transaction, a balance off its tolerance, a resource the platform does not serve each fail
with the cells or balances named; a run with nothing to compare proves nothing. And the
oracle's figures equal the reference platform's for the same records (two independent
implementations of docs/platform-api.md §5.15)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from test_checkers import DIALECTS, FLEET, Run, faithful_commerce, make_run, outcome

from acceptance.check import check_run
from acceptance.checkers.commerce import _figures
from acceptance.commerce import (
    merge_sales,
    month_of,
    partial_months,
    truth_balances,
    truth_sales,
)
from acceptance.criteria import defaults
from acceptance.record import RunRecord
from acceptance.rundir import COMMERCE_TRUTH, RunData
from sim.vcf import alpha

ZONE = ZoneInfo("Asia/Shanghai")
APR = 1774972800
TOWNS = {"UMB25": ("石哈河镇", "private"), "UMB44": ("新忽热苏木", "state")}


def com1(record: RunRecord, name: str | None = None) -> list:
    return [m for m in record.measurements if m.requirement == "COM-1"
            and (name is None or m.name == name)]


def checked(run: Run, tmp_path: Path) -> RunRecord:
    return check_run(run.write(tmp_path / "run"))


def test_correct_run_passes(tmp_path: Path) -> None:
    record = checked(make_run(), tmp_path)
    assert outcome(record, "COM-1") == "pass"
    scope = com1(record, "commerce.figures_in_truth")[0]
    assert scope.value == 10 and scope.evidence["months"] == {"2026-04": "partial"}
    sales = com1(record, "commerce.sales_cells_differing")[0]
    assert sales.value == 0 and sales.station_id is None
    assert sales.evidence["truth_totals"] == sales.evidence["platform_totals"]
    balances = com1(record, "commerce.stock_balances_differing")
    assert {m.station_id: m.value for m in balances} == {"UMB25": 0, "UMB44": 0}
    assert balances[0].evidence["partial_balances"] == ["tank 1 2026-04", "tank 2 2026-04"]


def _lost(run: Run, index: int = 5) -> dict[str, Any]:
    """The run's truth without one transaction: what a platform that lost it holds."""
    tx = run.truth["transactions"]
    return {**run.truth, "transactions": tx.drop(index=tx.index[index]).reset_index(drop=True)}


def test_a_lost_transaction_fails_with_its_cell(tmp_path: Path) -> None:
    run = make_run()
    gone = run.truth["transactions"].iloc[5]
    run.commerce = faithful_commerce(_lost(run), run.drops)
    t = run.observed["transactions"]
    run.observed["transactions"] = t[~((t["station_id"] == gone.station_id)
                                       & (t["seq"] == gone.seq))]
    record = checked(run, tmp_path)
    assert outcome(record, "COM-1") == "fail"
    sales = com1(record, "commerce.sales_cells_differing")[0]
    assert sales.value == 1
    (cell,) = sales.evidence["differing"]
    town, owner = TOWNS[gone.station_id]
    assert cell.startswith(f"2026-04 {town} {owner} {gone.grade}: "), cell
    assert "transactions truth" in cell and "volume_ml truth" in cell, cell
    assert sales.evidence["transactions_not_received_once"] == 1
    bad = {m.station_id: m for m in com1(record, "commerce.stock_balances_differing")}
    assert bad[gone.station_id].value == 1 and bad[gone.station_id].passed is False
    (balance,) = bad[gone.station_id].evidence["differing"]
    assert balance.startswith(f"tank {gone.tank} 2026-04: ") and "sales_ml truth" in balance


def test_an_altered_transaction_fails(tmp_path: Path) -> None:
    run = make_run()
    truth = dict(run.truth)
    tx = truth["transactions"].copy()
    tx.loc[3, "amount_fen"] += 100  # the platform books ¥1 more on one fill
    truth["transactions"] = tx
    run.commerce = faithful_commerce(truth, run.drops)
    record = checked(run, tmp_path)
    sales = com1(record, "commerce.sales_cells_differing")[0]
    assert sales.value == 1 and not sales.passed
    (cell,) = sales.evidence["differing"]
    assert "amount_fen truth" in cell and "volume_ml" not in cell
    # the balance has no amounts: it still agrees
    assert all(m.passed for m in com1(record, "commerce.stock_balances_differing"))


def test_cells_missing_or_invented_are_named(tmp_path: Path) -> None:
    run = make_run()
    frames, served = run.commerce
    sales = frames["commerce_sales"]
    extra = sales.iloc[[0]].assign(town="不存在镇")
    frames["commerce_sales"] = pd.concat([sales.iloc[1:], extra], ignore_index=True)
    record = checked(run, tmp_path)
    m = com1(record, "commerce.sales_cells_differing")[0]
    assert m.value == 2
    texts = " | ".join(m.evidence["differing"])
    assert "missing at the platform" in texts and "不存在镇" in texts


def test_balance_tolerance_is_the_20c_conversion(tmp_path: Path) -> None:
    run = make_run()
    bal = run.commerce[0]["stock_balance"]
    row = bal.iloc[0]
    tol = (alpha(row["grade"]) * defaults()["stock_balance_temperature_c"] * row["sales_ml"]
           + 0.5 * (row["transactions"] + row["deliveries"] + 2))
    assert tol > 20  # tens of mL on a partial day
    inside = int(tol) - 1
    bal.loc[0, "variance_ml"] += inside
    bal.loc[0, "sales_20c_ml"] -= inside
    record = checked(run, tmp_path / "inside")
    assert outcome(record, "COM-1") == "pass"
    m = next(m for m in com1(record, "commerce.stock_balances_differing")
             if m.station_id == row["station_id"])
    assert m.evidence["largest_20c_difference_ml"] == inside
    bal.loc[0, "variance_ml"] += 5
    record = checked(run, tmp_path / "outside")
    m = next(m for m in com1(record, "commerce.stock_balances_differing")
             if m.station_id == row["station_id"])
    assert m.value == 1 and "variance_ml truth" in m.evidence["differing"][0]


def test_the_gauge_figures_must_be_equal(tmp_path: Path) -> None:
    run = make_run()
    bal = run.commerce[0]["stock_balance"]
    bal.loc[1, "opening_volume_20c_ml"] += 100  # one count of the gauge's 0.1 L
    bal.loc[2, "bol_volume_20c_ml"] = 1
    record = checked(run, tmp_path)
    texts = [t for m in com1(record, "commerce.stock_balances_differing")
             for t in m.evidence["differing"]]
    assert len(texts) == 2 and outcome(record, "COM-1") == "fail"
    assert any("opening_volume_20c_ml truth" in t for t in texts)
    assert any("bol_volume_20c_ml truth 0, platform 1" in t for t in texts)


@pytest.mark.parametrize("resource", ["commerce_sales", "stock_balance"])
def test_a_resource_not_served_fails_with_the_reason(tmp_path: Path, resource: str) -> None:
    run = make_run()
    frames, served = run.commerce
    frames[resource] = frames[resource].iloc[0:0]
    served[resource] = {"resource": "GET /api/v1/x", "served": False, "status": 404,
                        "error": "platform API http://x/api/v1/x: HTTP 404: not_found"}
    record = checked(run, tmp_path)
    assert outcome(record, "COM-1") == "fail"
    name = {"commerce_sales": "commerce.sales_cells_differing",
            "stock_balance": "commerce.stock_balances_differing"}[resource]
    (m,) = com1(record, name)
    assert m.value is None and "does not serve GET /api/v1/x" in m.evidence["reason"]
    assert "HTTP 404" in m.evidence["reason"]


def test_observations_missing_is_an_error(tmp_path: Path) -> None:
    run = make_run()
    run.commerce = None  # an observer that never read the commerce resources
    record = checked(run, tmp_path)
    assert outcome(record, "COM-1") == "error"
    error = next(r for r in record.requirements if r.id == "COM-1").error
    assert "observed/commerce.json" in error


def test_nothing_to_compare_is_not_a_pass(tmp_path: Path) -> None:
    run = make_run()
    truth = dict(run.truth)
    for table in ("transactions", "tank_states", "deliveries"):
        truth[table] = truth[table].iloc[0:0]
    run.truth = truth
    run.commerce = faithful_commerce(truth, run.drops)
    record = checked(run, tmp_path)
    assert outcome(record, "COM-1") == "incomplete"
    scope = com1(record, "commerce.figures_in_truth")[0]
    assert scope.value == 0 and "nothing to compare" in scope.evidence["reason"]
    assert all(m.passed for m in com1(record) if m.name != "commerce.figures_in_truth")


def test_partial_months() -> None:
    assert partial_months(APR, APR + 86400, ZONE) == {"2026-04": True}
    may = month_of(APR + 31 * 86400, ZONE)
    assert partial_months(APR, may.end, ZONE) == {"2026-04": False, "2026-05": False}
    assert partial_months(APR - 3600, APR + 3600, ZONE) == {"2026-03": True, "2026-04": True}


# ---- the oracle and the reference platform agree --------------------------------------

def _sign(topic: str, payload: dict[str, Any], key_hex: str) -> bytes:
    body = dict(payload, kid="k1")
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body["sig"] = hmac.new(bytes.fromhex(key_hex), topic.encode() + b"\n" + canon.encode(),
                           hashlib.sha256).hexdigest()
    return json.dumps(body, ensure_ascii=False).encode()


def test_oracle_equals_the_reference_platform(tmp_path: Path) -> None:
    from central.checks import Inbound
    from central.commerce import sales_cells, station_balances
    from central.db import Database
    from central.keys import parse_key_file
    from central.migrate import migrate
    from central.registry import import_registry, load_registry
    from central.store import Ingestor
    from central.vcf import Vcf
    from scenarios.fleet import load_fleet

    run = make_run()
    keys = {sid: hashlib.sha256(sid.encode()).hexdigest() for sid in DIALECTS}
    ring = parse_key_file(json.dumps({"format": "forecourt-keys/1", "stations": {
        sid: {"active": "k1", "keys": {"k1": k}} for sid, k in keys.items()}}), "keys")
    registry = load_registry(FLEET)
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    migrate(db)
    msgs, seq = [], 0
    kinds = {"transactions": "transaction", "inventory": "inventory", "deliveries": "delivery"}
    for stream, kind in kinds.items():
        frame = run.observed[stream].drop(columns=["received_at", "msg_seq"])
        for (sid, dev), part in frame.groupby(["station_id", "device"]):
            recs = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()
                     if k not in ("station_id", "device") and not (stream == "inventory"
                                                                  and k == "time")}
                    for r in part.to_dict("records")]
            for i in range(0, len(recs), 100):
                seq += 1
                topic = f"fsx/v1/{sid}/{dev}/evt/{kind}"
                msgs.append(Inbound(topic, _sign(topic, {
                    "v": 1, "type": kind, "station_id": sid, "msg_seq": seq, "sent_at": 1.9e9,
                    "device": dev, "records": recs[i:i + 100]}, keys[sid]), 1.9e9))
    with db.borrow() as conn:
        import_registry(conn, registry)
        ing = Ingestor(conn, {s.station_id: s for s in registry}, lambda: ring, 600.0,
                       lambda: 1.9e9)
        outs = ing.process(msgs)
        assert all(o.status == "stored" and not o.rejected for o in outs), outs[:3]
        platform_sales = pd.DataFrame(sales_cells(conn, ZONE))
        platform_bal = pd.DataFrame([b for sid in DIALECTS
                                     for b in station_balances(conn, sid, ZONE, Vcf())])
    fleet = [r for r in load_fleet(FLEET)[0] if r["station_id"] in DIALECTS]
    expected = _expected(run)
    oracle_sales = truth_sales(expected["transactions"], fleet, ZONE)
    oracle_bal = truth_balances(expected, fleet, ZONE)
    cols = list(oracle_sales.columns)
    assert platform_sales[cols].to_dict("records") == oracle_sales.to_dict("records")
    cols = list(oracle_bal.columns)
    assert platform_bal[cols].to_dict("records") == oracle_bal.to_dict("records")
    assert (oracle_bal["deliveries"] > 0).any()  # the drop is in a balance


def _expected(run: Run) -> dict[str, pd.DataFrame]:
    from acceptance.compare import Truth, expected_records

    t = Truth(run.truth["transactions"], run.truth["tank_states"].assign(
        inventory_seq=run.truth["tank_states"]["inventory_seq"].astype(float)),
        run.truth["deliveries"], run.truth["events"], run.drops)
    return expected_records(t, DIALECTS)


def test_sales_cells_station_by_station_equal_the_whole() -> None:
    """The checker computes the truth's cells one station at a time (a long run's truth does
    not fit whole): merged, they must equal the cells of all stations at once, including a
    cell two stations share (its `stations` count)."""
    fleet = [{"station_id": s, "town": "乌加河镇", "ownership": "private"}
             for s in ("A", "B", "C")]
    tx = pd.DataFrame({"station_id": ["A", "A", "B", "C", "C"],
                       "grade": ["92", "0", "92", "92", "92"],
                       "end_time": [APR + 10, APR + 20, APR + 30, APR + 40, APR + 31 * 86400],
                       "volume_ml": [1000, 2000, 3000, 4000, 5000],
                       "amount_fen": [700, 1400, 2100, 2800, 3500]})
    whole = truth_sales(tx, fleet, ZONE)
    parts = [truth_sales(tx[tx["station_id"] == s], fleet, ZONE) for s in ("A", "B", "C")]
    pd.testing.assert_frame_equal(merge_sales(parts), whole)
    assert whole.loc[whole["grade"] == "92", "stations"].tolist() == [3, 1]
    assert merge_sales([parts[0].iloc[:0]]).empty


def test_the_comparisons_pass_builds_the_same_figures(tmp_path: Path) -> None:
    """The truth's figures come from the comparison's pass over the stations (its expected
    records, built once) or, without it, from COM-1's own pass: the same frames."""
    root = make_run().write(tmp_path / "run")
    shared = RunData(root)
    assert len(shared.comparison.records)
    assert COMMERCE_TRUTH in shared._memo  # built by that pass, before COM-1 asked
    alone = RunData(root)
    want = _figures(alone)
    assert "comparison" not in alone.__dict__  # COM-1's own pass
    for got, expected in zip(_figures(shared), want, strict=True):
        assert len(expected)
        pd.testing.assert_frame_equal(got, expected)
