"""collector_disk_full: the collector's disk is full for the fault's duration (RLIMIT_FSIZE 0)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from acceptance.faults._process import FilledDisk, fill_disk, unfill_disk
from acceptance.faults.base import FaultKind
from acceptance.processes import ChainError

if TYPE_CHECKING:
    from acceptance.chain import Chain
    from acceptance.schedule import Fault

# per chain, per collector process: the limits to put back, and how many faults hold it (in
# fleet mode two stations' faults may overlap on the one process)
_FILLED: weakref.WeakKeyDictionary[Chain, dict[str, tuple[FilledDisk, int]]] = \
    weakref.WeakKeyDictionary()


def start(chain: Chain, fault: Fault) -> None:
    part = chain.collector_part(fault.station)
    held = _FILLED.setdefault(chain, {})
    if part.name in held:
        filled, count = held[part.name]
        held[part.name] = (filled, count + 1)
        return
    if not part.alive or part.pid is None:
        raise ChainError(f"{part.name} is not running: its disk cannot be filled")
    try:
        held[part.name] = (fill_disk(part.pid), 1)
    except ValueError as exc:
        raise ChainError(f"collector_disk_full on {part.name}: {exc}") from None


def end(chain: Chain, fault: Fault) -> None:
    part = chain.collector_part(fault.station)
    held = _FILLED.get(chain, {})
    if part.name not in held:
        return
    filled, count = held.pop(part.name)
    if count > 1:
        held[part.name] = (filled, count - 1)
        return
    if part.alive and part.pid == filled.pid:  # not a process started since (no limit)
        unfill_disk(filled)


KIND = FaultKind(
    name="collector_disk_full", layer="collector", served_by="harness", scope="station",
    summary="the collector's disk is full: the harness lowers the process's file size limit "
            "(RLIMIT_FSIZE, soft 0) from outside, so every write to a file fails (EFBIG; "
            "SQLite: disk I/O error) — its spool, its logs; restored when the fault ends. In "
            "fleet mode it hits the fleet process serving the station. A collector must ignore "
            "SIGXFSZ (CPython and Go do), or the harness refuses the fault",
    expected="records it cannot store durably are not acknowledged at the device (the FIFOs "
             "keep them and serve them again); the collector neither exits nor spins (it "
             "backs off), reports the failure, and after the fault stores and sends "
             "everything once",
    shows="the collector normally stays on line (publishing needs no disk); the reference "
          "reports the spool failure as its devices' error in heartbeats; the devices' FIFO "
          "backlog grows meanwhile; evidence: the window in timeline.json, DAT-1..4 and STB-1",
    start=start, end=end)
