"""Honest imperfections (诚实误差): why an honest station's books and gauge never agree exactly.

Every figure here is sourced (or marked as an assumption) in docs/noise-budget.md. Parameters are
drawn per tank, probe and nozzle from the station's imperfection stream, always the same number
of draws per item in a fixed order, so one item's draws never depend on another item's values.

- capacity table (容积表): the gauge converts level to volume with its own verified table, whose
  litres-per-mm carry a smooth relative error ε(h) = e0 + e1·x + e2·(3x²−1)/2, x = 2h/D − 1
  (the physics keeps the true geometry);
- tank tilt × probe position along the axis, plus the probe's zero (level) bias, give the
  probe a constant level offset; the probe's temperature has a constant bias;
- after a drop, the probe's averaged temperature misses the true mean (stratification) by
  ξ·ΔT·4s(1−s), decaying with time constant `STRAT_TAU_S` (ξ drawn per drop, ΔT delivered −
  tank temperature, s the delivered share);
- each delivered batch has its own density inside the grade's band; the tank mixes by volume;
- evaporation by grade and season (GB 11085 storage loss, AP-42 working loss), none for diesel;
- water ingress: a small share of tanks gets a small one;
- meters: per-fill repeatability, an error curve over flow rate and small volumes, and a slow
  drift since the nozzle's verification (检定) some time in the 6 months before the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.capacity import CapacityTable
from sim.meter import MPE
from sim.vcf import DENSITY_20C, DENSITY_BAND

DAY_S = 86400.0
MONTH_S = 30.0 * DAY_S

# Imperfection modes (scenario `imperfections`): realistic draws everything below; ideal keeps
# the world as clean as before (exact table, no offsets, nominal density, constant meter error).
REALISTIC, IDEAL = "realistic", "ideal"
MODES = (REALISTIC, IDEAL)

# 1. Capacity-table error: sd of the Legendre coefficients of ε(x); |ε| capped at STRAP_LIMIT.
STRAP_SD = (0.0015, 0.0010, 0.0005)
STRAP_LIMIT = 0.003
# 2. Tilt (slope along the axis, m/m), probe riser position (share of the cylinder length from
#    the table's reference point at the middle), probe zero bias and temperature bias.
TILT_SD = 0.002
TILT_LIMIT = 0.005
PROBE_POSITION_SPAN = 0.4
PROBE_LEVEL_BIAS_SD_MM = 0.5
PROBE_LEVEL_BIAS_LIMIT_MM = 1.0
PROBE_TEMP_BIAS_SD_C = 0.2
PROBE_TEMP_BIAS_LIMIT_C = 0.5
# 3. Stratification after a drop: sd of ξ (share of the temperature contrast the probe's
#    average misses when half the tank is new product) and the decay time constant.
STRAT_SD = 0.08
STRAT_TAU_S = 4.0 * 3600.0
# 4. Batch density at 20 °C (kg/m³): mean and sd per grade, clipped to the grade's band.
BATCH_DENSITY_MEAN: dict[str, float] = {"92": 745.0, "95": 750.0, "0": 835.0}
BATCH_DENSITY_SD: dict[str, float] = {"92": 6.0, "95": 6.0, "0": 4.0}
# 7. Evaporation: storage loss (share of the stock per month, yearly mean; the warm half of
#    the year loses STORAGE_SEASON_RATIO times the cold half) and working loss (share of each
#    litre drawn: vapour taken up by the air that replaces it).
STORAGE_LOSS_PER_MONTH: dict[str, float] = {"92": 1.0e-4, "95": 1.0e-4, "0": 0.0}
STORAGE_SEASON_RATIO = 2.0
STORAGE_WARMEST_DAY = 197.0  # days after 1 January (mid-July, as the air, sim/deliveries.py)
WORKING_LOSS: dict[str, float] = {"92": 2.0e-4, "95": 2.0e-4, "0": 0.0}
# 8. Water ingress (arid county): share of tanks with some, and its range (log-uniform, L/day).
WATER_INGRESS_SHARE = 0.05
WATER_INGRESS_L_PER_DAY = (0.2, 2.0)

# 6. Meters (JJG 443: MPE ±0.30 % (sim.meter.MPE), repeatability ≤ 0.10 %, minimum measured
#    quantity sim.meter.MIN_MEASURED_L). Calibration error + drift stay inside ±0.25 %, the
#    flow term inside ±0.03 %, the small-volume term inside ±0.02 % from 20 L (±0.2 % at
#    2 L): the systematic error stays inside the MPE (±0.5 % at the minimum quantity).
VERIFY_WINDOW_S = 182.5 * DAY_S  # verified some time in the 6 months before the start
DRIFT_PER_6_MONTHS = (-0.0005, 0.0005)  # mean and sd of the drift over 6 months (wear: −)
METER_SYSTEMATIC_LIMIT = MPE - 0.0005  # |calibration error + drift| stays inside, until the end
REPEATABILITY_RANGE = (0.0001, 0.0003)  # per-fill sd (range of 3 fills ≤ 0.10 % at ~95 %)
FLOW_REF_LPM = 40.0  # flow of the calibration (test) point
FLOW_SLOPE_SD = 0.0002  # error per unit of (flow / reference − 1)
FLOW_SLOPE_LIMIT = 0.00024  # the flow term stays within ±0.03 % up to 90 L/min
SMALL_VOLUME_SD = 0.001  # extra error at the minimum measured quantity, ∝ 1 / volume
SMALL_VOLUME_LIMIT = 0.002  # with the systematic part: within ±0.5 % at 2 L


def _clip(value: float, limit: float) -> float:
    return min(max(value, -limit), limit)


def strap_error(coefficients: tuple[float, float, float], x: np.ndarray) -> np.ndarray:
    """Relative error ε of the gauge table's litres-per-mm at x = 2h/D − 1."""
    e0, e1, e2 = coefficients
    return e0 + e1 * x + e2 * (1.5 * x * x - 0.5)


def strap_max(coefficients: tuple[float, float, float]) -> float:
    """max |ε(x)| over x in [−1, 1] (at an end or at the parabola's vertex)."""
    e0, e1, e2 = coefficients
    xs = [-1.0, 1.0]
    if e2 != 0.0 and abs(e1 / (3.0 * e2)) < 1.0:
        xs.append(-e1 / (3.0 * e2))
    return float(np.max(np.abs(strap_error(coefficients, np.array(xs)))))


@dataclass(frozen=True, slots=True)
class TankImperfections:
    """Drawn parameters of one tank, its probe and its initial stock."""

    strap: tuple[float, float, float]  # e0, e1, e2 of ε(x)
    tilt: float  # slope along the axis (m/m; + = the probe end is lower)
    probe_position_mm: float  # probe riser's distance from the table's reference point
    probe_level_bias_mm: float
    probe_temp_bias_c: float
    initial_density_kg_m3: float
    water_ingress_l_per_day: float  # drawn (0 for most tanks)
    storage_loss_per_month: float
    working_loss: float

    @property
    def level_offset_mm(self) -> float:
        """What the probe adds to the level at the table's reference point."""
        return self.tilt * self.probe_position_mm + self.probe_level_bias_mm


def draw_tank(rng: np.random.Generator, grade: str, table: CapacityTable,
              mode: str = REALISTIC) -> TankImperfections:
    """Parameters of one tank (7 normals, then 3 uniforms, whatever the mode)."""
    z = rng.standard_normal(7)
    u = rng.random(3)
    storage = STORAGE_LOSS_PER_MONTH[grade]
    working = WORKING_LOSS[grade]
    if mode == IDEAL:
        return TankImperfections((0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, DENSITY_20C[grade], 0.0,
                                 storage, working)
    strap = tuple(float(sd * zi) for sd, zi in zip(STRAP_SD, z[:3], strict=True))
    worst = strap_max(strap)  # type: ignore[arg-type]
    if worst > STRAP_LIMIT:
        strap = tuple(c * STRAP_LIMIT / worst for c in strap)
    water = 0.0
    if u[1] < WATER_INGRESS_SHARE:
        lo, hi = WATER_INGRESS_L_PER_DAY
        water = float(lo * (hi / lo) ** u[2])
    return TankImperfections(
        strap=strap,  # type: ignore[arg-type]
        tilt=_clip(TILT_SD * float(z[3]), TILT_LIMIT),
        probe_position_mm=PROBE_POSITION_SPAN * (2.0 * float(u[0]) - 1.0) * table.length_mm,
        probe_level_bias_mm=_clip(PROBE_LEVEL_BIAS_SD_MM * float(z[4]),
                                  PROBE_LEVEL_BIAS_LIMIT_MM),
        probe_temp_bias_c=_clip(PROBE_TEMP_BIAS_SD_C * float(z[5]), PROBE_TEMP_BIAS_LIMIT_C),
        initial_density_kg_m3=batch_density(grade, float(z[6])),
        water_ingress_l_per_day=water,
        storage_loss_per_month=storage,
        working_loss=working,
    )


def batch_density(grade: str, z: float) -> float:
    """Density at 20 °C of a batch, from a standard normal `z`, clipped to the grade's band."""
    lo, hi = DENSITY_BAND[grade]
    return min(max(BATCH_DENSITY_MEAN[grade] + BATCH_DENSITY_SD[grade] * z, lo), hi)


def gauge_table(true_table: CapacityTable,
                strap: tuple[float, float, float]) -> CapacityTable:
    """The gauge's capacity table: each mm's litres off by ε at that height."""
    if strap == (0.0, 0.0, 0.0):
        return true_table
    increments = np.diff(true_table.volumes_l)
    mid = (np.arange(true_table.diameter_mm, dtype=np.float64) + 0.5) / true_table.diameter_mm
    eps = strap_error(strap, 2.0 * mid - 1.0)
    volumes = np.concatenate(([0.0], np.cumsum(increments * (1.0 + eps))))
    return true_table.with_volumes(volumes)


_YEAR_S = 365.2425 * DAY_S
_OMEGA = 2.0 * math.pi / _YEAR_S
_AMPLITUDE = math.pi / 2.0 * (STORAGE_SEASON_RATIO - 1.0) / (STORAGE_SEASON_RATIO + 1.0)


def storage_wave(t: float, utc_offset_h: float = 8.0) -> float:
    """sin(ω·(t − warmest day)): the seasonal wave of the storage loss at epoch s `t`."""
    return math.sin(_OMEGA * (t + utc_offset_h * 3600.0 - STORAGE_WARMEST_DAY * DAY_S))


def storage_loss_share(rate_per_month: float, dt: float, wave0: float, wave1: float) -> float:
    """Share of the stock lost over an interval of `dt` seconds whose ends have the storage
    waves `wave0`, `wave1`: ∫ rate·(1 + A·cos ω(t − t_warm)) dt, exact."""
    return rate_per_month / MONTH_S * (dt + _AMPLITUDE * (wave1 - wave0) / _OMEGA)


def storage_loss_integral(rate_per_month: float, t0: float, t1: float,
                          utc_offset_h: float = 8.0) -> float:
    """∫ of the seasonal storage-loss rate over [t0, t1] (a share of the stock): the monthly
    mean rate modulated by a yearly cosine peaking at `STORAGE_WARMEST_DAY`, whose warm half
    loses `STORAGE_SEASON_RATIO` times the cold half. Exact, so it does not depend on steps."""
    if rate_per_month == 0.0:
        return 0.0
    return storage_loss_share(rate_per_month, t1 - t0, storage_wave(t0, utc_offset_h),
                              storage_wave(t1, utc_offset_h))


@dataclass(frozen=True, slots=True)
class MeterImperfections:
    """Drawn parameters of one nozzle's meter beyond its calibration error."""

    verified_at: float  # epoch s of the last verification (检定)
    drift_per_day: float  # change of the relative error per day since then
    repeatability: float  # per-fill sd of the relative error
    flow_ref_lpm: float
    flow_slope: float  # error per unit of (flow / flow_ref − 1)
    small_volume: float  # extra error at the minimum measured quantity, ∝ 1 / volume


def draw_meter(rng: np.random.Generator, start: float, end: float, error: float,
               mode: str = REALISTIC) -> MeterImperfections:
    """Parameters of one meter (3 normals, then 2 uniforms, whatever the mode); `error` is its
    calibration error as left at verification. The drift is capped so that the systematic
    error stays inside `METER_SYSTEMATIC_LIMIT` until `end`."""
    z = rng.standard_normal(3)
    u = rng.random(2)
    verified_at = start - float(u[0]) * VERIFY_WINDOW_S
    if mode == IDEAL:
        return MeterImperfections(verified_at, 0.0, 0.0, FLOW_REF_LPM, 0.0, 0.0)
    mean, sd = DRIFT_PER_6_MONTHS
    drift = (mean + sd * float(z[0])) / (VERIFY_WINDOW_S / DAY_S)
    age_end = (end - verified_at) / DAY_S
    lo = (-METER_SYSTEMATIC_LIMIT - error) / age_end
    hi = (METER_SYSTEMATIC_LIMIT - error) / age_end
    drift = min(max(drift, lo), hi)
    lo_r, hi_r = REPEATABILITY_RANGE
    return MeterImperfections(
        verified_at=verified_at,
        drift_per_day=drift,
        repeatability=lo_r + (hi_r - lo_r) * float(u[1]),
        flow_ref_lpm=FLOW_REF_LPM,
        flow_slope=_clip(FLOW_SLOPE_SD * float(z[1]), FLOW_SLOPE_LIMIT),
        small_volume=_clip(SMALL_VOLUME_SD * float(z[2]), SMALL_VOLUME_LIMIT),
    )


def stratification_gain(share: float) -> float:
    """How strongly a drop that makes up `share` of the tank stratifies it: 4s(1−s)."""
    s = min(max(share, 0.0), 1.0)
    return 4.0 * s * (1.0 - s)
