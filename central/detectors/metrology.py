"""Metrology paperwork (计量器具强制检定, 三方签字, 问题倒查追溯) → `verification_expired`,
`record_unsigned`, `seal_mismatch`.

The findings of the metrology audit (central/metrology.py) on the station's verification
and maintenance records known up to `data.through`: a dispenser whose verification ran out
with no renewal (as_of = the end of its validity), a record that lacks one of the three
signatures (as_of = its instant), a record whose seal found is not the one the device's
previous record left (as_of = its instant). Each is decided from records performed by its
as_of, so the detector is causal. One alert per finding; target the device (and nozzle when
the record names one). Changes no signed record covers are the identity detector's.

Off with `Settings.metrology` False (`forecourt platform --no-metrology`): records are still
stored and served, never audited.
"""

from __future__ import annotations

from typing import ClassVar

from central.detectors.base import AlertProposal, Context
from central.detectors.data import StationData
from central.metrology import KINDS, SEVERITY, TITLES, findings


class MetrologyDetector:
    name: ClassVar[str] = "metrology"
    kinds: ClassVar[tuple[str, ...]] = KINDS

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        if not ctx.settings.metrology:
            return []
        return [AlertProposal(f.kind, SEVERITY[f.kind], f.time, f"{f.device}: {TITLES[f.kind]}",
                              f.detail, f.evidence, f.key, device=f.device,
                              nozzle=f.nozzle or None)
                for f in findings(data.records, data.through, ctx.zone)]
