"""Small asyncio helpers shared by the collector's tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop: the same asyncio API with a faster loop and socket I/O (the
    loop and its socket calls are about a third of a collectors process's busy time;
    docs/performance.md). asyncio's own loop where uvloop is not installed (Windows) or
    FORECOURT_EVENT_LOOP is "asyncio"."""
    choice = os.environ.get("FORECOURT_EVENT_LOOP", "uvloop")
    if choice not in ("uvloop", "asyncio"):
        main.close()
        raise ValueError(f"FORECOURT_EVENT_LOOP={choice!r}: expected uvloop or asyncio")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; return True at once when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    return stop.is_set()


async def wait_any(events: list[asyncio.Event], timeout: float) -> None:
    """Wait until one of `events` is set or `timeout` seconds have passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
