"""CPU seconds of a live process, from /proc/PID/stat (user + system, children excluded),
and the seconds its threads waited for a core (/proc/PID/task/*/schedstat)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def run_queue_wait(pid: int) -> float | None:
    """Seconds the live threads of a process have spent runnable but waiting for a core
    (schedstat's second field; a thread that has ended no longer counts). None once gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    waited = 0
    for tid in tasks:
        try:
            waited += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return waited / 1e9


def cpu_seconds(pid: int) -> float:
    found = stat(pid)
    if found is None:
        raise ProcessLookupError(f"no process {pid}")
    return found[1]
