"""Device state reports (uplink 1.1 record kind `state`, docs/uplink.md §3).

The header registers of a device show who it is and how it is (出厂编号, software id, 主板 and
编码器 ids, seal state 铅封, device status 自锁); a swapped mainboard or a broken seal shows
there whether or not the device logs an event. The collector reports them whenever they
differ from what it last reported for the device, and once after each start (so the
platform has a baseline). A report is a record like any other: spooled, forwarded,
acknowledged, de-duplicated by its key `<station>/<device>/states/<seq>/<device_time>`.

`seq` is the collector's own per-device counter (16 bits, wrapping), committed in the spool
in the same transaction as the record, so it survives restarts and never repeats a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.spool import Spool, SpoolRecord

KIND = "state"
STREAM = "states"
# Header fields reported; a profile without one (the tank gauge has no mainboard_id,
# encoder_id, seal_state or device_status) reports "" or 0.
TEXT_FIELDS = ("serial_number", "software_id", "mainboard_id", "encoder_id")
NUMBER_FIELDS = ("seal_state", "device_status")

Identity = tuple[str, str, str, str, int, int]


def seq_meta_name(device: str) -> str:
    return f"state_seq/{device}"


def identity(header: dict) -> Identity:
    """The reported part of a decoded header (missing fields as "" / 0)."""
    texts = tuple(str(header.get(name, "") or "") for name in TEXT_FIELDS)
    numbers = tuple(int(header.get(name, 0) or 0) for name in NUMBER_FIELDS)
    return texts + numbers  # type: ignore[return-value]


@dataclass
class PendingState:
    """A state report built in a poll round, not yet committed to the spool."""

    device: str
    identity: Identity
    record: SpoolRecord
    next_seq: int


class StateReporter:
    """Decides when a device's header is reported, and numbers the reports."""

    def __init__(self, station_id: str, spool: Spool) -> None:
        self.station_id = station_id
        self.spool = spool
        self._reported: dict[str, Identity] = {}  # what this process reported (not persisted)
        self._next: dict[str, int] = {}

    def next_seq(self, device: str) -> int:
        if device not in self._next:
            self._next[device] = self.spool.meta_int(seq_meta_name(device), 0) & 0xFFFF
        return self._next[device]

    def check(self, device: str, header: dict, device_time: int,
              collected_at: float) -> PendingState | None:
        """A report if the header differs from the last one committed (or none yet)."""
        ident = identity(header)
        if self._reported.get(device) == ident:
            return None
        seq = self.next_seq(device)
        payload: dict = {"key": f"{self.station_id}/{device}/{STREAM}/{seq}/{device_time}",
                         "seq": seq, "collected_at": round(collected_at, 3),
                         "device_time": int(device_time)}
        payload.update(zip(TEXT_FIELDS + NUMBER_FIELDS, ident, strict=True))
        return PendingState(device, ident, SpoolRecord(payload["key"], KIND, device, payload),
                            (seq + 1) & 0xFFFF)

    @staticmethod
    def meta(pending: list[PendingState]) -> dict[str, str]:
        """Spool meta values to commit with the reports (the next seq of each device)."""
        return {seq_meta_name(p.device): str(p.next_seq) for p in pending}

    def committed(self, pending: list[PendingState]) -> None:
        """The reports are in the spool: remember them as reported."""
        for p in pending:
            self._reported[p.device] = p.identity
            self._next[p.device] = p.next_seq
