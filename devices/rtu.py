"""Pseudo-terminal pairs for Modbus RTU, made with socat.

    socat -d -d pty,raw,echo=0,link=DEV pty,raw,echo=0,link=COL

The device server opens DEV; a serial collector opens COL (38400 8N1, as published in
endpoints.json). socat is stopped by its pid, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


class PtyPairError(RuntimeError):
    pass


class PtyPair:
    """A socat-linked pty pair; use as a context manager or call start()/stop()."""

    def __init__(self, directory: str | Path, name: str, *, timeout: float = 5.0) -> None:
        self.directory = Path(directory)
        self.device_path = str(self.directory / f"{name}.dev")
        self.collector_path = str(self.directory / f"{name}.col")
        self.log_path = str(self.directory / f"{name}.socat.log")
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> PtyPair:
        socat = shutil.which("socat")
        if socat is None:
            raise PtyPairError("socat is not installed (Debian package 'socat'); it is needed for Modbus RTU")
        self.directory.mkdir(parents=True, exist_ok=True)
        for p in (self.device_path, self.collector_path):
            if os.path.lexists(p):
                os.unlink(p)
        # socat logs to a file: a closed pipe would kill it at its next log line.
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [socat, "-d", "-d",
                 f"pty,raw,echo=0,link={self.device_path}",
                 f"pty,raw,echo=0,link={self.collector_path}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True,  # Ctrl-C must not kill it before the server closes
            )
        deadline = time.monotonic() + self.timeout
        while not (os.path.exists(self.device_path) and os.path.exists(self.collector_path)):
            if self.process.poll() is not None:
                err = Path(self.log_path).read_text(errors="replace")
                raise PtyPairError(f"socat exited with {self.process.returncode}: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PtyPairError(f"socat did not create {self.device_path} within {self.timeout} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.timeout)
        self.process = None
        for p in (self.device_path, self.collector_path):
            if os.path.islink(p):
                os.unlink(p)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
