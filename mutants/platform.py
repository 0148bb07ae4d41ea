"""Broken reference platforms: the reference platform started with options that break its
cheat warning (docs/sut.md).

- `blind`: detection off (`--no-detect`); detection progress still advances, so a harness
  does not wait for ever — every ALM-<class> with a cheat in the run must fail;
- `jumpy`: every statistical limit 20 × too tight (`--limit-scale 0.05`) — ALM-FP must fail;
- `no-tax`: tax declarations stored but never compared with the sales (`--no-tax`: GET
  /api/v1/tax-checks serves nothing, no `tax_under_declaration` alert) — TAX-1 must fail;
- `no-metrology`: verification records stored but never audited (`--no-metrology`: GET
  /api/v1/metrology serves nothing, no `verification_expired`, `record_unsigned` or
  `seal_mismatch` alert; the identity detector still flags unsigned changes, so ALM-* are
  unchanged) — MET-1 must fail;
- `flat-credit`: every station graded A with a full score whatever its findings
  (`--flat-credit`: GET /api/v1/credit ignores the grading rule; alerts, tax checks and the
  metrology audit are untouched) — CRD-1 must fail;
- `trusting`: messages are admitted without checking their signature — a missing `kid`
  or `sig`, an unknown key id and a wrong HMAC all pass (run as
  `python -m mutants.platform --mutant trusting <platform args>`, which patches the
  admission at its seams; the reference platform has no such option) — SEC-1 must fail.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from central import checks
from central.detectors.base import Settings
from central.keys import KeyRing

JUMPY_LIMIT_SCALE = 0.05
_OPTIONS: dict[str, tuple[str, ...]] = {
    "blind": ("--no-detect",),
    "jumpy": ("--limit-scale", repr(JUMPY_LIMIT_SCALE)),
    "no-tax": ("--no-tax",),
    "no-metrology": ("--no-metrology",),
    "flat-credit": ("--flat-credit",),
}
# mutants made by patching the platform's code at start-up rather than by its options
_PATCHED = ("trusting",)
MUTANTS = (*_OPTIONS, *_PATCHED)


def platform_args(mutant: str | None) -> tuple[str, ...]:
    """The reference platform's command-line options that make `mutant` (() for None)."""
    if mutant is None or mutant in _PATCHED:
        return ()
    try:
        return _OPTIONS[mutant]
    except KeyError:
        raise ValueError(f"platform mutant {mutant!r}: expected one of {list(MUTANTS)}") from None


def settings(mutant: str | None, **kw: Any) -> Settings:
    """The detection settings of `mutant`, for in-process use (direct campaign worlds)."""
    platform_args(mutant)  # validates the name
    return Settings(limit_scale=JUMPY_LIMIT_SCALE if mutant == "jumpy" else 1.0,
                    detect=mutant != "blind", tax=mutant != "no-tax",
                    metrology=mutant != "no-metrology", **kw)


def platform_command(mutant: str | None) -> tuple[str, ...]:
    """How to start the platform of `mutant` after the Python interpreter: () for the
    reference command (`-m acceptance.cli platform`), else this module's wrapper."""
    platform_args(mutant)  # validates the name
    return ("-m", "mutants.platform", "--mutant", mutant) if mutant in _PATCHED else ()


def _trust_everything() -> None:
    """`trusting`: fill in a missing kid/sig so the schema passes, any key id resolves to a
    key, and any HMAC verifies."""
    parse = checks.parse_json
    key = KeyRing.key

    def parse_json(raw: bytes) -> Any:
        payload = parse(raw)
        # uplink messages only (every one has a msg_seq): the API's POST bodies, parsed by
        # the same function, stay as the client sent them
        if isinstance(payload, dict) and "msg_seq" in payload:
            payload.setdefault("kid", "trusted")
            payload.setdefault("sig", "0" * 64)
        return payload

    def any_key(self: KeyRing, station_id: str, kid: str) -> bytes | None:
        return key(self, station_id, kid) or b"trusted"

    checks.parse_json = parse_json  # type: ignore[assignment]
    KeyRing.key = any_key  # type: ignore[method-assign]
    checks.signing.verify = lambda *_a, **_k: True  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutants.platform",
                                     description="A deliberately broken reference platform")
    parser.add_argument("--mutant", required=True, choices=_PATCHED)
    args, rest = parser.parse_known_args(argv)
    if args.mutant == "trusting":
        _trust_everything()
    from central.cli import main as platform_main

    return platform_main(rest)


if __name__ == "__main__":
    sys.exit(main())
