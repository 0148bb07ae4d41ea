"""One underground tank's physical state (储罐真值).

The conserved quantity is the product's standard volume at 20 °C: temperature changes
the gross volume (and so the level) but not `volume_20c_l`. Every change of the product
or water is added to a cumulative counter, so that

    initial_20c + delivered_20c − drawn_20c − leaked_20c − evaporated_20c == volume_20c_l
    water_in_l == water_l

holds up to floating-point rounding at any time.

The product's density at 20 °C is the volume-weighted mix of the batches delivered (its
expansion coefficient follows it), so the physics' 20 °C volumes use the real density while
the gauge uses the grade's nominal one. Evaporation (storage loss by season, working loss per
litre drawn) and water ingress are the tank's own (sim/imperfections.py).
"""

from __future__ import annotations

import math

from sim.capacity import CapacityTable
from sim.config import GRADES, TankConfig
from sim.imperfections import (
    STORAGE_LOSS_PER_MONTH,
    WORKING_LOSS,
    storage_loss_share,
    storage_wave,
)
from sim.records import TankTruth
from sim.thermal import steady_fuel_temperature_c
from sim.vcf import DENSITY_20C, alpha_for_density, vcf_alpha

THERMAL_TAU_S = 3.0 * 86400.0  # fuel follows the ground temperature with a ~3-day lag
_DRAW_SLACK_L = 1e-9  # rounding tolerance when a draw empties the tank exactly


class TankEmpty(Exception):
    """A draw asked for more product than the tank holds (the pump would suck air)."""


class TankOverflow(Exception):
    """A delivery would fill the tank beyond its capacity (product would spill)."""


def _finite(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{where}: must be a finite number, got {value!r}")
    return value


class Tank:
    """Physical state of one tank; advanced explicitly by the world at each event."""

    def __init__(self, config: TankConfig, table: CapacityTable, time: float,
                 temperature_c: float, *, utc_offset_h: float = 8.0,
                 thermal_tau_s: float = THERMAL_TAU_S, density_kg_m3: float | None = None,
                 water_ingress_l_per_day: float | None = None,
                 storage_loss_per_month: float | None = None,
                 working_loss: float | None = None) -> None:
        """`density_kg_m3`: of the initial stock at 20 °C (default: the grade's nominal);
        `water_ingress_l_per_day` (default: the config's), `storage_loss_per_month` and
        `working_loss` (default: the grade's, sim/imperfections.py)."""
        if config.grade not in GRADES:
            raise ValueError(f"tank {config.tank}: grade {config.grade!r} is not one of {GRADES}")
        if not 0.0 <= config.initial_fill <= 1.0:
            raise ValueError(f"tank {config.tank}: initial_fill must be in [0, 1], "
                             f"got {config.initial_fill!r}")
        if config.leak_l_per_h < 0 or config.water_ingress_l_per_day < 0:
            raise ValueError(f"tank {config.tank}: leak_l_per_h and water_ingress_l_per_day "
                             f"must be >= 0")
        if not thermal_tau_s > 0:
            raise ValueError(f"tank {config.tank}: thermal_tau_s must be > 0")
        self.config = config
        self.table = table
        self.grade: str = config.grade
        self.time: float = _finite(float(time), f"tank {config.tank} start time")
        self.temperature_c: float = _finite(float(temperature_c),
                                            f"tank {config.tank} start temperature")
        self.utc_offset_h = utc_offset_h
        self.thermal_tau_s = thermal_tau_s
        self.density_kg_m3: float = _finite(float(
            DENSITY_20C[self.grade] if density_kg_m3 is None else density_kg_m3),
            f"tank {config.tank} density")
        self.alpha: float = alpha_for_density(self.density_kg_m3)
        self.water_ingress_l_per_day: float = float(
            config.water_ingress_l_per_day if water_ingress_l_per_day is None
            else water_ingress_l_per_day)
        self.storage_loss_per_month: float = float(
            STORAGE_LOSS_PER_MONTH[self.grade] if storage_loss_per_month is None
            else storage_loss_per_month)
        self.working_loss: float = float(WORKING_LOSS[self.grade] if working_loss is None
                                         else working_loss)
        if self.water_ingress_l_per_day < 0 or self.storage_loss_per_month < 0 \
                or not 0 <= self.working_loss < 0.01:
            raise ValueError(f"tank {config.tank}: water ingress and losses must be >= 0 "
                             f"(working loss < 1 %)")
        self.volume_20c_l: float = config.initial_fill * table.capacity_l * vcf_alpha(
            self.alpha, self.temperature_c)
        # Values at `self.time` that the next advance needs (each is a function of the time
        # only, so caching them changes no result): the fuel's steady temperature and the
        # seasonal storage-loss wave.
        self._steady_c = steady_fuel_temperature_c(self.time, thermal_tau_s, utc_offset_h)
        self._wave = storage_wave(self.time, utc_offset_h)
        self.water_l: float = 0.0
        self.initial_20c_l: float = self.volume_20c_l
        # Cumulative flows since construction.
        self.delivered_20c_l = 0.0
        self.drawn_20c_l = 0.0
        self.leaked_20c_l = 0.0
        self.evaporated_20c_l = 0.0
        self.water_in_l = 0.0

    # -- derived state -------------------------------------------------------------------

    @property
    def capacity_l(self) -> float:
        return self.table.capacity_l

    @property
    def gross_l(self) -> float:
        """Product volume at its current temperature."""
        return self.volume_20c_l / vcf_alpha(self.alpha, self.temperature_c)

    @property
    def total_l(self) -> float:
        """Liquid in the tank: product plus water (the water lies at the bottom)."""
        return self.gross_l + self.water_l

    @property
    def level_mm(self) -> float:
        return self.table.level_at(self.total_l)

    @property
    def water_level_mm(self) -> float:
        return self.table.level_at(self.water_l)

    @property
    def ullage_l(self) -> float:
        """Free space above the liquid (空容量)."""
        return self.table.capacity_l - self.total_l

    # -- physics -------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Advance from `self.time` to `t`: the fuel temperature follows the ground (solved
        exactly, so the result does not depend on how often the world calls this), then
        evaporation (storage loss, seasonal), leak and water ingress over the interval."""
        dt = t - self.time
        if dt < 0:
            raise ValueError(f"tank {self.config.tank}: cannot advance backwards "
                             f"from {self.time!r} to {t!r}")
        if dt == 0:
            return
        # = thermal.fuel_temperature_c(T, self.time, t, τ), with the steady value at self.time
        steady = steady_fuel_temperature_c(t, self.thermal_tau_s, self.utc_offset_h)
        self.temperature_c = steady + (self.temperature_c - self._steady_c) * math.exp(
            -dt / self.thermal_tau_s)
        self._steady_c = steady

        if self.storage_loss_per_month > 0:
            wave = storage_wave(t, self.utc_offset_h)
            share = storage_loss_share(self.storage_loss_per_month, dt, self._wave, wave)
            self._wave = wave
            evaporated = self.volume_20c_l * -math.expm1(-share)
            self.volume_20c_l -= evaporated
            self.evaporated_20c_l += evaporated

        if self.config.leak_l_per_h > 0:
            leak_gross = self.config.leak_l_per_h * dt / 3600.0
            leaked = min(leak_gross * vcf_alpha(self.alpha, self.temperature_c),
                         self.volume_20c_l)
            self.volume_20c_l -= leaked
            self.leaked_20c_l += leaked

        if self.water_ingress_l_per_day > 0:
            # Ground water seeps in only while there is room for it.
            water = min(self.water_ingress_l_per_day * dt / 86400.0,
                        max(0.0, self.ullage_l))
            self.water_l += water
            self.water_in_l += water
        self.time = t

    def draw(self, gross_l: float) -> float:
        """Remove `gross_l` litres of product at the current temperature (a nozzle
        delivering); returns the 20 °C volume removed. The air that replaces it takes up
        `working_loss` of it as vapour (counted as evaporation)."""
        if not (math.isfinite(gross_l) and gross_l >= 0):
            raise ValueError(f"tank {self.config.tank}: draw of {gross_l!r} L; "
                             f"must be a finite volume >= 0")
        removed = gross_l * vcf_alpha(self.alpha, self.temperature_c)
        if removed > self.volume_20c_l:
            if removed - self.volume_20c_l > _DRAW_SLACK_L:
                raise TankEmpty(
                    f"tank {self.config.tank} ({self.grade}): draw of {gross_l:.3f} L but only "
                    f"{self.gross_l:.3f} L of product left"
                )
            removed = self.volume_20c_l
        self.volume_20c_l -= removed
        self.drawn_20c_l += removed
        if self.working_loss > 0:
            vapour = min(removed * self.working_loss, self.volume_20c_l)
            self.volume_20c_l -= vapour
            self.evaporated_20c_l += vapour
        return removed

    def deliver(self, volume_20c_l: float, temp_c: float,
                density_kg_m3: float | None = None) -> None:
        """Add product (a drop, 卸油) at `temp_c` of density `density_kg_m3` at 20 °C (default:
        the tank's); temperature and density become the mix weighted by 20 °C volume."""
        if not (math.isfinite(volume_20c_l) and volume_20c_l >= 0):
            raise ValueError(f"tank {self.config.tank}: delivery of {volume_20c_l!r} L; "
                             f"must be a finite volume >= 0")
        _finite(temp_c, f"tank {self.config.tank} delivery temperature")
        if volume_20c_l == 0:
            return
        density = self.density_kg_m3 if density_kg_m3 is None else _finite(
            float(density_kg_m3), f"tank {self.config.tank} delivery density")
        new_volume = self.volume_20c_l + volume_20c_l
        new_temp = (self.volume_20c_l * self.temperature_c + volume_20c_l * temp_c) / new_volume
        new_density = (self.volume_20c_l * self.density_kg_m3 + volume_20c_l * density) \
            / new_volume
        new_alpha = alpha_for_density(new_density)
        new_total = new_volume / vcf_alpha(new_alpha, new_temp) + self.water_l
        if new_total > self.table.capacity_l:
            raise TankOverflow(
                f"tank {self.config.tank} ({self.grade}): delivery of {volume_20c_l:.1f} L "
                f"(20 °C) would hold {new_total:.1f} L in a {self.table.capacity_l:.1f} L tank"
            )
        self.volume_20c_l = new_volume
        self.temperature_c = new_temp
        self.density_kg_m3 = new_density
        self.alpha = new_alpha
        self.delivered_20c_l += volume_20c_l

    def truth(self) -> TankTruth:
        gross = self.gross_l
        return TankTruth(
            level_mm=self.table.level_at(gross + self.water_l),
            water_level_mm=self.table.level_at(self.water_l),
            temperature_c=self.temperature_c,
            gross_l=gross,
            volume_20c_l=self.volume_20c_l,
            water_l=self.water_l,
        )

    def __repr__(self) -> str:
        return (f"Tank({self.config.tank}, grade={self.grade!r}, t={self.time}, "
                f"volume_20c_l={self.volume_20c_l:.3f}, T={self.temperature_c:.2f} °C, "
                f"water_l={self.water_l:.3f})")
