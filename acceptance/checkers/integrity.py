"""DAT-1, DAT-2, DAT-4: transactions exactly once with the device's values, deliveries
received — from the ground truth ↔ platform comparison (acceptance/compare.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from acceptance.checkers.common import (
    count,
    per_device,
    record_keys,
    scope,
    status_counts,
    stream_records,
)
from acceptance.record import Measurement
from acceptance.rundir import RunData

_DROPPED_NOTE = ("lost in the device FIFO (overflow): the collector did not drain it in "
                 "time")


def transactions_exactly_once(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """DAT-1: per station, transactions lost (including those a device FIFO dropped before
    any collector read them), duplicated, and unexpected (at the platform, not in the
    truth) — each must be 0."""
    recs = stream_records(data, "transactions")
    counts = status_counts(recs)
    out = []
    for sid in scope(data, recs):
        mine = recs[recs["station_id"] == sid]
        expected = int((mine["status"] != "unexpected").sum())
        lost = mine[mine["status"] == "lost"]
        dropped = lost[lost["dropped_at_device"]]
        lost_ev = {"expected": expected, "by_device": per_device(mine, ("lost",)),
                   "records": record_keys(lost), "dropped_at_device": len(dropped)}
        if len(dropped):
            lost_ev["dropped_note"] = _DROPPED_NOTE
            lost_ev["dropped_records"] = record_keys(dropped)
        out.append(Measurement("DAT-1", "transactions.lost", count(counts, sid, "lost"), "==",
                               0, "records", sid, evidence=lost_ev))
        dup = mine[mine["status"] == "duplicated"]
        out.append(Measurement(
            "DAT-1", "transactions.duplicated", count(counts, sid, "duplicated"), "==", 0,
            "records", sid, evidence={"expected": expected,
                                      "by_device": per_device(mine, ("duplicated",)),
                                      "records": record_keys(dup, with_detail=True)}))
        extra = mine[mine["status"] == "unexpected"]
        out.append(Measurement(
            "DAT-1", "transactions.unexpected", count(counts, sid, "unexpected"), "==", 0,
            "records", sid, evidence={"by_device": per_device(mine, ("unexpected",)),
                                      "records": record_keys(extra)}))
    return out


def transaction_values(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """DAT-2: per station, transactions at the platform whose values differ from what the
    dispenser showed, at its register resolution (any copy, if duplicated) — must be 0."""
    recs = stream_records(data, "transactions")
    out = []
    for sid in scope(data, recs):
        mine = recs[recs["station_id"] == sid]
        altered = _altered(mine)
        fields = Counter(f for names in altered["altered"] for f in names.split(",") if f)
        out.append(Measurement(
            "DAT-2", "transactions.altered", len(altered), "==", 0, "records", sid,
            evidence={"compared": int(mine["status"].isin(
                          ["received_once", "altered", "duplicated"]).sum()),
                      "fields": dict(sorted(fields.items())),
                      "by_device": {str(k): int(v) for k, v in
                                    sorted(altered.groupby("device").size().items())},
                      "records": record_keys(altered, with_detail=True)}))
    return out


def _altered(records: pd.DataFrame) -> pd.DataFrame:
    return records[(records["status"] == "altered")
                   | ((records["status"] == "duplicated") & (records["altered"] != ""))]


def deliveries_received(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """DAT-4: per station, deliveries the gauge recorded that are not at the platform
    exactly once with the gauge's values, and delivery records the gauge never made —
    each must be 0."""
    recs = stream_records(data, "deliveries")
    out = []
    for sid in scope(data, recs):
        mine = recs[recs["station_id"] == sid]
        truth = mine[mine["status"] != "unexpected"]
        bad = truth[truth["status"] != "received_once"]
        extra = mine[mine["status"] == "unexpected"]
        out.append(Measurement(
            "DAT-4", "deliveries.not_received_once", len(bad), "==", 0, "records", sid,
            evidence={"expected": len(truth),
                      "by_status": {s: int(n) for s, n in
                                    sorted(bad.groupby("status").size().items())},
                      "dropped_at_device": int(bad["dropped_at_device"].sum()),
                      "records": record_keys(bad, with_detail=True)}))
        out.append(Measurement(
            "DAT-4", "deliveries.unexpected", len(extra), "==", 0, "records", sid,
            evidence={"records": record_keys(extra)}))
    return out
