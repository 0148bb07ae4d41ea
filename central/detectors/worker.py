"""The detection service in a process of its own (`forecourt platform --detection process`,
the default), beside the platform's ingest and HTTP API.

Why: the platform is one Python interpreter. In a compressed run the final evaluations of
46 stations (≈ 1 min of CPU in the banner's 180 days) and the harness's record export both
waited on it, one after the other (issue 11). In a process of its own, detection uses the
second core; it shares only the database, as a second platform instance would (SQLite WAL
locks across processes as across connections; PostgreSQL by its transactions).

`DetectionProcess` (in the platform) starts `python -m central.detectors.worker`, hands it
its configuration as one JSON line on stdin (the database URL may carry a password, which
a command line would show to every user of the machine), and starts it again if it exits
on its own (logged, with its exit code): after 1 s, doubling while it keeps failing within a
minute of its start (up to 60 s apart), so a worker that cannot start (a bad configuration)
does not flood the log. `stop()`: SIGTERM, then SIGKILL after a timeout.

The worker (`main`) runs `DetectionService` until SIGTERM or until the platform that
started it is gone: Linux delivers SIGTERM when the parent dies (PR_SET_PDEATHSIG), and
the worker also watches its parent's pid, so a platform killed with SIGKILL (a crash
fault) never leaves a detector writing beside its successor. It ignores SIGINT: a Ctrl-C
reaches the whole process group, and the platform stops its worker itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from central.db import Database
from central.detectors.base import Settings
from central.detectors.service import DetectionService

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
RESTART_DELAY_S = 1.0  # between an unexpected exit and the next start
RESTART_MAX_DELAY_S = 60.0  # the delay doubles while the worker keeps failing, up to this
HEALTHY_S = 60.0  # a worker that ran this long before it failed starts the back-off afresh
_CODE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding central/


class DetectionProcess:
    """The platform's handle on its detection worker; same `start`/`stop` as
    `DetectionService`. `restarts`: how often the worker had to be started again;
    `delays`: the wait before each of those starts."""

    def __init__(self, db_url: str, settings: Settings, interval_s: float = 1.0,
                 budget: float = 0.05, log_level: str = "INFO",
                 restart_delay_s: float = RESTART_DELAY_S) -> None:
        DetectionService.check_options(interval_s, budget)  # bad options fail in the platform
        self.config = {"db": db_url, "settings": dataclasses.asdict(settings),
                       "interval_s": interval_s, "budget": budget, "log_level": log_level,
                       "parent": os.getpid()}
        self.restarts = 0
        self.delays: list[float] = []
        self._first_delay = restart_delay_s
        self._started = 0.0  # time.monotonic() of the last start
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._supervise, name="detection-worker",
                                       daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        # the worker runs the platform's own code, wherever that was imported from
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, (_CODE_ROOT, os.environ.get("PYTHONPATH")))))
        with self._lock:  # never a new worker after stop()
            if self._stop.is_set():
                return
            # stdout/stderr inherited: the worker logs to the platform's log
            proc = subprocess.Popen([sys.executable, "-m", "central.detectors.worker"],
                                    stdin=subprocess.PIPE, env=env)
            self._proc = proc
            self._started = time.monotonic()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(self.config).encode() + b"\n")
            proc.stdin.close()
        except OSError:  # it died at once: _supervise sees its exit code
            pass
        log.info("detection worker started (pid %d)", proc.pid)

    def _supervise(self) -> None:
        delay = self._first_delay
        while not self._stop.is_set():
            proc = self._proc
            if proc is None:  # stopped before the first start
                return
            code = proc.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - self._started >= HEALTHY_S:
                delay = self._first_delay
            log.error("detection worker (pid %d) exited on its own with code %s; starting "
                      "it again in %.3g s", proc.pid, code, delay)
            if self._stop.wait(delay):
                return
            self.delays.append(delay)
            self.restarts += 1
            delay = min(2 * delay, RESTART_MAX_DELAY_S)
            self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("detection worker did not stop within %.0f s: killed", timeout)
            proc.kill()
            proc.wait()
        if self._watch is not None:
            self._watch.join(timeout)


def _die_with(parent: int) -> None:
    """SIGTERM to this process when the thread that started it (the platform) ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent-pid watch below remains
        pass
    if os.getppid() != parent:  # the platform was gone before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    try:
        config: dict[str, Any] = json.loads(sys.stdin.readline())
        parent = int(config["parent"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"central.detectors.worker: expected the configuration from `forecourt "
              f"platform` as one JSON line on stdin ({exc!r})", file=sys.stderr)
        return 2
    stop = threading.Event()
    # set from another thread: the handler runs in the main thread, which may hold the
    # event's lock inside stop.wait() at that instant (Event.set there deadlocked a worker)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop.set).start())
    # Ctrl-C in a terminal reaches the whole process group: the platform stops its worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    logging.basicConfig(level=config["log_level"], stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = Database(config["db"])
    service = DetectionService(db, Settings(**config["settings"]),
                               interval_s=config["interval_s"], budget=config["budget"])
    service.start()
    try:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                log.warning("the platform (pid %d) is gone: detection worker stops", parent)
                break
    finally:
        service.stop()
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
