"""COV-1 and COV-2: every station on line, every dispenser, nozzle and tank reporting
(全覆盖、无死角)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from acceptance.checkers.availability import seen_online
from acceptance.checkers.common import first
from acceptance.compare import STREAMS
from acceptance.record import Measurement
from acceptance.rundir import RunData


def collectors_on_line(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """COV-1: per station, was its collector seen on line at the platform during the run
    (any availability sample, or the registry at the end); fleet-wide, the share of the
    stations in scope that were (must be 1)."""
    seen = seen_online(data)
    out = []
    never = []
    for sid in data.station_ids:
        info = seen.get(sid, {"samples": 0, "online_samples": 0, "first_online_sim": None,
                              "in_registry": False})
        on = info["online_samples"] > 0 or info.get("platform_online_at_end", False)
        if not on:
            never.append(sid)
        out.append(Measurement("COV-1", "collector.seen_on_line", int(on), "==", 1, "bool",
                               sid, evidence=dict(sorted(info.items()))))
    n = len(data.station_ids)
    ratio = (n - len(never)) / n if n else None
    out.append(Measurement(
        "COV-1", "stations.on_line_ratio", ratio, "==", 1.0, "ratio", None,
        evidence={"stations": n, "on_line": n - len(never), "never_on_line": first(never),
                  "never_on_line_total": len(never)}))
    return out


def equipment_reporting(data: RunData, criteria: dict[str, Any]) -> list[Measurement]:
    """COV-2: per station, nozzles that sold in the ground truth without a transaction at
    the platform, tanks without an inventory reading there, devices never seen (no record,
    never on line, no device clock reported) — each must be 0."""
    nozzles = data.truth_table("nozzles")
    tanks = data.truth_table("tanks")
    # distinct (station, nozzle) pairs only: the records themselves are millions in a long run
    truth_tx = data.truth_table("transactions", ("station_id", "dispenser", "nozzle")) \
        .drop_duplicates()
    plat_tx = data.observed_columns("transactions", ("station_id", "device", "nozzle")) \
        .drop_duplicates()
    plat_inv = data.observed_columns("inventory", ("station_id", "tank")).drop_duplicates()
    devices_seen = _devices_seen(data)
    out = []
    for sid in data.station_ids:
        noz = nozzles[nozzles["station_id"] == sid]
        sold = _nozzle_keys(truth_tx[truth_tx["station_id"] == sid], "dispenser")
        reported = _platform_nozzle_keys(plat_tx[plat_tx["station_id"].astype(str) == sid])
        all_nozzles = sorted(_nozzle_keys(noz, "dispenser"))
        silent = [k for k in all_nozzles if k in sold and k not in reported]
        idle = [k for k in all_nozzles if k not in sold]
        out.append(Measurement(
            "COV-2", "nozzles.not_reporting", len(silent), "==", 0, "nozzles", sid,
            evidence={"nozzles": len(all_nozzles), "sold_in_truth": len(sold),
                      "not_reporting": first(silent),
                      "idle_not_checkable": first(idle)}))
        tank_ids = sorted(int(t) for t in tanks.loc[tanks["station_id"] == sid, "tank"])
        inv = plat_inv[plat_inv["station_id"].astype(str) == sid]
        with_inv = set(pd.to_numeric(inv["tank"], errors="coerce").dropna().astype(int))
        missing_tanks = [t for t in tank_ids if t not in with_inv]
        out.append(Measurement(
            "COV-2", "tanks.not_reporting", len(missing_tanks), "==", 0, "tanks", sid,
            evidence={"tanks": len(tank_ids), "not_reporting": first(missing_tanks)}))
        expected = (["G"] if tank_ids else []) + [
            f"D{d}" for d in sorted({int(x) for x in noz["dispenser"]})]
        unseen = [d for d in expected if d not in devices_seen.get(sid, set())]
        out.append(Measurement(
            "COV-2", "devices.not_seen", len(unseen), "==", 0, "devices", sid,
            evidence={"devices": expected, "not_seen": unseen}))
    return out


def _nozzle_keys(df: pd.DataFrame, dispenser_col: str) -> set[str]:
    return {f"D{int(d)}/{int(n)}" for d, n in zip(df[dispenser_col], df["nozzle"], strict=True)}


def _platform_nozzle_keys(df: pd.DataFrame) -> set[str]:
    nozzle = pd.to_numeric(df["nozzle"], errors="coerce")
    ok = nozzle.notna()
    return {f"{d}/{int(n)}" for d, n in zip(df.loc[ok, "device"].astype(str), nozzle[ok],
                                            strict=True)}


def _devices_seen(data: RunData) -> dict[str, set[str]]:
    """Station → devices the platform shows: records from it, an on-line sample, or a
    device clock reported in the registry."""
    seen: dict[str, set[str]] = {}
    for stream in STREAMS:
        frame = data.observed_columns(stream, ("station_id", "device"))
        for sid, dev in frame[["station_id", "device"]].astype(str).drop_duplicates() \
                .itertuples(index=False):
            seen.setdefault(sid, set()).add(dev)
    av = data.availability
    for sid, dev in av.loc[av["online"] & (av["device"] != ""), ["station_id", "device"]] \
            .drop_duplicates().itertuples(index=False):
        seen.setdefault(str(sid), set()).add(str(dev))
    for st in data.stations_doc:
        for dev in st.get("devices") or []:
            if dev.get("device_time") is not None or dev.get("online"):
                seen.setdefault(str(st.get("station_id")), set()).add(str(dev.get("device")))
    return seen
