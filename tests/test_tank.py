"""Tank physics (储罐): mass balance, water, thermal model, probe (液位探棒)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.capacity import CapacityTable
from sim.config import ProbeConfig, TankConfig
from sim.imperfections import WORKING_LOSS, storage_loss_integral
from sim.probe import quantize, read_gauge
from sim.records import TankTruth
from sim.tank import Tank, TankEmpty, TankOverflow
from sim.thermal import fuel_temperature_c, ground_temperature_c, relax
from sim.vcf import vcf

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
TABLES = {n: CapacityTable.for_nominal(n) for n in (20, 30, 50)}
CST = timezone(timedelta(hours=8))


def make_tank(grade="92", nominal=30, fill=0.6, leak=0.0, water=0.0, temp=12.0, t=T0) -> Tank:
    config = TankConfig(tank=1, grade=grade, nominal_m3=nominal, initial_fill=fill,
                        leak_l_per_h=leak, water_ingress_l_per_day=water)
    return Tank(config, TABLES[nominal], t, temp)


# --- mass balance --------------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=5 * 86400.0)),
        st.tuples(st.just("draw"), st.floats(min_value=0.0, max_value=1.2)),  # share of gross
        st.tuples(st.just("deliver"), st.floats(min_value=0.0, max_value=1.2),  # share of ullage
                  st.floats(min_value=-10.0, max_value=35.0)),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(
    grade=st.sampled_from(("92", "95", "0")),
    nominal=st.sampled_from((20, 30, 50)),
    fill=st.floats(min_value=0.0, max_value=0.9),
    leak=st.sampled_from((0.0, 0.76, 50.0)),
    water=st.sampled_from((0.0, 3.0, 500.0)),
    ops=operations,
)
def test_mass_balance(grade, nominal, fill, leak, water, ops):
    tank = make_tank(grade, nominal, fill, leak, water)
    initial = tank.volume_20c_l
    delivered = drawn = 0.0
    for op in ops:
        if op[0] == "advance":
            before = tank.volume_20c_l
            tank.advance(tank.time + op[1])
            assert tank.volume_20c_l <= before
        elif op[0] == "draw":
            want = op[1] * tank.gross_l
            before = tank.volume_20c_l
            if want * vcf(grade, tank.temperature_c) > before + 1e-9:
                with pytest.raises(TankEmpty):
                    tank.draw(want)
                assert tank.volume_20c_l == before
            else:
                drawn += tank.draw(want)
        else:
            volume = op[1] * max(tank.ullage_l, 0.0)
            state = (tank.volume_20c_l, tank.temperature_c)
            try:
                tank.deliver(volume, op[2])
            except TankOverflow:
                assert (tank.volume_20c_l, tank.temperature_c) == state
            else:
                delivered += volume
        assert tank.volume_20c_l >= 0.0
        assert tank.water_l == pytest.approx(tank.water_in_l, abs=1e-9)
    balance = initial + delivered - drawn - tank.leaked_20c_l - tank.evaporated_20c_l
    assert balance == pytest.approx(tank.volume_20c_l, abs=1e-6)
    assert delivered == pytest.approx(tank.delivered_20c_l, abs=1e-9)
    assert drawn == pytest.approx(tank.drawn_20c_l, abs=1e-9)


def test_initial_state():
    tank = make_tank(fill=0.6, temp=12.0)
    assert tank.gross_l == pytest.approx(0.6 * tank.capacity_l, rel=1e-12)
    assert tank.volume_20c_l > tank.gross_l  # colder than 20 °C: standard volume is larger
    truth = tank.truth()
    assert truth.level_mm == pytest.approx(TABLES[30].level_at(0.6 * tank.capacity_l))
    assert truth.water_l == 0.0 and truth.water_level_mm == 0.0
    assert tank.ullage_l == pytest.approx(0.4 * tank.capacity_l, rel=1e-9)


def test_leak_rate_and_clamp_at_empty():
    tank = make_tank(fill=0.5, leak=0.76, temp=20.0)
    start = tank.volume_20c_l
    tank.advance(T0 + 3600.0)
    # one hour: 0.76 L at about 20 °C plus tiny evaporation
    assert tank.leaked_20c_l == pytest.approx(0.76, rel=0.01)
    assert start - tank.volume_20c_l == pytest.approx(
        tank.leaked_20c_l + tank.evaporated_20c_l, abs=1e-9)
    small = make_tank(fill=0.0001, leak=100.0, temp=20.0)
    small.advance(T0 + 10 * 86400.0)
    assert small.volume_20c_l == 0.0
    assert small.leaked_20c_l + small.evaporated_20c_l == pytest.approx(
        small.initial_20c_l, abs=1e-9)


def test_evaporation_is_tiny_seasonal_and_none_for_diesel():
    # GB 11085: a buried tank's storage loss is ~0.01 %/month, more in the warm half of the year
    winter, summer = make_tank(fill=0.8), make_tank(fill=0.8, t=T0 + 196 * 86400.0)
    for tank in (winter, summer):
        start, t0 = tank.volume_20c_l, tank.time
        tank.advance(t0 + 86400.0)
        share = storage_loss_integral(tank.storage_loss_per_month, t0, t0 + 86400.0)
        assert tank.evaporated_20c_l == pytest.approx(start * -math.expm1(-share), rel=1e-9)
        assert tank.evaporated_20c_l < start * 1e-5  # well under 0.001 % a day
    assert summer.evaporated_20c_l > 1.5 * winter.evaporated_20c_l
    diesel = make_tank(grade="0", fill=0.8)
    diesel.advance(T0 + 30 * 86400.0)
    diesel.draw(1000.0)
    assert diesel.evaporated_20c_l == 0.0
    # the working loss: the air replacing each litre drawn takes up 0.02 % of it as vapour
    petrol = make_tank(fill=0.8)
    drawn = petrol.draw(1000.0)
    assert petrol.evaporated_20c_l == pytest.approx(drawn * WORKING_LOSS["92"])


def test_water_accounting():
    tank = make_tank(water=24.0, fill=0.5)
    tank.advance(T0 + 2 * 86400.0)
    assert tank.water_l == pytest.approx(48.0) and tank.water_in_l == pytest.approx(48.0)
    assert tank.water_level_mm > 0.0
    assert tank.truth().water_level_mm == pytest.approx(TABLES[30].level_at(48.0))
    # water lies under the product and raises the total level
    dry = make_tank(fill=0.5)
    dry.advance(T0 + 2 * 86400.0)
    assert tank.level_mm > dry.level_mm
    assert tank.gross_l == pytest.approx(dry.gross_l, rel=1e-12)


def test_water_stops_when_full():
    tank = make_tank(fill=1.0, water=100.0, temp=20.0)
    tank.advance(T0 + 10 * 86400.0)
    assert tank.total_l <= tank.capacity_l + 1e-6


def test_draw_more_than_available_raises():
    tank = make_tank(fill=0.01, temp=20.0)
    before = tank.volume_20c_l
    with pytest.raises(TankEmpty, match="tank 1"):
        tank.draw(tank.gross_l + 1.0)
    assert tank.volume_20c_l == before
    assert tank.draw(tank.gross_l) == pytest.approx(before)
    assert tank.volume_20c_l == 0.0
    with pytest.raises(ValueError, match="draw"):
        tank.draw(-1.0)


def test_draw_returns_standard_volume():
    cold = make_tank(temp=5.0)
    assert cold.draw(50.0) == pytest.approx(50.0 * vcf("92", 5.0))
    assert cold.draw(50.0) > 50.0


def test_delivery_mixes_temperature_and_overflow_raises():
    tank = make_tank(fill=0.3, temp=10.0)
    v0 = tank.volume_20c_l
    tank.deliver(v0, 30.0)
    assert tank.temperature_c == pytest.approx(20.0)
    assert tank.volume_20c_l == pytest.approx(2 * v0)
    state = (tank.volume_20c_l, tank.temperature_c, tank.delivered_20c_l)
    with pytest.raises(TankOverflow, match="tank 1"):
        tank.deliver(tank.capacity_l, 20.0)
    assert (tank.volume_20c_l, tank.temperature_c, tank.delivered_20c_l) == state
    empty = make_tank(fill=0.0, temp=3.0)
    empty.deliver(1000.0, 25.0)
    assert empty.temperature_c == 25.0


def test_advance_backwards_raises_and_equal_is_noop():
    tank = make_tank()
    tank.advance(T0 + 100.0)
    snapshot = tank.truth()
    tank.advance(T0 + 100.0)
    assert tank.truth() == snapshot
    with pytest.raises(ValueError, match="backwards"):
        tank.advance(T0)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="initial_fill"):
        make_tank(fill=1.5)
    with pytest.raises(ValueError, match="grade"):
        make_tank(grade="98")


# --- thermal model -------------------------------------------------------------------------

@given(st.floats(-20, 40), st.floats(-5, 25), st.floats(0, 1e6), st.floats(0, 1e6),
       st.floats(3600, 1e6))
def test_relax_is_exact_for_constant_target(temp, target, a, b, tau):
    once = relax(temp, target, a + b, tau)
    twice = relax(relax(temp, target, a, tau), target, b, tau)
    assert once == pytest.approx(twice, abs=1e-9)
    assert abs(once - target) <= abs(temp - target) + 1e-12
    assert relax(temp, target, tau, tau) - target == pytest.approx(
        (temp - target) / math.e, abs=1e-9)


def test_relax_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dt_s"):
        relax(10.0, 5.0, -1.0, 100.0)
    with pytest.raises(ValueError, match="tau_s"):
        relax(10.0, 5.0, 1.0, 0.0)


def test_ground_temperature_seasons():
    def at(month, day, hour=12):
        return ground_temperature_c(datetime(2026, month, day, hour, tzinfo=CST).timestamp())

    assert at(2, 24) < 2.5
    assert at(8, 26) > 17.5
    year = [ground_temperature_c(T0 + h * 3600.0) for h in range(0, 365 * 24, 7)]
    assert 1.4 < min(year) < 2.5 and 17.5 < max(year) < 18.6
    day = [ground_temperature_c(datetime(2026, 5, 1, tzinfo=CST).timestamp() + h * 3600.0)
           for h in range(24)]
    assert 0.4 < max(day) - min(day) < 0.7  # ±0.3 °C diurnal plus a little seasonal drift


def test_fuel_relaxes_towards_ground():
    tank = make_tank(temp=30.0)  # a hot delivery in January
    temps = []
    for day in range(1, 31):
        tank.advance(T0 + day * 86400.0)
        temps.append(tank.temperature_c)
    assert all(b < a for a, b in zip(temps, temps[1:], strict=False))
    ground = ground_temperature_c(tank.time)
    assert abs(tank.temperature_c - ground) < 0.5
    assert abs(temps[2] - ground) > 5.0  # tau ≈ 3 days: still far off after 3 days


@settings(max_examples=30, deadline=None)
@given(st.floats(-10, 35), st.floats(0, 365 * 86400.0), st.floats(60.0, 20 * 86400.0),
       st.integers(2, 50))
def test_fuel_temperature_independent_of_steps(temp, offset, span, steps):
    t0 = T0 + offset
    whole = fuel_temperature_c(temp, t0, t0 + span, 3 * 86400.0)
    split = temp
    for k in range(steps):
        split = fuel_temperature_c(split, t0 + span * k / steps, t0 + span * (k + 1) / steps,
                                   3 * 86400.0)
    assert split == pytest.approx(whole, abs=1e-9)


def test_fuel_temperature_solves_relaxation_equation():
    tau, t, h = 3 * 86400.0, T0 + 40 * 86400.0 + 5000.0, 60.0
    temp = 25.0
    after = fuel_temperature_c(temp, t, t + h, tau)
    later = fuel_temperature_c(temp, t, t + 2 * h, tau)
    # central difference at t + h against (ground − T)/τ
    slope = (later - temp) / (2 * h)
    assert slope == pytest.approx((ground_temperature_c(t + h) - after) / tau, rel=1e-4)
    assert fuel_temperature_c(temp, t, t, tau) == temp
    with pytest.raises(ValueError, match="before"):
        fuel_temperature_c(temp, t, t - 1.0, tau)


def test_cooling_shrinks_gross_not_standard_volume():
    tank = make_tank(temp=30.0)
    gross, standard = tank.gross_l, tank.volume_20c_l
    tank.advance(T0 + 20 * 86400.0)
    assert gross - tank.gross_l > 100.0  # ~25 °C of cooling on 18 m³
    assert standard - tank.volume_20c_l == pytest.approx(tank.evaporated_20c_l, abs=1e-9)


# --- probe ---------------------------------------------------------------------------------

@given(st.floats(-1e5, 1e5), st.sampled_from((0.01, 0.1, 0.5, 1.0)))
def test_quantize(value, resolution):
    q = quantize(value, resolution)
    assert abs(q - value) <= resolution / 2 + 1e-9
    assert abs(q / resolution - round(q / resolution)) < 1e-6
    assert quantize(q, resolution) == q


def test_quantize_rejects_zero_resolution():
    with pytest.raises(ValueError, match="resolution"):
        quantize(1.0, 0.0)


def truth_at(level_mm: float, water_mm: float, temp: float, table: CapacityTable) -> TankTruth:
    total, water = table.volume_at(level_mm), table.volume_at(water_mm)
    return TankTruth(level_mm, water_mm, temp, total - water, (total - water) * vcf("92", temp),
                     water)


def test_noiseless_reading_is_the_truth_quantized():
    table = TABLES[30]
    probe = ProbeConfig(level_noise_mm=0.0, water_noise_mm=0.0, temp_noise_c=0.0)
    truth = truth_at(1234.5678, 45.678, 13.37, table)
    r = read_gauge(truth, table, "92", probe, np.random.default_rng(0))
    assert (r.level_mm, r.water_level_mm, r.temperature_c) == (1234.6, 45.7, 13.4)
    assert r.water_l == table.volume_at(45.7)
    assert r.gross_l == pytest.approx(table.volume_at(1234.6) - table.volume_at(45.7))
    assert r.volume_20c_l == pytest.approx(r.gross_l * vcf("92", 13.4))
    assert r.ullage_l == pytest.approx(table.capacity_l - table.volume_at(1234.6))


def test_water_below_minimum_reads_zero():
    table = TABLES[30]
    probe = ProbeConfig()
    r = read_gauge(truth_at(1500.0, probe.min_water_mm - 0.5, 15.0, table), table, "92", probe,
                   np.random.default_rng(1))
    assert r.water_level_mm == 0.0 and r.water_l == 0.0
    assert r.gross_l == pytest.approx(table.volume_at(r.level_mm))


def test_reading_error_bounded_and_deterministic():
    table = TABLES[50]
    probe = ProbeConfig()
    truth = truth_at(1800.0, 60.0, 8.0, table)
    rng = np.random.default_rng(42)
    readings = [read_gauge(truth, table, "92", probe, rng) for _ in range(2000)]
    level_err = np.array([r.level_mm - truth.level_mm for r in readings])
    temp_err = np.array([r.temperature_c - truth.temperature_c for r in readings])
    assert np.max(np.abs(level_err)) <= 5 * probe.level_noise_mm + probe.level_resolution_mm
    assert np.max(np.abs(temp_err)) <= 5 * probe.temp_noise_c + probe.temp_resolution_c
    assert abs(level_err.mean()) < 0.05  # unbiased
    # Volume error follows level error through the table slope (~23 L/mm at this level).
    vol_err = np.array([r.volume_20c_l - truth.volume_20c_l for r in readings])
    slope = table.litres_per_mm(1800.0)
    assert np.max(np.abs(vol_err)) < slope * 2.0 + truth.volume_20c_l * 0.002
    again = np.random.default_rng(42)
    assert read_gauge(truth, table, "92", probe, again) == readings[0]


def test_tank_temperature_is_the_exact_relaxation_whatever_the_steps():
    tank = make_tank(temp=25.0)
    t = T0
    for step in (3600.0, 17.0, 86400.0 * 2, 5.5, 40000.0):
        expected = fuel_temperature_c(tank.temperature_c, t, t + step, tank.thermal_tau_s,
                                      tank.utc_offset_h)
        t += step
        tank.advance(t)
        assert tank.temperature_c == expected
