"""Process supervision for the chain (进程管理): each part a child process with its log,
stopped by its pid (never by name), and the broker the chain manages.

Every part runs under acceptance.guard (parent-death signal) in its own session: a Ctrl-C
meant for the harness does not reach it, and it ends if the harness dies without stopping it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from acceptance.broker import (
    Mosquitto,
    free_port,
    mosquitto_installed,
    parse_broker_url,
    wait_listening,
)
from acceptance.broker_accounts import BrokerAccounts
from acceptance.guard import guarded
from acceptance.tls import TlsFiles, make_tls, tls_files

T = TypeVar("T")
HOST = "127.0.0.1"


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
                for pid in [*descendants(self.proc.pid), self.proc.pid]:
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


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (from /proc), in the order they started (not
    by pid: pids wrap around, at 32768 by default)."""
    parents: dict[int, tuple[int, int]] = {}  # pid → (parent, start time in clock ticks)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry)] = (int(fields[1]), int(fields[19]))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        kids = [p for p, (parent, _) in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return sorted(found, key=lambda p: (parents[p][1], p))


# ---- brokers ----------------------------------------------------------------------------

class ManagedBroker:
    """The broker the chain talks to: managed (embedded or Mosquitto) or external.

    `kind`: "embedded", "mosquitto" (with per-run accounts and ACL, acceptance/broker_accounts),
    "auto" (Mosquitto when installed, else embedded) or mqtt://host:port (external).
    `tls`: the managed Mosquitto listens with TLS only, with a throw-away CA and certificate
    made in `workdir`/tls at the first start (acceptance/tls.py)."""

    def __init__(self, kind: str, workdir: Path, python: str,
                 station_ids: Sequence[str] = (), tls: bool = False) -> None:
        self.requested = kind
        if kind == "auto":
            kind = "mosquitto" if mosquitto_installed() else "embedded"
        self.kind = kind
        self.part: Part | None = None
        self.mosquitto: Mosquitto | None = None
        self.accounts: BrokerAccounts | None = None
        self.tls: TlsFiles | None = None
        if tls and kind != "mosquitto":
            found = "embedded (auto: mosquitto is not installed)" \
                if self.requested == "auto" else repr(kind)
            raise ValueError(f"ChainSettings.mqtt_tls (--mqtt-tls): needs the managed Mosquitto "
                             f"(--broker mosquitto, or auto with Mosquitto installed), found "
                             f"{found}")
        if tls:
            self.tls = tls_files(workdir / "tls")
        if kind in ("embedded", "mosquitto"):
            self.host, self.port = HOST, free_port(HOST)
        else:
            try:
                self.host, self.port = parse_broker_url(kind)
            except ValueError:
                raise ValueError(f"ChainSettings.broker: expected 'embedded', 'mosquitto', "
                                 f"'auto' or mqtt://host:port, found {kind!r}") from None
            self.kind = "external"
        if self.kind == "embedded":
            self.part = Part("broker", [python, "-m", "acceptance.cli", "broker", "--listen",
                                        self.url], workdir / "logs" / "broker.log", workdir)
        elif self.kind == "mosquitto":
            self.accounts = BrokerAccounts.generate(station_ids)
            self.mosquitto = Mosquitto(HOST, self.port, persistence=True,
                                       workdir=workdir / "mosquitto", guard=True,
                                       accounts=self.accounts, tls=self.tls)

    def describe(self) -> str:
        """What was used, for run.json: e.g. "mosquitto (auto)", or the external URL."""
        if self.kind == "external":
            return self.requested
        return f"{self.kind} (auto)" if self.requested == "auto" else self.kind

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.part:
            return self.part.pid
        proc = self.mosquitto.proc if self.mosquitto else None
        return proc.pid if proc else None

    def start(self, timeout: float) -> None:
        if self.part:
            self.part.start()
            wait_for(lambda: listening(self.host, self.port), timeout,
                  f"embedded broker on {self.url}", self.check)
        elif self.mosquitto:
            # made once: a broker restart keeps the certificate the parts trust
            if self.tls and not all(p.exists() for p in (self.tls.ca, self.tls.cert,
                                                        self.tls.key)):
                make_tls(self.tls.ca.parent)
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


def listening(host: str, port: int) -> bool:
    try:
        wait_listening(host, port, timeout=0.2)
        return True
    except TimeoutError:
        return False


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str,
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
