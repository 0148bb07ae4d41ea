"""A deliberately broken collector, for tests only: the reference collector, except that a
spool write that fails (a full disk) is taken as done, so the poller acknowledges at the
devices records it never stored. Under collector_disk_full they are lost: DAT-1 must fail.

Run as the reference collector's command line: python collector_acks_unspooled.py --station …
"""

from __future__ import annotations

import sqlite3
import sys

from collector import spool
from collector.cli import main_collector

_add = spool.Spool.add


def _add_or_pretend(self: spool.Spool, records, now=None, meta=None) -> int:  # type: ignore[no-untyped-def]
    try:
        return _add(self, records, now, meta)
    except sqlite3.Error:
        return 0  # BROKEN on purpose: as if stored, so the FIFOs are acknowledged


spool.Spool.add = _add_or_pretend  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main_collector(sys.argv[1:]))
