"""Magnetostrictive probe (液位探棒) and the gauge's volume computation.

The gauge measures product level, water level and temperature with noise and a finite
resolution, then derives volumes from its capacity table and the VCF of the measured
temperature (the grade's nominal density) — so gauge volumes carry realistic measurement
error. Beyond white noise, `GaugeErrors` holds what one tank's gauge gets wrong for good: its
own (imperfect) capacity table, the probe's level offset (tilt × position, zero bias) and
temperature bias, and the stratification after a drop (docs/noise-budget.md).
"""

from __future__ import annotations

import math

import numpy as np

from sim.capacity import CapacityTable
from sim.config import ProbeConfig
from sim.imperfections import (
    IDEAL,
    REALISTIC,
    STRAT_SD,
    STRAT_TAU_S,
    TankImperfections,
    batch_density,
    gauge_table,
)
from sim.records import GaugeReading, TankTruth
from sim.vcf import DENSITY_20C, vcf


def quantize(value: float, resolution: float) -> float:
    """Round to the nearest multiple of `resolution` (halves round up)."""
    if not resolution > 0:
        raise ValueError(f"quantize: resolution must be > 0, got {resolution!r}")
    steps = math.floor(value / resolution + 0.5)
    # Round away the binary residue of steps × resolution (e.g. 0.1 × 3 = 0.30000000000000004).
    return round(steps * resolution, 9)


def read_gauge(truth: TankTruth, table: CapacityTable, grade: str, probe: ProbeConfig,
               rng: np.random.Generator, level_offset_mm: float = 0.0,
               temp_offset_c: float = 0.0) -> GaugeReading:
    """One gauge reading of a tank through the gauge's capacity table `table`; the probe sees
    levels `level_offset_mm` higher and temperatures `temp_offset_c` warmer than the truth.
    Always draws three normals from `rng` (level, water, temperature) so the stream's
    consumption does not depend on the tank's state."""
    noise = rng.standard_normal(3).tolist()  # Python floats: faster scalar arithmetic
    diameter = float(table.diameter_mm)
    level = quantize(truth.level_mm + level_offset_mm + probe.level_noise_mm * noise[0],
                     probe.level_resolution_mm)
    level = min(max(level, 0.0), diameter)
    # The water float rests on the bottom until the water is deep enough to lift it.
    if truth.water_level_mm < probe.min_water_mm:
        water_level = 0.0
    else:
        water_level = quantize(truth.water_level_mm + level_offset_mm
                               + probe.water_noise_mm * noise[1], probe.water_resolution_mm)
        water_level = min(max(water_level, 0.0), level)
    temperature = quantize(truth.temperature_c + temp_offset_c + probe.temp_noise_c * noise[2],
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


class GaugeErrors:
    """What one tank's gauge gets wrong for good, and the batches delivered into the tank.

    `read` is the gauge reading the station records and devices show (white noise from the
    caller's stream); it never changes any state, so reading live values changes nothing."""

    __slots__ = ("table", "grade", "probe", "level_offset_mm", "temp_bias_c", "_batch_rng",
                 "_mode", "_strat_start", "_strat_stop", "_strat_amp")

    def __init__(self, true_table: CapacityTable, grade: str, probe: ProbeConfig,
                 imperfections: TankImperfections, batch_rng: np.random.Generator,
                 mode: str = REALISTIC) -> None:
        self.table = gauge_table(true_table, imperfections.strap)
        self.grade = grade
        self.probe = probe
        self.level_offset_mm = imperfections.level_offset_mm
        self.temp_bias_c = imperfections.probe_temp_bias_c
        self._batch_rng = batch_rng
        self._mode = mode
        self._strat_start = math.inf
        self._strat_stop = math.inf
        self._strat_amp = 0.0

    def temperature_offset_c(self, time: float) -> float:
        """How much warmer than the true mean the probe's average reads at `time`."""
        offset = self.temp_bias_c
        if time >= self._strat_start:
            if time <= self._strat_stop:
                offset += self._strat_amp
            else:
                offset += self._strat_amp * math.exp(-(time - self._strat_stop) / STRAT_TAU_S)
        return offset

    def read(self, truth: TankTruth, time: float, rng: np.random.Generator) -> GaugeReading:
        temp_offset = self.temp_bias_c
        if time >= self._strat_start:  # (temperature_offset_c inlined: the hot path)
            if time <= self._strat_stop:
                temp_offset += self._strat_amp
            else:
                temp_offset += self._strat_amp * math.exp(
                    -(time - self._strat_stop) / STRAT_TAU_S)
        return read_gauge(truth, self.table, self.grade, self.probe, rng, self.level_offset_mm,
                          temp_offset)

    def new_batch(self) -> tuple[float, float]:
        """(density at 20 °C, stratification coefficient ξ) of the next batch delivered into
        the tank; always two normals from the tank's batch stream."""
        z = self._batch_rng.standard_normal(2)
        if self._mode == IDEAL:
            return DENSITY_20C[self.grade], 0.0
        return batch_density(self.grade, float(z[0])), STRAT_SD * float(z[1])

    def stratify(self, start: float, stop: float, amplitude_c: float) -> None:
        """A drop from `start` until the product stopped at `stop` leaves the probe's average
        `amplitude_c` off the true mean, decaying after `stop` (replaces any earlier one)."""
        self._strat_start, self._strat_stop, self._strat_amp = start, stop, amplitude_c
