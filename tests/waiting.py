"""Waiting on a condition, never on the machine's speed: poll until it holds, bounded by a
deadline that only a hang reaches."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
# How long a test waits for a process to start or stop before calling it hung: only a hang
# reaches it, never a slow machine.
HANG_S = 300.0


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "",
             step: float = 0.02) -> T:
    """The first true value `predicate` returns; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what or predicate}: not within {timeout} s"
        time.sleep(step)


def gone(pid: int) -> bool:
    """The process has ended (a zombie left for its new parent counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"
