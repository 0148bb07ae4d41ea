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
  metrology audit are untouched) — CRD-1 must fail.
"""

from __future__ import annotations

from typing import Any

from central.detectors.base import Settings

JUMPY_LIMIT_SCALE = 0.05
_OPTIONS: dict[str, tuple[str, ...]] = {
    "blind": ("--no-detect",),
    "jumpy": ("--limit-scale", repr(JUMPY_LIMIT_SCALE)),
    "no-tax": ("--no-tax",),
    "no-metrology": ("--no-metrology",),
    "flat-credit": ("--flat-credit",),
}
MUTANTS = tuple(_OPTIONS)


def platform_args(mutant: str | None) -> tuple[str, ...]:
    """The reference platform's command-line options that make `mutant` (() for None)."""
    if mutant is None:
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
