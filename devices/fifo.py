"""Cursor FIFOs (记录缓存): the records a device buffers until the collector acknowledges them.

Semantics (docs/register-map.md, "FIFO protocol"):
- records keep the 16-bit sequence number the world gave them (it wraps 65535 -> 0);
- reading never changes anything;
- ack(s) releases the pending record with sequence s and every older one (cumulative);
  an s that is not pending raises AckError and changes nothing (Modbus exception 03);
- the depth is finite: a push into a full FIFO drops the oldest record, counts it and
  reports it (FifoDrop) so the device can log an overflow event and the harness can
  record what was lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from devices.codec import Codec
from devices.crc import crc_registers
from devices.profile import FifoSpec

NO_SEQ = 0xFFFF  # head_seq when the FIFO is empty; also the ack register before any ack


class AckError(ValueError):
    """The acknowledged sequence number is not pending (answered with exception 03)."""


@dataclass(frozen=True, slots=True)
class FifoDrop:
    """One record lost to overflow: what the device never served."""

    stream: str
    seq: int
    time: float  # simulated time of the push that pushed it out (epoch s)
    dropped_total: int  # the FIFO's dropped counter after this drop


class RecordLayout:
    """Encodes one record (field name -> engineering value) into its registers + CRC."""

    def __init__(self, spec: FifoSpec, codec: Codec) -> None:
        self.spec = spec
        self.size = spec.record_size
        self.crc_offset = spec.crc_field.offset
        self.fields = [f for f in spec.record if f.name != "crc"]
        self.names = frozenset(f.name for f in self.fields)
        self._encoders = [(f.offset, f.end, f.name, codec.encoder(f)) for f in self.fields]

    def check_names(self, provided: set[str] | frozenset[str], source: str) -> None:
        """Fail early if a value mapper does not match the profile's record exactly."""
        missing = self.names - provided
        extra = set(provided) - self.names
        if missing or extra:
            raise ValueError(
                f"{source} does not match FIFO {self.spec.name!r} of the profile: "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )

    def encode(self, values: Mapping[str, object]) -> tuple[int, ...]:
        regs = [0] * self.size
        for start, end, name, enc in self._encoders:
            try:
                regs[start:end] = enc(values[name])
            except KeyError:
                raise ValueError(f"FIFO {self.spec.name!r}: no value for field {name!r}") from None
        regs[self.crc_offset] = crc_registers(regs[: self.crc_offset])
        return tuple(regs)


class CursorFifo:
    """A bounded FIFO of encoded records addressed by their sequence numbers."""

    def __init__(
        self,
        name: str,
        depth: int = 500,
        on_drop: Callable[[FifoDrop], None] | None = None,
    ) -> None:
        if not 1 <= depth <= 0xFFFE:
            raise ValueError(f"FIFO {name!r}: depth must be 1..65534, found {depth}")
        self.name = name
        self.depth = depth
        self.on_drop = on_drop
        self._seqs: deque[int] = deque()
        self._records: deque[tuple[int, ...]] = deque()
        self.dropped = 0
        self.pushed = 0
        self.released = 0
        self.last_ack = NO_SEQ
        self.version = 0  # bumps on every change, so rendered windows can be cached

    @property
    def pending(self) -> int:
        return len(self._seqs)

    @property
    def head_seq(self) -> int:
        return self._seqs[0] if self._seqs else NO_SEQ

    def seqs(self) -> list[int]:
        return list(self._seqs)

    def push(self, seq: int, registers: Sequence[int], time: float) -> FifoDrop | None:
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"FIFO {self.name!r}: sequence {seq} is not 16-bit")
        drop = None
        if len(self._seqs) >= self.depth:
            lost = self._seqs.popleft()
            self._records.popleft()
            self.dropped += 1
            drop = FifoDrop(self.name, lost, time, self.dropped)
        self._seqs.append(seq)
        self._records.append(tuple(registers))
        self.pushed += 1
        self.version += 1
        if drop is not None and self.on_drop is not None:
            self.on_drop(drop)
        return drop

    def window(self, n: int) -> list[tuple[int, ...]]:
        """The n oldest pending records (fewer if fewer are pending)."""
        records = self._records
        return [records[i] for i in range(min(n, len(records)))]

    def position(self, seq: int) -> int:
        """Index of the pending record with this sequence, or -1."""
        seqs = self._seqs
        if not seqs:
            return -1
        # World sequences are consecutive mod 2**16, so try the direct index first.
        i = (seq - seqs[0]) & 0xFFFF
        if i < len(seqs) and seqs[i] == seq:
            return i
        for j, s in enumerate(seqs):
            if s == seq:
                return j
        return -1

    def ack(self, seq: int) -> int:
        """Release `seq` and every older record; returns how many were released."""
        i = self.position(seq)
        if i < 0:
            raise AckError(
                f"FIFO {self.name!r}: sequence {seq} is not pending "
                f"(pending {self.pending}, head {self.head_seq})"
            )
        for _ in range(i + 1):
            self._seqs.popleft()
            self._records.popleft()
        self.released += i + 1
        self.last_ack = seq
        self.version += 1
        return i + 1
