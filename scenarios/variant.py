"""Copies of a scenario file with some top-level fields replaced (fuzzing, tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_scenario_variant(base: str | Path, out: str | Path, **changes: Any) -> Path:
    """Write a copy of scenario `base` with top-level fields replaced (None removes one);
    its fleet ledger path is made absolute so the copy can live anywhere."""
    base = Path(base)
    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    data["fleet"] = str((base.parent / data["fleet"]).resolve())
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out
