"""Checkers, criteria, the catalogue and check_run on hand-made run directories.

`make_run()` builds a small, correct run in memory — two stations of the banner's ledger
(UMB25 int_be, UMB44 f32_le) over two days: ground truth in the ledger's Parquet schema, a
platform that holds exactly what the devices showed, availability samples with the
harness's three faults (off line only inside their windows), SUT resource samples with a
warm-up, a real-time segment with latencies. Each test breaks it in exactly one way and
checks that the right requirements fail — and that the correct run passes them all.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from acceptance.check import check_run
from acceptance.checkers.availability import split_by_day
from acceptance.checkers.stability import longest_run
from acceptance.compare import Truth, expected_records
from acceptance.criteria import CRITERIA, CriteriaError, defaults, resolve_criteria
from acceptance.record import RunRecord
from acceptance.requirements import CATALOGUE, DOC, by_id, check_catalogue, render_doc
from acceptance.rundir import RunData, RunDataError
from devices.runner import DROPS_SCHEMA
from scenarios.loader import scenario_digest
from sim.ledger import TABLES, schema

REPO = Path(__file__).resolve().parent.parent
FLEET = REPO / "scenarios" / "fleets" / "urad-middle-banner.csv"
START = 1774972800.0  # 2026-04-01T00:00:00+08:00
DAYS = 2
END = START + DAYS * 86400.0
HOUR = 3600.0
INTERVAL = HOUR  # inventory interval of this run
COMPRESSION = 60.0  # simulated s per wall s: the faults' grace (120 s wall) is 2 h simulated
WALL0 = 1.9e9
MIB = 1024 * 1024
DIALECTS = {"UMB25": "int_be", "UMB44": "f32_le"}
# (dispenser, nozzle, tank, grade) per station, as in the fleet ledger
NOZZLES = {"UMB25": [(1, 1, 1, "92"), (1, 2, 2, "0"), (2, 1, 1, "92"), (2, 2, 2, "0")],
           "UMB44": [(1, 1, 1, "92"), (1, 2, 3, "0"), (2, 1, 2, "95"), (2, 2, 3, "0")]}
TANKS = {"UMB25": [(1, "92", 20), (2, "0", 30)],
         "UMB44": [(1, "92", 30), (2, "95", 20), (3, "0", 20)]}
PRICE = {"92": 703, "95": 752, "0": 671}
FAULTS = [  # kind, station, device, sim start (h from start), duration (h)
    ("collector_crash", "UMB25", None, 6.0, 10 / 60),
    ("network_cut", "UMB44", None, 20.0, 2.0),
    ("device_silent", "UMB25", "D1", 34.0, 1.0),
]
REQUIRED = ("COV-1", "COV-2", "DAT-1", "DAT-2", "DAT-3", "DAT-4", "DAT-5", "DAT-6", "STB-1",
            "ALM-PULSE", "ALM-PART", "ALM-DATA", "ALM-PRICE", "ALM-STOCK", "ALM-DELIV",
            "ALM-FP", "TAX-1", "MET-1", "CRD-1")
TAX_PERIOD = 12 * HOUR  # the run's (shortened) tax declaration period
TAX_SHARE = {"UMB25": 0.5, "UMB44": 1.0}  # UMB25 declares half of its sales (a cheat)
# one cheat (a 3 % skim on UMB25 D1 nozzle 2 from day 2) and the platform's alert for it
SKIM_START = START + 30 * 3600.0
CHEAT = dict(station_id="UMB25", cheat=0, kind="pulse_factor", **{"class": "PULSE"},
             lookalike=False, device="D1", dispenser=1, nozzle=2, tank=2,
             first_start=SKIM_START, last_end=END, active_s=END - SKIM_START,
             effect_l=30.0, effect_l_per_day=40.0, trace='["tank_gain"]',
             expected_alerts='["tank_gain", "meter_skim"]', attribution="nozzle",
             params='{"factor": 1.03}')


def wall(sim: float) -> float:
    return WALL0 + (sim - START) / COMPRESSION


# ---- a correct run, in memory -----------------------------------------------------------

def _truth() -> dict[str, pd.DataFrame]:
    tx, states, deliveries, events, nozzles, tanks = [], [], [], [], [], []
    for sid in DIALECTS:
        totals = {}
        seqs = {1: 100, 2: 65534}  # the second dispenser's sequence wraps
        for disp, noz, tank, grade in NOZZLES[sid]:
            nozzles.append(dict(station_id=sid, dispenser=disp, nozzle=noz, grade=grade,
                                tank=tank, volume_total_open_ml=1_000_000 * disp + noz * 10,
                                amount_total_open_fen=700_000 * disp, serial_number=f"SN{disp}"))
            totals[(disp, noz)] = [1_000_000 * disp + noz * 10, 700_000 * disp]
        for day in range(DAYS):
            for k in range(3):  # three fills per nozzle and day
                for disp, noz, tank, grade in NOZZLES[sid]:
                    t0 = START + day * 86400 + (7 + 5 * k) * HOUR + 300 * disp + 60 * noz + 0.4
                    volume = 30_000 + 10 * (k + 3 * day + 7 * noz)
                    amount = round(volume * PRICE[grade] / 1000)
                    vt, at = totals[(disp, noz)]
                    totals[(disp, noz)] = [vt + volume, at + amount]
                    seq = seqs[disp]
                    seqs[disp] = (seq + 1) % 65536
                    tx.append(dict(station_id=sid, dispenser=disp, nozzle=noz, grade=grade,
                                   tank=tank, seq=seq, txn_no=seq, start_time=t0,
                                   end_time=t0 + 75.3, true_volume_l=volume / 1000,
                                   displayed_volume_ml=volume, amount_fen=amount,
                                   unit_price_fen=PRICE[grade], volume_total_before_ml=vt,
                                   volume_total_after_ml=vt + volume,
                                   amount_total_before_fen=at, amount_total_after_fen=at + amount,
                                   vehicle="car", fill_type="full"))
        inv_seq = 500
        for k in range(int((END - START) / INTERVAL) + 1):  # start … end inclusive
            for tank, _grade, m3 in TANKS[sid]:
                states.append(dict(
                    station_id=sid, tank=tank, time=START + k * INTERVAL, kind="interval",
                    gauge_level_mm=1200.0 + 10 * tank - 0.37 * k,
                    gauge_water_level_mm=0.0 if tank != 2 else 12.3,
                    gauge_temperature_c=8.5 + 0.01 * k, gauge_gross_l=15000.0 - 3.1 * k,
                    gauge_volume_20c_l=14900.0 - 3.1 * k, gauge_ullage_l=m3 * 1000 - 15000.0,
                    gauge_water_l=0.0 if tank != 2 else 20.5, inventory_seq=inv_seq))
                inv_seq += 1
        for dev in ["G", "D1", "D2"]:
            events.append(dict(station_id=sid, device=dev, seq=1, time=START, code=1,
                               name="power_up", unit=0, value_old=0.0, value_new=0.0))
        for tank, grade, m3 in TANKS[sid]:
            tanks.append(dict(station_id=sid, tank=tank, grade=grade, nominal_m3=m3,
                              capacity_l=m3 * 1000.0))
    # one delivery: UMB25 tank 2, day 1 10:00-10:40, with the gauge's delivery events
    d0, d1 = START + 10 * HOUR + 12.5, START + 10 * HOUR + 2412.5
    reading = dict(level_mm=900.0, water_level_mm=12.3, temperature_c=7.9, gross_l=9000.0,
                   volume_20c_l=9100.0, ullage_l=21000.0, water_l=20.5)
    after = {**reading, "level_mm": 1500.0, "gross_l": 19000.0, "volume_20c_l": 19150.0,
             "ullage_l": 11000.0}
    deliveries.append(dict(station_id="UMB25", tank=2, seq=7, grade="0", ordered_time=START,
                           start_time=d0, end_time=d1, bol_volume_20c_l=10000.0,
                           **{f"start_{k}": v for k, v in reading.items()},
                           **{f"end_{k}": v for k, v in after.items()}))
    for kind, t, r in (("pre_delivery", d0, reading), ("post_delivery", d1, after)):
        states.append(dict(station_id="UMB25", tank=2, time=t, kind=kind, inventory_seq=None,
                           **{f"gauge_{k}": v for k, v in r.items()}))
    events += [dict(station_id="UMB25", device="G", seq=2, time=d0, code=50,
                    name="delivery_start", unit=2, value_old=0.0, value_new=9000.0),
               dict(station_id="UMB25", device="G", seq=3, time=d1, code=51,
                    name="delivery_end", unit=2, value_old=9000.0, value_new=19000.0)]
    frames = {"transactions": tx, "tank_states": states, "deliveries": deliveries,
              "events": events, "nozzles": nozzles, "tanks": tanks, "cheats": [],
              "cheat_instances": [CHEAT], "tax_declarations": _declarations(pd.DataFrame(tx)),
              **_metrology_truth()}
    out = {}
    for table in TABLES:
        sch = schema(table)
        df = pd.DataFrame(frames.get(table, []), columns=sch.names)
        if table == "tank_states":  # station order, then time (as the ledger writes)
            df = df.sort_values(["station_id", "time", "tank"], kind="stable")
        for f in sch:
            if pa.types.is_string(f.type):
                df[f.name] = df[f.name].astype(object).where(df[f.name].notna(), "")
            elif f.nullable:
                df[f.name] = df[f.name].astype("Int64" if f.name == "inventory_seq" else float)
            else:
                df[f.name] = df[f.name].fillna(0).astype(f.type.to_pandas_dtype())
        out[table] = df.reset_index(drop=True)
    return out


def _declarations(tx: pd.DataFrame) -> list[dict[str, Any]]:
    """Every grade sold, every 12 h: what each station declared (UMB25 half of it) and sold."""
    rows = []
    for sid in DIALECTS:
        for k in range(int(DAYS * 86400 / TAX_PERIOD)):
            a, b = START + k * TAX_PERIOD, START + (k + 1) * TAX_PERIOD
            for grade in sorted({g for *_, g in NOZZLES[sid]}):
                m = ((tx["station_id"] == sid) & (tx["grade"] == grade)
                     & (tx["end_time"] >= a) & (tx["end_time"] < b))
                vol, amt = int(tx.loc[m, "displayed_volume_ml"].sum()), int(tx.loc[m, "amount_fen"].sum())
                share = TAX_SHARE[sid]
                dv, da = round(vol * share), round(amt * share)
                ref = f"TAX-{sid}-{k}-{grade}"
                body = json.dumps({"station_id": sid, "period_start": a, "period_end": b,
                                   "grade": grade, "declared_sales_fen": da, "reference": ref})
                rows.append(dict(station_id=sid, period_start=a, period_end=b, grade=grade,
                                 reference=ref, filed=True, filed_at=b + HOUR, booked_from=a,
                                 booked_to=b, declared_volume_ml=dv, declared_amount_fen=da,
                                 declared_tax_base_fen=round(da / 1.13),
                                 declared_tax_fen=round(da / 1.13 * 0.13), true_volume_ml=vol,
                                 true_amount_fen=amt, true_transactions=int(m.sum()),
                                 gap_volume_ml=vol - dv, gap_amount_fen=amt - da,
                                 under_declared=share < 1, cheat=1 if share < 1 else -1,
                                 declared_share=share, body=body))
    return rows


# The metrology paperwork (MET-1): every dispenser's verification before the run; UMB44's D2
# lapses at 06:00 on day 1 and is verified late at 06:00 on day 2; UMB25's D2 gets a
# maintenance record at 08:00 that the verification institute did not sign.
LAPSE = ("UMB44", "D2", START + 6 * HOUR, START + 30 * HOUR)
UNSIGNED = ("UMB25", "D2", START + 8 * HOUR)
VALIDITY = 182 * 86400.0
METROLOGY_ALERTS = [
    dict(id="m1", station_id="UMB44", kind="verification_expired", severity="warning",
         as_of=LAPSE[2], raised_at=WALL0, device="D2", nozzle=None, tank=None, status="open"),
    dict(id="m2", station_id="UMB25", kind="record_unsigned", severity="warning",
         as_of=UNSIGNED[2], raised_at=WALL0, device="D2", nozzle=1, tank=None, status="open")]


def verification_record(sid: str, dev: str, t: float, kind: str = "verification",
                        missing: str = "", cheat: int = -1, mismatch: bool = False,
                        n: int = 1) -> dict[str, Any]:
    """A verification_records truth row (docs/ground-truth.md) with its body."""
    cert = f"{'JD' if kind == 'verification' else 'WX'}-{sid}-{dev}-{n:03d}"
    signed = {k: k for k in ("maintainer", "verifier", "station") if k != missing}
    body = {"station_id": sid, "device": dev, "kind": kind, "certificate_no": cert,
            "organisation": "计量所", "signatures": signed, "performed_at": t}
    return dict(station_id=sid, cheat=cheat, device=dev, nozzle=0, performed_at=t, kind=kind,
                body=json.dumps(body, ensure_ascii=False),
                valid_until=t + VALIDITY if kind == "verification" else float("nan"),
                fully_signed=not missing, missing_signatures=missing, seal_mismatch=mismatch)


def _metrology_truth() -> dict[str, list[dict[str, Any]]]:
    recs = []
    for sid in DIALECTS:
        for dev in ("D1", "D2"):
            opening = LAPSE[2] - VALIDITY if (sid, dev) == LAPSE[:2] else START - 100 * 86400.0
            recs.append(verification_record(sid, dev, opening))
    recs.append(verification_record(*UNSIGNED, kind="maintenance", missing="verifier",
                                    cheat=3, n=2))
    recs.append(verification_record(*LAPSE[:2], LAPSE[3], cheat=2, n=2))
    lapses = [dict(station_id=LAPSE[0], device=LAPSE[1], cheat=2,
                   performed_at=LAPSE[2] - VALIDITY, expired_at=LAPSE[2],
                   renewed_at=LAPSE[3])]
    return {"verification_records": recs, "verification_lapses": lapses}


def faithful_metrology(truth: dict[str, pd.DataFrame], as_of: float = END) -> pd.DataFrame:
    """GET /api/v1/metrology of a platform that audits what it was posted, at `as_of`."""
    recs = truth["verification_records"]
    rows = []
    for sid in DIALECTS:
        for dev in ("D1", "D2"):
            mine = recs[(recs["station_id"] == sid) & (recs["device"] == dev)
                        & (recs["performed_at"] <= as_of)]
            valid_until = float(mine["valid_until"].max())
            unsigned = [{"kind": "record_unsigned", "time": int(r.performed_at),
                         "record": {"performed_at": r.performed_at, "kind": r.kind}}
                        for r in mine[~mine["fully_signed"]].itertuples(index=False)]
            rows.append(dict(station_id=sid, device=dev, as_of=int(as_of),
                             status="valid" if valid_until > as_of else "expired",
                             valid_until=valid_until, overdue_since=None, overdue_days=None,
                             records=len(mine), flagged=bool(unsigned),
                             last_verification=json.dumps(None), expired=json.dumps([]),
                             unsigned_records=json.dumps(unsigned),
                             seal_mismatches=json.dumps([]), unsigned_changes=json.dumps([])))
    return pd.DataFrame(rows)


def _tax_checks(truth: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What the reference platform lists for those declarations (central/tax.py's rule)."""
    from central.tax import TOLERANCE_SALES_FEN, TOLERANCE_VOLUME_ML, tolerance

    tx = truth["transactions"]
    rows = []
    for i, d in enumerate(truth["tax_declarations"].itertuples(index=False)):
        m = ((tx["station_id"] == d.station_id) & (tx["grade"] == d.grade)
             & (tx["end_time"] >= d.period_end - 1800) & (tx["end_time"] < d.period_end))
        late_v, late_a = int(tx.loc[m, "displayed_volume_ml"].sum()), int(tx.loc[m, "amount_fen"].sum())
        tol_a = tolerance(late_a, d.true_amount_fen, TOLERANCE_SALES_FEN)
        tol_v = tolerance(late_v, d.true_volume_ml, TOLERANCE_VOLUME_ML)
        rows.append(dict(
            id=f"decl-{i}", station_id=d.station_id, declaration_id=f"decl-{i}",
            reference=d.reference, grade=d.grade, period_start=int(d.period_start),
            period_end=int(d.period_end), declared_volume_ml=d.declared_volume_ml,
            declared_sales_fen=d.declared_amount_fen, platform_volume_ml=d.true_volume_ml,
            platform_sales_fen=d.true_amount_fen, transactions=d.true_transactions,
            gap_volume_ml=d.gap_volume_ml, gap_sales_fen=d.gap_amount_fen,
            tolerance_volume_ml=tol_v, tolerance_sales_fen=tol_a,
            flagged=bool(d.gap_amount_fen > tol_a or d.gap_volume_ml > tol_v),
            missing_declaration=False, status="checked"))
    return pd.DataFrame(rows)


def _posted(truth: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """run.json inputs_posted: every filed declaration posted (201) as the world filed it."""
    items = [{"kind": "tax_declaration", "what": f"{d.station_id} {d.reference}",
              "status": 201, "error": None, "wall": wall(d.filed_at), "sim_time": d.filed_at,
              "produced_at": d.filed_at, "source": "devices"}
             for d in truth["tax_declarations"].itertuples(index=False) if d.filed]
    return {"counts": {"tax_declaration": {"posted": len(items), "already_there": 0,
                                           "failed": 0}}, "items": items}


def _platform(truth: dict[str, pd.DataFrame], drops: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A faithful platform: what the devices showed, with keys and delivery metadata."""
    t = Truth(truth["transactions"], truth["tank_states"].assign(
        inventory_seq=truth["tank_states"]["inventory_seq"].astype(float)),
        truth["deliveries"], truth["events"], drops)
    out = {}
    for stream, exp in expected_records(t, DIALECTS).items():
        rows = exp.drop(columns=["time"])
        rows.insert(0, "key", [f"{r.station_id}/{r.device}/{stream}/{r.seq}/{r.device_time}"
                               for r in rows.itertuples()])
        if stream in ("transactions", "deliveries"):
            rows = rows.drop(columns=["device_time"])
        out[stream] = rows.assign(collected_at=WALL0, received_at=WALL0, msg_seq=1)
    return out


def _availability() -> pd.DataFrame:
    """Every 30 simulated minutes, each station's collector and devices; off line only in
    the faults' windows (and, for a collector, until the platform's timeout noticed it)."""
    rows = []
    for k in range(int(DAYS * 48) + 1):
        sim = START + k * 1800.0
        for sid in DIALECTS:
            for dev in ("", "G", "D1", "D2"):
                online = True
                for _kind, fsid, fdev, at, dur in FAULTS:
                    inside = START + at * HOUR <= sim < START + (at + dur) * HOUR + 1800
                    if fsid == sid and inside and (fdev is None or fdev == dev):
                        online = False
                rows.append(dict(station_id=sid, device=dev, wall_time=wall(sim),
                                 sim_time=sim, online=online))
    # the drain after the world ended: sim time stands still
    for sid in DIALECTS:
        for dev in ("", "G", "D1", "D2"):
            rows.append(dict(station_id=sid, device=dev, wall_time=wall(END) + 30,
                             sim_time=END, online=True))
    return pd.DataFrame(rows)


def _resources(growth_mib_per_day: float = 0.0) -> pd.DataFrame:
    rows = []
    procs = [("platform", 100, START, END), ("collector:UMB25", 200, START, START + 6 * HOUR),
             ("collector:UMB25", 201, START + 6.2 * HOUR, END),
             ("collector:UMB44", 300, START, END),
             # the harness's own processes are sampled too, and never judged by STB-1
             ("harness", 400, START, END), ("devices", 500, START, END)]
    for role, pid, t0, t1 in procs:
        for i, sim in enumerate(np.arange(t0, t1 + 1, HOUR / 2)):
            age_h = (sim - t0) / HOUR
            warmup = 12.0 * min(age_h / 3.0, 1.0)  # one-off growth in the first 3 hours
            jitter = 0.2 if i % 2 else -0.2
            rss = 60.0 + warmup + jitter + growth_mib_per_day * (sim - START) / 86400
            rows.append(dict(role=role, pid=pid, wall_time=wall(sim), sim_time=sim,
                             rss_bytes=int(rss * MIB), cpu_seconds=0.5 * i))
    return pd.DataFrame(rows)


def _latency(seconds: float = 1.5) -> pd.DataFrame:
    rows = []
    for i in range(40):
        sid = "UMB25" if i % 2 else "UMB44"
        emitted = wall(END - HOUR) + 0.0 + 60 * i / 2
        rows.append(dict(key=f"{sid}/D1/transactions/{i}/{int(END - HOUR) + i}",
                         station_id=sid, stream="transactions", emitted_wall=emitted,
                         visible_wall=emitted + seconds * (0.5 + (i % 5) / 4)))
    return pd.DataFrame(rows)


def _timeline() -> list[dict[str, Any]]:
    out = [dict(kind=kind, station_id=sid, device=dev, sim_start=START + at * HOUR,
                sim_end=START + (at + dur) * HOUR, wall_start=wall(START + at * HOUR),
                wall_end=wall(START + (at + dur) * HOUR), detail={})
           for kind, sid, dev, at, dur in FAULTS]
    out.append(dict(kind="real_time_segment", station_id=None, device=None,
                    sim_start=END - HOUR, sim_end=END, wall_start=wall(END - HOUR),
                    wall_end=wall(END - HOUR) + HOUR, detail={"compression": 1}))
    return out


def _stations() -> list[dict[str, Any]]:
    return [{"station_id": sid, "collector": {"heard": True, "online": True},
             "devices": [{"device": d, "online": True, "device_time": int(END)}
                         for d in ("G", "D1", "D2")]} for sid in DIALECTS]


@dataclass
class Run:
    truth: dict[str, pd.DataFrame]
    drops: pd.DataFrame
    observed: dict[str, pd.DataFrame]
    stations: list[dict[str, Any]]
    availability: pd.DataFrame
    resources: pd.DataFrame
    latency: pd.DataFrame | None
    timeline: list[dict[str, Any]]
    # two days: STB-1 is held to the run's days (a shortened stability check)
    criteria: dict[str, Any] = field(default_factory=lambda: {"stability_days": "run"})
    reconciliation: pd.DataFrame | None = None
    # the commerce resources as observed and observed/commerce.json (None: not written)
    commerce: tuple[dict[str, pd.DataFrame], dict[str, Any]] | None = None
    alerts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame([dict(
        id="a1", station_id="UMB25", kind="meter_skim", severity="warning", as_of=END - 3600,
        raised_at=WALL0, device="D1", nozzle=2, tank=2, status="open"), *METROLOGY_ALERTS]))
    metrology: pd.DataFrame | None = None  # GET /api/v1/metrology (None: not written)
    tax_checks: pd.DataFrame | None = None  # GET /api/v1/tax-checks (None: not written)
    tax_offered: bool = True
    inputs_posted: dict[str, Any] | None = None  # run.json inputs_posted
    tax: dict[str, Any] | None = field(default_factory=lambda: {"period_days": 0.5})
    # GET /api/v1/credit (None: the reference platform's grades of `alerts` as written) and
    # observed/credit.json (None: neither file is written)
    credit: pd.DataFrame | None = None
    credit_served: dict[str, Any] | None = field(default_factory=lambda: {
        "resource": "GET /api/v1/credit", "served": True})
    security: dict[str, Any] | None = field(default_factory=lambda: faithful_security())

    def write(self, root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FLEET, root / "fleet.csv")
        scenario = {"name": "checkers-test", "seed": 7, "start": "2026-04-01T00:00:00+08:00",
                    "days": DAYS, "fleet": "fleet.csv", "stations": list(DIALECTS),
                    "criteria": self.criteria}
        if self.tax is not None:
            scenario["tax"] = self.tax
        (root / "scenario.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
        digest = scenario_digest((root / "scenario.yaml").read_bytes(), FLEET.read_bytes())
        truth = root / "truth"
        truth.mkdir()
        files = {}
        for table, df in self.truth.items():
            pq.write_table(pa.Table.from_pandas(df, schema=schema(table), preserve_index=False),
                           truth / f"{table}.parquet")
            files[f"{table}.parquet"] = {"rows": len(df)}
        pq.write_table(pa.Table.from_pandas(self.drops, schema=DROPS_SCHEMA,
                                            preserve_index=False), truth / "fifo_drops.parquet")
        _json(truth / "manifest.json", {
            "format": "forecourt-truth/1", "layout": "tables", "complete": True,
            "scenario": {"name": "checkers-test", "digest": digest}, "seed": 7,
            "start": START, "end": END, "days": DAYS, "timezone": "Asia/Shanghai",
            "inventory_interval_s": INTERVAL, "stations": list(DIALECTS),
            "simulated_until": {s: END for s in DIALECTS}, "files": files})
        (root / "devices").mkdir()
        _json(root / "devices" / "endpoints.json",
              {"stations": {s: {"dialect": d} for s, d in DIALECTS.items()}})
        (root / "observed").mkdir()
        for stream, df in self.observed.items():
            df.to_parquet(root / "observed" / f"{stream}.parquet", index=False)
        _json(root / "observed" / "stations.json", self.stations)
        self.availability.to_parquet(root / "observed" / "availability.parquet", index=False)
        self.alerts.to_parquet(root / "observed" / "alerts.parquet", index=False)
        if self.metrology is not None:
            self.metrology.to_parquet(root / "observed" / "metrology.parquet", index=False)
            _json(root / "observed" / "metrology.json", {"offered": True})
        if self.tax_checks is not None:
            self.tax_checks.to_parquet(root / "observed" / "tax_checks.parquet", index=False)
            _json(root / "observed" / "tax_checks.json", {"offered": self.tax_offered})
        if self.reconciliation is not None:
            self.reconciliation.to_parquet(root / "observed" / "reconciliation.parquet",
                                           index=False)
        if self.credit_served is not None:
            credit = self.credit if self.credit is not None else faithful_credit(self.alerts)
            credit.to_parquet(root / "observed" / "credit.parquet", index=False)
            _json(root / "observed" / "credit.json", {**self.credit_served, "items": len(credit)})
        if self.commerce is not None:
            for name, df in self.commerce[0].items():
                df.to_parquet(root / "observed" / f"{name}.parquet", index=False)
            _json(root / "observed" / "commerce.json", self.commerce[1])
        self.resources.to_parquet(root / "resources.parquet", index=False)
        if self.latency is not None:
            self.latency.to_parquet(root / "latency.parquet", index=False)
        _json(root / "timeline.json", self.timeline)
        if self.security is not None:
            _json(root / "security.json", self.security)
        _json(root / "run.json", {"run_id": "test-run", "seed": 7,
                                  "harness": {"version": "0.1.0", "git_commit": "0" * 40},
                                  "sut": {"collector": "reference", "platform": "reference"},
                                  "wall_start": WALL0, "wall_end": wall(END) + 60,
                                  **({"inputs_posted": self.inputs_posted}
                                     if self.inputs_posted is not None else {})})
        return root


def _json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def make_run() -> Run:
    truth = _truth()
    drops = pd.DataFrame(columns=DROPS_SCHEMA.names).astype(
        {"station_id": str, "device": str, "stream": str, "seq": "int32", "time": float,
         "dropped_total": "int64"})
    recon = pd.DataFrame([dict(station_id="UMB25", tank=1, day="2026-04-01", variance_ml=-1200,
                               cumulative_variance_pct_of_sales=-0.05)])
    return Run(truth, drops, _platform(truth, drops), _stations(), _availability(),
               _resources(), _latency(), _timeline(), reconciliation=recon,
               tax_checks=_tax_checks(truth), inputs_posted=_posted(truth),
               commerce=faithful_commerce(truth, drops), metrology=faithful_metrology(truth))


def faithful_commerce(truth: dict[str, pd.DataFrame], drops: pd.DataFrame
                      ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """GET /commerce/sales and /commerce/stock-balance of a platform that holds what the
    devices showed (the published definitions, acceptance/commerce.py)."""
    from zoneinfo import ZoneInfo

    from acceptance.commerce import month_of, truth_balances, truth_sales
    from scenarios.fleet import load_fleet

    zone = ZoneInfo("Asia/Shanghai")
    fleet = [r for r in load_fleet(FLEET)[0] if r["station_id"] in DIALECTS]
    t = Truth(truth["transactions"], truth["tank_states"].assign(
        inventory_seq=truth["tank_states"]["inventory_seq"].astype(float)),
        truth["deliveries"], truth["events"], drops)
    expected = expected_records(t, DIALECTS)
    sales = truth_sales(expected["transactions"], fleet, zone)
    balances = truth_balances(expected, fleet, zone)
    for df in (sales, balances):
        bounds = [month_of(int(pd.Timestamp(f"{m}-15T00:00+08:00").timestamp()), zone)
                  for m in df["month"]]
        df["period_start"] = [b.start for b in bounds]
        df["period_end"] = [b.end for b in bounds]
    balances["variance_pct_of_sales"] = [
        round(100 * v / s, 4) if s else None
        for v, s in zip(balances["variance_ml"], balances["sales_20c_ml"], strict=True)]
    served = {"commerce_sales": {"resource": "GET /api/v1/commerce/sales", "served": True,
                                 "items": len(sales)},
              "stock_balance": {"resource": "GET /api/v1/commerce/stock-balance",
                                "served": True, "items": len(balances)}}
    return {"commerce_sales": sales, "stock_balance": balances}, served


def faithful_security() -> dict[str, Any]:
    """security.json of an attack phase that a correct SUT refused throughout."""
    def attempt(ident: str, layer: str, outcome: str, platform: str | None = None,
                markers: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"id": ident, "actor": "dishonest_station", "action": ident, "target": "t",
                "layer": layer, "expected": ["rejected"], "outcome": outcome,
                "platform_outcome": platform, "passed": True, "station_id": "UMB25",
                "marker_keys": list(markers), "note": ""}

    return {"broker_accounts": True, "monitor": "fc-harness", "rejection_sample": True,
            "honest_ingest": {"stations": 2, "progressed": ["UMB25", "UMB44"]},
            "attempts": [attempt("anonymous-subscribe-all", "broker", "refused"),
                         attempt("tampered", "platform", "delivered", "rejected:bad_signature",
                                 ("UMB25/D1/transactions/65001/1774800000",))]}


def faithful_credit(alerts: pd.DataFrame, flat: bool = False) -> pd.DataFrame:
    """GET /api/v1/credit of the reference platform grading `alerts` (central/credit.py),
    nested fields as JSON text as the observer keeps them."""
    from central.credit import grade_station

    rows = []
    for sid in DIALECTS:
        mine = alerts[alerts["station_id"] == sid].astype(object)
        found = [{k: None if pd.api.types.is_scalar(v) and pd.isna(v) else v
                  for k, v in a.items()}
                 for a in mine.to_dict("records")]
        item = grade_station(sid, found, flat=flat)
        rows.append({**item, **{k: json.dumps(item[k], ensure_ascii=False, sort_keys=True)
                                for k in ("period", "counts", "points", "findings")}})
    return pd.DataFrame(rows)


def failed(record: RunRecord) -> set[str]:
    return set(record.failed())


def outcome(record: RunRecord, rid: str) -> str:
    return next(r.outcome for r in record.requirements if r.id == rid)


def measurements(record: RunRecord, rid: str, name: str | None = None,
                 station: str | None = "any") -> list:
    return [m for m in record.measurements if m.requirement == rid
            and (name is None or m.name == name)
            and (station == "any" or m.station_id == station)]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, RunRecord]:
    root = make_run().write(tmp_path_factory.mktemp("good") / "run")
    return root, check_run(root)


# ---- the correct run passes everything it can check ------------------------------------

def test_correct_run_passes_everything_it_can_check(good):
    root, record = good
    # every MUST requirement has a checker now, and the correct run proves each of them
    assert not [r.id for r in CATALOGUE if r.checker is None and r.level == "MUST"]
    assert record.verdict == "accepted" and record.exit_code == 0, record.failed()
    assert not record.unproven_must()
    for rid in REQUIRED:
        assert outcome(record, rid) == "pass", rid
    for r in CATALOGUE:
        if r.checker is None:
            assert outcome(record, r.id) == "not_checked"
    assert all(m.passed for m in record.measurements)
    # the harness's own faults made stations off line, and that was excused
    assert (~make_run().availability["online"]).sum() > 10
    daily = pd.DataFrame(record.tables["daily"])
    assert len(daily) == 2 * DAYS and daily["compliant"].all()
    assert set(daily["day"]) == {"2026-04-01", "2026-04-02"}
    assert daily["completeness"].eq(1.0).all() and daily["online_ratio"].eq(1.0).all()
    recs = pd.DataFrame(record.tables["records"]).set_index(["station_id", "stream"])
    assert recs.loc[("UMB25", "transactions"), "received_once"] == 4 * 3 * DAYS
    assert recs.loc[("UMB44", "inventory"), "received_once"] == 3 * (24 * DAYS + 1)
    assert record.tables["reconciliation"] == [
        {"station_id": "UMB25", "tank": 1, "day": "2026-04-01", "variance_l": -1.2,
         "cumulative_pct": -0.05}]
    assert record.criteria == resolve_criteria({"stability_days": "run"}, run_days=DAYS)
    assert record.criteria["stability_days"] == 2 and defaults()["stability_days"] == 180
    assert [s["station_id"] for s in record.stations] == ["UMB25", "UMB44"]
    assert record.stations[1] == {"station_id": "UMB44", "name": "新忽热苏木加油站",
                                  "town": "新忽热苏木", "ownership": "state",
                                  "dispensers": 2, "nozzles": 4, "tanks": 3}
    assert record.scenario["name"] == "checkers-test" and record.scenario["seed"] == 7
    assert record.scenario["start"] == "2026-04-01T00:00:00+08:00"
    # the digest of the copies matches the truth's; the shortened tax period is said
    assert len(record.notes) == 1 and "shortened period of 0.5 day(s)" in record.notes[0]
    assert [c["id"] for c in record.catalogue] == [r.id for r in CATALOGUE]
    assert RunRecord.read(root / "record.json").to_dict() == record.to_dict()


def test_check_run_is_repeatable(good):
    root, record = good
    again = check_run(root)
    a, b = record.to_dict(), again.to_dict()
    a.pop("created_at"), b.pop("created_at")
    assert a == b
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True,
                                                                    default=str)


def test_memory_growth_is_fitted_after_the_warm_up(good):
    _, record = good
    growth = {m.name: m for m in measurements(record, "STB-1") if "rss_growth" in m.name}
    assert set(growth) == {"resources.rss_growth.platform",
                           "resources.rss_growth.collector:UMB25",
                           "resources.rss_growth.collector:UMB44"}
    assert all(abs(m.value) < 0.5 for m in growth.values())
    # the restarted collector: its longer-lived process is judged
    assert growth["resources.rss_growth.collector:UMB25"].evidence["judged_pid"] == 201


# ---- each break fails exactly the requirements it should --------------------------------

def _check(tmp_path: Path, run: Run) -> RunRecord:
    return check_run(run.write(tmp_path / "run"))


def _drop_rows(df: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    assert mask.any(), "the break must remove something"
    return df[~mask].reset_index(drop=True)


def test_lost_transaction(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    run.observed["transactions"] = _drop_rows(tx, tx.index == 5)
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-1", "STB-1"}
    (m,) = [m for m in measurements(record, "DAT-1", "transactions.lost") if not m.passed]
    assert m.value == 1 and m.station_id == tx.at[5, "station_id"]
    assert m.evidence["records"] == [tx.at[5, "key"]]
    assert m.evidence["dropped_at_device"] == 0
    stb = {m.name for m in measurements(record, "STB-1") if not m.passed}
    assert stb == {"stability.longest_compliant_run", "stability.unrecovered_records"}


def test_transaction_dropped_by_the_device_fifo_counts_as_lost(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    victim = tx.iloc[2]
    run.observed["transactions"] = _drop_rows(tx, tx.index == 2)
    truth_row = run.truth["transactions"].iloc[2]
    run.drops = pd.DataFrame([dict(station_id=victim.station_id, device=victim.device,
                                   stream="transactions", seq=int(victim.seq),
                                   time=float(truth_row.end_time) + 100, dropped_total=1)])
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-1", "STB-1"}
    (m,) = [m for m in measurements(record, "DAT-1", "transactions.lost") if not m.passed]
    assert m.evidence["dropped_at_device"] == 1
    assert m.evidence["dropped_records"] == [victim.key]
    assert "collector did not drain" in m.evidence["dropped_note"]


def test_duplicated_transaction(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    run.observed["transactions"] = pd.concat([tx, tx.iloc[[3]].assign(msg_seq=9)],
                                             ignore_index=True)
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-1", "STB-1"}
    bad = [m for m in measurements(record, "DAT-1") if not m.passed]
    assert [(m.name, m.value) for m in bad] == [("transactions.duplicated", 1)]
    assert bad[0].evidence["records"] == [f"{tx.at[3, 'key']} (2 copies)"]


def test_unexpected_transaction(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    t = int(START) + 5000
    fake = tx.iloc[[0]].assign(seq=4242, key=f"UMB25/D1/transactions/4242/{t}", start_time=t)
    run.observed["transactions"] = pd.concat([tx, fake], ignore_index=True)
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-1"}
    bad = [m for m in measurements(record, "DAT-1") if not m.passed]
    assert [(m.name, m.station_id, m.value) for m in bad] == [
        ("transactions.unexpected", "UMB25", 1)]


def test_altered_volume(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    tx.loc[7, "volume_ml"] += 10
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-2", "STB-1"}
    (m,) = [m for m in measurements(record, "DAT-2") if not m.passed]
    assert m.value == 1 and m.evidence["fields"] == {"volume_ml": 1}
    assert "volume_ml: truth" in m.evidence["records"][0]


def test_missing_inventory_interval(tmp_path):
    run = make_run()
    inv = run.observed["inventory"]
    target = (inv["station_id"] == "UMB44") & (inv["tank"] == 3) & \
        (inv["device_time"] == int(START + 30 * HOUR))
    run.observed["inventory"] = _drop_rows(inv, target)
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-3", "STB-1"}
    bad = {m.name: m for m in measurements(record, "DAT-3") if not m.passed}
    assert set(bad) == {"inventory.received_once_ratio",
                        "inventory.tanks_with_missing_intervals"}
    expected = 3 * (24 * DAYS + 1)
    assert bad["inventory.received_once_ratio"].value == (expected - 1) / expected
    missing = bad["inventory.tanks_with_missing_intervals"]
    assert missing.station_id == "UMB44" and missing.value == 1
    assert missing.evidence["missing_intervals_by_tank"] == {"3": 1}
    assert missing.evidence["first_missing"] == [f"tank 3 @{int(START + 30 * HOUR)}"]
    # the day of the missing reading is the non-compliant one
    stb = next(m for m in measurements(record, "STB-1", "stability.longest_compliant_run",
                                       "UMB44"))
    assert stb.value == 1 and stb.evidence["non_compliant"][0].startswith("2026-04-02")


def test_altered_inventory_reading_is_not_complete(tmp_path):
    run = make_run()
    run.observed["inventory"].loc[10, "temperature_mc"] += 10
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-3", "STB-1"}
    bad = {m.name for m in measurements(record, "DAT-3") if not m.passed}
    assert bad == {"inventory.received_once_ratio"}  # present, but not the gauge's value


def test_missing_delivery(tmp_path):
    run = make_run()
    dl = run.observed["deliveries"]
    run.observed["deliveries"] = _drop_rows(dl, dl["station_id"] == "UMB25")
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-4", "STB-1"}
    (m,) = [m for m in measurements(record, "DAT-4") if not m.passed]
    assert (m.name, m.station_id, m.value) == ("deliveries.not_received_once", "UMB25", 1)
    assert m.evidence["by_status"] == {"lost": 1}


def test_station_never_on_line(tmp_path):
    run = make_run()
    av = run.availability
    run.availability = av.assign(online=av["online"] & (av["station_id"] != "UMB44"))
    run.stations[1]["collector"] = {"heard": False, "online": False}
    for dev in run.stations[1]["devices"]:
        dev.update(online=False, device_time=None)
    record = _check(tmp_path, run)
    assert failed(record) == {"COV-1", "STB-1"}
    bad = [m for m in measurements(record, "COV-1") if not m.passed]
    assert [(m.name, m.station_id) for m in bad] == [("collector.seen_on_line", "UMB44"),
                                                     ("stations.on_line_ratio", None)]
    assert bad[1].value == 0.5 and bad[1].evidence["never_on_line"] == ["UMB44"]


def test_nozzle_never_reporting(tmp_path):
    run = make_run()
    tx = run.observed["transactions"]
    run.observed["transactions"] = _drop_rows(
        tx, (tx["station_id"] == "UMB44") & (tx["device"] == "D2") & (tx["nozzle"] == 1))
    record = _check(tmp_path, run)
    assert failed(record) == {"COV-2", "DAT-1", "STB-1"}
    (m,) = [m for m in measurements(record, "COV-2") if not m.passed]
    assert (m.name, m.station_id, m.value) == ("nozzles.not_reporting", "UMB44", 1)
    assert m.evidence["not_reporting"] == ["D2/1"]


def test_tank_never_reporting(tmp_path):
    run = make_run()
    inv = run.observed["inventory"]
    run.observed["inventory"] = _drop_rows(inv, (inv["station_id"] == "UMB25")
                                           & (inv["tank"] == 1))
    record = _check(tmp_path, run)
    assert failed(record) == {"COV-2", "DAT-3", "STB-1"}
    (m,) = [m for m in measurements(record, "COV-2") if not m.passed]
    assert (m.name, m.station_id, m.evidence["not_reporting"]) == (
        "tanks.not_reporting", "UMB25", [1])


def test_device_never_seen(tmp_path):
    run = make_run()
    for stream in ("transactions", "events"):
        df = run.observed[stream]
        run.observed[stream] = _drop_rows(df, (df["station_id"] == "UMB25")
                                          & (df["device"] == "D2"))
    av = run.availability
    run.availability = av.assign(online=av["online"] & ~((av["station_id"] == "UMB25")
                                                         & (av["device"] == "D2")))
    run.stations[0]["devices"][2].update(online=False, device_time=None)
    record = _check(tmp_path, run)
    assert failed(record) == {"COV-2", "DAT-1", "STB-1"}
    bad = {m.name: m for m in measurements(record, "COV-2") if not m.passed}
    assert set(bad) == {"devices.not_seen", "nozzles.not_reporting"}
    assert bad["devices.not_seen"].evidence == {"devices": ["G", "D1", "D2"],
                                                "not_seen": ["D2"]}


@pytest.mark.parametrize("stream, requirement, name", [
    ("inventory", "DAT-3", "inventory.unexpected"),
    ("deliveries", "DAT-4", "deliveries.unexpected")])
def test_records_the_device_never_made(tmp_path, stream, requirement, name):
    run = make_run()
    df = run.observed[stream]
    run.observed[stream] = pd.concat([df, df.iloc[[0]].assign(seq=999, key="forged")],
                                     ignore_index=True)
    record = _check(tmp_path, run)
    assert failed(record) == {requirement}
    (m,) = [m for m in measurements(record, requirement) if not m.passed]
    assert (m.name, m.station_id, m.value) == (name, df.at[0, "station_id"], 1)
    assert m.evidence["records"][0].startswith(f"{df.at[0, 'station_id']}/G/{stream}/999/")


def test_off_line_outside_the_faults_fails_stability_only(tmp_path):
    run = make_run()
    av = run.availability
    # UMB44's collector off line 08:00-10:00 on day 2, which no fault explains
    window = (av["station_id"] == "UMB44") & av["sim_time"].between(
        START + 32 * HOUR, START + 34 * HOUR - 1)
    run.availability = av.assign(online=av["online"] & ~window)
    record = _check(tmp_path, run)
    assert failed(record) == {"STB-1"}
    daily = pd.DataFrame(record.tables["daily"]).set_index(["station_id", "day"])
    assert daily.at[("UMB44", "2026-04-02"), "online_ratio"] == pytest.approx(22 / 24)
    assert not daily.at[("UMB44", "2026-04-02"), "compliant"]
    assert daily.at[("UMB44", "2026-04-01"), "compliant"]
    (m,) = [m for m in measurements(record, "STB-1") if not m.passed]
    assert (m.name, m.station_id, m.value) == ("stability.longest_compliant_run", "UMB44", 1)
    assert "on line 0.9167" in m.evidence["non_compliant"][0]


def test_the_same_outage_inside_a_fault_window_is_excused(tmp_path):
    run = make_run()
    run.timeline.append(dict(kind="network_cut", station_id="UMB44", device=None,
                             sim_start=START + 32 * HOUR, sim_end=START + 34 * HOUR,
                             wall_start=wall(START + 32 * HOUR),
                             wall_end=wall(START + 34 * HOUR), detail={}))
    av = run.availability
    window = (av["station_id"] == "UMB44") & av["sim_time"].between(
        START + 32 * HOUR, START + 34 * HOUR - 1)
    run.availability = av.assign(online=av["online"] & ~window)
    assert failed(_check(tmp_path, run)) == set()


def test_a_fault_of_a_shared_collectors_process_excuses_every_station_it_took_down(tmp_path):
    """Fleet mode: a cut of UMB44's link cut the link of the process serving UMB25 too; the
    timeline says so (detail.stations) and both stations are excused; without it, UMB25's
    outage is held against the SUT."""
    def run_with(detail):
        run = make_run()
        run.timeline.append(dict(kind="network_cut", station_id="UMB44", device=None,
                                 sim_start=START + 32 * HOUR, sim_end=START + 34 * HOUR,
                                 wall_start=wall(START + 32 * HOUR),
                                 wall_end=wall(START + 34 * HOUR), detail=detail))
        av = run.availability
        window = av["sim_time"].between(START + 32 * HOUR, START + 34 * HOUR - 1)
        run.availability = av.assign(online=av["online"] & ~window)
        return run

    assert failed(_check(tmp_path / "a", run_with({"stations": ["UMB25", "UMB44"]}))) == set()
    record = _check(tmp_path / "b", run_with({}))
    assert failed(record) == {"STB-1"}
    assert {m.station_id for m in measurements(record, "STB-1") if not m.passed} == {"UMB25"}


def test_a_recovery_slower_than_the_grace_is_held_against_the_sut(tmp_path):
    run = make_run()
    av = run.availability
    # UMB44 stays off line 4 h after its network cut ended (22:00), not 30 min
    slow = (av["station_id"] == "UMB44") & av["sim_time"].between(START + 22 * HOUR,
                                                                   START + 26 * HOUR - 1)
    run.availability = av.assign(online=av["online"] & ~slow)
    record = _check(tmp_path, run)
    assert failed(record) == {"STB-1"}
    daily = pd.DataFrame(record.tables["daily"]).set_index(["station_id", "day"])
    # excused up to the sample at 24:00 (2 h of wall grace at ×60), then off line until
    # 26:00: 1.5 h of the 23.5 h observed on day 2
    assert daily.at[("UMB44", "2026-04-01"), "online_ratio"] == 1.0
    assert daily.at[("UMB44", "2026-04-02"), "online_ratio"] == pytest.approx(22 / 23.5)


def test_devices_still_connecting_at_start_up_are_excused(tmp_path):
    run = make_run()
    av = run.availability
    first = av["sim_time"] <= START + HOUR  # devices first reported after an hour
    run.availability = av.assign(online=av["online"] & ~(first & (av["device"] != "")))
    record = _check(tmp_path, run)
    assert failed(record) == set()
    # but not for ever: devices that take 3 h (beyond the 2 h grace at ×60) are not excused
    first = av["sim_time"] <= START + 3 * HOUR
    run.availability = av.assign(online=av["online"] & ~(first & (av["device"] != "")))
    assert failed(_check(tmp_path / "slow", run)) == {"STB-1"}


def test_growing_memory(tmp_path):
    run = make_run()
    run.resources = _resources(growth_mib_per_day=20.0)
    record = _check(tmp_path, run)
    assert failed(record) == {"STB-1"}
    bad = [m for m in measurements(record, "STB-1") if not m.passed]
    # the harness and the devices grow as much, but are not the SUT
    assert {m.name for m in bad} == {"resources.rss_growth.platform",
                                     "resources.rss_growth.collector:UMB25",
                                     "resources.rss_growth.collector:UMB44"}
    assert all(m.value == pytest.approx(20.0, abs=0.3) for m in bad)
    # a two-day run: the limit is the allowance over the fitted span (from 12:00 on day 1,
    # after the warm-up quarter, to the last sample while the world ran, 23:30 on day 2)
    platform = next(m for m in bad if m.name == "resources.rss_growth.platform")
    (fit,) = platform.evidence["instances"]
    assert fit["fitted_days"] == pytest.approx(35.5 / 24)
    assert platform.limit == pytest.approx(16 / fit["fitted_days"])


def test_slow_growth_within_the_allowance_of_a_short_run(tmp_path):
    """5 MiB/day over a 2-day run is within the allowance; with none, the slope limit
    (1 MiB/day, as on a 180-day run) applies and it fails."""
    run = make_run()
    run.resources = _resources(growth_mib_per_day=5.0)
    assert failed(_check(tmp_path / "a", run)) == set()
    run.criteria = {"rss_growth_allowance_mib": 0, "stability_days": "run"}
    record = _check(tmp_path / "b", run)
    assert failed(record) == {"STB-1"}
    assert {m.limit for m in measurements(record, "STB-1") if not m.passed} == {1.0}


def test_peak_memory(tmp_path):
    run = make_run()
    res = run.resources
    run.resources = res.assign(rss_bytes=np.where(res["role"] == "platform", 2048 * MIB,
                                                  res["rss_bytes"]))
    record = _check(tmp_path, run)
    assert failed(record) == {"STB-1"}
    assert [m.name for m in measurements(record, "STB-1") if not m.passed] == [
        "resources.rss_peak.platform"]


def test_slow_latency_fails_the_should_requirement_only(tmp_path):
    run = make_run()
    run.latency = _latency(seconds=120.0)
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-5"}
    assert record.verdict == "accepted"  # a SHOULD does not refuse acceptance
    fleet = measurements(record, "DAT-5", station=None)[0]
    assert fleet.value == pytest.approx(120 * 1.5) and not fleet.passed
    assert fleet.evidence["records"] == 40


def test_latency_counts_records_never_seen(tmp_path):
    run = make_run()
    lat = run.latency
    never = lat.index < 4  # 10 % of the records: p95 falls among them
    wall_end = wall(END) + 60  # run.json: when the observation stopped
    run.latency = lat.assign(visible_wall=np.where(never, np.nan, lat["visible_wall"]),
                             emitted_wall=np.where(never, wall_end - 500, lat["emitted_wall"]))
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-5"}
    fleet = measurements(record, "DAT-5", station=None)[0]
    assert fleet.evidence["never_visible"] == 4 and fleet.value == pytest.approx(500)
    assert fleet.evidence["slowest"][0].endswith("500.000 s (never visible)")


def test_no_real_time_segment_is_not_measured(tmp_path):
    run = make_run()
    run.timeline = [e for e in run.timeline if e["kind"] != "real_time_segment"]
    run.latency = None
    record = _check(tmp_path, run)
    assert failed(record) == {"DAT-5"} and record.verdict == "accepted"  # a SHOULD
    (m,) = measurements(record, "DAT-5")
    assert m.value is None and not m.passed
    assert "no real-time segment" in m.evidence["reason"]


def test_a_run_shorter_than_the_required_days_is_incomplete_not_stable(tmp_path):
    run = make_run()
    run.criteria = {}  # the plan's six months
    record = _check(tmp_path, run)
    assert failed(record) == set() and outcome(record, "STB-1") == "incomplete"
    assert record.verdict == "incomplete" and "STB-1" in record.unproven_must()
    assert record.criteria["stability_days"] == 180
    bad = [m for m in measurements(record, "STB-1") if not m.passed]
    assert {(m.name, m.value, m.limit, m.scope) for m in bad} == {
        ("stability.run_days", 2, 180, True)}
    # the SUT is still held to every day the run had
    (m,) = [m for m in measurements(record, "STB-1", "stability.longest_compliant_run")
            if m.station_id == "UMB25"]
    assert (m.value, m.limit) == (2, 2)


# ---- failures of the checkers themselves ------------------------------------------------

def test_a_checker_that_raises_gives_an_error_outcome(good, tmp_path, monkeypatch):
    import acceptance.checkers.coverage as coverage

    def broken(data, criteria):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(coverage, "collectors_on_line", broken)
    record = check_run(good[0], write=False)
    assert outcome(record, "COV-1") == "error" and not record.accepted
    err = next(r.error for r in record.requirements if r.id == "COV-1")
    assert err.startswith("ZeroDivisionError: boom (at test_checkers.py:")
    assert failed(record) == {"COV-1"}


def test_a_missing_file_errors_the_checkers_that_need_it(tmp_path):
    root = make_run().write(tmp_path / "run")
    (root / "observed" / "availability.parquet").unlink()
    record = check_run(root)
    assert {r.id for r in record.requirements if r.outcome == "error"} == {
        "COV-1", "COV-2", "DAT-6", "STB-1"}
    for r in record.requirements:
        if r.outcome == "error":
            assert "missing observed/availability.parquet" in r.error
    assert failed(record) == {"COV-1", "COV-2", "DAT-6", "STB-1"}
    assert record.tables["daily"] == [] and any("table daily" in n for n in record.notes)


def test_a_missing_column_is_named(tmp_path):
    run = make_run()
    run.resources = run.resources.drop(columns=["rss_bytes"])
    record = _check(tmp_path, run)
    (err,) = [r.error for r in record.requirements if r.outcome == "error"]
    assert "resources.parquet: missing column(s) ['rss_bytes']" in err


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunDataError, match="not a directory"):
        RunData(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDataError, match=r"empty: missing scenario\.yaml \(written by the run"):
        check_run(tmp_path / "empty")


def test_a_scenario_digest_mismatch_is_noted(tmp_path):
    root = make_run().write(tmp_path / "run")
    with open(root / "fleet.csv", "a", encoding="utf-8") as f:
        f.write("# edited after the run\n")
    record = check_run(root, write=False)
    assert any("do not match the scenario digest" in n for n in record.notes)


def test_check_command_exit_codes(good, tmp_path, capsys):
    from acceptance.check import main

    assert main([str(good[0]), "--no-write"]) == 0
    assert "\nACCEPTED" in capsys.readouterr().out
    run = make_run()
    run.observed["deliveries"] = run.observed["deliveries"].iloc[0:0]
    root = run.write(tmp_path / "run")
    assert main([str(root)]) == 1
    assert "\nNOT ACCEPTED (failed DAT-4, STB-1)" in capsys.readouterr().out
    assert RunRecord.read(root / "record.json").failed() == ["DAT-4", "STB-1"]
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "missing scenario.yaml" in capsys.readouterr().err


# ---- SEC-1: the attack phase -----------------------------------------------------------

def _attempt(run: Run, ident: str) -> dict[str, Any]:
    assert run.security is not None
    return next(a for a in run.security["attempts"] if a["id"] == ident)


def test_sec1_fails_when_an_attempt_got_through(tmp_path):
    run = make_run()
    a = _attempt(run, "anonymous-subscribe-all")
    a.update(outcome="allowed", passed=False, note="SUBACK 1")
    record = _check(tmp_path, run)
    assert failed(record) == {"SEC-1"}
    bad = [m for m in measurements(record, "SEC-1") if not m.passed]
    assert [m.name for m in bad] == ["attack.anonymous-subscribe-all"]
    assert bad[0].evidence["outcome"] == "allowed" and bad[0].evidence["note"] == "SUBACK 1"


def test_sec1_fails_when_a_forged_fill_is_served(tmp_path):
    run = make_run()
    forged = run.observed["transactions"].iloc[[0]].copy()
    forged["key"] = _attempt(run, "tampered")["marker_keys"][0]
    run.observed["transactions"] = pd.concat([run.observed["transactions"], forged])
    record = _check(tmp_path, run)
    assert "SEC-1" in failed(record)  # (and DAT-1: an extra record)
    served = measurements(record, "SEC-1", "attack.forged_records_served")[0]
    assert served.value == 1 and served.evidence["served"] == [forged["key"].iloc[0]]


def test_sec1_reads_a_stream_the_platform_holds_nothing_of(tmp_path):
    """An empty observed stream is written with null-typed columns: the forged-key filter
    must find nothing there, not fail on the type (the smoke run has no delivery in 2 days)."""
    run = make_run()
    run.observed["deliveries"] = run.observed["deliveries"].iloc[0:0].astype(object)
    path = run.write(tmp_path / "run")
    assert str(pq.read_schema(path / "observed" / "deliveries.parquet").field("key").type) \
        == "null"
    record = check_run(path)
    assert outcome(record, "SEC-1") != "error"
    served = measurements(record, "SEC-1", "attack.forged_records_served")[0]
    assert served.value == 0


def test_sec1_fails_when_honest_ingest_stopped(tmp_path):
    run = make_run()
    assert run.security is not None
    run.security["honest_ingest"]["progressed"] = ["UMB25"]
    record = _check(tmp_path, run)
    assert failed(record) == {"SEC-1"}
    ratio = measurements(record, "SEC-1", "attack.honest_ingest_ratio")[0]
    assert ratio.value == 0.5 and ratio.evidence["stations_not_ingested_after"] == ["UMB44"]


def test_sec1_is_incomplete_when_an_attempt_could_not_be_made(tmp_path):
    run = make_run()
    _attempt(run, "tampered").update(outcome="not_attempted", passed=None,
                                    note="the run has one station")
    record = _check(tmp_path, run)
    assert not failed(record) and outcome(record, "SEC-1") == "incomplete"
    assert record.verdict == "incomplete" and record.exit_code == 3


def test_sec1_without_attack_evidence_is_an_error_not_a_pass(tmp_path):
    run = make_run()
    run.security = None
    record = _check(tmp_path, run)
    assert outcome(record, "SEC-1") == "error" and record.verdict == "incomplete"


# ---- criteria -------------------------------------------------------------------------

def test_criteria_defaults_and_overrides():
    c = resolve_criteria({"daily_online_ratio": 0.95, "stability_days": 30}, run_days=0.5)
    assert c["daily_online_ratio"] == 0.95 and c["stability_days"] == 30
    # six months unless the scenario shortens it explicitly, by a number or to the run's days
    assert resolve_criteria(None, run_days=0.5)["stability_days"] == 180
    assert resolve_criteria({"stability_days": "run"}, run_days=0.5)["stability_days"] == 1
    assert resolve_criteria({"stability_days": "run"}, run_days=2.2)["stability_days"] == 3
    assert set(defaults()) == {k.key for k in CRITERIA}


@pytest.mark.parametrize("raw, message", [
    ({"daily_online_rate": 0.9}, "criteria.daily_online_rate: unknown criterion (did you mean "
                                 "'daily_online_ratio'?)"),
    ({"daily_online_ratio": 1.5}, "criteria.daily_online_ratio: expected a number from 0 to 1 "
                                  "(ratio), found 1.5"),
    ({"latency_p95_s": "60s"}, "criteria.latency_p95_s: expected a number greater than 0 (s), "
                               "found str '60s'"),
    ({"stability_days": 2.5}, "criteria.stability_days: expected a whole number ≥ 1 (days) "
                              "or `run`"),
    ({"stability_days": True}, "criteria.stability_days: expected a whole number ≥ 1 (days) "
                               "or `run`, found bool True"),
    ({"latency_p95_s": float("nan")}, "criteria.latency_p95_s: expected a number greater"),
    ([0.9], "criteria: expected an object of thresholds, found list"),
])
def test_bad_criteria_are_refused_naming_the_key(raw, message):
    with pytest.raises(CriteriaError) as err:
        resolve_criteria(raw, run_days=2, source="smoke.yaml: criteria")
    assert message in str(err.value)


def test_check_run_refuses_bad_criteria(tmp_path):
    run = make_run()
    run.criteria = {"daily_completness": 0.99}
    root = run.write(tmp_path / "run")
    with pytest.raises(CriteriaError, match="scenario.yaml: criteria.daily_completness: "
                                            "unknown criterion"):
        check_run(root)


# ---- the catalogue and its document -----------------------------------------------------

def test_catalogue_entries():
    check_catalogue()
    ids = [r.id for r in CATALOGUE]
    assert ids[:7] == ["COV-1", "COV-2", "DAT-1", "DAT-2", "DAT-3", "DAT-4", "DAT-5"]
    assert {"ALM-PULSE", "ALM-FP", "TAX-1", "MET-1", "SEC-1", "STB-1"} <= set(ids)
    assert by_id("DAT-5").level == "SHOULD"
    assert "全覆盖、无死角" in by_id("COV-1").clause
    assert "及时、准确、完整" in by_id("DAT-1").clause
    assert "连续稳定运行6个月以上" in by_id("STB-1").clause
    assert by_id("TAX-1").department_zh == "旗税务局"
    assert by_id("TAX-1").checker == "acceptance.checkers.tax.sales_cross_checked"
    assert by_id("SEC-1").department_zh == "旗政务服务与数据管理局"
    # every criterion names a requirement of the catalogue (or none: report settings)
    assert {c.requirement for c in CRITERIA} <= set(ids) | {None}
    with pytest.raises(KeyError, match="DAT-9"):
        by_id("DAT-9")


def test_catalogue_rejects_a_malformed_entry():
    bad = CATALOGUE[0].__class__(**{**CATALOGUE[0].to_dict(), "level": "MAY"})
    with pytest.raises(ValueError, match=r"level: expected one of \('MUST', 'SHOULD'\)"):
        check_catalogue((bad,))
    with pytest.raises(ValueError, match="appears twice"):
        check_catalogue((CATALOGUE[0], CATALOGUE[0]))


def test_requirements_doc_agrees_with_the_catalogue_and_criteria():
    text = DOC.read_text(encoding="utf-8")
    assert render_doc(text) == text, \
        "docs/requirements.md is stale: run `python -m acceptance.requirements --write`"
    for r in CATALOGUE:
        assert f"| {r.id} | {r.level} |" in text
    for c in CRITERIA:
        assert f"`{c.key}`" in text


# ---- properties -----------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=60))
def test_longest_run_of_compliant_days(flags):
    best = max((j - i for i in range(len(flags) + 1) for j in range(i, len(flags) + 1)
                if all(flags[i:j])), default=0)
    assert longest_run(flags) == best


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-3600, DAYS * 86400 + 3600), st.sampled_from([1, 0, -1])),
                min_size=1, max_size=40, unique_by=lambda s: s[0]))
def test_on_line_time_is_split_over_the_days_without_loss(samples):
    """However the samples fall, the on-line, off-line and excused time of the days sums to
    the sampled span inside the run, and each state gets exactly its own intervals."""
    samples = sorted(samples)
    t = np.array([s[0] for s in samples]) + START
    state = np.array([s[1] for s in samples])
    days = [(START + d * 86400.0, START + (d + 1) * 86400.0) for d in range(DAYS)]
    got = split_by_day(t, state, days)
    diffs = np.diff(t)
    step = float(np.median(diffs[diffs > 0])) if (diffs > 0).any() else 0.0
    ends = np.append(t[1:], t[-1] + step)
    clip = np.clip(ends, START, END) - np.clip(t, START, END)
    for k, want in ((0, 1), (1, 0), (2, -1)):
        assert sum(day[k] for day in got) == pytest.approx(float(clip[state == want].sum()),
                                                           abs=1e-6)
    assert all(sum(day) <= 86400 + 1e-6 for day in got)


def test_a_dead_device_reported_on_line_fails_dat6(tmp_path):
    """The collector mutant always-online: UMB25's D1 is silent 10:00-11:00 on day 2, yet the
    platform shows it on line throughout."""
    run = make_run()
    av = run.availability
    run.availability = av.assign(online=av["online"] | (av["device"] == "D1"))
    record = _check(tmp_path, run)
    assert "DAT-6" in failed(record) and record.verdict == "not_accepted"
    (m,) = [m for m in measurements(record, "DAT-6") if not m.passed]
    assert (m.name, m.station_id, m.value, m.scope) == (
        "device.offline_shown_after_s", "UMB25", None, False)
    assert "on line throughout the window" in m.evidence["reason"]


def test_dat6_judges_the_wall_time_to_show_a_device_off_line(tmp_path):
    run = make_run()
    good = _check(tmp_path / "good", run)
    (m,) = measurements(good, "DAT-6")
    assert m.passed and m.value == 0.0 and m.evidence["device"] == "D1"
    # a window shorter in wall time than the limit: not judged, DAT-6 incomplete
    run.criteria = {"stability_days": "run", "device_offline_shown_s": 1e6}
    av = run.availability
    run.availability = av.assign(online=av["online"] | (av["device"] == "D1"))
    record = _check(tmp_path / "short", run)
    assert outcome(record, "DAT-6") == "incomplete" and "DAT-6" in record.unproven_must()
    # a run without a device fault did not exercise it: incomplete, not passed on nothing
    run = make_run()
    run.timeline = [e for e in run.timeline if e["kind"] != "device_silent"]
    record = _check(tmp_path / "none", run)
    (m,) = measurements(record, "DAT-6")
    assert (m.name, m.value, m.passed, m.scope) == ("device_faults.judged", 0, False, True)
    assert outcome(record, "DAT-6") == "incomplete" and "DAT-6" in record.unproven_must()


def test_alarms_are_not_proven_where_detection_did_not_reach_the_end(tmp_path):
    """The harness stopped waiting while the platform had evaluated UMB44 only to a day
    before the end: no requirement judged on alerts (ALM-*, MET-1, CRD-1) may pass on
    alerts of data never evaluated."""
    root = make_run().write(tmp_path / "run")
    status = {"done": False, "supported": True, "reason": "no progress for 120 s",
              "through": END,
              "waited_s": 120.0, "status": {
                  "UMB25": {"station_id": "UMB25", "evaluated_through": END},
                  "UMB44": {"station_id": "UMB44", "evaluated_through": END - 86400}}}
    (root / "observed/detection_status.json").write_text(json.dumps(status))
    record = check_run(root)
    alarms = [r.id for r in CATALOGUE if r.id.startswith("ALM-")] + ["MET-1", "CRD-1"]
    for rid in alarms:
        assert outcome(record, rid) == "incomplete", rid
        (m,) = measurements(record, rid, "detection.stations_not_evaluated_to_the_end")
        assert m.value == 1 and m.scope and m.evidence["evaluated_through"] == {
            "UMB44": END - 86400}
    assert record.verdict == "incomplete"
    # every station evaluated through the end: the scope holds and they pass again
    status.update(done=True, status={s: {"station_id": s, "evaluated_through": END}
                                     for s in ("UMB25", "UMB44")})
    (root / "observed/detection_status.json").write_text(json.dumps(status))
    record = check_run(root)
    assert all(outcome(record, rid) == "pass" for rid in alarms)


def test_a_world_stalled_at_a_stations_fifos_fails_stb_1_and_leaves_the_run_incomplete(
        tmp_path):
    """acceptance/schedule.py WorldStalled: the run ended early because one station's
    collector did not drain its FIFOs, with no fault in force."""
    root = make_run().write(tmp_path / "run")
    info = json.loads((root / "run.json").read_text(encoding="utf-8"))
    stalled = {"station": "UMB44", "sim_time": END - 86400.0, "held_s": 301.5}
    info.update(world_stalled=stalled, exit_reason="the world was held 302 s …")
    _json(root / "run.json", info)
    record = check_run(root)
    assert failed(record) == {"STB-1"} and not record.complete
    assert record.verdict == "not_accepted"
    (m,) = measurements(record, "STB-1", "sut.world_stalled")
    assert (m.value, m.passed, m.station_id, m.evidence) == (1, False, "UMB44", stalled)
    assert any("the world was held 302 s" in n for n in record.notes)
