"""The harness's hand on the simulated clock: a client of the devices' control channel
(devices/control.py). Thread-safe: the schedule, the sampler and the progress line share it."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any


class ClockError(RuntimeError):
    pass


class SimClock:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.address = (host, int(port))
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._file: Any = None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request, one reply; a refused request raises ClockError with the reason."""
        line = json.dumps({"op": op, **args}).encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):  # one reconnect: the previous connection may have broken
                try:
                    if self._sock is None:
                        self._sock = socket.create_connection(self.address, self.timeout)
                        self._file = self._sock.makefile("rb")
                    self._sock.sendall(line)
                    reply = self._file.readline()
                    if not reply:
                        raise ConnectionError("control channel closed")
                    break
                except OSError as exc:
                    self._close()
                    if attempt == 2:
                        raise ClockError(f"devices control channel {self.address}: {exc}") from exc
        doc = json.loads(reply)
        if not doc.get("ok"):
            raise ClockError(f"devices control channel refused {op}: {doc.get('error')}")
        return doc

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def advance_to(self, t: float) -> dict[str, Any]:
        return self.call("advance_to", t=t)

    def release(self) -> dict[str, Any]:
        return self.call("release")

    def pause(self) -> dict[str, Any]:
        return self.call("pause")

    def resume(self) -> dict[str, Any]:
        return self.call("resume")

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def close(self) -> None:
        with self._lock:
            self._close()
