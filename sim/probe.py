"""Magnetostrictive probe (液位探棒) and the gauge's volume computation.

The gauge measures product level, water level and temperature with noise and a finite
resolution, then derives volumes from its capacity table and the VCF of the measured
temperature — so gauge volumes carry realistic measurement error.
"""

from __future__ import annotations

import math

import numpy as np

from sim.capacity import CapacityTable
from sim.config import ProbeConfig
from sim.records import GaugeReading, TankTruth
from sim.vcf import vcf


def quantize(value: float, resolution: float) -> float:
    """Round to the nearest multiple of `resolution` (halves round up)."""
    if not resolution > 0:
        raise ValueError(f"quantize: resolution must be > 0, got {resolution!r}")
    steps = math.floor(value / resolution + 0.5)
    # Round away the binary residue of steps × resolution (e.g. 0.1 × 3 = 0.30000000000000004).
    return round(steps * resolution, 9)


def read_gauge(truth: TankTruth, table: CapacityTable, grade: str, probe: ProbeConfig,
               rng: np.random.Generator) -> GaugeReading:
    """One gauge reading of a tank. Always draws three normals from `rng` (level, water,
    temperature) so the stream's consumption does not depend on the tank's state."""
    noise = rng.standard_normal(3)
    diameter = float(table.diameter_mm)
    level = quantize(truth.level_mm + probe.level_noise_mm * noise[0], probe.level_resolution_mm)
    level = min(max(level, 0.0), diameter)
    # The water float rests on the bottom until the water is deep enough to lift it.
    if truth.water_level_mm < probe.min_water_mm:
        water_level = 0.0
    else:
        water_level = quantize(truth.water_level_mm + probe.water_noise_mm * noise[1],
                               probe.water_resolution_mm)
        water_level = min(max(water_level, 0.0), level)
    temperature = quantize(truth.temperature_c + probe.temp_noise_c * noise[2],
                           probe.temp_resolution_c)
    total_l = table.volume_at(level)
    water_l = table.volume_at(water_level)
    gross_l = total_l - water_l
    return GaugeReading(
        level_mm=level,
        water_level_mm=water_level,
        temperature_c=temperature,
        gross_l=gross_l,
        volume_20c_l=gross_l * vcf(grade, temperature),
        ullage_l=table.capacity_l - total_l,
        water_l=water_l,
    )
