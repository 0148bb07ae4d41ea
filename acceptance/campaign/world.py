"""One campaign world: simulate it, hand the reference platform exactly what a correct
collector would, let the platform's detectors judge it, score the alerts.

Direct feed (no Modbus, no MQTT): the world's device records become uplink records through
the acceptance comparison's own conversion (`acceptance.compare.expected_records`, each
value at its register resolution, in the uplink's integer units), are signed and go through
the platform's ingest (`central.store.Ingestor`) hour by hour of device time, with the
platform clock set to that hour, each followed by a heartbeat that reports every device's
`drained_through` and on-line state as the collector would (an off-line dispenser keeps its
last values). State reports come from the ground truth's device states, posted prices
from the scenario, signed verification records from the ground truth. Then the detectors
evaluate the station up to the end (they are causal, so one evaluation at the end raises
what hour-by-hour evaluation would) and the oracle scores their alerts.

The campaign imports the reference platform (`central`) on purpose: this is the one place
the harness drives it in-process (docs/campaigns.md); a vendor's platform is judged with
`--transport full`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from acceptance.compare import Truth, expected_records
from acceptance.inputs import scenario_prices
from acceptance.oracle import DAY_S, Scores, score
from acceptance.rundir import RunData
from acceptance.world_config import build_world_config
from scenarios.loader import load_scenario
from sim.ledger import COLUMNS
from sim.noise_budget import daily_variance, honest_tanks, variance_stats
from sim.runner import simulate_station

KEY = "00" * 32
KID = "k1"
FEED_STEP_S = 3600  # a heartbeat per hour of device time
FLUSH_S = 6 * 3600  # records go up at least this often (device time)
MAX_RECORDS = 100  # records per uplink message (docs/uplink.md §3)
KIND_OF_STREAM = {"transactions": "transaction", "inventory": "inventory",
                  "deliveries": "delivery", "events": "event", "states": "state"}


@dataclass
class WorldResult:
    instances: pd.DataFrame  # the world's cheat instances (ground truth)
    alerts: pd.DataFrame  # the platform's alerts
    end: float
    station_days: float
    tanks: list[dict[str, Any]]  # honest noise per tank
    scores: Scores

    def summary(self) -> dict[str, Any]:
        """What campaign.json keeps of a world (plain values)."""
        return {
            "station_days": round(self.station_days, 4),
            "instances": [{"cheat": s.cheat, "kind": s.kind, "class": s.cls,
                           "detected": s.detected, "days_to_detect": s.days_to_detect,
                           "attributed": s.attributed, "observed_days": s.observed_days,
                           # (alert ids are the platform's random uuids: left out, so the
                           # same world always gives the same summary)
                           "first_alert": None if s.first_alert is None else {
                               k: v for k, v in s.first_alert.items() if k != "id"},
                           "target": s.target}
                          for s in self.scores.instances],
            "false_alerts": [{k: a[k] for k in ("kind", "as_of", "device", "nozzle", "tank")}
                             for a in _plain_rows(self.scores.false_alerts)],
            "lookalikes_triggered": [{**x, "alert": {k: v for k, v in x["alert"].items()
                                                      if k != "id"}}
                                     for x in self.scores.lookalikes_triggered],
            "alerts": len(self.alerts), "tanks": self.tanks}


def _plain_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in cast(list[dict[str, Any]], df.to_dict("records")):  # text column names
        out.append({k: (None if v is None or (isinstance(v, float) and math.isnan(v))
                        else v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def judge(instances: pd.DataFrame, alerts: pd.DataFrame, end: float, station_days: float,
          tanks: list[dict[str, Any]]) -> WorldResult:
    return WorldResult(instances, alerts, end, station_days, tanks,
                       score(instances, alerts, end))


# ---- the ground truth of a world, in memory ----------------------------------------------

def _frames(station_id: str, columns: dict[str, dict[str, Any]]) -> dict[str, pd.DataFrame]:
    out = {}
    for table, cols in columns.items():
        n = len(next(iter(cols.values()))) if cols else 0
        df = pd.DataFrame({name: cols[name] for name, _, _ in COLUMNS[table]})
        df.insert(0, "station_id", [station_id] * n)
        out[table] = df
    return out


def noise_rows(frames: dict[str, pd.DataFrame], timezone: str,
               skip_days: int = 1) -> list[dict[str, Any]]:
    """Honest tanks' σ of the daily variance (docs/noise-budget.md), in litres and as a %
    of the tank's mean daily sales; the first day (start-up) is left out."""
    series = daily_variance(frames["tank_states"], frames["transactions"],
                            frames["deliveries"], timezone)
    honest = honest_tanks(frames["tanks"], frames["nozzles"], frames["cheats"])
    rows = []
    for key in sorted(honest):
        if key not in series:
            continue
        st = variance_stats(series[key], skip_days=skip_days)
        if st.days < 2 or not math.isfinite(st.sd_pct_of_sales):
            continue
        rows.append({"station_id": key[0], "tank": key[1], "days": st.days,
                     "variance_sd_l": round(st.sd_l, 3),
                     "variance_sd_pct": round(st.sd_pct_of_sales, 4),
                     "mean_sales_l": round(st.mean_sales_l, 1)})
    return rows


# ---- feeding the platform -----------------------------------------------------------------

def _records(exp: dict[str, pd.DataFrame], states: pd.DataFrame
             ) -> dict[str, pd.DataFrame]:
    """Per stream: records with `device`, `seq`, `key`, `record_time` (when the device logged
    it: the hour it is fed in) and the kind's uplink fields."""
    out = {}
    for stream, df in exp.items():
        df = df.assign(record_time=df["time"].astype(np.float64),
                       key=[f"{s}/{d}/{stream}/{q}/{t}" for s, d, q, t in zip(
                           df["station_id"], df["device"], df["seq"], df["device_time"],
                           strict=True)])
        out[stream] = df
    if len(states):
        st = states.sort_values(["time", "device"], kind="stable").copy()
        st["seq"] = st.groupby("device").cumcount() % 65536
        st["device_time"] = np.floor(st["time"].to_numpy(np.float64)).astype(np.int64)
        st["record_time"] = st["time"].astype(np.float64)
        st["key"] = [f"{s}/{d}/states/{q}/{t}" for s, d, q, t in zip(
            st["station_id"], st["device"], st["seq"], st["device_time"], strict=True)]
        for col in ("seal_state", "device_status"):
            st[col] = st[col].astype(np.int64)
        out["states"] = st
    return out


def _value(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class Feeder:
    """Signs and ingests one station's records, hour by hour, into a reference platform."""

    def __init__(self, conn: Any, station: Any, zone: ZoneInfo) -> None:
        from central.keys import parse_key_file
        from central.store import Ingestor

        self.conn, self.sid, self.zone = conn, station.station_id, zone
        ring = parse_key_file(json.dumps({"format": "forecourt-keys/1", "stations": {
            self.sid: {"active": KID, "keys": {KID: KEY}}}}), "campaign keys")
        self.now = 0.0
        self.ingestor = Ingestor(conn, {self.sid: station}, lambda: ring, clock=lambda: self.now)
        self.devices = station.devices
        self.msg_seq = 0
        self.boot_id = "campaign"

    def _message(self, topic: str, payload: dict[str, Any]) -> Any:
        from central.checks import Inbound
        from central.signing import signature

        self.msg_seq += 1
        payload = {"v": 1, "station_id": self.sid, "msg_seq": self.msg_seq,
                   "sent_at": self.now, "kid": KID, **payload}
        payload["sig"] = signature(bytes.fromhex(KEY), topic, payload)
        return Inbound(topic, json.dumps(payload, separators=(",", ":"),
                                         ensure_ascii=False).encode("utf-8"), self.now)

    def data_messages(self, kind: str, device: str, recs: list[dict[str, Any]]
                      ) -> Iterator[Any]:
        topic = f"fsx/v1/{self.sid}/{device}/evt/{kind}"
        for i in range(0, len(recs), MAX_RECORDS):
            part = [{**r, "collected_at": self.now} for r in recs[i:i + MAX_RECORDS]]
            yield self._message(topic, {"type": kind, "device": device, "records": part})

    def heartbeat(self, online: dict[str, bool], drained: dict[str, int],
                  seen: dict[str, int]) -> Any:
        devices = [{"device": d, "online": online[d], "device_time": seen[d],
                    "last_ok_at": float(seen[d]), "failures": 0 if online[d] else 5,
                    "error": None if online[d] else "timeout", "drained_through": drained[d]}
                   for d in self.devices]
        return self._message(f"fsx/v1/{self.sid}/status/heartbeat", {
            "type": "heartbeat", "boot_id": self.boot_id, "collector_version": "campaign-feed",
            "backlog": 0, "devices": devices})

    def process(self, messages: list[Any]) -> None:
        for out in self.ingestor.process(messages):
            if out.status == "rejected":
                raise RuntimeError(f"campaign feed: the platform rejected a message "
                                   f"({out.reason}: {out.detail})")


def _offline_spans(states: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Per device, the [start, end) spans it was off line (ground-truth device states)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for device, part in states.sort_values("time", kind="stable").groupby("device"):
        since = None
        for t, off in zip(part["time"], part["offline"], strict=True):
            if bool(off) and since is None:
                since = float(t)
            elif not bool(off) and since is not None:
                spans.setdefault(str(device), []).append((since, float(t)))
                since = None
        if since is not None:
            spans.setdefault(str(device), []).append((since, math.inf))
    return spans


def feed_platform(conn: Any, station: Any, frames: dict[str, pd.DataFrame],
                  exp: dict[str, pd.DataFrame], start: float, end: float, zone: ZoneInfo,
                  prices: list[dict[str, Any]]) -> None:
    from central.inputs import store_verification_record
    from central.prices import store_posted_price
    from central.store import OPTIONAL_FIELDS, RECORD_FIELDS

    with conn.transaction():
        for body in prices:
            store_posted_price(conn, {**body, "station_id": station.station_id}, zone,
                               "campaign")
        for body in frames["verification_records"]["body"]:
            store_verification_record(conn, json.loads(body), zone, "campaign")
    feeder = Feeder(conn, station, zone)
    offline = _offline_spans(frames["device_states"])
    last_seen = {d: int(start) for d in feeder.devices}
    drained = dict(last_seen)
    # per (kind, device): uplink records in the order the device logged them, and their times
    queues = []
    for stream, df in _records(exp, frames["device_states"]).items():
        kind = KIND_OF_STREAM[stream]
        fields = [f for f in (*RECORD_FIELDS[kind], *OPTIONAL_FIELDS.get(kind, ()))
                  if f in df.columns]
        for device, part in df.sort_values(["record_time", "key"], kind="stable").groupby(
                "device", sort=True):
            recs = [{"key": r["key"], "seq": int(r["seq"]), **{f: _value(r[f]) for f in fields}}
                    for r in part.to_dict("records")]
            queues.append((kind, str(device), part["record_time"].to_numpy(np.float64), recs))
    # Records go up in messages of up to 100 (at least every FLUSH_S of device time);
    # heartbeats every FEED_STEP_S, each device drained through the last flush (as the
    # collector promises: everything before it is at the platform) while it is on line.
    flushed = start
    h = start
    while h < end:
        h = min(h + FEED_STEP_S, end)
        feeder.now = h
        batch: list[Any] = []
        if h >= end or h - flushed >= FLUSH_S:
            for kind, device, times, recs in queues:
                lo, hi = np.searchsorted(times, [flushed, h], side="left")
                if h >= end:
                    hi = len(recs)
                if hi > lo:
                    batch.extend(feeder.data_messages(kind, device, recs[lo:hi]))
            flushed = h
        online = {}
        for d in feeder.devices:
            down = any(a <= h < b for a, b in offline.get(d, ()))
            online[d] = not down
            if not down:
                last_seen[d] = int(h)
                drained[d] = int(flushed)
        batch.append(feeder.heartbeat(online, drained, last_seen))
        feeder.process(batch)


def alerts_frame(conn: Any) -> pd.DataFrame:
    rows = conn.query("SELECT id, station_id, kind, severity, raised_at, as_of, device, "
                      "nozzle, tank, title, detector FROM alerts ORDER BY as_of, id")
    return pd.DataFrame(rows, columns=["id", "station_id", "kind", "severity", "raised_at",
                                       "as_of", "device", "nozzle", "tank", "title",
                                       "detector"])


def direct_world(scenario_path: Path, *, platform_mutant: str | None = None,
                 keep_db: Path | None = None) -> WorldResult:
    """Simulate a scenario's world (each station on its own, as the world does) and judge
    the reference platform's alerts on it (`keep_db`: leave the platform's SQLite database
    there, for a closer look)."""
    from central.db import Database
    from central.detectors.runner import evaluate_station
    from central.migrate import migrate
    from central.registry import import_registry, load_registry
    from mutants.platform import settings as detection_settings

    scenario = load_scenario(scenario_path)
    config = build_world_config(scenario)
    zone = ZoneInfo(scenario.timezone)
    registry = {s.station_id: s for s in load_registry(scenario.fleet_path)}
    dialects = {r["station_id"]: r["dialect"] for r in scenario.fleet}
    stations = [registry[sid] for sid in scenario.station_ids]
    instances, tanks = [], []
    with tempfile.TemporaryDirectory(prefix="fc-campaign-") as tmp:
        db_path = keep_db if keep_db is not None else Path(tmp) / "platform.db"
        db = Database(f"sqlite:///{db_path}")
        try:
            migrate(db)
            with db.borrow() as conn:
                import_registry(conn, stations)
                for station in stations:
                    sid = station.station_id
                    frames = _frames(sid, simulate_station(config, sid))
                    truth = Truth(frames["transactions"], frames["tank_states"],
                                  frames["deliveries"], frames["events"], pd.DataFrame(
                                      columns=["station_id", "device", "stream", "seq", "time",
                                               "dropped_total"]))
                    exp = expected_records(truth, {sid: dialects[sid]})
                    feed_platform(conn, station, frames, exp, config.start, config.end, zone,
                                  scenario_prices(scenario))
                    evaluate_station(conn, sid, int(config.end),
                                     detection_settings(platform_mutant))
                    instances.append(frames["cheat_instances"])
                    tanks += noise_rows(frames, scenario.timezone)
                alerts = alerts_frame(conn)
        finally:
            db.close()
    days = len(stations) * (config.end - config.start) / DAY_S
    return judge(pd.concat(instances, ignore_index=True), alerts, config.end, days, tanks)


def truth_of_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, float, float,
                                         list[dict[str, Any]]]:
    """A world run through `forecourt run`: its cheat instances, the platform's alerts, the
    end, the station-days observed and the honest noise rows."""
    data = RunData(run_dir)
    days = sum(((data.simulated_until(s) or data.start) - data.start) / DAY_S
               for s in data.station_ids)
    return data.truth_table("cheat_instances"), data.alerts, data.end, days, []


def _day(t: float, zone: ZoneInfo) -> str:  # for debugging output
    return dt.datetime.fromtimestamp(t, zone).isoformat(timespec="minutes")
