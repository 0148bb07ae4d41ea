"""COM-1 (MUST): the platform serves the commerce bureau's operations analysis (商务运行分析) —
sales by town, ownership, grade and month, and each tank's monthly purchase–sales–inventory
balance (进销存) — and its figures are the ground truth's.

The truth's figures (acceptance/commerce.py) come from what the devices showed, so a
platform that holds every record exactly once with the device's values shows them exactly;
records the SUT lost, duplicated or altered (DAT-1, DAT-2) show up here as the cells and
balances they change. Measurements:

- `commerce.sales_cells_differing` (fleet): cells (month, town, ownership, grade) of
  GET /api/v1/commerce/sales whose stations, transactions, volume_ml or amount_fen differ
  from the truth's, or that one side lacks == 0 — exact to the mL and the fen;
- `commerce.stock_balances_differing` (per station): monthly balances (tank, month) of
  GET /api/v1/commerce/stock-balance that differ from the truth's, or that one side lacks
  == 0. The gauge's own figures (opening and closing readings and their times, deliveries,
  bills of lading, transactions, metered sales) must be equal; the 20 °C figures (sales,
  received, variance) within α(grade) × `stock_balance_temperature_c` × metered sales +
  0.5 mL per transaction and delivery + 1 mL: the conversion depends on which gauge
  temperature a platform applies to each fill, and adjacent readings differ by the probe's
  resolution (docs/noise-budget.md);
- `commerce.figures_in_truth` (fleet, scope): sales cells + balances the ground truth has
  ≥ 1 — a run with nothing to compare proves nothing: COM-1 is incomplete, not passed.

A platform that does not serve a resource (observed/commerce.json: an error answer) gets the
measurement with no value (it fails) and the reason. Months only partly inside the run are
partial periods: the evidence lists each month and whether it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acceptance.checkers.common import first
from acceptance.commerce import (
    BALANCE_CONVERTED,
    BALANCE_EXACT,
    SALES_KEY,
    SALES_VALUES,
    TruthFigures,
    partial_months,
)
from acceptance.compare import expected_records
from acceptance.record import Measurement
from acceptance.rundir import COMMERCE_TRUTH, RunData
from sim.vcf import alpha

RID = "COM-1"
ROUNDING_ML = 0.5  # per converted fill or drop a platform may round on its own
RESOURCES = {"commerce_sales": "GET /api/v1/commerce/sales",
             "stock_balance": "GET /api/v1/commerce/stock-balance"}


def _figures(data: RunData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth's sales cells and stock balances (computed once per run directory)."""
    def compute() -> tuple[pd.DataFrame, pd.DataFrame]:
        # station by station, so memory does not grow with the run's length; usually done
        # already by the comparison's pass over the stations (RunData.comparison)
        figures = TruthFigures(data.fleet, ZoneInfo(data.timezone))
        for _sid, truth in data.station_truths():
            figures.add(expected_records(truth, data.dialects))
        return figures.result()
    return data.derive(COMMERCE_TRUTH, compute)


def operations_analysis(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """COM-1: the platform's sales cells and monthly stock balances against the truth's."""
    zone = ZoneInfo(data.timezone)
    sales, balances = _figures(data)
    months = {m: "partial" if p else "whole"
              for m, p in partial_months(data.start, data.end, zone).items()}
    figures = len(sales) + len(balances)
    scope = Measurement(RID, "commerce.figures_in_truth", figures, ">=", 1, "figures",
                        evidence={"sales_cells": len(sales), "stock_balances": len(balances),
                                  "months": months}
                        | ({} if figures else {"reason": (
                            "nothing to compare: the ground truth has no sale and no tank "
                            "with two readings in one month; COM-1 was not exercised")}),
                        scope=True)
    return [scope, _sales(data, sales, months),
            *_balances(data, balances, months, float(criteria["stock_balance_temperature_c"]))]


def _not_served(data: RunData, name: str) -> str | None:
    """Why the platform's resource cannot be judged (None: it was served)."""
    info = data.commerce_served.get(name)
    if info is None:
        return f"the observer did not record {RESOURCES[name]} (observed/commerce.json)"
    if info.get("served"):
        return None
    return (f"the platform does not serve {info.get('resource', RESOURCES[name])}: "
            f"{info.get('error') or 'no answer'}")


def _not_received_once(data: RunData, stream: str, sid: str | None = None) -> int:
    recs = data.comparison.records
    bad = recs[(recs["stream"] == stream) & (recs["status"] != "received_once")]
    return int(len(bad if sid is None else bad[bad["station_id"] == sid]))


# ---- sales ------------------------------------------------------------------------------

def _sales(data: RunData, truth: pd.DataFrame, months: dict[str, str]) -> Measurement:
    name = "commerce.sales_cells_differing"
    why = _not_served(data, "commerce_sales")
    if why is not None:
        return Measurement(RID, name, None, "==", 0, "cells", evidence={"reason": why})
    got = _numeric(data.commerce_sales, SALES_VALUES)
    got = got.assign(**{k: got[k].astype(str) for k in SALES_KEY})
    merged = truth.merge(got[[*SALES_KEY, *SALES_VALUES]], on=list(SALES_KEY), how="outer",
                         suffixes=("_truth", "_platform"), indicator=True)
    differing = [_cell_text(r) for r in merged.to_dict("records") if _cell_differs(r)]
    evidence: dict[str, Any] = {
        "cells_in_truth": len(truth), "cells_at_platform": len(got), "months": months,
        "truth_totals": _totals(truth), "platform_totals": _totals(got),
        "differing": first(differing),
        "transactions_not_received_once": _not_received_once(data, "transactions")}
    if not len(truth):
        evidence["note"] = "no sale in the ground truth: only cells the platform invents count"
    return Measurement(RID, name, len(differing), "==", 0, "cells", evidence=evidence)


def _numeric(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    return df.assign(**{c: pd.to_numeric(df[c], errors="coerce") for c in columns})


def _cell_differs(r: Mapping[Any, Any]) -> bool:
    return r["_merge"] != "both" or any(
        _ne(r[f"{v}_truth"], r[f"{v}_platform"]) for v in SALES_VALUES)


def _cell_text(r: Mapping[Any, Any]) -> str:
    cell = " ".join(str(r[k]) for k in SALES_KEY)
    if r["_merge"] == "left_only":
        return f"{cell}: missing at the platform (truth {_values(r, 'truth')})"
    if r["_merge"] == "right_only":
        return f"{cell}: not in the truth (platform {_values(r, 'platform')})"
    diffs = [f"{v} truth {_int(r[f'{v}_truth'])}, platform {_int(r[f'{v}_platform'])}"
             for v in SALES_VALUES if _ne(r[f"{v}_truth"], r[f"{v}_platform"])]
    return f"{cell}: " + "; ".join(diffs)


def _values(r: Mapping[Any, Any], side: str) -> str:
    return ", ".join(f"{v} {_int(r[f'{v}_{side}'])}" for v in SALES_VALUES)


def _totals(df: pd.DataFrame) -> dict[str, Any]:
    return {"transactions": int(df["transactions"].fillna(0).sum()),
            "volume_l": round(float(df["volume_ml"].fillna(0).sum()) / 1000, 3),
            "amount_yuan": round(float(df["amount_fen"].fillna(0).sum()) / 100, 2)}


# ---- stock balances ---------------------------------------------------------------------

def _platform_balances(data: RunData) -> pd.DataFrame:
    got = _numeric(data.stock_balance, [c for c in (*BALANCE_EXACT, *BALANCE_CONVERTED, "tank")
                                        if c != "grade"])
    return got.assign(station_id=got["station_id"].astype(str),
                      month=got["month"].astype(str), grade=got["grade"].astype(str))


def _judgements(data: RunData, step_c: float) -> pd.DataFrame:
    """Every balance of either side: station_id, tank, month, `problem` (what differs; None
    when it agrees), `gap`/`tol` (largest |20 °C difference| and its tolerance; NaN unless
    both sides have it)."""
    def judge() -> pd.DataFrame:
        truth = _figures(data)[1]
        got = _platform_balances(data)
        merged = truth.merge(got, on=["station_id", "tank", "month"], how="outer",
                             suffixes=("_truth", "_platform"), indicator=True)
        rows = []
        for r in merged.to_dict("records"):
            problem, gap = _balance_problem(r, step_c)
            rows.append({"station_id": str(r["station_id"]), "tank": int(r["tank"]),
                         "month": str(r["month"]), "problem": problem,
                         "gap": math.nan if gap is None else gap[0],
                         "tol": math.nan if gap is None else gap[1]})
        return pd.DataFrame(rows, columns=["station_id", "tank", "month", "problem", "gap",
                                           "tol"])
    return data.derive(f"commerce:judgements:{step_c}", judge)


def _balances(data: RunData, truth: pd.DataFrame, months: dict[str, str],
              step_c: float) -> list[Measurement]:
    name = "commerce.stock_balances_differing"
    why = _not_served(data, "stock_balance")
    if why is not None:
        return [Measurement(RID, name, None, "==", 0, "balances", evidence={"reason": why})]
    got = _platform_balances(data)
    judged = _judgements(data, step_c)
    rule = (f"exact: {', '.join(BALANCE_EXACT)}; within α(grade) × {step_c:g} °C × sales_ml "
            f"+ {ROUNDING_ML:g} mL × (transactions + deliveries + 2): "
            f"{', '.join(BALANCE_CONVERTED)}")
    out = []
    ids = list(data.station_ids)
    ids += sorted(set(got["station_id"]) - set(ids))
    for sid in ids:
        mine_t = truth[truth["station_id"] == sid]
        mine = judged[judged["station_id"] == sid]
        differing = [str(p) for p in mine["problem"] if p is not None and p == p]
        evidence: dict[str, Any] = {
            "balances_in_truth": len(mine_t),
            "balances_at_platform": int((got["station_id"] == sid).sum()),
            "months": months, "partial_balances": _partial(mine_t), "rule": rule,
            "differing": first(differing),
            "records_not_received_once": {s: _not_received_once(data, s, sid) for s in
                                          ("transactions", "inventory", "deliveries")}}
        matched = mine[mine["tol"].notna()]
        if len(matched):  # the balance closest to (or furthest over) its tolerance
            over = (matched["gap"] - matched["tol"]).to_numpy(np.float64)
            gap, tol = matched[["gap", "tol"]].to_numpy(np.float64)[int(np.argmax(over))]
            # inf: the platform gave no such figure
            evidence["largest_20c_difference_ml"] = None if math.isinf(gap) else float(gap)
            evidence["its_tolerance_ml"] = round(float(tol), 1)
        if not len(mine_t):
            evidence["note"] = "no tank of the station has two readings in one month"
        out.append(Measurement(RID, name, len(differing), "==", 0, "balances", sid,
                               evidence=evidence))
    return out


def _partial(rows: pd.DataFrame) -> list[str]:
    part = rows[rows["partial"].astype(bool)] if len(rows) else rows
    return first(f"tank {t} {m}" for t, m in zip(part["tank"].astype(int),
                                                  part["month"].astype(str), strict=True))


def _balance_problem(r: Mapping[Any, Any], step_c: float
                     ) -> tuple[str | None, tuple[float, float] | None]:
    """(what differs, or None; (largest |20 °C difference|, its tolerance) when matched)."""
    where = f"tank {int(r['tank'])} {r['month']}"
    if r["_merge"] == "left_only":
        return (f"{where}: missing at the platform (truth variance "
                f"{_int(r['variance_ml_truth'])} mL)"), None
    if r["_merge"] == "right_only":
        return (f"{where}: not in the truth (platform variance "
                f"{_int(r['variance_ml_platform'])} mL)"), None
    diffs = [f"{f} truth {_show(r[f'{f}_truth'])}, platform {_show(r[f'{f}_platform'])}"
             for f in BALANCE_EXACT if _ne(r[f"{f}_truth"], r[f"{f}_platform"])]
    tol = (alpha(str(r["grade_truth"])) * step_c * float(r["sales_ml_truth"])
           + ROUNDING_ML * (int(r["transactions_truth"]) + int(r["deliveries_truth"]) + 2))
    gap = 0.0
    for f in BALANCE_CONVERTED:
        got = r[f"{f}_platform"]
        d = math.inf if _missing(got) else abs(float(got) - float(r[f"{f}_truth"]))
        gap = max(gap, d)
        if d > tol:
            diffs.append(f"{f} truth {_int(r[f'{f}_truth'])}, platform {_show(got)} "
                         f"(tolerance {tol:.0f} mL)")
    return (f"{where}: " + "; ".join(diffs) if diffs else None), (gap, tol)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ne(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) != _missing(b)
    if isinstance(a, str) or isinstance(b, str):
        return str(a) != str(b)
    return float(a) != float(b)


def _int(v: Any) -> Any:
    return None if _missing(v) else int(v) if isinstance(v, int | float | np.number) else v


def _show(v: Any) -> Any:
    return _int(v) if not isinstance(v, str) else v



# ---- report tables (record.json `tables`: the city report's commerce section) ----------

def sales_table(data: RunData) -> pd.DataFrame | None:
    """The platform's sales cells as served (None: it did not serve them)."""
    if _not_served(data, "commerce_sales") is not None:
        return None
    got = _numeric(data.commerce_sales, SALES_VALUES)
    return got[[*SALES_KEY, *SALES_VALUES]].sort_values(list(SALES_KEY))


def stock_balance_table(data: RunData, criteria: dict[str, Any]) -> pd.DataFrame | None:
    """The platform's monthly balances as served, each with `agrees`: whether COM-1 found
    it equal to the truth's (None: not served)."""
    if _not_served(data, "stock_balance") is not None:
        return None
    got = _platform_balances(data)
    judged = _judgements(data, float(criteria["stock_balance_temperature_c"]))
    agrees = {(s, int(t), m): not isinstance(p, str) for s, t, m, p in zip(
        judged["station_id"], judged["tank"], judged["month"], judged["problem"], strict=True)}
    cols = ["station_id", "tank", "grade", "month", "partial", "opening_volume_20c_ml",
            "received_20c_ml", "bol_volume_20c_ml", "sales_20c_ml", "closing_volume_20c_ml",
            "variance_ml", "variance_pct_of_sales"]
    out = got[cols].copy()
    out["agrees"] = [agrees.get((s, int(t), m), False) for s, t, m in
                     zip(out["station_id"], out["tank"], out["month"], strict=True)]
    return out.sort_values(["station_id", "tank", "month"])
