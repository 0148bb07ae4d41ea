"""The end-to-end chain as real processes: devices → collector(s) → broker → platform.

    settings = ChainSettings(scenario="scenarios/smoke.yaml", workdir=tmp, days=0.5,
                             controlled=True)
    with Chain(settings) as chain:
        run_schedule(chain, scenario_faults(chain.scenario), end, timeout=120)
        report = chain.wait_drained(timeout=60)
    # chain.truth_dir: the ground truth; chain.api: the platform's API (acceptance.observe)

Every part is a child process started with this interpreter (`python -m acceptance.cli …`)
and stopped by its pid (acceptance.processes): `forecourt devices` (the world and its Modbus
servers, lingering after the simulated period so the collectors can drain; with `controlled`
its clock is the harness's, acceptance.clock), the broker (`forecourt broker`, the embedded
amqtt, or a managed Mosquitto with per-run accounts and ACL — the parts then get the
credentials file, acceptance/broker_accounts.py, and with `mqtt_tls`, where it listens with
TLS only, the run's throw-away CA as --mqtt-ca, acceptance/tls.py —, or an external URL left
alone), `forecourt platform` and the collector(s) — one `forecourt collector` per station, or one
`forecourt collectors` for the fleet. Collectors reach the broker through a TcpProxy
(acceptance.netproxy) per station (or one for the fleet), so the network can be cut.

This module starts and stops the parts and offers the operations faults use (kill -9 and
restart of a collector, broker and platform restarts, freezing, network cut and restore).
The schedule that carries faults out is acceptance.schedule; the drain and detection waits
are acceptance.drain.

Every wait is bounded, and every wait checks that the parts that should be running still
run: a part that dies raises ChainError with its name, exit code and the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acceptance.broker import free_port
from acceptance.broker_accounts import CREDENTIALS_FILE, load_credentials
from acceptance.clock import SimClock
from acceptance.drain import (
    DETECTION_GRACE_S,
    DetectionReport,
    DrainReport,
    wait_detection,
    wait_drained,
)
from acceptance.keys import make_key_file
from acceptance.netproxy import TcpProxy
from acceptance.observe import ApiError, PlatformClient
from acceptance.processes import HOST, ChainError, ManagedBroker, Part, descendants, wait_for
from contracts import REGISTER_PROFILES
from scenarios.loader import load_scenario

# ---- the chain --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainSettings:
    """What to run and how. `broker`: "embedded", "mosquitto" (with per-run accounts and
    ACL), "auto" (Mosquitto if installed, else embedded) or mqtt://host:port (external, not
    managed); `collectors`: "per-station" (a process and a proxy each) or
    "fleet" (`fleet_processes` processes, the stations dealt out in turn, a proxy each);
    `compression`: None = "max"."""

    scenario: str | Path
    workdir: str | Path
    days: float | None = None
    seed: int | None = None
    compression: float | None = None
    broker: str = "embedded"
    collectors: str = "per-station"
    # fleet mode, the reference collector: stations dealt over this many processes (each an
    # event loop of its own: one loop for 46 stations is the chain's bottleneck, issue 11)
    fleet_processes: int = 1
    # every 2 s (the watermark detection waits on moves at least that often; a device
    # going off or on line is reported at once anyway)
    heartbeat_s: float = 2.0
    collector_args: tuple[str, ...] = ()
    collector_mutant: str | None = None  # QA: a broken reference collector (mutants/collector.py)
    platform_args: tuple[str, ...] = ()
    # a broken reference platform started through its wrapper (mutants.platform), e.g.
    # ("-m", "mutants.platform", "--mutant", "trusting"); () = the reference command
    platform_command: tuple[str, ...] = ()
    devices_args: tuple[str, ...] = ()  # e.g. --pace / --max-compression
    # a vendor's collector (docs/sut.md): argv template with {endpoints} {broker} {keys}
    # {spool_dir} {profiles} {station} {python} {mqtt_credentials} {mqtt_ca}; per station unless
    # collectors == "fleet"
    collector_command: tuple[str, ...] = ()
    # a vendor's platform: its API, a read token and the key file it verifies with
    platform_url: str | None = None
    platform_token: str | None = None
    keys_file: str | Path | None = None
    # an external broker's accounts file (acceptance/broker_accounts.py format), if it has any
    mqtt_credentials: str | Path | None = None
    # TLS on the uplink: the managed Mosquitto listens with TLS only (mqtts://), every part
    # verifies it against a throw-away CA made for the run
    mqtt_tls: bool = False
    platform_read_token: str | None = None  # a vendor platform's read-only token (SEC-1)
    platform_tax_token: str | None = None  # a vendor platform's tax-bureau token (SEC-1)
    device_faults: bool = True  # serve the scenario's device_silent faults
    # the world holds at its start until acceptance.schedule advances it (devices/control.py)
    controlled: bool = False
    start_timeout_s: float = 60.0
    devices_stop_timeout_s: float = 300.0  # closing writes the whole ground truth
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.collectors not in ("per-station", "fleet"):
            raise ValueError(f"ChainSettings.collectors: expected 'per-station' or 'fleet', "
                             f"found {self.collectors!r}")
        if not 1 <= self.fleet_processes <= 64:
            raise ValueError(f"ChainSettings.fleet_processes: expected 1..64, "
                             f"found {self.fleet_processes}")
        if self.fleet_processes > 1 and (self.collectors != "fleet" or self.collector_command):
            raise ValueError("ChainSettings.fleet_processes > 1 needs collectors='fleet' and the "
                             "reference collector (a vendor's command serves its own fleet)")
        if self.compression is not None and not self.compression > 0:
            raise ValueError(f"ChainSettings.compression: expected > 0 or None (max), "
                             f"found {self.compression!r}")
        if not self.heartbeat_s > 0:
            raise ValueError(f"ChainSettings.heartbeat_s: expected > 0, found {self.heartbeat_s}")


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
        self.mqtt_credentials_path = self.workdir / CREDENTIALS_FILE
        self.db_path = self.workdir / "platform.db"
        self.http_port = free_port(HOST)
        self.read_token = secrets.token_urlsafe(24)
        self.admin_token = secrets.token_urlsafe(24)
        self.tax_token = secrets.token_urlsafe(24)
        self.external_platform = s.platform_url is not None
        # read-only and tax-bureau clients (SEC-1's API attempts), if their tokens are known
        self.read_api: PlatformClient | None
        self.tax_api: PlatformClient | None
        if self.external_platform:
            if not (s.platform_token and s.keys_file):
                raise ValueError("ChainSettings: an external platform needs platform_token and "
                                 "keys_file (the key file the platform verifies with)")
            self.api = PlatformClient(str(s.platform_url), s.platform_token, timeout=10.0)
            # the vendor's token posts the departments' inputs too (it needs role admin)
            self.admin_api = self.api
            self.read_api = PlatformClient(str(s.platform_url), s.platform_read_token,
                                           timeout=10.0) if s.platform_read_token else None
            self.tax_api = PlatformClient(str(s.platform_url), s.platform_tax_token,
                                          timeout=10.0) if s.platform_tax_token else None
            self.keys_path = Path(s.keys_file).resolve()
        else:
            self.api = PlatformClient(f"http://{HOST}:{self.http_port}", self.read_token,
                                      timeout=10.0)
            self.admin_api = PlatformClient(self.api.base_url, self.admin_token, timeout=10.0)
            self.read_api = self.api
            self.tax_api = PlatformClient(self.api.base_url, self.tax_token, timeout=10.0)
        self.broker = ManagedBroker(s.broker, self.workdir, s.python, self.station_ids,
                                    tls=s.mqtt_tls)
        # the CA the parts verify the broker with (None: plain MQTT)
        self.mqtt_ca_path: Path | None = self.broker.tls.ca if self.broker.tls else None
        # username → password when the broker has accounts (managed Mosquitto), else None;
        # the parts get the credentials file, never passwords on their command line
        self.mqtt_accounts: dict[str, str] | None = (
            dict(self.broker.accounts.passwords) if self.broker.accounts else None)
        if s.mqtt_credentials and self.broker.kind == "external":
            self.mqtt_credentials_path = Path(s.mqtt_credentials).resolve()
            self.mqtt_accounts = load_credentials(self.mqtt_credentials_path)
        self.devices = self._part("devices", self._devices_argv())
        self.platform = self._part("platform", self._platform_argv())
        # keyed by station id, or "*" / "*1".."*N" for fleet processes (_collector_keys)
        self.proxies: dict[str, TcpProxy] = {}
        self.collectors: dict[str, Part] = {}
        self.collector_keys = self._collector_keys()  # station → its collector's key
        self.endpoints: dict[str, Any] = {}
        self.clock: SimClock | None = None  # with settings.controlled, once the devices run
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
        if s.controlled:
            argv.append("--controlled")
        return argv + list(s.devices_args)

    def _platform_argv(self) -> list[str]:
        wrapper = self.settings.platform_command
        head = [self.settings.python, *wrapper] if wrapper else self._cli("platform")
        return head + ["--db", f"sqlite:///{self.db_path}",
                       "--broker", self.broker.url, "--http", f"{HOST}:{self.http_port}",
                       "--keys", str(self.keys_path),
                       "--registry", str(self.scenario.fleet_path.resolve()),
                       # its days and months are the scenario's (reconciliation, tax
                       # periods, commerce months)
                       "--timezone", self.scenario.timezone,
                       "--tokens", str(self.tokens_path), "--log-level", "WARNING",
                       *self._credentials_args(), *self.settings.platform_args]

    def _credentials_args(self) -> list[str]:
        # the managed Mosquitto's accounts, or those of an external broker the SUT named
        creds = ["--mqtt-credentials", str(self.mqtt_credentials_path)] \
            if self.mqtt_accounts else []
        return creds + (["--mqtt-ca", str(self.mqtt_ca_path)] if self.mqtt_ca_path else [])

    def _collector_keys(self) -> dict[str, str]:
        return deal_collectors(self.station_ids, self.settings.collectors,
                               self.settings.fleet_processes)

    def _collector_argv(self, station: str, broker_url: str) -> list[str]:
        s = self.settings
        if s.collector_command:
            from acceptance.sut import CollectorSut

            return CollectorSut("external", None, s.collector_command).argv({
                "endpoints": str(self.truth_dir / "endpoints.json"), "broker": broker_url,
                "keys": str(self.keys_path), "profiles": str(REGISTER_PROFILES), "station": station,
                "mqtt_credentials": str(self.mqtt_credentials_path) if self.mqtt_accounts
                else "",
                "mqtt_ca": str(self.mqtt_ca_path) if self.mqtt_ca_path else "",
                "spool_dir": str(self.spool_dir if station == "*" else self.spool_dir / station)})
        common = ["--endpoints", str(self.truth_dir / "endpoints.json"), "--broker", broker_url,
                  "--keys", str(self.keys_path), "--heartbeat", str(s.heartbeat_s),
                  "--log-level", "WARNING", *self._credentials_args(), *s.collector_args]
        head = [s.python, "-m", "mutants.collector", "--mutant", s.collector_mutant] \
            if s.collector_mutant else self._cli()
        if station.startswith("*"):
            only = [sid for sid, key in self.collector_keys.items() if key == station]
            subset = ["--stations", *only] if station != "*" else []
            return [*head, "collectors", "--spool-dir", str(self.spool_dir), *subset, *common]
        return [*head, "collector", "--station", station, "--spool",
                str(self.spool_dir / station), *common]

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
                {"token": self.admin_token, "role": "admin", "name": "harness-admin"},
                {"token": self.tax_token, "role": "tax", "name": "harness-tax"}]})
            if self.broker.accounts:
                self.broker.accounts.write_credentials(self.mqtt_credentials_path)
            self.broker.start(timeout)
            self.start_platform(timeout)
            if before_devices is not None:
                before_devices(self)
            self.devices.start()
            self.endpoints = wait_for(self._read_endpoints, timeout,
                                   f"{self.truth_dir / 'endpoints.json'}", self.check)
            if self.settings.controlled:
                control = self.endpoints.get("control")
                if not control:
                    raise ChainError(f"{self.truth_dir / 'endpoints.json'}: no control channel "
                                     f"although the devices were started --controlled")
                self.clock = SimClock(control["host"], control["port"])
            for key in dict.fromkeys(self.collector_keys.values()):
                proxy = TcpProxy(self.broker.host, self.broker.port, HOST,
                                 scheme=self.broker.scheme).start()
                self.proxies[key] = proxy
                self.collectors[key] = self._part(
                    f"collectors{key[1:]}" if key.startswith("*") else f"collector:{key}",
                    self._collector_argv(key, proxy.url))
                self.collectors[key].start()
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
        if self.clock is not None:
            self.clock.close()
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
        if self.platform.alive and self.platform.pid:
            for i, child in enumerate(_platform_children(self.platform.pid)):
                out[f"{self.platform.name}:child{i or ''}"] = child
        if self.broker.mosquitto and self.broker.pid:
            out["broker"] = self.broker.pid
        return out

    # -- individual parts --------------------------------------------------------------
    def _read_endpoints(self) -> dict[str, Any]:
        """endpoints.json once the devices have written it, else an empty dict."""
        try:
            return dict(json.loads((self.truth_dir / "endpoints.json").read_text()))
        except (OSError, ValueError):
            return {}

    def start_platform(self, timeout: float | None = None) -> None:
        if not self.external_platform:
            self.platform.start()
        wait_for(self._platform_ready, timeout or self.settings.start_timeout_s,
              f"platform API on {self.api.base_url}", self.check)

    def _platform_ready(self) -> bool:
        try:
            health = self.api.healthz()
        except ApiError:
            return False
        # a vendor's platform need only answer its health check
        return self.external_platform or bool(health.get("mqtt_subscribed"))

    def freeze_collector(self, station: str | None, frozen: bool) -> None:
        self.collector_part(station).freeze(frozen)

    def freeze_platform(self, frozen: bool) -> None:
        if self.external_platform:
            raise ChainError("the platform is external: the chain cannot freeze it")
        # the whole platform hangs, its detection worker too (central/detectors/worker.py)
        helpers = descendants(self.platform.pid) if self.platform.pid else []
        self.platform.freeze(frozen)
        for pid in helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)

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

    def collector_part(self, station: str | None) -> Part:
        """The collector process serving `station` (in fleet mode: the fleet process serving
        it; None: the only fleet process)."""
        key = self._key(station)
        if key is None or key not in self.collectors:
            raise ChainError(f"no collector for station {station!r} (collectors: "
                             f"{', '.join(self.collectors)})")
        return self.collectors[key]

    def kill_collector(self, station: str | None = None) -> None:
        """kill -9 the collector of `station` (the fleet process in fleet mode)."""
        self.collector_part(station).kill9()

    def start_collector(self, station: str | None = None) -> None:
        """Start the collector again, on the same spool (nothing to do if it runs)."""
        part = self.collector_part(station)
        if not part.alive:
            part.start()

    def _key(self, station: str | None) -> str | None:
        if station is None:
            return "*" if "*" in self.collectors else None
        return self.collector_keys.get(station)

    def _proxy(self, station: str | None) -> TcpProxy:
        key = self._key(station)
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
        """Wait until the world has reached simulated time `t` (or finished). With the
        harness's clock (settings.controlled) the world is advanced to `t` and holds there."""
        if self.clock is not None:
            self.clock.advance_to(t)
        def reached() -> dict[str, Any] | None:
            st = self.device_status()
            return st if st and (st["sim_time"] >= t or st["finished"]) else None
        return float(wait_for(reached, timeout, f"simulated time {t:.0f}", self.check,
                              0.05)["sim_time"])

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
        return wait_drained(self, timeout, settle_s)

    def wait_detection(self, through: float, timeout: float = 120.0,
                       grace_s: float = DETECTION_GRACE_S) -> DetectionReport:
        return wait_detection(self, through, timeout, grace_s)

def deal_collectors(station_ids: list[str], collectors: str, fleet_processes: int
                    ) -> dict[str, str]:
    """Station → the key of the collector process (and network link) serving it: itself, or
    "*" / "*1".."*N" for the processes of fleet mode."""
    if collectors != "fleet":
        return {sid: sid for sid in station_ids}
    if fleet_processes == 1:
        return dict.fromkeys(station_ids, "*")
    # dealt in turn: neighbours in the ledger (often alike in size) land apart
    return {sid: f"*{i % fleet_processes + 1}" for i, sid in enumerate(station_ids)}


def stations_sharing(keys: dict[str, str], station: str) -> list[str]:
    """`station` and every station its collector process serves too (fleet mode): a crash of
    that process or a cut of its link hits them all."""
    key = keys.get(station)
    return [s for s, k in keys.items() if k == key] if key is not None else [station]


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


def _platform_children(pid: int) -> list[int]:
    """The platform's child processes: the reference platform's detection worker first
    (central/detectors/worker.py; sampled as `platform:child`, also when it was started
    again), then the others in the order they started (its chain-check process,
    central/chain_check.py: `platform:child1`)."""
    def not_worker(child: int) -> bool:
        try:
            return b"central.detectors.worker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            return True

    return sorted(descendants(pid), key=not_worker)
