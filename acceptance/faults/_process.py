"""Acting on a running SUT process from outside (Linux /proc and prlimit), for fault kinds
that must work on any collector, a vendor's included: no cooperation from the process.

`fill_disk(pid)` makes every write of the process (and its descendants) to a regular file
fail, as on a full disk, by lowering its soft RLIMIT_FSIZE to 0: the kernel refuses a write
at any offset at or beyond the limit with EFBIG (overwrites included, so a recycled SQLite
WAL cannot slip through), and SQLite reports it as SQLITE_IOERR_WRITE "disk I/O error". The
kernel also sends SIGXFSZ, whose default action kills the process: CPython and Go ignore it,
others must ignore or handle it, or this fault would be a crash rather than a full disk —
`fill_disk` refuses such a process instead. `unfill_disk` puts the previous limits back.
Reads, sockets, pipes and memory-mapped pages (SQLite's -shm) are not affected.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from acceptance.processes import descendants

Limits = tuple[int, int]


def sigxfsz_disposition(pid: int) -> str:
    """How the process treats SIGXFSZ: "ignored", "caught" or "default" (it would die)."""
    masks: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("SigIgn", "SigCgt"):
            masks[name] = int(value.strip(), 16)
    bit = 1 << (signal.SIGXFSZ - 1)
    if masks.get("SigIgn", 0) & bit:
        return "ignored"
    return "caught" if masks.get("SigCgt", 0) & bit else "default"


@dataclass
class FilledDisk:
    """What `fill_disk` changed: each process's previous RLIMIT_FSIZE."""

    pid: int
    previous: dict[int, Limits]


def _fatal(tree: list[int]) -> list[int]:
    fatal = []
    for p in tree:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # exited meanwhile
            if sigxfsz_disposition(p) == "default":
                fatal.append(p)
    return fatal


def fill_disk(pid: int, settle_s: float = 2.0) -> FilledDisk:
    """Make the process tree of `pid` unable to write files (soft RLIMIT_FSIZE 0, the hard
    limit kept, so no privilege is needed and the process cannot be harmed beyond that).
    Raises ValueError, before changing anything, for a process SIGXFSZ would kill — after
    up to `settle_s`: a process just started (CPython before its start-up) has not yet
    set SIGXFSZ aside."""
    tree = [pid, *descendants(pid)]
    deadline = time.monotonic() + settle_s
    while (fatal := _fatal(tree)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if fatal:
        raise ValueError(f"process(es) {', '.join(map(str, fatal))} of pid {pid} do not ignore "
                         f"SIGXFSZ: a file size limit would kill them instead of failing "
                         f"their writes as a full disk does")
    previous: dict[int, Limits] = {}
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            soft, hard = resource.prlimit(p, resource.RLIMIT_FSIZE)
            resource.prlimit(p, resource.RLIMIT_FSIZE, (0, hard))
            previous[p] = (soft, hard)
    return FilledDisk(pid, previous)


def unfill_disk(filled: FilledDisk) -> None:
    """Put the limits back, on the processes of the tree that still run (a child started
    meanwhile inherited the low limit: it gets its parent's previous one)."""
    try:
        tree = [filled.pid, *descendants(filled.pid)]
    except OSError:
        return
    default = filled.previous.get(filled.pid)
    for p in tree:
        limits = filled.previous.get(p, default)
        if limits is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(p, resource.RLIMIT_FSIZE, limits)
