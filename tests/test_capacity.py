"""Capacity table (容积表): geometry, interpolation, inverse, nominal sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.capacity import CapacityTable, exact_volume_l

NOMINALS = (20, 30, 50)

geometries = st.tuples(
    st.integers(min_value=800, max_value=3500),  # diameter mm
    st.floats(min_value=1000.0, max_value=12000.0),  # cylinder length mm
    st.floats(min_value=0.0, max_value=0.5),  # head depth / diameter
)


@pytest.fixture(scope="module")
def tables() -> dict[int, CapacityTable]:
    return {n: CapacityTable.for_nominal(n) for n in NOMINALS}


@pytest.mark.parametrize("nominal", NOMINALS)
def test_table_strictly_increasing(tables, nominal):
    t = tables[nominal]
    assert t.volumes_l.shape == (t.diameter_mm + 1,)
    assert t.volumes_l[0] == 0.0
    assert np.all(np.diff(t.volumes_l) > 0)
    assert t.capacity_l == t.volumes_l[-1]


@pytest.mark.parametrize("nominal", NOMINALS)
def test_full_volume_is_nominal(tables, nominal):
    assert tables[nominal].capacity_l == pytest.approx(nominal * 1000.0, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(geometries, st.floats(min_value=0.0, max_value=1.0))
def test_table_matches_exact_formula(geometry, fraction):
    diameter, length, head_ratio = geometry
    head = head_ratio * diameter
    table = CapacityTable(diameter, length, head)
    # At whole millimetres the table is the formula itself.
    mm = round(fraction * diameter)
    assert table.volume_at(mm) == pytest.approx(
        exact_volume_l(diameter, length, head, mm), rel=1e-12, abs=1e-9)
    # Between them, linear interpolation is within a small fraction of one mm's worth (the
    # curve V ~ h^1.5 bends sharply only in the first millimetres at the very bottom and top).
    level = fraction * diameter
    exact = exact_volume_l(diameter, length, head, level)
    edge = min(level, diameter - level) < 5.0
    share = 0.2 if edge else 0.02
    assert abs(table.volume_at(level) - exact) <= share * table.litres_per_mm(level) + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NOMINALS), st.floats(min_value=0.0, max_value=1.0))
def test_level_volume_round_trip(nominal, fraction):
    table = CapacityTable.for_nominal(nominal)
    level = fraction * table.diameter_mm
    assert abs(table.level_at(table.volume_at(level)) - level) < 1.0
    volume = fraction * table.capacity_l
    assert table.volume_at(table.level_at(volume)) == pytest.approx(volume, abs=1e-6)


def test_clamping(tables):
    t = tables[30]
    assert t.volume_at(-5.0) == 0.0
    assert t.volume_at(t.diameter_mm + 10.0) == t.capacity_l
    assert t.level_at(-1.0) == 0.0
    assert t.level_at(t.capacity_l * 2) == t.diameter_mm


def test_litres_per_mm_plausible(tables):
    # domain.md §3: 30 m³ (D 2.5 m) ≈ 15 L/mm at mid-height, ≈ 9 L/mm at 10 %; 50 m³ ≈ 23 L/mm.
    t30, t50 = tables[30], tables[50]
    assert t30.diameter_mm == 2500
    assert 12.0 < t30.litres_per_mm(1250) < 18.0
    assert 7.0 < t30.litres_per_mm(250) < 11.0
    assert 19.0 < t50.litres_per_mm(1400) < 27.0


@pytest.mark.parametrize("level", [0.0, 1.0, 150.0, 600.0, 1000.0, 1500.0, 1999.0, 2000.0])
def test_hemispherical_heads_equal_sphere_plus_cylinder(level):
    diameter, length = 2000.0, 6000.0
    r = diameter / 2
    theta = 2.0 * math.acos((r - level) / r)
    segment_area = r * r / 2.0 * (theta - math.sin(theta))
    sphere_cap = math.pi * level * level * (3.0 * r - level) / 3.0
    expected_l = (segment_area * length + sphere_cap) / 1e6
    assert exact_volume_l(diameter, length, r, level) == pytest.approx(expected_l, rel=1e-9,
                                                                       abs=1e-9)


def test_full_hemispherical_tank():
    r, length = 1000.0, 6000.0
    full = (math.pi * r * r * length + 4.0 / 3.0 * math.pi * r**3) / 1e6
    assert CapacityTable(2000, length, r).capacity_l == pytest.approx(full, rel=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="nominal_m3"):
        CapacityTable.for_nominal(40)
    with pytest.raises(ValueError, match="level_mm"):
        exact_volume_l(2500, 5000, 500, 2600)
    with pytest.raises(ValueError, match="length_mm"):
        CapacityTable(2500, -1.0, 500)
    with pytest.raises(ValueError, match="diameter_mm"):
        CapacityTable(2500.5, 5000.0, 500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        CapacityTable.for_nominal(20).volume_at(float("nan"))


def test_table_is_read_only_and_can_be_replaced(tables):
    t = tables[20]
    with pytest.raises(ValueError):
        t.volumes_l[5] = 0.0
    tampered = t.with_volumes(t.volumes_l * 1.01)
    assert tampered.volume_at(1000.0) == pytest.approx(1.01 * t.volume_at(1000.0))
    assert t.volume_at(1000.0) != tampered.volume_at(1000.0)
    with pytest.raises(ValueError, match="increase strictly"):
        t.with_volumes(np.zeros(t.diameter_mm + 1))
    with pytest.raises(ValueError, match="need"):
        t.with_volumes(t.volumes_l[:-1])
