"""GET /api/v1/integrity/chain's verification (central/integrity.py) in a process of its own
(`forecourt platform --chain-check process`, the default), or in the request's thread.

Why: the platform is one Python interpreter. At the end of a compressed run the harness asks
for every station's chain check (≈ 33 s of CPU for the banner's 3.58 M records) while it
also reads the platform's other observations, and both waited on that one interpreter
(issue 11, docs/performance.md). In a process of its own the check uses the other core; it
shares only the database, which it only reads.

`ChainCheckProcess` (in the platform) starts `python -m central.chain_check` with the
platform, hands it the database URL as the first line on stdin (a command line would show
its password to every user of the machine), then one station per line; the process answers
one JSON line each. One verification at a time; others wait for it. The process ends when
its stdin closes, on SIGTERM, or when the platform is gone (it watches its parent's pid, so
a platform killed with SIGKILL leaves nothing behind). If it dies, the request that finds it
dead answers 503 and the next one starts a new process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from central import integrity
from central.db import Conn, Database, DatabaseError, unavailable_errors

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0
_CODE_ROOT = str(Path(__file__).resolve().parents[1])  # the folder holding central/


def verify_here(conn: Conn, station_id: str) -> dict[str, Any]:
    """The chain check in the calling thread, on its connection."""
    return integrity.verify_station(conn, station_id).as_dict()


class ChainCheckProcess:
    """The platform's handle on its chain-check process; `verify` has `verify_here`'s
    signature (the request's connection is unused: the process has its own)."""

    def __init__(self, db_url: str) -> None:
        self._db_url = db_url
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self._lock:
            self._running()

    def verify(self, _conn: Conn, station_id: str) -> dict[str, Any]:
        with self._lock:
            proc = self._running()
            try:
                _send(proc.stdin, station_id)
                line = proc.stdout.readline() if proc.stdout else ""
                if not line:
                    raise EOFError("no answer")
            except (OSError, EOFError) as exc:
                self._end(proc)
                raise DatabaseError("the chain-check process died; retry") from exc
        answer = json.loads(line)
        if answer["ok"]:
            return dict(answer["report"])
        if answer["unavailable"]:
            raise DatabaseError(answer["error"])
        raise RuntimeError(f"chain check of {station_id}: {answer['error']}")

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._end(self._proc)

    def _running(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                log.warning("the chain-check process (pid %d) exited with code %s; starting "
                            "another", self._proc.pid, self._proc.returncode)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                filter(None, (_CODE_ROOT, os.environ.get("PYTHONPATH"))))}
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "central.chain_check"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env)
            _send(self._proc.stdin, json.dumps({"db": self._db_url, "parent": os.getpid()}))
        return self._proc

    def _end(self, proc: subprocess.Popen[str]) -> None:
        """Close its stdin (it leaves), then SIGKILL if it has not after a while."""
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a dead process's pipe
                    pipe.close()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._proc is proc:
            self._proc = None


def _send(pipe: IO[str] | None, line: str) -> None:
    if pipe is None:
        raise OSError("no pipe to the chain-check process")
    pipe.write(line + "\n")
    pipe.flush()


def main() -> int:
    """The process: its configuration, then one station per line on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the platform stops this process
    try:
        config = json.loads(sys.stdin.readline())
        db, parent = Database(str(config["db"])), int(config["parent"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"central.chain_check: expected the configuration from `forecourt platform` "
              f"as one JSON line on stdin ({exc!r})", file=sys.stderr)
        return 2

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    conn: Conn | None = None
    for line in sys.stdin:
        station_id = line.strip()
        try:
            conn = conn or db.connect()
            answer: dict[str, Any] = {"ok": True, "report": verify_here(conn, station_id)}
            conn.rollback_quietly()  # PostgreSQL: end the read transaction
        except unavailable_errors() as exc:
            if conn is not None:
                conn.close()  # connect afresh at the next check
            conn = None
            answer = {"ok": False, "unavailable": True, "error": f"database: {exc}"}
        except Exception as exc:  # noqa: BLE001 (answered, and the platform logs it)
            answer = {"ok": False, "unavailable": False, "error": repr(exc)}
        sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    if conn is not None:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
