"""The devices process's control channel (控制通道): the harness owns the simulated clock.

A loopback TCP server of JSON lines, one request and one reply per line:

    {"op": "status"}                 -> {"ok": true, "sim_time": ..., "horizon": ..., ...}
    {"op": "advance_to", "t": T}     the world may run up to simulated time T, then holds
    {"op": "release"}                no horizon: the world runs on to its end
    {"op": "pause"} / {"op": "resume"}

Every reply carries the status (see `ClockControl.status`). A bad request gets
`{"ok": false, "error": "..."}` naming what was wrong; the connection stays open.
The port is published in endpoints.json under `control` (docs/register-map.md §12).
The world holds *at* the horizon, not near it: a fault the harness starts at T acts on a
world whose clock reads exactly T while the devices go on answering Modbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

OPS = ("status", "advance_to", "release", "pause", "resume")


class ClockControl:
    """Where the harness lets the world go. `horizon` None: no limit."""

    def __init__(self, start: float, held: bool, status: Callable[[], dict[str, Any]]) -> None:
        self.horizon: float | None = start if held else None
        self.paused = False
        self._status = status
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    def limit(self, target: float) -> float:
        """The simulated time the world may advance to instead of `target`."""
        if self.horizon is not None:
            target = min(target, self.horizon)
        return target

    def holding(self, now: float) -> bool:
        """The world is held (paused, or at its horizon): pacing must not bank wall time."""
        return self.paused or (self.horizon is not None and now >= self.horizon)

    def status(self) -> dict[str, Any]:
        return {"ok": True, "horizon": self.horizon, "held_by_harness": self.paused,
                "wall": time.time(), **self._status()}

    def handle(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or request.get("op") not in OPS:
            op = request.get("op") if isinstance(request, dict) else None
            return {"ok": False, "error": f"op: expected one of {list(OPS)}, found {op!r}"}
        op = request["op"]
        if op == "advance_to":
            t = request.get("t")
            if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
                return {"ok": False, "error": f"advance_to.t: expected finite epoch seconds, "
                                              f"found {t!r}"}
            if self.horizon is not None and t < self.horizon:
                # the clock never goes back: an earlier horizon would be a harness bug
                return {"ok": False, "error": f"advance_to.t: {t!r} is before the horizon "
                                              f"{self.horizon!r} already granted"}
            self.horizon = float(t)
        elif op == "release":
            self.horizon = None
        elif op in ("pause", "resume"):
            self.paused = op == "pause"
        return self.status()

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = self.handle(json.loads(line))
                except ValueError as exc:
                    reply = {"ok": False, "error": f"not a JSON line: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
