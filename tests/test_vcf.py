"""Volume correction factor to 20 °C (标准体积换算)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.vcf import DENSITY_20C, alpha, alpha_for_density, vcf

GRADES = tuple(DENSITY_20C)
PETROL = ("92", "95")


@pytest.mark.parametrize("grade", GRADES)
def test_unity_at_20c(grade):
    assert vcf(grade, 20.0) == 1.0


@given(st.sampled_from(GRADES), st.floats(min_value=-30.0, max_value=50.0),
       st.floats(min_value=0.01, max_value=20.0))
def test_decreasing_in_temperature(grade, temp, step):
    assert vcf(grade, temp + step) < vcf(grade, temp)


def test_petrol_alpha_at_735():
    # domain.md §3 [D]: petrol at 735 kg/m³ gives α ≈ 0.00124 /°C.
    assert alpha_for_density(735.0) == pytest.approx(0.00124, abs=0.00002)


def test_density_bands():
    assert alpha_for_density(800.0) == pytest.approx(594.5418 / 800.0**2)
    assert alpha_for_density(850.0) == pytest.approx((186.9696 + 0.4862 * 850.0) / 850.0**2)
    with pytest.raises(ValueError, match="density"):
        alpha_for_density(0.0)


@pytest.mark.parametrize("petrol", PETROL)
def test_diesel_expands_less_than_petrol(petrol):
    assert alpha("0") < alpha(petrol)
    assert vcf("0", 30.0) > vcf(petrol, 30.0)


@pytest.mark.parametrize("petrol", PETROL)
def test_one_degree_on_20000_litres(petrol):
    # domain.md §3 [D]: 1 °C on 20,000 L of petrol is about 25 L.
    assert 20000.0 * (1.0 - vcf(petrol, 21.0)) == pytest.approx(25.0, abs=2.0)


def test_unknown_grade():
    with pytest.raises(ValueError, match="98"):
        vcf("98", 20.0)


def test_vcf_alpha_is_vcf_at_the_nominal_density_and_bands_hold_the_nominal() -> None:
    from sim.vcf import DENSITY_BAND, vcf_alpha

    for grade, rho in DENSITY_20C.items():
        lo, hi = DENSITY_BAND[grade]
        assert lo <= rho <= hi
        for temp in (-10.0, 5.0, 20.0, 35.0):
            assert vcf_alpha(alpha(grade), temp) == vcf(grade, temp)
    # a denser batch expands less: at 5 °C its 20 °C volume is a larger share of the gross
    assert vcf_alpha(alpha_for_density(760.0), 5.0) < vcf("92", 5.0)
