"""How far a device's data is complete at the platform: heartbeat `drained_through`
(docs/uplink.md §4).

`drained_through` = T (device clock, epoch s) promises that every record the device produced
up to the instant T — every record with a device time < T (a record stamped with the second
T itself may still come) — has been read from its FIFOs, spooled AND acknowledged by the
platform. The reference collector proves it in three steps:

1. a header read shows the RTC value R: every record produced up to that instant already sat
   in the device's FIFOs then; the candidate is T = R;
2. after that header read, every FIFO of the device is read with pending = 0: each of those
   records has been released, which only our acknowledge does, and we acknowledge only what
   is committed to the spool. The candidate is *reached*; all its records are in spool rows
   up to the spool's newest id at the end of that poll round (the round's own records,
   e.g. a state report, are committed first) — the candidate's *mark*;
3. it is *promoted* once the spool holds no unacknowledged record of the device with an id
   ≤ its mark (the platform acknowledged them all).

Records lost to a device FIFO overflow were never readable; they are no part of the promise
(the platform sees them as sequence gaps).
"""

from __future__ import annotations

from collections import deque

LIMIT = 256  # candidates kept per device (header reads are seconds apart)


class DrainTracker:
    """Per device: candidates from header reads → reached → promoted."""

    def __init__(self, fifos: tuple[str, ...], limit: int = LIMIT) -> None:
        self.fifos = fifos
        self._op = 0  # order of header and empty-FIFO reads
        self._candidates: deque[tuple[int, int]] = deque(maxlen=limit)  # (T, op of the read)
        self._empty_at: dict[str, int] = {}  # FIFO → op of its last read with pending = 0
        self._round: int | None = None  # T reached in the current poll round
        self._reached: deque[tuple[int, int]] = deque(maxlen=limit)  # (T, spool mark)
        self.drained_through: int | None = None

    def header(self, rtc: int) -> None:
        """A header read showed RTC value `rtc`."""
        self._op += 1
        t = int(rtc)
        if self._candidates and self._candidates[-1][0] >= t:
            return  # the clock did not move on: the older read is as good
        self._candidates.append((t, self._op))

    def fifo_empty(self, fifo: str) -> None:
        """A read of `fifo` showed pending = 0."""
        self._op += 1
        self._empty_at[fifo] = self._op
        if any(f not in self._empty_at for f in self.fifos):
            return
        floor = min(self._empty_at[f] for f in self.fifos)
        while self._candidates and self._candidates[0][1] < floor:
            t = self._candidates.popleft()[0]
            self._round = t if self._round is None else max(self._round, t)

    def end_round(self, spool_mark: int | None) -> None:
        """The poll round's records are committed (mark = the spool's newest id), or, with
        None, the commit failed: what the round reached is kept for the next round."""
        if self._round is None or spool_mark is None:
            return
        if self._reached and self._reached[-1][1] == spool_mark:
            self._reached[-1] = (max(self._reached[-1][0], self._round), spool_mark)
        else:
            self._reached.append((self._round, spool_mark))
        self._round = None

    def promote(self, oldest_pending_id: int | None) -> int | None:
        """Promote what the platform has acknowledged; `oldest_pending_id` is the spool id of
        the device's oldest unacknowledged record (None: none). Returns drained_through."""
        while self._reached and (oldest_pending_id is None
                                 or oldest_pending_id > self._reached[0][1]):
            t = self._reached.popleft()[0]
            if self.drained_through is None or t > self.drained_through:
                self.drained_through = t
        return self.drained_through
