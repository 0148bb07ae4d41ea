"""`forecourt run`: one scenario → a run directory with evidence, a verdict and reports.

Starts the chain (devices → collector(s) → broker → platform, acceptance/chain.py),
carries out the scenario's fault timeline at simulated times, samples on-line state and
the SUT's resource use, waits (bounded) for the data to drain, observes the platform
through its API, stops everything, then checks (acceptance/check.py) and reports
(reports/). The run directory layout is docs/run-record.md.

Exit codes: 0 accepted, 1 not accepted, 3 incomplete (a MUST requirement not proven), 2 the
harness could not run (reason on stderr and in run.json).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from acceptance.attacks.base import Context
from acceptance.attacks.phase import run_attack_phase, station_keys
from acceptance.chain import Chain, ChainSettings, deal_collectors, stations_sharing
from acceptance.chain_heads import FILE as CHAIN_HEADS_FILE
from acceptance.chain_heads import record_chain_heads
from acceptance.checkers.device_state import SHOWN_OFF_LINE
from acceptance.criteria import CriteriaError, resolve_criteria
from acceptance.drain import DetectionReport
from acceptance.faults import KINDS as FAULT_KINDS
from acceptance.inputs import InputPoster, InputPump
from acceptance.inspector import inspect
from acceptance.observe import (
    ApiError,
    observe_alerts,
    observe_commerce,
    observe_credit,
    observe_metrology,
    observe_states,
    observe_tax_checks,
    station_status,
)
from acceptance.observed_records import write_observed_records
from acceptance.processes import ChainError, SutExited
from acceptance.record import write_json
from acceptance.recovery import add_recoveries
from acceptance.rundir import ATTACK_PHASE, CHEAT_OFF_LINE, RESOURCE_COLUMNS
from acceptance.schedule import (
    Fault,
    FaultAction,
    WorldStalled,
    run_schedule,
    scenario_faults,
    wait_on_line,
)
from acceptance.sut import Sut, SutError, parse_sut
from acceptance.tls import client_context
from acceptance.world_config import build_world_config
from devices.pace import ALL, PaceWindow
from mutants.platform import platform_args, platform_command
from scenarios.loader import Scenario, ScenarioError, load_scenario
from sim.cheats.registry import make_cheat

log = logging.getLogger(__name__)

EXIT_HARNESS = 2  # verdict exit codes: acceptance.record.VERDICTS


# What the record says whenever the embedded broker served (docs/security.md)
EMBEDDED_BROKER_NOTE = (
    "the broker was the embedded amqtt (Mosquitto is not installed, or --broker embedded): it "
    "has no accounts or ACL (anyone on the network may read, publish and take over a session: "
    "SEC-1 fails), and was seen handing a reconnecting client other topics' retained "
    "messages and dropping sessions when many clients connect at once; it queues nothing "
    "for a client that is away (status messages sent while the platform is down are "
    "lost; data comes again with the collectors' resends) — install Mosquitto")


def harness_version() -> str:
    try:
        return version("forecourt-hil")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


TRUTH_FILES = ("manifest.json",)
# simulated time after a change a device shows only in its header during which the world is
# slowed, so that the collector reads the header (`header_changes`)
CHANGE_WINDOW_S = 6 * 3600.0


class HarnessError(RuntimeError):
    """The harness could not run the scenario (not a verdict on the SUT)."""


@dataclass
class RunOptions:
    scenario: Path
    out: Path
    # embedded | mosquitto | auto (Mosquitto if installed) | mqtt://host:port; `forecourt
    # run` defaults to auto, callers in code to the embedded broker
    broker: str = "embedded"
    mutant: str | None = None
    platform_mutant: str | None = None  # blind | jumpy: a deliberately broken reference platform
    days: float | None = None
    seed: int | None = None
    compression: float | None = None  # None = max (flow-controlled)
    lang: str = "zh-CN"
    pdf: bool = False
    drain_timeout_s: float = 300.0
    detection_timeout_s: float = 120.0  # detection wait: gives up after this long without progress
    fault_timeout_s: float = 1800.0
    stall_timeout_s: float = 300.0  # world held without progress, no fault in force: a finding
    sample_interval_s: float = 0.5
    collectors: str = "per-station"
    fleet_processes: int = 1  # collectors "fleet": stations dealt over this many processes
    # TLS on the uplink: the managed Mosquitto listens with TLS only, with a throw-away CA
    # made in the run's work directory (acceptance/tls.py)
    mqtt_tls: bool = False
    progress: bool = True
    collector_args: tuple[str, ...] = ()
    paced: bool = True  # pace windows for faults and the latency segment (docs/run-record.md)
    # wall seconds per simulated day outside the windows (a ceiling), at least `pace_min_s`
    # for the run: every day gets on-line samples (STB-1) and header reads (state reports)
    pace_wall_s_per_day: float = 1.0
    pace_min_s: float = 10.0
    fault_wall_s: float = 6.0  # wall seconds each fault window lasts
    # wall seconds of the CHANGE_WINDOW_S after a cheat changes what a device's header shows:
    # twice the reference collector's header read interval (collector --live-interval 5 s)
    change_wall_s: float = 10.0
    latency_minutes: float = 10.0  # simulated minutes of the near-real-time segment
    latency_compression: float = 60.0


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _proc_sample(pid: int) -> tuple[int, float] | None:
    """(rss bytes, cpu seconds) of a live process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime + stime (fields 14, 15)
    return int(statm[1]) * os.sysconf("SC_PAGE_SIZE"), cpu


@dataclass
class _Samples:
    availability: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0


class Sampler(threading.Thread):
    """Samples the platform's on-line view and every process of the run (the SUT's for
    STB-1, the harness's own to explain the run's time) while the run goes on."""

    def __init__(self, chain: Chain, interval: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.chain, self.interval = chain, interval
        self.samples = _Samples()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        wall = time.time()
        sim = self.chain.sim_time()
        try:
            states = self.chain.station_states()
        except (ApiError, OSError):
            self.samples.errors += 1  # platform down (a restart fault): no sample
            states = {}
        for sid, st in states.items():
            col = st.get("collector") or {}
            self.samples.availability.append({"station_id": sid, "device": "", "wall_time": wall,
                                              "sim_time": sim, "online": bool(col.get("online"))})
            for dev in st.get("devices") or []:
                self.samples.availability.append({
                    "station_id": sid, "device": str(dev.get("device")), "wall_time": wall,
                    "sim_time": sim, "online": bool(dev.get("online"))})
        for name, pid in self.chain.pids().items():
            got = _proc_sample(pid)
            if got:
                self.samples.resources.append({"role": name, "pid": pid, "wall_time": wall,
                                               "sim_time": sim, "rss_bytes": got[0],
                                               "cpu_seconds": got[1]})

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds of each part at its last sample; a restarted part's processes add up."""
        last = {(r["role"], r["pid"]): r["cpu_seconds"] for r in self.samples.resources}
        out: dict[str, float] = {}
        for (role, _), cpu in last.items():
            out[role] = out.get(role, 0.0) + cpu
        return {role: round(cpu, 1) for role, cpu in sorted(out.items())}


class Progress:
    """One status line on a terminal (quiet in CI, where stderr is no tty): simulated day,
    records through the platform and their rate, device backlog, faults in progress, ETA."""

    def __init__(self, chain: Chain, enabled: bool) -> None:
        self.chain, self.enabled = chain, enabled and sys.stderr.isatty()
        self.active: set[str] = set()
        self._last = (time.monotonic(), 0)
        self._first: tuple[float, float] | None = None  # wall, sim of the first status

    def fault(self, action: FaultAction) -> None:
        label = f"{action.fault.kind}@{action.fault.station}"
        (self.active.add if action.action == "start" else self.active.discard)(label)
        if not self.enabled:
            log.info("fault %s %s at sim %.0f", action.action, label, action.sim_time)

    def show(self, accepted: int | None) -> None:
        if not self.enabled:
            return
        st = self.chain.device_status() or {}
        now = time.monotonic()
        rate = 0.0
        if accepted is not None:
            t0, n0 = self._last
            rate = (accepted - n0) / max(1e-6, now - t0)
            self._last = (now, accepted)
        sim = float(st.get("sim_time", 0) or 0)
        day = (sim - self.chain.scenario.start_epoch) / 86400.0
        eta = "?"
        if sim and self._first is None:
            self._first = (now, sim)
        elif self._first and sim > self._first[1] and st.get("end"):
            left = (float(st["end"]) - sim) * (now - self._first[0]) / (sim - self._first[1])
            eta = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
        sys.stderr.write(f"\rday {day:6.2f} | {accepted or 0:>9} records, {rate:7.0f}/s | "
                         f"device backlog {st.get('backlog', '?'):>5} | faults: "
                         f"{', '.join(sorted(self.active)) or '-'} | ETA {eta}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _copy_inputs(scenario: Scenario, out: Path) -> None:
    """Byte copies: their digest is the scenario's (the checkers read them, not the loader)."""
    shutil.copyfile(scenario.path, out / "scenario.yaml")
    shutil.copyfile(scenario.fleet_path, out / "fleet.csv")


def _move_truth(chain: Chain, out: Path) -> None:
    """The devices wrote the ground truth beside endpoints.json; the run keeps it in truth/."""
    truth = out / "truth"
    truth.mkdir(exist_ok=True)
    for p in chain.truth_dir.iterdir():
        if p.suffix == ".parquet" or p.name in TRUTH_FILES:
            shutil.move(str(p), truth / p.name)


def _export_records(chain: Chain, out: Path, info: dict[str, Any]) -> None:
    """The stored records (station by station) and, beside them, the platform's chain
    heads (its chain check keeps its interpreter busy while the harness decodes pages);
    when each ended goes to run.json's `phase_ends_s` ("records", "chain_heads")."""
    def heads() -> None:
        info["chain_heads"] = record_chain_heads(chain.admin_api, list(chain.station_ids), out)
        _mark(info, "chain_heads")

    with ThreadPoolExecutor(1, thread_name_prefix="chain-heads") as pool:
        checked = pool.submit(heads)
        write_observed_records(chain.api, chain.station_ids, out / "observed")
        _mark(info, "records")
        checked.result()


def _export_views(chain: Chain, out: Path, info: dict[str, Any]) -> None:
    """`_write_data_views`; when it ended goes to `phase_ends_s` ("data_views")."""
    _write_data_views(chain, out / "observed")
    _mark(info, "data_views")


def _write_data_views(chain: Chain, obs: Path) -> None:
    """The reconciliation and the commerce analytics: computed from the records alone, so
    final once the data drained (in the reference platform each costs a load of every
    station's readings: ≈ 9 s apiece in the banner's 180 days)."""
    rec_rows = []
    for sid in chain.station_ids:
        rec_rows += list(chain.api.items("reconciliation", station_id=sid))
    if rec_rows:
        pd.DataFrame(rec_rows).to_parquet(obs / "reconciliation.parquet", index=False)
    commerce, served = observe_commerce(chain.api, chain.station_ids)
    for name, df in commerce.items():
        df.to_parquet(obs / f"{name}.parquet", index=False)
    write_json(obs / "commerce.json", served)


@dataclass
class _Export:
    """What is exported once the data drained, beside the detection wait, in a thread of
    its own: the records with the chain heads, then the data views. One after the other:
    fetched at once, the views slowed the records by as much as they gained (banner run 36,
    docs/performance.md); the latency table needs only the records."""

    records: Future[None]
    views: Future[None]

    def result(self) -> None:
        """Wait for both parts; then the records' error, if any, else the views'."""
        wait([self.records, self.views])
        self.records.result()
        self.views.result()


def _begin_export(chain: Chain, out: Path, info: dict[str, Any]) -> _Export:
    (out / "observed").mkdir(exist_ok=True)
    pool = ThreadPoolExecutor(1, thread_name_prefix="export")
    try:
        return _Export(pool.submit(_export_records, chain, out, info),
                       pool.submit(_export_views, chain, out, info))
    finally:
        pool.shutdown(wait=False)


def _write_observed(chain: Chain, out: Path, sampler: Sampler,
                    detection: DetectionReport | None = None) -> None:
    """What the platform decided (after the detection wait) and served; the records and
    the views computed from them are `_export_records`'."""
    obs = out / "observed"
    obs.mkdir(exist_ok=True)
    observe_alerts(chain.api, chain.station_ids).to_parquet(obs / "alerts.parquet",
                                                            index=False)
    # right after the alerts it grades, so both show the same findings
    credit, served = observe_credit(chain.api, chain.station_ids)
    credit.to_parquet(obs / "credit.parquet", index=False)
    write_json(obs / "credit.json", served)
    observe_states(chain.api, chain.station_ids).to_parquet(obs / "states.parquet",
                                                            index=False)
    checks, offered = observe_tax_checks(chain.api, chain.station_ids)
    checks.to_parquet(obs / "tax_checks.parquet", index=False)
    (obs / "tax_checks.json").write_text(json.dumps({"offered": offered}), encoding="utf-8")
    audit, offered = observe_metrology(chain.api, chain.station_ids)
    audit.to_parquet(obs / "metrology.parquet", index=False)
    (obs / "metrology.json").write_text(json.dumps({"offered": offered}), encoding="utf-8")
    if detection is not None:
        (obs / "detection_status.json").write_text(json.dumps(
            asdict(detection), indent=1, ensure_ascii=False), encoding="utf-8")
    stations = chain.api.stations()
    (obs / "stations.json").write_text(json.dumps(stations, ensure_ascii=False, indent=1),
                                       encoding="utf-8")
    station_status(stations).to_parquet(obs / "station_status.parquet", index=False)
    (obs / "ingest_stats.json").write_text(json.dumps(chain.api.ingest_stats(), indent=1),
                                           encoding="utf-8")
    cols = ("station_id", "device", "wall_time", "sim_time", "online")
    pd.DataFrame(sampler.samples.availability, columns=list(cols)).to_parquet(
        obs / "availability.parquet", index=False)


def _mark(info: dict[str, Any], phase: str) -> None:
    """When `phase` ended, in wall seconds since the run started (run.json `phase_ends_s`):
    where a long run's time after the world goes."""
    info.setdefault("phase_ends_s", {})[phase] = round(time.time() - info["wall_start"], 1)


def _timeline(actions: list[FaultAction], chain: Chain) -> list[dict[str, Any]]:
    """Each fault as observed by the schedule (acceptance/schedule.py): the simulated and wall
    times at which its start and its end were carried out (the harness's kinds) or reached
    (the devices' and the world's kinds act on their own at that simulated time). A fault
    the run never reached (a shortened run) is not there; one it did not see end has
    sim_end null. `detail.stations`: every station a fault of a station's collector or link
    took down (fleet mode: all that its collectors process serves)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for a in actions:
        f = a.fault
        row = rows.setdefault((f.kind, f.station, f.device, f.at), {
            "kind": f.kind, "station_id": f.station, "device": f.device, "sim_start": None,
            "sim_end": None, "wall_start": None, "wall_end": None,
            "detail": {"planned_start": f.at, "planned_end": f.end,
                       "served_by": FAULT_KINDS[f.kind].served_by}})
        hit = _stations_hit(f, chain.collector_keys)
        if hit != [f.station]:
            row["detail"]["stations"] = hit
        if a.action == "start":
            row["sim_start"], row["wall_start"] = a.sim_time, a.wall
            row["detail"]["start_done_wall"] = a.wall_done
        else:
            row["sim_end"], row["wall_end"] = a.sim_time, a.wall
            row["detail"]["end_done_wall"] = a.wall_done
            row["detail"]["ended"] = a.action
    return sorted(rows.values(), key=lambda r: (r["sim_start"] or 0, r["kind"]))


def _stations_hit(f: Fault, keys: dict[str, str]) -> list[str]:
    """The stations a fault takes away from their collector: a harness fault of a station's
    collector or link hits every station that collector process serves."""
    kind = FAULT_KINDS[f.kind]
    if f.station is None or kind.served_by != "harness" or kind.scope != "station":
        return [f.station] if f.station is not None else []
    return stations_sharing(keys, f.station)


def pace_windows(opts: RunOptions, scenario: Scenario,
                 keys: dict[str, str] | None = None) -> list[PaceWindow]:
    """Each fault served slowly enough to act on it (`fault_wall_s` of wall time, also when it
    lies inside a longer one) — a device fault slowly enough for the platform to show the
    device off line within `device_offline_shown_s` (DAT-6) and the harness to see it —, the
    CHANGE_WINDOW_S after each header change (`header_changes`) in `change_wall_s`, and
    a near-real-time segment for latency (DAT-5) in the last quiet stretch of the run.
    The windows' compressions are ceilings: the other stations' FIFOs still hold the world
    (a day's fault in 6 s outruns the chain); only the stations the faults take away from
    their collectors (`keys`: station → collector process, acceptance.chain) are exempt."""
    keys = keys if keys is not None else {sid: sid for sid in scenario.station_ids}
    start = scenario.start_epoch
    end = start + 86400.0 * (opts.days if opts.days is not None else scenario.data["days"])
    criteria = resolve_criteria(scenario.data.get("criteria"), run_days=(end - start) / 86400.0)
    device_wall_s = max(opts.fault_wall_s, 1.5 * criteria["device_offline_shown_s"])
    spans: list[tuple[float, float, tuple[str, ...]]] = []  # start, end, exempt stations
    slow: list[tuple[float, float, float]] = []  # each fault: start, end, compression cap
    for f in scenario_faults(scenario):
        if f.at >= end:
            continue
        tail = max(600.0, 0.25 * f.duration)  # recovery after the fault, at the same pace
        hit = (ALL,) if FAULT_KINDS[f.kind].scope == "fleet" else tuple(_stations_hit(f, keys))
        spans.append((max(start, f.at - 60.0), min(end, f.end + tail), hit))
        # every fault gets its own wall time, even inside a longer one (a crash in a cut)
        wall = device_wall_s if f.kind in SHOWN_OFF_LINE else opts.fault_wall_s
        slow.append((f.at, min(end, f.end), f.duration / wall))
    for t in header_changes(scenario, start, end):
        b = min(end, t + CHANGE_WINDOW_S)
        spans.append((t, b, ()))
        slow.append((t, b, (b - t) / opts.change_wall_s))
    spans.sort()
    merged: list[tuple[float, float, tuple[str, ...]]] = []
    for a, b, hit in spans:
        if merged and a <= merged[-1][1]:
            a0, b0, hit0 = merged[-1]
            merged[-1] = (a0, max(b0, b), hit0 + hit)
        else:
            merged.append((a, b, hit))
    windows = [replace(w, exempt=(ALL,) if ALL in hit else tuple(sorted(set(hit))))
               for a, b, hit in merged
               for w in _split(a, b, max(1.0, (b - a) / opts.fault_wall_s), slow)]
    seg = 60.0 * opts.latency_minutes
    seg_end = end - 3600.0
    for a, b, _ in reversed(merged):  # clear of every fault window
        if seg_end > a and seg_end - seg < b:
            seg_end = a
    if seg_end - seg >= start + 3600.0:  # after start-up, or not at all
        windows.append(PaceWindow(seg_end - seg, seg_end, opts.latency_compression, latency=True))
    return windows


def header_changes(scenario: Scenario, start: float, end: float) -> list[float]:
    """When cheats change what a device's header shows and nothing else (new ids, a broken
    seal, no event logged). A collector sees such a change only at its next header read,
    every few seconds of *wall* time: at full compression that is a day of simulated time or
    more, most of what MET-1 allows (`metrology_change_days`), so the world slows down after
    each."""
    cheats = (make_cheat(cc, f"cheats[{i}]", i)
              for i, cc in enumerate(build_world_config(scenario).cheats))
    return [c.config.start for c in cheats
            if start <= c.config.start < end and c.header_change_at_start()]


def _split(a: float, b: float, comp: float, slow: list[tuple[float, float, float]]
           ) -> list[PaceWindow]:
    """[a, b) at `comp`, slower where a fault needs its own wall time (consecutive windows of
    equal pace joined; pace windows may not overlap)."""
    cuts = sorted({a, b, *(t for s, e, _ in slow for t in (s, e) if a < t < b)})
    out: list[PaceWindow] = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        c = max(1.0, min([comp, *(cap for s, e, cap in slow if s < hi and e > lo)]))
        if out and out[-1].compression == c:
            out[-1] = PaceWindow(out[-1].start, hi, c)
        else:
            out.append(PaceWindow(lo, hi, c))
    return out


def _collectors(opts: RunOptions, sut: Sut) -> tuple[str, int]:
    """(collectors mode, fleet processes) of the chain. A vendor's collector runs as its
    `per_station` says (`--collectors` and `--fleet-processes` are the reference's): one
    process per station, or one for every station."""
    c = sut.collector
    if c.kind == "external":
        return ("per-station" if c.per_station else "fleet"), 1
    return opts.collectors, opts.fleet_processes


def _settings(opts: RunOptions, scenario: Scenario, sut: Sut, work: Path,
              windows: list[PaceWindow]) -> ChainSettings:
    collector_args = list(opts.collector_args)
    devices_args: list[str] = []
    if opts.paced and opts.compression is None:
        days = opts.days if opts.days is not None else scenario.data["days"]
        wall = max(opts.pace_min_s, days * opts.pace_wall_s_per_day)
        devices_args += ["--max-compression", repr(days * 86400.0 / wall)]
        for w in windows:
            devices_args += ["--pace", w.format()]
    c, p = sut.collector, sut.platform
    external_collector = c.kind == "external"
    collectors, processes = _collectors(opts, sut)
    return ChainSettings(
        scenario=scenario.path, workdir=work, days=opts.days, seed=opts.seed,
        compression=opts.compression,
        broker=str(p.broker) if p.kind == "external" else opts.broker,
        collectors=collectors, fleet_processes=processes,
        collector_args=tuple(collector_args), collector_mutant=sut.collector.mutant,
        devices_args=tuple(devices_args),
        collector_command=c.command if external_collector else (),
        platform_url=p.base_url if p.kind == "external" else None,
        platform_token=p.token, keys_file=p.keys, mqtt_credentials=p.mqtt_credentials,
        mqtt_tls=opts.mqtt_tls,
        platform_read_token=p.read_token, platform_tax_token=p.tax_token,
        platform_args=platform_args(opts.platform_mutant),
        platform_command=platform_command(opts.platform_mutant),
        controlled=True)


def _write_latency(chain: Chain, out: Path, timeline: list[dict[str, Any]],
                   windows: list[PaceWindow]) -> None:
    """latency.parquet: when each record of the real-time segment appeared at the device and
    when the platform stored it (the same machine's clock)."""
    cols = ["key", "station_id", "stream", "emitted_wall", "visible_wall"]
    emitted_path = chain.truth_dir / "emitted.parquet"
    rows = pd.DataFrame(columns=cols)
    if emitted_path.exists():
        em = pd.read_parquet(emitted_path)
        # object dtype also when the segment emitted nothing (an empty list would be float64
        # and the merge below would refuse it: found by forecourt fuzz)
        em["key"] = pd.Series([f"{s}/{d}/{st}/{q}/{int(t // 1)}" for s, d, st, q, t in
                               zip(em.station_id, em.device, em.stream, em.seq, em.time,
                                   strict=True)], index=em.index, dtype=object)
        seen = []
        for stream in em["stream"].unique():
            p = out / "observed" / f"{stream}.parquet"
            if p.exists():
                # only the segment's keys: grouping millions of stored keys took seconds
                keys = em.loc[em["stream"] == stream, "key"].unique().tolist()
                obs = pd.read_parquet(p, columns=["key", "received_at"],
                                      filters=[("key", "in", keys)])
                seen.append(obs.groupby("key", as_index=False)["received_at"].min())
        vis = pd.concat(seen) if seen else pd.DataFrame(columns=["key", "received_at"])
        rows = em.merge(vis, on="key", how="left").rename(columns={"received_at": "visible_wall"})
        rows = rows[cols]
    rows.to_parquet(out / "latency.parquet", index=False)
    for w in windows:
        if w.latency:
            timeline.append({"kind": "real_time_segment", "station_id": None, "device": None,
                             "sim_start": w.start, "sim_end": w.end, "wall_start": None,
                             "wall_end": None, "detail": {"compression": w.compression}})


def execute(opts: RunOptions) -> tuple[dict[str, Any], Path]:
    """Run the chain and write the run directory (without checking). Raises HarnessError."""
    try:
        scenario = load_scenario(opts.scenario)
    except ScenarioError as exc:
        raise HarnessError("scenario rejected:\n  - " + "\n  - ".join(exc.messages)) from None
    try:
        sut = parse_sut(scenario.data.get("sut"), base_dir=scenario.path.parent,
                        mutant=opts.mutant)
    except SutError as exc:
        raise HarnessError(str(exc)) from None
    try:  # thresholds are checked before anything starts, not after hours of running
        resolve_criteria(scenario.data.get("criteria"), run_days=opts.days or scenario.data["days"],
                         source=f"{scenario.path}: criteria")
    except CriteriaError as exc:
        raise HarnessError(str(exc)) from None
    for i, f in enumerate(scenario.data.get("faults") or []):  # what the harness cannot do
        external = ((f["kind"].startswith("platform_") and sut.platform.kind != "reference")
                    or (f["kind"] == "broker_restart" and (sut.platform.kind != "reference"
                                                          or opts.broker.startswith("mqtt://"))))
        if external:
            raise HarnessError(f"{scenario.path}: faults[{i}].kind: {f['kind']} needs a "
                               f"{'platform' if f['kind'] != 'broker_restart' else 'broker'} "
                               f"the harness started; this run's is external")
    if opts.mqtt_tls and sut.platform.kind != "reference":
        raise HarnessError("--mqtt-tls: the harness makes TLS for the Mosquitto it manages; this "
                           "scenario's platform is external, with its own broker")
    if opts.platform_mutant and sut.platform.kind != "reference":
        raise HarnessError(f"--platform-mutant {opts.platform_mutant}: only the reference "
                           f"platform has mutants; this scenario's platform is external")
    out = Path(opts.out).resolve()
    if out.exists() and any(out.iterdir()):
        raise HarnessError(f"{out} is not empty: give each run its own directory")
    out.mkdir(parents=True, exist_ok=True)
    _copy_inputs(scenario, out)
    info: dict[str, Any] = {
        "run_id": uuid.uuid4().hex, "scenario": str(scenario.path), "seed": opts.seed
        if opts.seed is not None else scenario.data["seed"],
        "days": opts.days if opts.days is not None else scenario.data["days"],
        "compression": "max" if opts.compression is None else opts.compression,
        "broker": opts.broker, "mqtt_tls": opts.mqtt_tls, "sut": sut.describe(),
        "harness": {"version": harness_version(), "git_commit": git_commit()},
        "sut_versions": {
            "collector": (f"reference {harness_version()}" + (f" (mutant {sut.collector.mutant})"
                          if sut.collector.mutant else "")) if sut.collector.kind == "reference"
            else "external: " + " ".join(sut.collector.command),
            "platform": f"reference {harness_version()}" + (
                f" (mutant {opts.platform_mutant})" if opts.platform_mutant else "")
            if sut.platform.kind == "reference"
            else f"external: {sut.platform.base_url}"},
        "wall_start": time.time(), "notes": []}
    keys = deal_collectors(scenario.station_ids, *_collectors(opts, sut))
    windows = pace_windows(opts, scenario, keys) \
        if opts.paced and opts.compression is None else []
    info["pacing"] = {"fault_wall_s": opts.fault_wall_s, "change_wall_s": opts.change_wall_s,
                      "windows": len(windows)}
    try:
        chain = Chain(_settings(opts, scenario, sut, out, windows))
    except ValueError as exc:  # e.g. --mqtt-tls without Mosquitto
        raise HarnessError(str(exc)) from None
    info["broker"] = chain.broker.describe()  # what "auto" chose
    if chain.broker.kind == "embedded":
        info["notes"].append(EMBEDDED_BROKER_NOTE)
    sampler = Sampler(chain, opts.sample_interval_s)
    progress = Progress(chain, opts.progress)
    actions: list[FaultAction] = []
    end = scenario.start_epoch + 86400.0 * float(info["days"])
    latency_timeline: list[dict[str, Any]] = []
    # The harness plays the other departments: posted prices before the devices produce,
    # verification records as the world makes them (acceptance/inputs.py).
    poster = InputPoster(chain.admin_api, chain.sim_time)
    pump = InputPump(poster, chain.truth_dir)
    exported: _Export | None = None  # the export, begun once drained
    try:
        chain.start(before_devices=lambda c: poster.post_prices(scenario))
        pump.start()
        sampler.start()
        stop_progress = threading.Event()

        def show() -> None:
            while not stop_progress.wait(0.5):
                try:
                    progress.show(int(chain.api.ingest_stats()["accepted"]))
                except (ApiError, OSError, KeyError):
                    progress.show(None)

        threading.Thread(target=show, daemon=True).start()

        def on_action(a: FaultAction) -> None:
            actions.append(a)
            progress.fault(a)

        on_line, waited = wait_on_line(chain, timeout=2 * chain.settings.start_timeout_s)
        info["start_up"] = {"all_on_line": on_line, "waited_s": round(waited, 3)}
        if not on_line:
            info["notes"].append(f"not every station was on line at the platform {waited:.0f} s "
                                 f"after start; the world started anyway (off-line time counts)")
        info["attack_phase"] = _attack_phase(chain, scenario, out, latency_timeline)
        run_schedule(chain, scenario_faults(scenario), end, timeout=opts.fault_timeout_s,
                     on_action=on_action, stall_timeout_s=opts.stall_timeout_s)
        _mark(info, "schedule")
        drain = chain.wait_drained(timeout=opts.drain_timeout_s)
        pump.stop()
        # declarations of periods that ended in the run but are filed after its end: the tax
        # bureau hands them on now, before the platform is observed (late: run.json shows it)
        poster.post_held_declarations()
        stop_progress.set()
        progress.close()
        info["drain"] = {"drained": drain.drained, "reason": drain.reason,
                         "waited_s": round(drain.waited_s, 3),
                         "world_finished_after_s": drain.finished_after_s,
                         "fifos_empty_after_s": drain.fifos_empty_after_s}
        if not drain.drained:
            info["notes"].append(f"data did not drain: {drain.reason}")
        _mark(info, "drained")
        # Once drained the records and the chain heads are final: fetched beside the
        # detection wait, which the reference platform spends in its detection worker
        # (central/detectors/worker.py), so both cores work (issue 11). Undrained, records
        # may still come in: they are fetched after the wait, as late as before.
        if drain.drained:
            exported = _begin_export(chain, out, info)
        detection = chain.wait_detection(end, timeout=opts.detection_timeout_s)
        if exported is None:
            exported = _begin_export(chain, out, info)
        info["detection"] = {"done": detection.done, "supported": detection.supported,
                             "reason": detection.reason, "through": detection.through,
                             "waited_s": round(detection.waited_s, 3)}
        if not detection.done:
            info["notes"].append(f"detection did not finish: {detection.reason}")
        _mark(info, "detected")
        sampler.stop_event.set()
        sampler.join(10)
        sampler.sample()  # the final state, after draining
        # the harness as the inspector: a few alerts confirmed, rectified or dismissed, so
        # that the credit grade's lifecycle weights are exercised (acceptance/inspector.py)
        info["inspector"] = inspect(chain.admin_api, scenario, chain.station_ids)
        _write_observed(chain, out, sampler, detection)
        _mark(info, "observed")
        exported.records.result()  # the latency table reads them
        # the station side is no longer needed: stopped (its devices write the complete
        # ground truth) while the platform may still be computing the data views
        info["exit_codes"] = chain.stop_field()
        _write_latency(chain, out, latency_timeline, windows)
        _mark(info, "latency")
        exported.result()
        if info["chain_heads"].get("not_intact"):
            info["notes"].append("the platform's own chain check finds tampering at "
                                 f"{', '.join(info['chain_heads']['not_intact'])} "
                                 f"({CHAIN_HEADS_FILE})")
        # anything of the final ground truth the run did not post (late; run.json says so)
        poster.post_truth_table(chain.truth_dir)
        poster.post_tax_truth_table(chain.truth_dir)
    except RunInterrupted as exc:
        # the record says the run was interrupted and can at best be incomplete
        info["interrupted"] = str(exc)
        info["exit_reason"] = f"interrupted by {exc} at simulated {_sim_iso(chain)}"
        _keep_evidence(chain, out, sampler, info, exported)
    except WorldStalled as exc:
        # a finding about the SUT (STB-1 fails on it), not a harness failure
        info["world_stalled"] = exc.to_dict()
        info["exit_reason"] = str(exc)
        _keep_evidence(chain, out, sampler, info, exported)
    except SutExited as exc:
        # a finding about the SUT (STB-1 fails on it), not a harness failure
        info["sut_exited"] = {"part": exc.part, "pid": exc.pid, "exit_code": exc.code,
                              "log": str(exc.log), "log_tail": exc.tail}
        info["exit_reason"] = (f"the SUT's {exc.part} exited on its own with code {exc.code} "
                               f"at simulated {_sim_iso(chain)}")
        _keep_evidence(chain, out, sampler, info, exported)
    except (ChainError, TimeoutError, ApiError, OSError) as exc:
        info["exit_reason"] = f"harness: {exc}"
        raise HarnessError(str(exc)) from exc
    finally:
        with _signals_held():  # stopping every part and writing run.json are never cut short
            sampler.stop_event.set()
            pump.stop_event.set()
            info["inputs_posted"] = poster.summary()
            progress.close()
            try:
                chain.stop()
            except ChainError as exc:
                info["notes"].append(f"stopping the chain: {exc}")
            info["wall_end"] = time.time()
            info.setdefault("exit_reason", "completed")
            timeline = add_recoveries(
                _timeline(actions, chain),
                pd.DataFrame(sampler.samples.availability,
                             columns=["station_id", "device", "wall_time", "sim_time", "online"]),
                chain.station_ids) + latency_timeline
            write_json(out / "timeline.json", timeline)
            pd.DataFrame(sampler.samples.resources, columns=list(RESOURCE_COLUMNS)).to_parquet(
                out / "resources.parquet", index=False)
            info["cpu_s"] = sampler.cpu_by_role()
            write_json(out / "run.json", info, default=str)
    _move_truth(chain, out)
    _add_cheat_outages(out)
    return info, out


def _attack_phase(chain: Chain, scenario: Scenario, out: Path,
                  timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """SEC-1's attacks (acceptance/attacks/phase.py) while every station is on line and the
    world holds at its start; forged records are dated the day before the world began. The
    phase goes to the timeline: the off-line moments it causes are excused."""
    ctx = Context(chain.broker.host, chain.broker.port, chain.mqtt_accounts,
                  station_keys(chain.keys_path), list(chain.station_ids), chain.api,
                  marker_time=scenario.start_epoch - 86400.0, read_api=chain.read_api,
                  tax_api=chain.tax_api,
                  tls=client_context(chain.mqtt_ca_path) if chain.mqtt_ca_path else None)
    entry = {"kind": ATTACK_PHASE, "station_id": None, "device": None,
             "sim_start": chain.sim_time(), "wall_start": time.time(),
             "detail": "SEC-1 attack phase"}
    timeline.append(entry)
    try:
        doc = run_attack_phase(ctx, out)
    except (ApiError, OSError, ValueError, KeyError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}  # SEC-1 then has no evidence
    finally:
        entry.update(sim_end=chain.sim_time(), wall_end=time.time())
    return {"attempts": len(doc["attempts"]),
            "refused": sum(1 for a in doc["attempts"] if a["passed"]),
            "waited_s": round(doc["ended_wall"] - doc["started_wall"], 3)}


def _keep_evidence(chain: Chain, out: Path, sampler: Sampler, info: dict[str, Any],
                   exported: _Export | None) -> None:
    """A run that ends early keeps what the platform holds so far (it is then stopped and
    checked like any other). `exported`: the record export begun beside the detection wait,
    if it was: awaited, and done again if it failed."""
    try:
        if exported is not None:
            with contextlib.suppress(ChainError, TimeoutError, ApiError, OSError):
                exported.result()
        done = info.get("phase_ends_s", {})
        obs = out / "observed"
        obs.mkdir(exist_ok=True)
        if "records" not in done:
            write_observed_records(chain.api, chain.station_ids, obs)
        if "data_views" not in done:
            _write_data_views(chain, obs)
        _write_observed(chain, out, sampler)
    except (ChainError, TimeoutError, ApiError, OSError) as exc:
        info["notes"].append(f"the platform could not be observed at the early end: {exc}")


def _add_cheat_outages(out: Path) -> None:
    """Dispensers a cheat took off line (dispenser_offline, a power cut) go into the timeline
    as `cheat_off_line`: the station unplugged them, the SUT did not fail (the cheat is
    ALM-DATA's business), so availability excuses those windows (docs/requirements.md)."""
    path = out / "truth" / "device_states.parquet"
    if not path.exists():
        return
    states = pd.read_parquet(path).sort_values(["station_id", "device", "time"], kind="stable")
    rows: list[tuple[Any, Any, float, float | None]] = []
    for (sid, device), part in states.groupby(["station_id", "device"], sort=True):
        since = None
        for t, off in zip(part["time"], part["offline"], strict=True):
            if bool(off) and since is None:
                since = float(t)
            elif not bool(off) and since is not None:
                rows.append((sid, device, since, float(t)))
                since = None
        if since is not None:
            rows.append((sid, device, since, None))
    timeline = json.loads((out / "timeline.json").read_text(encoding="utf-8"))
    # a power loss of the scenario is in the timeline already, under its own kind
    outages = [(e["station_id"], e["device"], e["sim_start"], e["sim_end"]) for e in timeline
               if e["kind"] == "device_power_loss"]
    rows = [r for r in rows if not any(r[:2] == o[:2] and o[2] <= r[2] <= o[3]
                                       for o in outages)]
    if not rows:
        return
    timeline += [{"kind": CHEAT_OFF_LINE, "station_id": sid, "device": device, "sim_start": a,
                  "sim_end": b, "wall_start": None, "wall_end": None,
                  "detail": {"served_by": "world (a cheat)"}} for sid, device, a, b in rows]
    timeline.sort(key=lambda r: (r["sim_start"] or 0, r["kind"]))
    write_json(out / "timeline.json", timeline)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT ignored meanwhile (in the main thread, where handlers live): a
    signal while the parts are being stopped would leave the rest of them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class RunInterrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """SIGTERM or SIGINT reached the harness: stop every part, keep the evidence, say so."""


def _interrupt(signum: int, _frame: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal must not cut the clean-up
        signal.signal(sig, signal.SIG_IGN)
    raise RunInterrupted(signal.Signals(signum).name)


def _sim_iso(chain: Chain) -> str:
    try:
        t = chain.sim_time()
    except (ChainError, OSError):
        t = None
    return "(unknown)" if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run(opts: RunOptions) -> int:
    """The whole acceptance run; returns the exit code."""
    from acceptance.check import check_run
    from acceptance.manifest import seal
    from reports.junit import write_junit
    from reports.render import render_reports

    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        info, out = execute(opts)
        if info.get("interrupted"):
            print(f"forecourt run: {info['exit_reason']}; everything it started is stopped",
                  file=sys.stderr)
        record = check_run(out)
        for sig in previous:  # a verdict is written: its reports and the seal follow, uncut
            signal.signal(sig, signal.SIG_IGN)
        write_junit(record, out / "junit.xml")
        paths = render_reports(record, out, lang=opts.lang, pdf=opts.pdf)
        seal(out, "forecourt run")  # last: nothing more is written for this run
    except HarnessError as exc:
        print(f"forecourt run: the harness could not run: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    except RunInterrupted as exc:  # while setting up, or checking: no verdict to give
        print(f"forecourt run: interrupted by {exc} before a verdict was written; nothing "
              "it started is left running", file=sys.stderr)
        return EXIT_HARNESS
    except Exception:  # a harness defect must never read as a verdict (exit 1 = not accepted)
        print("forecourt run: the harness failed (a defect of the harness, not a verdict on "
              f"the SUT):\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_HARNESS
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(record.verdict_line())
    print(f"report: {paths[0]}")
    return record.exit_code
