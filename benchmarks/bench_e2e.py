"""Benchmark the whole chain: records per second end to end at compression max.

    python benchmarks/bench_e2e.py                       # 1 station, then the banner fleet
    python benchmarks/bench_e2e.py --only fleet --fleet-days 1 --broker mosquitto
    python benchmarks/bench_e2e.py --json results.json
    python benchmarks/bench_e2e.py --only fleet --fleet-stations 4 --fleet-days 23   # a subset

Each run starts the real chain (acceptance.chain: `forecourt devices` at --compression max,
broker, `forecourt platform`, reference collectors), waits until every record is at the
platform, and reports:

- records end to end per wall second (records the devices served, all accepted by the
  platform; measured from the moment the devices start to the moment the chain drained),
  and the compression reached (simulated seconds per wall second);
- where the time goes: CPU seconds of every process (each part with its children, e.g. the
  socat of an RTU station; "harness" is this process with the TCP proxies), sampled from
  /proc/<pid>/stat, as a share of the wall time — a part near 100 % of one core is the
  single-threaded bottleneck; the machine's 2 cores cap the sum at 200 %; and the seconds
  each part's threads were runnable but waited for a core (/proc/<pid>/task/*/schedstat,
  `run_queue_wait_s`): as long as the CPU itself, the machine is saturated, whatever the
  shares say;
- raw pymodbus reads per second of the same FIFO windows, in the same run once it has
  drained (one async client per Modbus TCP station, this process; `--raw-seconds`), and
  the ratio end-to-end records/s ÷ raw reads/s (`records_per_read`; issue 11 asks ≥ 0.5);
- the extrapolation to the banner's 46 stations × 180 days from the fleet run's rate;
- with --profile (needs py-spy: `pip install py-spy`), a sampling profile of every Python
  part: the functions where each spends its samples (self), and the project functions that
  contain them (inclusive). py-spy counts a thread blocked in select() or in an fsync as
  active, so read "self" leaves such as paho's `Client._loop` (its select) or a SQLite
  COMMIT as waiting, and the /proc CPU shares as the CPU actually used.

The one-station run uses the banner's busiest Modbus TCP station (or --station) with the
cheats, tank conditions and faults of other stations left out; faults are not carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml
from proc_stat import run_queue_wait, stat

from acceptance.chain import Chain, ChainSettings
from scenarios.variant import write_scenario_variant

REPO = Path(__file__).resolve().parent.parent
BANNER = REPO / "scenarios" / "urad-middle-banner.yaml"
TARGET_S = 30 * 60  # issue 3: 46 stations × 180 days end to end within 30 minutes


class CpuSampler:
    """CPU seconds of each named process and its descendants (except for the names in
    `alone`, e.g. this process, whose children are the other parts), and the seconds their
    threads waited for a core, sampled on a thread (a process's last sample before it exits
    is what it gets: sample often)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.25,
                 alone: tuple[str, ...] = ("harness",)) -> None:
        self.roots = roots
        self.alone = set(alone)
        self.interval = interval
        self.cpu: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.waited: dict[str, dict[int, float]] = {name: {} for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = stat(int(entry))
                if st:
                    parents[int(entry)], cpu[int(entry)] = st
        for name, root in self.roots.items():
            tree = {root}
            grew = name not in self.alone
            while grew:  # descendants of the root
                new = {p for p, parent in parents.items() if parent in tree} - tree
                grew = bool(new)
                tree |= new
            for pid in tree:
                if pid in cpu:
                    self.cpu[name][pid] = cpu[pid]
                    waited = run_queue_wait(pid)
                    if waited is not None:
                        self.waited[name][pid] = waited

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> CpuSampler:
        self._sample()
        self.base = {name: dict(pids) for name, pids in self.cpu.items()}
        self.base_waited = {name: dict(pids) for name, pids in self.waited.items()}
        self._thread.start()
        return self

    def stop(self) -> tuple[dict[str, float], dict[str, float]]:
        """(CPU seconds used, seconds waited for a core) by each process tree since start()."""
        self._sample()
        self._stop.set()
        self._thread.join(5)
        return ({name: sum(v - self.base[name].get(pid, 0.0) for pid, v in pids.items())
                 for name, pids in self.cpu.items()},
                {name: sum(v - self.base_waited[name].get(pid, 0.0) for pid, v in pids.items())
                 for name, pids in self.waited.items()})


class Profiler:
    """py-spy sampling of processes (active threads only) until stopped."""

    # py-spy names frames "function (path:line)", the path relative to sys.path
    OURS = ("(collector/", "(devices/", "(central/", "(sim/", "(acceptance/", "(scenarios/")

    def __init__(self, pids: dict[str, int], out: Path, rate: int = 100) -> None:
        self.out = out
        self.procs: dict[str, subprocess.Popen] = {}
        out.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.procs[name] = subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                 "--output", str(self._file(name)), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _file(self, name: str) -> Path:
        return self.out / f"{name.replace(':', '-')}.txt"

    def stop(self, top: int = 6) -> dict[str, dict[str, list[tuple[str, float]]]]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        result = {}
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            path = self._file(name)
            if path.is_file():
                result[name] = self.summarise(path.read_text(), top)
        return result

    @classmethod
    def summarise(cls, raw: str, top: int) -> dict[str, list[tuple[str, float]]]:
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for line in raw.splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                if any(part in frame for part in cls.OURS):
                    inclusive[frame] += n
        if not total:
            return {"self": [], "inclusive": []}
        # frames on (nearly) every stack are the entry chain (main, run …): not informative
        inner = [(f, c / total) for f, c in inclusive.most_common() if c / total < 0.85]
        return {"self": [(f, c / total) for f, c in own.most_common(top)],
                "inclusive": inner[:top]}


def busiest_tcp_station(scenario_path: Path) -> str:
    from scenarios.loader import load_scenario

    sc = load_scenario(scenario_path)
    rtu = set(sc.rtu_station_ids)
    rows = [r for r in sc.stations if r["station_id"] not in rtu]
    return max(rows, key=lambda r: sum(r["throughput_l_per_day"].values()))["station_id"]


def subset_scenario(base: Path, stations: list[str], out: Path, name: str,
                    rtu: bool = False) -> Path:
    """The scenario with only `stations`, their cheats, tank conditions and faults; over
    Modbus TCP only unless `rtu`."""
    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    keep = {key: [x for x in data.get(key) or [] if x.get("station") in stations]
            for key in ("tank_conditions", "cheats", "faults")}
    serial = {} if rtu else {"rtu_stations": []}  # (else the ledger's transport)
    return write_scenario_variant(base, out, name=name, stations=stations, **keep, **serial)


def first_stations(scenario_path: Path, n: int) -> list[str]:
    from scenarios.loader import load_scenario

    ids = [r["station_id"] for r in load_scenario(scenario_path).stations]
    if not 1 <= n <= len(ids):
        raise SystemExit(f"--fleet-stations: expected 1..{len(ids)}, found {n}")
    return ids[:n]


def fifo_windows(endpoints: dict) -> dict[tuple[str, int], list[tuple[int, int, int]]]:
    """(host, port) of each Modbus TCP station → the (unit, address, count) of every FIFO
    window its collector reads (status + window, collector/profile.py), RTU stations left
    out (their serial line belongs to the collector)."""
    from collector.profile import load_profiles

    profiles = load_profiles()
    out = {}
    for st in endpoints["stations"].values():
        if st["transport"] == "tcp":
            out[(st["host"], int(st["port"]))] = [
                (int(d["unit_id"]), f.base, f.read_count) for d in st["devices"]
                for f in profiles[d["profile"]].fifos.values()]
    return out


def raw_reads(endpoints: dict, seconds: float) -> dict:
    """Raw pymodbus reads per second of the same FIFO windows, one async client per TCP
    station reading them in turn, all at once from this process: what the transport alone
    gives on this machine, to set the chain's records/s against (issue 11)."""
    from pymodbus.client import AsyncModbusTcpClient

    windows = fifo_windows(endpoints)
    counts, errors = [0] * len(windows), []

    async def client(k: int, host: str, port: int, targets: list[tuple[int, int, int]],
                     deadline: float) -> None:
        c = AsyncModbusTcpClient(host, port=port, timeout=5, retries=0)
        if not await c.connect():
            errors.append(f"{host}:{port}: cannot connect")
            return
        try:
            i = 0
            while time.perf_counter() < deadline:
                unit, address, count = targets[i % len(targets)]
                reply = await c.read_holding_registers(address, count=count, device_id=unit)
                if reply.isError():
                    errors.append(f"{host}:{port} unit {unit} @{address}: {reply}")
                    return
                counts[k] += 1
                i += 1
        finally:
            c.close()

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(k, h, p, t, start + seconds)
                               for k, ((h, p), t) in enumerate(windows.items())))
        return time.perf_counter() - start

    wall = asyncio.run(main())
    return {"stations": len(windows), "reads": sum(counts), "wall_s": wall,
            "reads_per_s": sum(counts) / wall if wall > 0 else 0.0, "errors": errors[:5]}


def run(label: str, scenario: Path, days: float, workdir: Path, broker: str,
        collectors: str, timeout: float, collector_args: tuple[str, ...] = (),
        profile: bool = False, raw_s: float = 10.0, fleet_processes: int = 1) -> dict:
    settings = ChainSettings(scenario, workdir, days=days, compression=None, broker=broker,
                             collectors=collectors, heartbeat_s=2.0, device_faults=False,
                             collector_args=collector_args, fleet_processes=fleet_processes)
    chain = Chain(settings)
    t0 = time.monotonic()
    with chain:
        started = time.monotonic()
        # a part's children (the platform's detection worker) count in the part's tree
        roots = {name: pid for name, pid in chain.pids().items() if ":child" not in name}
        sampler = CpuSampler(roots).start()
        python_parts = {n: p for n, p in roots.items()
                        if n != "harness" and not (n == "broker" and broker == "mosquitto")}
        profiler = Profiler(python_parts, workdir / "profile") if profile else None
        report = chain.wait_drained(timeout=timeout, settle_s=10.0)
        drained = time.monotonic()
        cpu, waited = sampler.stop()
        profiles = profiler.stop() if profiler else {}
        status = chain.device_status() or {}
        # the same devices, drained and idle, read raw (the collectors only poll empty FIFOs)
        raw = raw_reads(json.loads((chain.truth_dir / "endpoints.json").read_text()), raw_s) \
            if raw_s > 0 else {}
    wall = drained - started
    records = sum(report.served.values())
    # wall seconds the world waited at the high-water mark, per station whose FIFO held it
    held = json.loads((chain.truth_dir / "devices.json").read_text()).get("held_s", {})
    sim_s = (status.get("end") or 0) - (status.get("start") or 0)
    stations = len(chain.station_ids)
    return {
        "label": label, "stations": stations, "days": days, "broker": broker,
        "collectors": collectors, "fleet_processes": fleet_processes,
        "world_held_s": held, "drained": report.drained, "reason": report.reason,
        "records": records, "accepted": report.accepted, "startup_s": started - t0,
        "wall_s": wall, "world_finished_s": report.finished_after_s,
        "fifos_empty_s": report.fifos_empty_after_s, "load_avg": os.getloadavg(), "records_per_s": records / wall if wall > 0 else 0.0,
        "compression": sim_s / wall if wall > 0 else 0.0,
        "records_per_station_day": records / (stations * days),
        "modbus_reads_per_s": raw.get("reads_per_s"), "raw_reads": raw,
        "records_per_read": (records / wall / raw["reads_per_s"]
                             if wall > 0 and raw.get("reads_per_s") else None),
        "cpu_s": cpu, "cpu_share": {k: v / wall for k, v in cpu.items()},
        "run_queue_wait_s": waited,
        "profile": profiles,
    }


def show(r: dict) -> None:
    print(f"\n== {r['label']}: {r['stations']} station(s) × {r['days']} d, broker "
          f"{r['broker']}, collectors {r['collectors']}"
          + (f" in {r['fleet_processes']} processes" if r["fleet_processes"] > 1 else ""))
    print(f"   {r['reason']}; {r['records']} records served, {r['accepted']} accepted")
    print(f"   start-up {r['startup_s']:.1f} s, run {r['wall_s']:.1f} s wall → "
          f"{r['records_per_s']:.0f} records/s end to end, compression {r['compression']:.0f}× "
          f"({r['records_per_station_day']:.0f} records per station-day)")
    print(f"   world finished after {r['world_finished_s']:.1f} s, device FIFOs empty after "
          f"{r['fifos_empty_s']:.1f} s, all at the platform after {r['wall_s']:.1f} s "
          f"(load average at the end {r['load_avg'][0]:.1f})")
    held = sorted(r["world_held_s"].items(), key=lambda kv: -kv[1])
    if held:
        print(f"   the world waited {sum(s for _, s in held):.1f} s at the high-water mark, for "
              + ", ".join(f"{sid} {s:.1f} s" for sid, s in held[:4]))
    raw = r.get("raw_reads") or {}
    if raw:
        print(f"   raw pymodbus reads of the same FIFO windows ({raw['stations']} TCP "
              f"station(s), one client each, {raw['wall_s']:.0f} s): "
              f"{raw['reads_per_s']:.0f} reads/s → end-to-end records/s ÷ raw reads/s = "
              f"{r['records_per_read']:.2f}" + (f"; errors: {raw['errors']}"
                                                  if raw["errors"] else ""))
    print("   CPU by process (share of one core over the run; seconds its threads waited for "
          "a core):")
    for name, share in sorted(r["cpu_share"].items(), key=lambda kv: -kv[1]):
        print(f"     {name:<22} {r['cpu_s'][name]:8.1f} s  {share:6.0%}  waited "
              f"{r['run_queue_wait_s'][name]:6.1f} s")
    busiest = max(r["cpu_share"], key=r["cpu_share"].get)
    total = sum(r["cpu_share"].values())
    print(f"   busiest: {busiest} ({r['cpu_share'][busiest]:.0%} of a core); all processes "
          f"together {total:.0%} of the machine's 200 %")
    for name, prof in r.get("profile", {}).items():
        print(f"   profile of {name} (share of its CPU samples):")
        for kind in ("self", "inclusive"):
            for frame, share in prof[kind]:
                print(f"     {kind:<9} {share:5.0%}  {frame[:110]}")


def extrapolate(fleet: dict) -> dict:
    records = fleet["records_per_station_day"] * 46 * 180
    wall = records / fleet["records_per_s"] if fleet["records_per_s"] else float("inf")
    out = {"records_46x180": records, "wall_s_46x180": wall,
           "meets_30_min": wall <= TARGET_S}
    print(f"\n== extrapolation to 46 stations × 180 days at the fleet rate: {records:,.0f} "
          f"records → {wall / 60:.0f} min wall ({'within' if wall <= TARGET_S else 'beyond'} "
          f"the 30 min target; {records / TARGET_S:.0f} records/s would be needed)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", type=Path, default=BANNER)
    p.add_argument("--only", choices=("one", "fleet"))
    p.add_argument("--station", help="station of the one-station run (default: busiest TCP)")
    p.add_argument("--one-days", type=float, default=7.0)
    p.add_argument("--fleet-days", type=float, default=1.0)
    p.add_argument("--broker", default="embedded", help="embedded | mosquitto | mqtt://h:p")
    p.add_argument("--collectors", choices=("fleet", "per-station"), default="fleet")
    p.add_argument("--fleet-stations", type=int,
                   help="the fleet run with only the banner's first N stations (a curve of "
                        "the ratio against stations)")
    p.add_argument("--fleet-processes", type=int, default=1,
                   help="fleet collectors: stations dealt over this many processes")
    p.add_argument("--collector-arg", action="append", default=[],
                   help="extra collector flag, e.g. --collector-arg=--spool-sync=NORMAL")
    p.add_argument("--profile", action="store_true", help="sample every part with py-spy")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give a run up after this many wall seconds without the world moving "
                        "(a stalled chain; default 300, as forecourt run's --drain-timeout)")
    p.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--raw-seconds", type=float, default=10.0,
                   help="seconds of raw pymodbus reads of the same windows after each run "
                        "(0: none)")
    args = p.parse_args(argv)
    if args.profile and shutil.which("py-spy") is None:
        p.error("--profile needs py-spy (pip install py-spy)")
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="fc-bench-e2e-")
    work = args.workdir or Path(tmp.name)  # type: ignore[union-attr]
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        if args.only in (None, "one"):
            station = args.station or busiest_tcp_station(args.scenario)
            scenario = subset_scenario(args.scenario, [station], work / "one.yaml",
                                       f"bench-{station}")
            results["one"] = run(f"one station ({station})", scenario, args.one_days,
                                 work / "one", args.broker, args.collectors, args.timeout,
                                 tuple(args.collector_arg), args.profile, args.raw_seconds,
                                 args.fleet_processes)
            show(results["one"])
        if args.only in (None, "fleet"):
            scenario, label = args.scenario, "banner fleet"
            if args.fleet_stations:
                scenario = subset_scenario(args.scenario,
                                           first_stations(args.scenario, args.fleet_stations),
                                           work / "fleet.yaml", "bench-fleet", rtu=True)
                label = f"banner's first {args.fleet_stations} stations"
            results["fleet"] = run(label, scenario, args.fleet_days,
                                   work / "fleet", args.broker, args.collectors, args.timeout,
                                   tuple(args.collector_arg), args.profile, args.raw_seconds,
                                   args.fleet_processes)
            show(results["fleet"])
            results["extrapolation"] = extrapolate(results["fleet"])
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r.get("drained", True) for r in results.values()
                    if isinstance(r, dict)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
