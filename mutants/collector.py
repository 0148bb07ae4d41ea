"""Deliberately broken variants of the reference collector (for QA, never for production).

    python -m mutants.collector --mutant NAME collector|collectors <reference collector args>

runs the reference collector (`forecourt collector` / `forecourt collectors`) with one
mutation installed at its seams (the poller's record hook, the heartbeat fields, the spool
at start-up); the reference collector itself has no notion of mutants.

Each mutant breaks exactly one promise of the contract, so that an acceptance run shows
what that failure looks like and proves its checker can fail (docs/sut.md lists which
requirements each one must fail):

- ``drop``: every 20th transaction is acknowledged at the device but never spooled (lost).
- ``duplicate``: every 20th transaction is sent a second time as if it were another fill
  one second later (an extra record at the platform).
- ``round-volume``: transaction volumes are rounded to whole litres (inaccurate values).
- ``word-order``: the 32-bit values of transactions are decoded with their two words
  swapped (values that come out negative are clamped to 0, as a careless sanitiser would).
- ``no-spool``: records are acknowledged at the device but the spool does not survive a
  restart (store-and-forward in memory only): what was not yet at the platform is lost when
  the collector crashes.
- ``always-online``: heartbeats report every device on line, whatever its replies (a
  collector that hides dead or powered-off devices from the platform).
"""

from __future__ import annotations

import argparse
import logging
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from collector import cli
from collector.spool import Spool, SpoolRecord
from collector.station import StationCollector

log = logging.getLogger(__name__)

MUTANTS = ("drop", "duplicate", "round-volume", "word-order", "no-spool", "always-online")
EVERY = 20

# transaction fields: (uplink units per register count, uplink units per engineering unit)
_UNITS = {"volume_ml": (10, 1000), "amount_fen": (1, 100), "unit_price_fen": (0.1, 100)}

Mutate = Callable[[SpoolRecord], list[SpoolRecord]]


def _swap_words_int(raw: int) -> int:
    u = raw & 0xFFFFFFFF
    swapped = ((u & 0xFFFF) << 16) | (u >> 16)
    return swapped - (1 << 32) if swapped & 0x80000000 else swapped


def _swap_words_float(value: float) -> float:
    hi_lo = struct.pack(">f", value)
    return struct.unpack(">f", hi_lo[2:] + hi_lo[:2])[0]


def _word_order(payload: dict, dialect: str) -> dict:
    out = dict(payload)
    for name, (per_raw, per_eng) in _UNITS.items():
        if dialect == "f32_le":
            value = _swap_words_float(payload[name] / per_eng) * per_eng
        else:
            value = _swap_words_int(round(payload[name] / per_raw)) * per_raw
        finite = value == value and abs(value) < 2**53
        out[name] = max(0, round(value)) if finite else 0
    return out


def _with_time_shift(rec: SpoolRecord, seconds: int) -> SpoolRecord:
    payload = dict(rec.payload)
    payload["start_time"] += seconds
    payload["end_time"] += seconds
    station, device, stream, seq, _ = payload["key"].split("/")
    payload["key"] = f"{station}/{device}/{stream}/{seq}/{payload['start_time']}"
    return replace(rec, key=payload["key"], payload=payload)


def record_mutator(name: str, dialect: str) -> Mutate | None:
    """The per-record change a mutant makes before spooling (None: records untouched)."""
    count = 0

    def every_nth(rec: SpoolRecord) -> bool:
        nonlocal count
        if rec.kind != "transaction":
            return False
        count += 1
        return count % EVERY == 0

    if name == "drop":
        return lambda rec: [] if every_nth(rec) else [rec]
    if name == "duplicate":
        return lambda rec: [rec, _with_time_shift(rec, 1)] if every_nth(rec) else [rec]
    if name == "round-volume":
        def round_volume(rec: SpoolRecord) -> list[SpoolRecord]:
            if rec.kind != "transaction":
                return [rec]
            payload = dict(rec.payload, volume_ml=round(rec.payload["volume_ml"] / 1000) * 1000)
            return [replace(rec, payload=payload)]
        return round_volume
    if name == "word-order":
        def word_order(rec: SpoolRecord) -> list[SpoolRecord]:
            if rec.kind != "transaction":
                return [rec]
            return [replace(rec, payload=_word_order(rec.payload, dialect))]
        return word_order
    if name in ("no-spool", "always-online", None):
        return None
    raise ValueError(f"mutant {name!r}: expected one of {', '.join(MUTANTS)}")


def heartbeat_devices(name: str | None, devices: list[dict]) -> list[dict]:
    """The device entries a mutant's heartbeat carries (the reference's, untouched, else)."""
    if name != "always-online":
        return devices
    return [dict(d, online=True, failures=0, error=None) for d in devices]


def forget_spool(spool: Spool) -> int:
    """The no-spool mutant: at start-up, lose whatever a previous run left unforwarded."""
    with spool._tx() as db:
        lost = db.execute("DELETE FROM pending").rowcount
    spool._backlog = 0
    if lost:
        log.warning("mutant no-spool: %d spooled records forgotten at start-up", lost)
    return lost


def install(name: str) -> None:
    """Break every StationCollector created from now on in this process the way `name` says."""
    if name not in MUTANTS:
        raise ValueError(f"mutant {name!r}: expected one of {', '.join(MUTANTS)}")
    reference_init = StationCollector.__init__
    reference_fields = StationCollector.heartbeat_fields

    def init(self: StationCollector, endpoint: Any, *args: Any, **kwargs: Any) -> None:
        reference_init(self, endpoint, *args, **kwargs)
        self.poller.mutate = record_mutator(name, endpoint.dialect)
        if name == "no-spool":  # before run(): nothing of the old spool is sent
            forget_spool(self.spool)

    def heartbeat_fields(self: StationCollector) -> dict:
        fields = reference_fields(self)
        return dict(fields, devices=heartbeat_devices(name, fields["devices"]))

    StationCollector.__init__ = init  # type: ignore[method-assign]
    StationCollector.heartbeat_fields = heartbeat_fields  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutants.collector",
                                     description="A deliberately broken reference collector "
                                                 "(QA only; docs/sut.md).")
    parser.add_argument("--mutant", required=True, choices=MUTANTS)
    parser.add_argument("command", choices=("collector", "collectors"))
    args, rest = parser.parse_known_args(argv)
    install(args.mutant)
    log.warning("MUTANT collector (%s): for harness self-tests only", args.mutant)
    run = cli.main_collector if args.command == "collector" else cli.main_collectors
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
