"""The cheat catalogue (作弊目录): one general model (sim/cheats/base.py), one module per kind,
one registry (sim/cheats/registry.py). docs/cheats.md describes every kind."""

from sim.cheats.base import CLASSES, RESOURCES, TARGETS, Cheat, CheatHost
from sim.cheats.records import (
    CheatActivation,
    CheatInstance,
    DeviceState,
    Inspection,
    OffBookDraw,
    VerificationLapse,
    VerificationRecord,
)
from sim.cheats.registry import CHEAT_KINDS, check_overlaps, make_cheat

__all__ = [
    "CHEAT_KINDS", "CLASSES", "RESOURCES", "TARGETS", "Cheat", "CheatActivation", "CheatHost",
    "CheatInstance", "DeviceState", "Inspection", "OffBookDraw", "VerificationLapse",
    "VerificationRecord",
    "check_overlaps", "make_cheat",
]
