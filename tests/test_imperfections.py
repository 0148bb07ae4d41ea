"""Honest imperfections (sim/imperfections.py): each within its sourced range, deterministic,
wired into the gauge, the tank physics, the meters and the ground truth (docs/noise-budget.md)."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sim import imperfections as imp
from sim.capacity import CapacityTable
from sim.config import (
    DispenserConfig,
    PriceChange,
    ProbeConfig,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.deliveries import tanker_temperature_c
from sim.meter import MPE, Meter
from sim.probe import GaugeErrors, read_gauge
from sim.records import TankTruth
from sim.tank import Tank
from sim.thermal import ground_temperature_c
from sim.vcf import DENSITY_20C, DENSITY_BAND, alpha_for_density, vcf, vcf_alpha
from sim.world import World

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 4, 1, tzinfo=TZ).timestamp()
DAY = 86400.0
TABLES = {n: CapacityTable.for_nominal(n) for n in (20, 30, 50)}
QUIET = ProbeConfig(level_noise_mm=0.0, water_noise_mm=0.0, temp_noise_c=0.0)


def draws(n: int = 2000, grade: str = "92", nominal: int = 30, seed: int = 1
          ) -> list[imp.TankImperfections]:
    rng = np.random.default_rng(seed)
    return [imp.draw_tank(rng, grade, TABLES[nominal]) for _ in range(n)]


# --- 1. capacity table ---------------------------------------------------------------------

def test_strapping_error_stays_within_0_3_percent_and_is_typically_0_1_to_0_3() -> None:
    x = np.linspace(-1.0, 1.0, 401)
    worst = np.array([np.max(np.abs(imp.strap_error(t.strap, x))) for t in draws()])
    assert worst.max() <= imp.STRAP_LIMIT + 1e-12
    assert 0.001 <= np.median(worst) <= 0.003  # "0.1–0.3 % varying with level"
    assert np.mean(worst > 0.0005) > 0.95


def test_gauge_table_litres_per_mm_carry_epsilon_and_stay_monotonic() -> None:
    table = TABLES[30]
    strap = (0.002, -0.001, 0.0005)
    gauge = imp.gauge_table(table, strap)
    assert gauge is not table and np.all(np.diff(gauge.volumes_l) > 0)
    for level in (100, 800, 1250, 2000, 2450):
        x = 2.0 * (level + 0.5) / table.diameter_mm - 1.0
        eps = imp.strap_error(strap, np.array([x]))[0]
        assert gauge.litres_per_mm(level) == pytest.approx(table.litres_per_mm(level) * (1 + eps),
                                                          rel=1e-12)
    # the true table is untouched; no error gives the very same table
    assert imp.gauge_table(table, (0.0, 0.0, 0.0)) is table


# --- 2. tilt, probe offset and biases ------------------------------------------------------

def test_probe_offsets_and_biases_within_their_class() -> None:
    tanks = draws()
    bias = np.array([t.probe_level_bias_mm for t in tanks])
    temp = np.array([t.probe_temp_bias_c for t in tanks])
    tilt = np.array([t.tilt for t in tanks])
    pos = np.array([t.probe_position_mm for t in tanks])
    assert np.abs(bias).max() <= 1.0 and 0.3 < bias.std() < 0.6  # ±1 mm class
    assert np.abs(temp).max() <= 0.5 and 0.1 < temp.std() < 0.3
    assert np.abs(tilt).max() <= imp.TILT_LIMIT
    assert np.abs(pos).max() <= imp.PROBE_POSITION_SPAN * TABLES[30].length_mm
    offset = np.array([t.level_offset_mm for t in tanks])
    assert offset == pytest.approx(tilt * pos + bias)
    reach = imp.TILT_LIMIT * imp.PROBE_POSITION_SPAN * TABLES[30].length_mm + 1.0
    assert np.abs(offset).max() <= reach and np.percentile(np.abs(offset), 50) < 3.0


def test_read_gauge_sees_the_level_offset_and_temperature_bias_exactly() -> None:
    table = TABLES[30]
    total = table.volume_at(1500.0)
    truth = TankTruth(1500.0, 0.0, 12.0, total, total * vcf("92", 12.0), 0.0)
    plain = read_gauge(truth, table, "92", QUIET, np.random.default_rng(0))
    off = read_gauge(truth, table, "92", QUIET, np.random.default_rng(0), 2.3, 0.4)
    assert off.level_mm == pytest.approx(plain.level_mm + 2.3)
    assert off.temperature_c == pytest.approx(plain.temperature_c + 0.4)
    assert off.gross_l == pytest.approx(table.volume_at(1502.3))


# --- 3. stratification after a drop --------------------------------------------------------

def test_stratification_holds_until_the_product_stops_then_decays() -> None:
    params = draws(1)[0]
    errors = GaugeErrors(TABLES[30], "92", QUIET, params, np.random.default_rng(5))
    bias = params.probe_temp_bias_c
    assert errors.temperature_offset_c(START) == bias
    errors.stratify(START, START + 1800.0, 0.6)
    assert errors.temperature_offset_c(START - 1.0) == bias
    assert errors.temperature_offset_c(START + 900.0) == pytest.approx(bias + 0.6)
    tau = imp.STRAT_TAU_S
    assert errors.temperature_offset_c(START + 1800.0 + tau) == pytest.approx(bias + 0.6 / math.e)
    assert errors.temperature_offset_c(START + 1800.0 + 12 * 3600) - bias < 0.6 * 0.05
    # reading changes nothing: the same noise stream gives the same reading twice
    total = TABLES[30].volume_at(1200.0)
    truth = TankTruth(1200.0, 0.0, 15.0, total, total * vcf("92", 15.0), 0.0)
    first = errors.read(truth, START + 3600.0, np.random.default_rng(9))
    assert errors.read(truth, START + 3600.0, np.random.default_rng(9)) == first
    assert imp.stratification_gain(0.5) == 1.0
    assert imp.stratification_gain(0.0) == imp.stratification_gain(1.0) == 0.0


def test_batches_draw_density_in_band_and_stratification_coefficients() -> None:
    errors = GaugeErrors(TABLES[30], "92", QUIET, draws(1)[0], np.random.default_rng(3))
    batches = np.array([errors.new_batch() for _ in range(3000)])
    lo, hi = DENSITY_BAND["92"]
    assert lo <= batches[:, 0].min() and batches[:, 0].max() <= hi
    assert batches[:, 0].mean() == pytest.approx(imp.BATCH_DENSITY_MEAN["92"], abs=0.5)
    assert batches[:, 0].std() == pytest.approx(imp.BATCH_DENSITY_SD["92"], rel=0.1)
    assert batches[:, 1].std() == pytest.approx(imp.STRAT_SD, rel=0.1)
    ideal = GaugeErrors(TABLES[30], "92", QUIET, draws(1)[0], np.random.default_rng(3),
                        imp.IDEAL)
    assert ideal.new_batch() == (DENSITY_20C["92"], 0.0)


# --- 4. density: the tank mixes by volume, the physics uses the real density ------------------

def test_tank_mixes_density_by_volume_and_uses_the_real_expansion() -> None:
    cfg = TankConfig(1, "92", 30, initial_fill=0.5)
    tank = Tank(cfg, TABLES[30], START, 10.0, density_kg_m3=740.0)
    v0 = tank.volume_20c_l
    tank.deliver(5000.0, 10.0, 760.0)
    assert tank.density_kg_m3 == pytest.approx((740.0 * v0 + 760.0 * 5000.0) / (v0 + 5000.0))
    assert tank.alpha == pytest.approx(alpha_for_density(tank.density_kg_m3))
    assert tank.gross_l == pytest.approx(tank.volume_20c_l / vcf_alpha(tank.alpha, 10.0))
    # the nominal density (725) expands more: the same gross litres are fewer at 20 °C for it
    assert tank.gross_l * vcf("92", 10.0) > tank.volume_20c_l


def test_summer_deliveries_arrive_warmer_than_the_ground_winter_ones_colder() -> None:
    rng = np.random.default_rng(0)
    for month, sign in ((7, 1.0), (1, -1.0)):
        t0 = datetime(2026, month, 15, tzinfo=TZ).timestamp()
        diff = [tanker_temperature_c(t0 + h * 3600.0, 8.0, rng)
                - ground_temperature_c(t0 + h * 3600.0) for h in range(0, 24 * 30, 5)]
        assert sign * np.mean(diff) > 1.0


# --- 6. meters -----------------------------------------------------------------------------

def test_meters_verified_in_the_6_months_before_the_start_and_stay_inside_the_mpe() -> None:
    rng = np.random.default_rng(11)
    end = START + 180 * DAY
    for _ in range(2000):
        error = float(np.clip(rng.normal(0, 0.001), -0.0025, 0.0025))
        m = imp.draw_meter(rng, START, end, error)
        assert START - imp.VERIFY_WINDOW_S <= m.verified_at <= START
        meter = Meter(error, 0, 0, verified_at=m.verified_at, drift_per_day=m.drift_per_day,
                      repeatability=m.repeatability, flow_ref_lpm=m.flow_ref_lpm,
                      flow_slope=m.flow_slope, small_volume=m.small_volume)
        for t in (START, end):
            for flow_lpm in (30.0, 40.0, 90.0):
                # systematic error (no scatter) at the test volumes of a verification
                assert abs(meter.honest_error(20.0, flow_lpm / 60, t, 0.0)) <= MPE + 1e-12
        assert meter.repeatability <= 0.0003
        # below the minimum measured quantity the error grows, within the ±0.5 % of JJG 443
        assert abs(meter.honest_error(2.0, 40 / 60, START, 0.0)) <= 0.005 + 1e-12


def test_meter_drift_is_mostly_wear_and_repeatability_scatters_fills() -> None:
    rng = np.random.default_rng(12)
    drifts = np.array([imp.draw_meter(rng, START, START + 180 * DAY, 0.0).drift_per_day
                       for _ in range(2000)])
    six_months = drifts * 182.5
    assert np.mean(six_months) == pytest.approx(imp.DRIFT_PER_6_MONTHS[0], abs=0.0001)
    assert np.mean(six_months < 0) > 0.75
    meter = Meter(0.001, 0, 0, repeatability=0.0002)
    z = np.random.default_rng(1).standard_normal(20000)
    errors = np.array([meter.honest_error(40.0, 40 / 60, START, float(v)) for v in z])
    assert errors.mean() == pytest.approx(0.001, abs=1e-5)
    assert errors.std() == pytest.approx(0.0002, rel=0.05)
    # repeatability per JJG 443: the range of 3 fills stays within 0.10 % nearly always
    ranges = np.ptp(errors[: 19998].reshape(-1, 3), axis=1)
    assert np.mean(ranges <= 0.001) > 0.99


def test_cheat_factor_multiplies_the_honest_gain_of_the_fill() -> None:
    meter = Meter(0.001, 0, 0, factor_rule=lambda litres: 1.05 if litres >= 100 else 1.0)
    assert meter.gain_for(50.0, 0.002) == pytest.approx(1.002)
    assert meter.gain_for(150.0, 0.002) == pytest.approx(1.002 * 1.05)
    assert meter.gain_for(150.0) == pytest.approx(1.001 * 1.05)  # default: calibration error
    shown, _ = meter.fill_full(200.0, 700, honest=-0.001)
    assert shown == round(200.0 * 0.999 * 1.05 * 100) * 10


# --- 7/8. water ingress ----------------------------------------------------------------------

def test_water_ingress_is_rare_and_small() -> None:
    water = np.array([t.water_ingress_l_per_day for t in draws(4000)])
    share = np.mean(water > 0)
    assert share == pytest.approx(imp.WATER_INGRESS_SHARE, abs=0.015)
    lo, hi = imp.WATER_INGRESS_L_PER_DAY
    assert water[water > 0].min() >= lo and water.max() <= hi


def test_diesel_evaporates_nothing_and_ideal_draws_are_clean() -> None:
    diesel = draws(1, grade="0")[0]
    assert diesel.storage_loss_per_month == 0.0 and diesel.working_loss == 0.0
    ideal = imp.draw_tank(np.random.default_rng(0), "92", TABLES[30], imp.IDEAL)
    assert ideal.strap == (0.0, 0.0, 0.0) and ideal.level_offset_mm == 0.0
    assert ideal.initial_density_kg_m3 == DENSITY_20C["92"] and ideal.water_ingress_l_per_day == 0


def test_draws_are_deterministic_and_a_fixed_number_per_item() -> None:
    a, b = draws(50, seed=3), draws(50, seed=3)
    assert a == b
    # ideal and realistic consume the same draws: what follows is the same
    rng_r, rng_i = np.random.default_rng(4), np.random.default_rng(4)
    imp.draw_tank(rng_r, "92", TABLES[20])
    imp.draw_tank(rng_i, "92", TABLES[20], imp.IDEAL)
    imp.draw_meter(rng_r, START, START + DAY, 0.0)
    imp.draw_meter(rng_i, START, START + DAY, 0.0, imp.IDEAL)
    assert rng_r.random() == rng_i.random()


# --- in the world --------------------------------------------------------------------------

def world_config(**kw: object) -> WorldConfig:
    station = StationConfig(
        station_id="S1", name="t", town="t", ownership="private", dialect="int_be",
        transport="tcp",
        tanks=(TankConfig(1, "92", 30, initial_fill=0.4),
               TankConfig(2, "0", 30, water_ingress_l_per_day=5.0)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 2))),
        throughput_l_per_day={"92": 4000.0, "0": 3000.0}, truck_share=0.2)
    prices = (PriceChange(START - DAY, "92", 712), PriceChange(START - DAY, "0", 701))
    return WorldConfig(seed=7, start=START, days=kw.pop("days", 3.0),  # type: ignore[arg-type]
                       timezone="Asia/Shanghai", stations=(station,), prices=prices,
                       **kw)  # type: ignore[arg-type]


class Truth:
    def __init__(self, world: World) -> None:
        self.kinds: dict[str, list] = {}
        self.records: dict[str, list] = {}
        world.add_truth_listener(lambda sid, kind, rec: self.kinds.setdefault(kind, [])
                                 .append(rec))
        world.add_listener(lambda sid, dev, stream, rec: self.records.setdefault(stream, [])
                           .append(rec))


def test_world_wires_imperfections_into_gauge_physics_and_truth() -> None:
    world = World(world_config())
    truth = Truth(world)
    world.run_until(world.end)
    station = world.station("S1")
    info = {t.tank: t for t in truth.kinds["tank"]}
    unit = station.units[1]
    params = station.imperfections[1]
    assert unit.gauge_errors.table is not unit.table  # the gauge's own table
    assert info[1].strap_e0 == params.strap[0] and info[1].level_offset_mm == \
        pytest.approx(params.level_offset_mm)
    assert info[1].initial_density_kg_m3 == params.initial_density_kg_m3
    assert info[2].water_ingress_l_per_day == 5.0  # the configured ingress wins
    assert station.units[2].physics.water_ingress_l_per_day == 5.0
    for t in info.values():
        assert t.variance_sd_day_l > 0 and t.variance_sd_month_l > 0
        assert t.expected_sales_l_per_day > 0
    nozzles = truth.kinds["nozzle"]
    assert all(START - imp.VERIFY_WINDOW_S <= n.verified_at <= START for n in nozzles)
    assert all(n.repeatability > 0 for n in nozzles)
    drops = truth.records["deliveries"]
    assert drops and all(DENSITY_BAND[d.grade][0] <= d.density_20c_kg_m3
                         <= DENSITY_BAND[d.grade][1] for d in drops)
    # the gauge misses the truth by more than white noise: its table and offsets
    interval = [s for s in truth.kinds["tank_state"] if s.kind == "interval" and s.tank == 1]
    errors = np.array([s.reading.gross_l - s.truth.gross_l for s in interval])
    assert abs(errors.mean()) > 1.0


def test_ideal_world_has_constant_meter_errors_and_the_true_table() -> None:
    world = World(world_config(imperfections="ideal", days=1.0))
    truth = Truth(world)
    world.run_until(world.end)
    station = world.station("S1")
    assert station.units[1].gauge_errors.table is station.units[1].table
    error = {(n.dispenser, n.nozzle): n.meter_error for n in truth.kinds["nozzle"]}
    for txn in truth.records["transactions"]:
        ratio = txn.displayed_volume_ml / 1000 / txn.true_volume_l
        assert ratio == pytest.approx(1 + error[(txn.dispenser, txn.nozzle)],
                                      abs=0.006 / txn.true_volume_l)
    with pytest.raises(ValueError, match="imperfections must be one of"):
        World(world_config(imperfections="perfect"))
