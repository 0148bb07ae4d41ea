"""The end-to-end chain as real processes: devices → collector(s) → broker → platform.

    with Chain(ChainSettings(scenario="scenarios/smoke.yaml", workdir=tmp, days=0.5)) as chain:
        chain.carry_out_faults(scenario_faults(chain.scenario), timeout=120)
        report = chain.wait_drained(timeout=60)
    # chain.truth_dir: the ground truth; chain.api: the platform's API (acceptance.observe)

Every part is a child process started with this interpreter (`python -m acceptance.cli …`)
and stopped by its pid: `forecourt devices` (the world and its Modbus servers, lingering
after the simulated period so the collectors can drain), the broker (`forecourt broker`,
the embedded amqtt, or a managed Mosquitto, or an external URL left alone), `forecourt
platform` and the collector(s) — one `forecourt collector` per station, or one
`forecourt collectors` for the fleet. Collectors reach the broker through a TcpProxy
(acceptance.netproxy) per station (or one for the fleet), so the network can be cut.

Faults: kill -9 / restart of a collector, broker restart, platform restart (SIGTERM or
kill -9), network cut and restore; `carry_out_faults` runs a scenario's collector_crash and
network_cut faults at their simulated times (device_silent is done by the devices).

Every wait is bounded, and every wait checks that the parts that should be running still
run: a part that dies raises ChainError with its name, exit code and the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from acceptance.broker import Mosquitto, free_port, parse_broker_url, wait_listening
from acceptance.faults import KINDS
from acceptance.guard import guarded
from acceptance.keys import make_key_file
from acceptance.netproxy import TcpProxy
from acceptance.observe import ApiError, PlatformClient, detection_status
from scenarios.loader import Scenario, load_scenario
from scenarios.timespec import parse_duration

T = TypeVar("T")
HOST = "127.0.0.1"
# A platform without GET /api/v1/detection/status gets this long (wall s) after draining
# before its alerts are read (docs/platform-api.md §7).
DETECTION_GRACE_S = 10.0


class ChainError(RuntimeError):
    """A part of the chain failed to start, died, or could not be stopped."""


class SutExited(ChainError):
    """A part of the system under test (a collector, the platform) exited on its own: a
    finding about the SUT, with its exit status and log, not a failure of the harness."""

    def __init__(self, part: str, pid: int | None, code: int | None, log: Path,
                 tail: str) -> None:
        super().__init__(f"{part} (pid {pid}) exited on its own with code {code}; "
                         f"log {log}:\n{tail}")
        self.part, self.pid, self.code, self.log, self.tail = part, pid, code, log, tail


# ---- faults of a scenario ---------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """One fault of a scenario's timeline, in simulated epoch seconds."""

    kind: str  # a kind of acceptance.faults.KINDS
    station: str | None  # None: a fleet-wide kind (broker, platform)
    at: float
    duration: float
    device: str | None = None
    delay_s: float = 0.0  # modbus_slow: how late each reply comes

    @property
    def end(self) -> float:
        return self.at + self.duration


def scenario_faults(scenario: Scenario) -> list[Fault]:
    """The scenario's faults (docs/scenarios.md), with times resolved, in time order."""
    faults = []
    for i, f in enumerate(scenario.data.get("faults") or []):
        if f["kind"] not in KINDS:
            raise ValueError(f"{scenario.path}: faults[{i}].kind: expected one of "
                             f"{list(KINDS)}, found {f['kind']!r}")
        faults.append(Fault(f["kind"], f.get("station"), scenario.instant(f["at"]),
                            parse_duration(f["duration"]), f.get("device"),
                            f.get("delay_ms", 800) / 1000.0 if f["kind"] == "modbus_slow"
                            else 0.0))
    return sorted(faults, key=lambda f: (f.at, f.kind, f.station or ""))


def write_scenario_variant(base: str | Path, out: str | Path, **changes: Any) -> Path:
    """Write a copy of scenario `base` with top-level fields replaced (None removes one);
    its fleet ledger path is made absolute so the copy can live anywhere."""
    base = Path(base)
    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    data["fleet"] = str((base.parent / data["fleet"]).resolve())
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


# ---- one child process ------------------------------------------------------------------

class Part:
    """A child process of the chain, with its log file; stopped by pid, never by name."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path) -> None:
        self.name, self.argv, self.log_path, self.cwd = name, argv, log_path, cwd
        self.proc: subprocess.Popen | None = None
        self.wanted = False  # should be running (an exit is then a failure)
        self.starts = 0
        self.exit_codes: list[int] = []

    def start(self) -> Part:
        if self.alive:
            raise ChainError(f"{self.name}: already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            # own session: a Ctrl-C meant for the harness does not reach the parts (the harness
            # stops them in order); the guard ends them if the harness dies without doing so
            self.proc = subprocess.Popen(guarded(self.argv), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.cwd, env=env,
                                         start_new_session=True)
        self.wanted = True
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> bool:
        """It should run but has exited."""
        return self.wanted and self.proc is not None and self.proc.poll() is not None

    def kill9(self, timeout: float = 10.0) -> None:
        """SIGKILL: no clean-up of any kind (the crash a collector must survive)."""
        self.wanted = False
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        self._reap(timeout)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (a hung process: its sockets stay open, nothing is answered) or SIGCONT."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` (with its children, e.g. the socat of an
        RTU line, which a clean stop ends itself); returns the exit code."""
        self.wanted = False
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)  # a frozen part (collector_stall) must hear it
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in [*_descendants(self.proc.pid), self.proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        return self._reap(timeout)

    def _reap(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ChainError(f"{self.name} (pid {self.pid}) did not exit within {timeout} s "
                             f"after SIGKILL") from None
        if len(self.exit_codes) < self.starts:  # one exit code per start
            self.exit_codes.append(code)
        return code

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_bytes()[-8000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, sut_running: bool = False) -> ChainError:
        """Why it died. Once the chain runs, a SUT part (collector, platform) that exits is a
        finding about the SUT; one that cannot start is the run's failure to start."""
        code = self.proc.poll() if self.proc else None
        if sut_running and (self.name == "platform" or self.name.startswith("collector")):
            return SutExited(self.name, self.pid, code, self.log_path, self.tail())
        return ChainError(f"{self.name} (pid {self.pid}) exited with code {code}; "
                          f"log {self.log_path}:\n{self.tail()}")


def _descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


# ---- brokers ----------------------------------------------------------------------------

class _Broker:
    """The broker the chain talks to: managed (embedded or Mosquitto) or external."""

    def __init__(self, kind: str, workdir: Path, python: str) -> None:
        self.kind = kind
        self.part: Part | None = None
        self.mosquitto: Mosquitto | None = None
        if kind in ("embedded", "mosquitto"):
            self.host, self.port = HOST, free_port(HOST)
        else:
            try:
                self.host, self.port = parse_broker_url(kind)
            except ValueError:
                raise ValueError(f"ChainSettings.broker: expected 'embedded', 'mosquitto' or "
                                 f"mqtt://host:port, found {kind!r}") from None
            self.kind = "external"
        if self.kind == "embedded":
            self.part = Part("broker", [python, "-m", "acceptance.cli", "broker", "--listen",
                                        self.url], workdir / "logs" / "broker.log", workdir)
        elif self.kind == "mosquitto":
            self.mosquitto = Mosquitto(HOST, self.port, persistence=True,
                                       workdir=workdir / "mosquitto", guard=True)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.part:
            return self.part.pid
        proc = self.mosquitto.proc if self.mosquitto else None
        return proc.pid if proc else None

    def start(self, timeout: float) -> None:
        if self.part:
            self.part.start()
            _wait(lambda: _listening(self.host, self.port), timeout,
                  f"embedded broker on {self.url}", self.check)
        elif self.mosquitto:
            self.mosquitto.start(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self.part:
            self.part.stop(timeout)
        elif self.mosquitto:
            self.mosquitto.stop(timeout)

    def check(self) -> None:
        if self.part and self.part.died():
            raise self.part.failure()
        if self.mosquitto and self.mosquitto.proc and self.mosquitto.proc.poll() is not None:
            raise ChainError(f"mosquitto (pid {self.mosquitto.proc.pid}) exited with code "
                             f"{self.mosquitto.proc.returncode}; log "
                             f"{self.mosquitto.dir / 'mosquitto.log'}")


def _listening(host: str, port: int) -> bool:
    try:
        wait_listening(host, port, timeout=0.2)
        return True
    except TimeoutError:
        return False


def _wait(predicate: Callable[[], T], timeout: float, what: str,
          check: Callable[[], None] | None = None, interval: float = 0.1) -> T:
    """Poll `predicate` until it returns something true; `check` raises if a part died."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# ---- the chain --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainSettings:
    """What to run and how. `broker`: "embedded", "mosquitto" or mqtt://host:port
    (external, not managed); `collectors`: "per-station" (a process and a proxy each) or
    "fleet" (one process, one proxy); `compression`: None = "max"."""

    scenario: str | Path
    workdir: str | Path
    days: float | None = None
    seed: int | None = None
    compression: float | None = None
    broker: str = "embedded"
    collectors: str = "per-station"
    heartbeat_s: float = 1.0
    collector_args: tuple[str, ...] = ()
    platform_args: tuple[str, ...] = ()
    devices_args: tuple[str, ...] = ()  # e.g. --pace / --max-compression
    # a vendor's collector (docs/sut.md): argv template with {endpoints} {broker} {keys}
    # {spool_dir} {profiles} {station} {python}; per station unless collectors == "fleet"
    collector_command: tuple[str, ...] = ()
    # a vendor's platform: its API, a read token and the key file it verifies with
    platform_url: str | None = None
    platform_token: str | None = None
    keys_file: str | Path | None = None
    device_faults: bool = True  # serve the scenario's device_silent faults
    start_timeout_s: float = 60.0
    devices_stop_timeout_s: float = 300.0  # closing writes the whole ground truth
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.collectors not in ("per-station", "fleet"):
            raise ValueError(f"ChainSettings.collectors: expected 'per-station' or 'fleet', "
                             f"found {self.collectors!r}")
        if self.compression is not None and not self.compression > 0:
            raise ValueError(f"ChainSettings.compression: expected > 0 or None (max), "
                             f"found {self.compression!r}")
        if not self.heartbeat_s > 0:
            raise ValueError(f"ChainSettings.heartbeat_s: expected > 0, found {self.heartbeat_s}")


@dataclass
class DrainReport:
    """The outcome of `wait_drained` (per station: records served by the devices, records
    the platform accepted, collector spool backlog in its last heartbeat)."""

    drained: bool
    reason: str
    waited_s: float
    finished_after_s: float | None = None  # the world reached its end (from the call)
    fifos_empty_after_s: float | None = None  # ... and every device FIFO was empty
    sim_time: float | None = None
    device_backlog: int | None = None
    served: dict[str, int] = field(default_factory=dict)
    accepted: int | None = None
    spool_backlog: dict[str, int | None] = field(default_factory=dict)


@dataclass
class DetectionReport:
    """The outcome of `wait_detection` (for run.json and observed/detection_status.json)."""

    done: bool
    supported: bool  # the platform offers GET /api/v1/detection/status
    reason: str
    waited_s: float
    through: float  # the device time every station had to be evaluated through
    status: dict[str, dict[str, Any] | None] = field(default_factory=dict)


def _at_least(value: Any, through: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= through


@dataclass(frozen=True)
class FaultAction:
    """What the harness did when, for the run record."""

    wall: float
    sim_time: float
    fault: Fault
    action: str  # start | end | end-early (the world could not reach the end time)


class Chain:
    def __init__(self, settings: ChainSettings) -> None:
        self.settings = s = settings
        self.workdir = Path(s.workdir).resolve()
        self.scenario = load_scenario(s.scenario)
        self.station_ids = self.scenario.station_ids
        self.truth_dir = self.workdir / "devices"
        self.spool_dir = self.workdir / "spool"
        self.keys_path = self.workdir / "keys.json"
        self.tokens_path = self.workdir / "tokens.json"
        self.db_path = self.workdir / "platform.db"
        self.http_port = free_port(HOST)
        self.read_token = secrets.token_urlsafe(24)
        self.admin_token = secrets.token_urlsafe(24)
        self.external_platform = s.platform_url is not None
        if self.external_platform:
            if not (s.platform_token and s.keys_file):
                raise ValueError("ChainSettings: an external platform needs platform_token and "
                                 "keys_file (the key file the platform verifies with)")
            self.api = PlatformClient(s.platform_url, s.platform_token, timeout=10.0)
            # the vendor's token posts the departments' inputs too (it needs role admin)
            self.admin_api = self.api
            self.keys_path = Path(s.keys_file).resolve()
        else:
            self.api = PlatformClient(f"http://{HOST}:{self.http_port}", self.read_token,
                                      timeout=10.0)
            self.admin_api = PlatformClient(self.api.base_url, self.admin_token, timeout=10.0)
        self.broker = _Broker(s.broker, self.workdir, s.python)
        self.devices = self._part("devices", self._devices_argv())
        self.platform = self._part("platform", self._platform_argv())
        self.proxies: dict[str, TcpProxy] = {}  # station id, or "*" for the fleet
        self.collectors: dict[str, Part] = {}  # station id, or "*" for the fleet
        self.endpoints: dict[str, Any] = {}
        self.started = False
        self.running = False
        self.stopped = False

    # -- argv --------------------------------------------------------------------------
    def _cli(self, *args: str) -> list[str]:
        return [self.settings.python, "-m", "acceptance.cli", *args]

    def _part(self, name: str, argv: list[str]) -> Part:
        return Part(name, argv, self.workdir / "logs" / f"{name.replace(':', '-')}.log",
                    self.workdir)

    def _devices_argv(self) -> list[str]:
        s = self.settings
        argv = self._cli("devices", str(Path(s.scenario).resolve()), "--out", str(self.truth_dir),
                         "--compression", "max" if s.compression is None else str(s.compression),
                         "--port-base", "0", "--linger")
        if s.days is not None:
            argv += ["--days", str(s.days)]
        if s.seed is not None:
            argv += ["--seed", str(s.seed)]
        if not s.device_faults:
            argv.append("--no-faults")
        return argv + list(s.devices_args)

    def _platform_argv(self) -> list[str]:
        return self._cli("platform", "--db", f"sqlite:///{self.db_path}",
                         "--broker", self.broker.url, "--http", f"{HOST}:{self.http_port}",
                         "--keys", str(self.keys_path),
                         "--registry", str(self.scenario.fleet_path.resolve()),
                         "--tokens", str(self.tokens_path), "--log-level", "WARNING",
                         *self.settings.platform_args)

    def _collector_argv(self, station: str, broker_url: str) -> list[str]:
        s = self.settings
        if s.collector_command:
            from acceptance.sut import CollectorSut

            profiles = Path(__file__).resolve().parents[1] / "devices" / "profiles"
            return CollectorSut("external", None, s.collector_command).argv({
                "endpoints": str(self.truth_dir / "endpoints.json"), "broker": broker_url,
                "keys": str(self.keys_path), "profiles": str(profiles), "station": station,
                "spool_dir": str(self.spool_dir if station == "*" else self.spool_dir / station)})
        common = ["--endpoints", str(self.truth_dir / "endpoints.json"), "--broker", broker_url,
                  "--keys", str(self.keys_path), "--heartbeat", str(s.heartbeat_s),
                  "--log-level", "WARNING", *s.collector_args]
        if station == "*":
            return self._cli("collectors", "--spool-dir", str(self.spool_dir), *common)
        return self._cli("collector", "--station", station, "--spool",
                         str(self.spool_dir / station), *common)

    # -- start / stop ------------------------------------------------------------------
    def start(self, before_devices: Callable[[Chain], None] | None = None) -> Chain:
        """Start every part, in dependency order; on any failure stop what started.
        `before_devices(chain)` runs once the platform answers and before the devices start
        producing (the harness posts the scenario's prices then)."""
        if self.started:
            raise ChainError("chain already started")
        stale = [p.name for p in (self.truth_dir, self.spool_dir, self.db_path) if p.exists()]
        if stale:
            raise ChainError(f"{self.workdir} already holds a run ({', '.join(stale)}): "
                             f"give the chain a fresh work directory")
        self.started = True
        timeout = self.settings.start_timeout_s
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if not self.external_platform:
                make_key_file(self.station_ids, self.keys_path)
            _write_private(self.tokens_path, {"tokens": [
                {"token": self.read_token, "role": "read", "name": "harness-read"},
                {"token": self.admin_token, "role": "admin", "name": "harness-admin"}]})
            self.broker.start(timeout)
            self.start_platform(timeout)
            if before_devices is not None:
                before_devices(self)
            self.devices.start()
            self.endpoints = _wait(self._read_endpoints, timeout,
                                   f"{self.truth_dir / 'endpoints.json'}", self.check)
            targets = ["*"] if self.settings.collectors == "fleet" else self.station_ids
            for sid in targets:
                proxy = TcpProxy(self.broker.host, self.broker.port, HOST).start()
                self.proxies[sid] = proxy
                self.collectors[sid] = self._part(
                    "collectors" if sid == "*" else f"collector:{sid}",
                    self._collector_argv(sid, proxy.url))
                self.collectors[sid].start()
        except BaseException:
            self.stop()
            raise
        self.running = True  # from now on a SUT part that exits is a finding (check)
        return self

    def stop_field(self) -> dict[str, int | None]:
        """Stop the station side: collectors (cleanly), then the devices, which write the
        complete ground truth into `truth_dir`. Broker and platform stay up, so the platform
        can still be observed. Returns the exit code of each part stopped."""
        codes: dict[str, int | None] = {}
        errors: list[str] = []
        for part in [*self.collectors.values(), self.devices]:
            try:
                codes[part.name] = part.stop(timeout=self._stop_timeout(part))
            except ChainError as exc:
                errors.append(str(exc))
        if errors:
            raise ChainError("; ".join(errors))
        return codes

    def stop(self) -> dict[str, int | None]:
        """Stop everything (collectors, devices — which writes the ground truth —, platform,
        broker, proxies); returns the exit code of each part. Safe to call twice."""
        if self.stopped:
            return {}
        self.stopped = True
        codes: dict[str, int | None] = {}
        errors: list[str] = []
        parts = [*self.collectors.values(), self.devices, self.platform]
        for part in parts:
            if not part.alive and part.proc is None:
                continue
            try:
                codes[part.name] = part.stop(timeout=self._stop_timeout(part))
            except ChainError as exc:
                errors.append(str(exc))
        with contextlib.suppress(Exception):
            self.broker.stop()
        for proxy in self.proxies.values():
            with contextlib.suppress(Exception):
                proxy.stop()
        if errors:
            raise ChainError("; ".join(errors))
        return codes

    def _stop_timeout(self, part: Part) -> float:
        return self.settings.devices_stop_timeout_s if part is self.devices else 15.0

    def __enter__(self) -> Chain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check(self) -> None:
        """Raise ChainError if a part that should be running has exited."""
        self.broker.check()
        for part in (self.devices, self.platform, *self.collectors.values()):
            if part.died():
                raise part.failure(sut_running=self.running)

    def pids(self) -> dict[str, int]:
        """Live processes of the chain by part name; "harness" is this process (proxies)."""
        out = {"harness": os.getpid()}
        parts = [self.devices, self.platform, *self.collectors.values()]
        if self.broker.part:
            parts.append(self.broker.part)
        for part in parts:
            if part.alive and part.pid:
                out[part.name] = part.pid
        if self.broker.mosquitto and self.broker.pid:
            out["broker"] = self.broker.pid
        return out

    # -- individual parts --------------------------------------------------------------
    def _read_endpoints(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.truth_dir / "endpoints.json").read_text())
        except (OSError, ValueError):
            return None

    def start_platform(self, timeout: float | None = None) -> None:
        if not self.external_platform:
            self.platform.start()
        _wait(self._platform_ready, timeout or self.settings.start_timeout_s,
              f"platform API on {self.api.base_url}", self.check)

    def _platform_ready(self) -> bool:
        try:
            health = self.api.healthz()
        except ApiError:
            return False
        # a vendor's platform need only answer its health check
        return self.external_platform or bool(health.get("mqtt_subscribed"))

    def freeze_collector(self, station: str | None, frozen: bool) -> None:
        self._collector(station).freeze(frozen)

    def freeze_platform(self, frozen: bool) -> None:
        if self.external_platform:
            raise ChainError("the platform is external: the chain cannot freeze it")
        self.platform.freeze(frozen)

    def stop_platform(self, kill: bool = False) -> None:
        """Stop the platform: SIGTERM, or SIGKILL with `kill` (a crash)."""
        if self.external_platform:
            raise ChainError("the platform is external: the chain cannot stop it")
        if kill:
            self.platform.kill9()
        else:
            self.platform.stop()

    def restart_platform(self, down_s: float = 0.0, kill: bool = False) -> None:
        """Stop the platform (SIGTERM, or SIGKILL with `kill`), wait, start it again."""
        self.stop_platform(kill)
        time.sleep(down_s)
        self.start_platform()

    def stop_broker(self) -> None:
        """Stop the broker cleanly (its port stays ours for the restart)."""
        if self.broker.kind == "external":
            raise ChainError("the broker is external: the chain cannot stop it")
        self.broker.stop()

    def start_broker(self) -> None:
        """Start the broker again on the same port. Mosquitto keeps persistent sessions on
        disk; the embedded broker loses them (what is not acked must be sent again)."""
        self.broker.start(self.settings.start_timeout_s)

    def restart_broker(self, down_s: float = 0.0) -> None:
        self.stop_broker()
        time.sleep(down_s)
        self.start_broker()

    def _collector(self, station: str | None) -> Part:
        key = "*" if self.settings.collectors == "fleet" else station
        if key is None or key not in self.collectors:
            raise ChainError(f"no collector for station {station!r} (collectors: "
                             f"{', '.join(self.collectors)})")
        return self.collectors[key]

    def kill_collector(self, station: str | None = None) -> None:
        """kill -9 the collector of `station` (the fleet process in fleet mode)."""
        self._collector(station).kill9()

    def start_collector(self, station: str | None = None) -> None:
        """Start the collector again, on the same spool (nothing to do if it runs)."""
        part = self._collector(station)
        if not part.alive:
            part.start()

    def _proxy(self, station: str | None) -> TcpProxy:
        key = "*" if self.settings.collectors == "fleet" else station
        if key is None or key not in self.proxies:
            raise ChainError(f"no network link for station {station!r}")
        return self.proxies[key]

    def cut_network(self, station: str | None = None, mode: str = "reset") -> None:
        """Cut the link between the station's collector and the broker."""
        self._proxy(station).cut(mode)

    def restore_network(self, station: str | None = None) -> None:
        self._proxy(station).restore()

    # -- observations ------------------------------------------------------------------
    def device_status(self) -> dict[str, Any] | None:
        """The devices' status.json (docs/register-map.md §12), or None before the first."""
        try:
            return json.loads((self.truth_dir / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def sim_time(self) -> float | None:
        st = self.device_status()
        return None if st is None else float(st["sim_time"])

    def wait_sim_time(self, t: float, timeout: float) -> float:
        """Wait until the world has reached simulated time `t` (or finished)."""
        def reached() -> float | None:
            st = self.device_status()
            if st and (st["sim_time"] >= t or st["finished"]):
                return float(st["sim_time"])
            return None
        return _wait(reached, timeout, f"simulated time {t:.0f}", self.check, 0.05)

    def custody(self) -> dict[str, int]:
        """Per station: records the devices handed to the collector (acknowledged FIFO
        entries) that the platform has not accepted — what the collector holds. Costs one
        API call per station."""
        st = self.device_status() or {"stations": {}}
        out = {}
        for sid in self.station_ids:
            handed = st["stations"].get(sid, {}).get("acknowledged", 0)
            out[sid] = handed - int(self.api.ingest_stats(sid)["accepted"])
        return out

    def station_states(self) -> dict[str, dict[str, Any]]:
        """GET /stations for this scenario's stations, by station id."""
        wanted = set(self.station_ids)
        return {st["station_id"]: st for st in self.api.stations() if st["station_id"] in wanted}

    def wait_drained(self, timeout: float = 120.0, settle_s: float = 5.0) -> DrainReport:
        """Wait until the world has finished and every record is at the platform: device
        FIFOs empty and the platform's accepted count equal to what the devices served.
        A system under test that loses records never gets there: it counts as drained
        ("settled") once its accepted count has not changed for `settle_s` while no
        collector heartbeat since the FIFOs emptied reports records left in its spool.
        Never longer than `timeout`; a part that dies raises ChainError."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        report = DrainReport(False, "not started", 0.0)
        fifos_empty_at: float | None = None  # wall clock (time.time), as the platform's
        stable_since, last_accepted = time.monotonic(), None
        while True:
            self.check()
            report.waited_s = time.monotonic() - t0
            reason, may_settle = self._drain_step(report), False
            if reason == "":
                if fifos_empty_at is None:
                    fifos_empty_at = time.time()
                    report.fifos_empty_after_s = report.waited_s
                reason, may_settle = self._platform_step(report, fifos_empty_at)
            else:
                fifos_empty_at = None
            if report.accepted != last_accepted:
                stable_since, last_accepted = time.monotonic(), report.accepted
            if reason == "" or (may_settle and time.monotonic() - stable_since >= settle_s):
                report.drained = True
                report.reason = "drained" if reason == "" else (
                    f"settled: {reason}, unchanged for {settle_s} s")
                return report
            report.reason = reason
            if time.monotonic() >= deadline:
                report.reason = f"timeout after {timeout:g} s: {reason}"
                return report
            time.sleep(0.2)

    def _drain_step(self, report: DrainReport) -> str:
        st = self.device_status()
        if st is None:
            return "no device status yet"
        report.sim_time = float(st["sim_time"])
        report.device_backlog = int(st["backlog"])
        report.served = {sid: v["pushed"] - v["dropped"] for sid, v in st["stations"].items()}
        if st["finished"] and report.finished_after_s is None:
            report.finished_after_s = report.waited_s
        down = [p.name for p in self.collectors.values() if not p.wanted]
        if down:
            return f"stopped on purpose: {', '.join(down)}"
        if not st["finished"]:
            return f"world at {st['sim_time']:.0f}, ends at {st['end']:.0f}"
        if st["backlog"]:
            return f"{st['backlog']} records still in device FIFOs"
        return ""

    def _platform_step(self, report: DrainReport, fifos_empty_at: float) -> tuple[str, bool]:
        """(what is awaited or "" when drained, whether a standstill may end the wait)."""
        try:
            states = self.station_states()
            report.accepted = int(self.api.ingest_stats()["accepted"])
        except ApiError as exc:
            return f"platform API: {exc}", False
        busy = []
        for sid in self.station_ids:
            col = states.get(sid, {}).get("collector") or {}
            report.spool_backlog[sid] = col.get("backlog")
            fresh = (col.get("last_heartbeat_at") or 0.0) > fifos_empty_at
            if fresh and col.get("backlog") not in (0, None):
                busy.append(f"{sid} ({col['backlog']})")
        served = sum(report.served.values())
        if report.accepted == served:
            return "", False
        if busy:
            return f"records left in the spool of {', '.join(busy)}", False
        return f"platform accepted {report.accepted} of {served} records served", True

    def wait_detection(self, through: float, timeout: float = 120.0,
                       grace_s: float = DETECTION_GRACE_S) -> DetectionReport:
        """Wait until GET /api/v1/detection/status shows evaluated_through ≥ `through` (the
        run's simulated end) for every station of the scenario, at most `timeout` s. A
        platform without the endpoint (404) gets a fixed `grace_s` instead, and so does one
        whose detectors report no progress at all (every `updated_at` null) for `grace_s`:
        it evaluates nothing, so waiting longer would not change its alerts."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        report = DetectionReport(False, True, "not started", 0.0, through)
        while True:
            self.check()
            report.waited_s = time.monotonic() - t0
            try:
                items = detection_status(self.api)
            except ApiError as exc:
                items, report.reason = [], f"platform API: {exc}"
            if items is None:
                report.supported = False
                remaining = min(grace_s, deadline - time.monotonic())
                if remaining > 0:
                    time.sleep(remaining)
                report.waited_s = time.monotonic() - t0
                report.done = True
                report.reason = (f"no GET /api/v1/detection/status: waited the fixed grace of "
                                 f"{grace_s:g} s")
                return report
            if items:
                by_station = {i.get("station_id"): i for i in items}
                report.status = {sid: by_station.get(sid) for sid in self.station_ids}
                idle = all((by_station.get(sid) or {}).get("updated_at") is None
                           for sid in self.station_ids)
                if idle and time.monotonic() - t0 >= grace_s:
                    report.done = True
                    report.reason = (f"the platform reported no detection progress for any "
                                     f"station within {grace_s:g} s")
                    return report
                behind = [sid for sid in self.station_ids
                          if not _at_least((by_station.get(sid) or {}).get(
                              "evaluated_through"), through)]
                if not behind:
                    report.done, report.reason = True, "evaluated"
                    return report
                report.reason = "evaluated_through < the run's end at " + ", ".join(
                    f"{sid} ({(by_station.get(sid) or {}).get('evaluated_through')})"
                    for sid in behind)
            if time.monotonic() >= deadline:
                report.reason = f"timeout after {timeout:g} s: {report.reason}"
                return report
            time.sleep(0.2)

    # -- a scenario's fault timeline ---------------------------------------------------
    def carry_out_faults(self, faults: Iterable[Fault], timeout: float,
                         on_action: Callable[[FaultAction], None] | None = None,
                         stall_s: float = 3.0) -> list[FaultAction]:
        """Carry out the faults the harness serves (acceptance/faults/: collector crash,
        network cut, broker and platform restarts) at their simulated times, until the world
        has finished and every fault has ended. At compression max a world held at the high-water mark by a
        station that cannot drain would never reach a fault's end: after `stall_s` wall
        seconds without progress the active faults end early (recorded as `end-early`)."""
        pending = sorted((f for f in faults if KINDS[f.kind].served_by == "harness"),
                         key=lambda f: f.at)
        active: list[Fault] = []
        log: list[FaultAction] = []
        deadline = time.monotonic() + timeout
        last_sim, moved_at = None, time.monotonic()

        def act(fault: Fault, action: str, sim: float) -> None:
            kind = KINDS[fault.kind]
            (kind.start if action == "start" else kind.end)(self, fault)  # type: ignore[misc]
            entry = FaultAction(time.time(), sim, fault, action)
            log.append(entry)
            if on_action:
                on_action(entry)

        while pending or active:
            self.check()
            st = self.device_status()
            if st is not None:
                sim, done = float(st["sim_time"]), bool(st["finished"])
                if sim != last_sim:
                    last_sim, moved_at = sim, time.monotonic()
                stalled = st.get("paused") and time.monotonic() - moved_at >= stall_s
                # every start and end the world has passed, in their planned order (a status
                # read may jump over several: a crash inside a cut still starts before the
                # cut ends, and ends within the same read if the world passed its end too)
                due = [(f.at, 1, f) for f in pending if sim >= f.at and not done]
                due += [(f.end, 0, f) for f in active if sim >= f.end or done]
                pending = [f for f in pending if sim < f.at and not done]
                while due:
                    due.sort(key=lambda e: (e[0], e[1]))
                    _, starting, f = due.pop(0)
                    if starting:
                        act(f, "start", sim)
                        active.append(f)
                        if sim >= f.end:
                            due.append((f.end, 0, f))
                    else:
                        active.remove(f)
                        act(f, "end", sim)
                for f in [f for f in active if stalled]:
                    active.remove(f)
                    act(f, "end-early", sim)
            if time.monotonic() >= deadline:
                for f in active:
                    act(f, "end-early", st["sim_time"] if st else float("nan"))
                raise TimeoutError(f"fault timeline not done within {timeout:.0f} s "
                                   f"({len(pending)} pending)")
            time.sleep(0.05)
        return log


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
