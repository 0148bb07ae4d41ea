"""Capacity table (容积表) of a horizontal cylindrical tank (卧式储罐) with elliptical heads.

Volume at fill height h of a horizontal cylinder of radius R and length L, closed by two
semi-ellipsoidal heads of depth a (both heads together form an ellipsoid of revolution):

    V(h) = L·[R²·acos((R−h)/R) − (R−h)·√(2Rh−h²)] + π·a·h²·(1 − h/(3R))

Lengths in mm, volumes in litres (1 L = 10⁶ mm³). A station's gauge interpolates a table
verified in 1 mm steps; `CapacityTable` is that table, built from the exact formula.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

_MM3_PER_L = 1.0e6

# Nominal size (m³) -> diameter (mm) of common Chinese underground petrol-station tanks.
NOMINAL_DIAMETERS_MM: dict[int, int] = {20: 2200, 30: 2500, 50: 2800}
HEAD_DEPTH_RATIO = 0.2  # head depth a / diameter D


def _check_geometry(diameter_mm: float, length_mm: float, head_depth_mm: float) -> None:
    if not (math.isfinite(diameter_mm) and diameter_mm > 0):
        raise ValueError(f"tank geometry: diameter_mm must be > 0, got {diameter_mm!r}")
    if not (math.isfinite(length_mm) and length_mm > 0):
        raise ValueError(f"tank geometry: length_mm must be > 0, got {length_mm!r}")
    if not (math.isfinite(head_depth_mm) and head_depth_mm >= 0):
        raise ValueError(f"tank geometry: head_depth_mm must be >= 0, got {head_depth_mm!r}")


def exact_volume_l(diameter_mm: float, length_mm: float, head_depth_mm: float,
                   level_mm: float) -> float:
    """Exact liquid volume (L) at `level_mm` above the tank bottom, both heads included."""
    _check_geometry(diameter_mm, length_mm, head_depth_mm)
    if not (0.0 <= level_mm <= diameter_mm):
        raise ValueError(
            f"exact_volume_l: level_mm must lie in [0, {diameter_mm}] (the diameter), "
            f"got {level_mm!r}"
        )
    r = diameter_mm / 2.0
    h = float(level_mm)
    d = r - h
    cos_arg = max(-1.0, min(1.0, d / r))
    segment = r * r * math.acos(cos_arg) - d * math.sqrt(max(0.0, 2.0 * r * h - h * h))
    heads = math.pi * head_depth_mm * h * h * (1.0 - h / (3.0 * r))
    return (length_mm * segment + heads) / _MM3_PER_L


def _volumes_l(diameter_mm: float, length_mm: float, head_depth_mm: float,
               levels_mm: np.ndarray) -> np.ndarray:
    """Vectorised `exact_volume_l` over levels already inside [0, D]."""
    r = diameter_mm / 2.0
    h = levels_mm.astype(np.float64)
    d = r - h
    segment = r * r * np.arccos(np.clip(d / r, -1.0, 1.0)) - d * np.sqrt(
        np.maximum(0.0, 2.0 * r * h - h * h)
    )
    heads = np.pi * head_depth_mm * h * h * (1.0 - h / (3.0 * r))
    return (length_mm * segment + heads) / _MM3_PER_L


class CapacityTable:
    """Verified capacity table in 1 mm steps: `volumes_l[i]` is the volume at level i mm."""

    def __init__(self, diameter_mm: int, length_mm: float, head_depth_mm: float) -> None:
        if isinstance(diameter_mm, bool) or int(diameter_mm) != diameter_mm:
            raise ValueError(f"CapacityTable: diameter_mm must be a whole number of mm, "
                             f"got {diameter_mm!r}")
        _check_geometry(float(diameter_mm), float(length_mm), float(head_depth_mm))
        self.diameter_mm: int = int(diameter_mm)
        self.length_mm: float = float(length_mm)
        self.head_depth_mm: float = float(head_depth_mm)
        self._levels = np.arange(self.diameter_mm + 1, dtype=np.float64)
        volumes = _volumes_l(self.diameter_mm, self.length_mm, self.head_depth_mm, self._levels)
        volumes[0] = 0.0  # exact: no rounding residue at the bottom
        volumes.flags.writeable = False  # the table is shared; a tamper must build its own copy
        self.volumes_l: np.ndarray = volumes
        self._volumes: list[float] = volumes.tolist()  # for scalar look-ups (faster than numpy)
        self.capacity_l: float = float(volumes[-1])

    @classmethod
    def for_nominal(cls, nominal_m3: int) -> CapacityTable:
        """Table of a standard 20/30/50 m³ tank; cylinder length (whole mm) solved so that the
        full volume equals the nominal volume."""
        if nominal_m3 not in NOMINAL_DIAMETERS_MM:
            raise ValueError(
                f"CapacityTable.for_nominal: nominal_m3 must be one of "
                f"{sorted(NOMINAL_DIAMETERS_MM)}, got {nominal_m3!r}"
            )
        diameter = NOMINAL_DIAMETERS_MM[nominal_m3]
        r = diameter / 2.0
        head = HEAD_DEPTH_RATIO * diameter
        target_mm3 = nominal_m3 * 1.0e9
        heads_mm3 = 4.0 / 3.0 * math.pi * head * r * r
        length = round((target_mm3 - heads_mm3) / (math.pi * r * r))
        return cls(diameter, float(length), head)

    def with_volumes(self, volumes_l: np.ndarray) -> CapacityTable:
        """A table of the same geometry but other volumes (e.g. a tampered 容积表 loaded into a
        gauge); the volumes must start at 0 and increase strictly, one per mm."""
        volumes = np.array(volumes_l, dtype=np.float64)
        if volumes.shape != (self.diameter_mm + 1,):
            raise ValueError(f"CapacityTable.with_volumes: need {self.diameter_mm + 1} volumes "
                             f"(0..{self.diameter_mm} mm), got shape {volumes.shape}")
        if not np.all(np.isfinite(volumes)) or volumes[0] != 0.0 or np.any(np.diff(volumes) <= 0):
            raise ValueError("CapacityTable.with_volumes: volumes must be finite, start at 0 "
                             "and increase strictly with level")
        table = object.__new__(CapacityTable)
        table.diameter_mm = self.diameter_mm
        table.length_mm = self.length_mm
        table.head_depth_mm = self.head_depth_mm
        table._levels = self._levels
        volumes.flags.writeable = False
        table.volumes_l = volumes
        table._volumes = volumes.tolist()
        table.capacity_l = float(volumes[-1])
        return table

    def volume_at(self, level_mm: float) -> float:
        """Volume (L) at a level, linearly interpolated, level clamped to [0, D]."""
        if level_mm != level_mm:
            raise ValueError("CapacityTable.volume_at: level_mm is NaN")
        if level_mm <= 0.0:
            return 0.0
        if level_mm >= self.diameter_mm:
            return self.capacity_l
        i = int(level_mm)
        volumes = self._volumes
        v0 = volumes[i]
        return v0 + (volumes[i + 1] - v0) * (level_mm - i)

    def level_at(self, volume_l: float) -> float:
        """Level (mm) holding `volume_l` — the inverse of `volume_at`, clamped to [0, D]."""
        if volume_l != volume_l:
            raise ValueError("CapacityTable.level_at: volume_l is NaN")
        if volume_l <= 0.0:
            return 0.0
        if volume_l >= self.capacity_l:
            return float(self.diameter_mm)
        volumes = self._volumes
        j = bisect_right(volumes, volume_l)  # volumes[j-1] <= v < volumes[j]
        v0 = volumes[j - 1]
        return j - 1 + (volume_l - v0) / (volumes[j] - v0)

    def litres_per_mm(self, level_mm: float) -> float:
        """Table slope around a level (L/mm): how much one mm of level error is worth."""
        i = min(max(int(level_mm), 0), self.diameter_mm - 1)
        return float(self.volumes_l[i + 1] - self.volumes_l[i])

    def __repr__(self) -> str:
        return (f"CapacityTable(diameter_mm={self.diameter_mm}, length_mm={self.length_mm}, "
                f"head_depth_mm={self.head_depth_mm}, capacity_l={self.capacity_l:.1f})")
