"""Demand: diurnal/weekday profile, exact scaling to the daily litres, customer attributes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.demand import (
    DEFAULT_MIX,
    HOURLY_WEIGHTS,
    WEEKDAY_FACTORS,
    arrival_rates,
    generate_customers,
    hour_bins,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 4, 6, tzinfo=SHANGHAI).timestamp()
DAY = 86400.0


def constant(price_fen: int):
    return lambda times: np.full(len(times), price_fen, dtype=np.int64)


def test_profiles_are_normalised_and_shaped() -> None:
    assert sum(HOURLY_WEIGHTS) == pytest.approx(1.0)
    assert sum(WEEKDAY_FACTORS) / 7 == pytest.approx(1.0)
    night = max(HOURLY_WEIGHTS[1:5])
    assert HOURLY_WEIGHTS[8] > 10 * night and HOURLY_WEIGHTS[18] > 10 * night  # two peaks
    assert HOURLY_WEIGHTS[8] > HOURLY_WEIGHTS[10] < HOURLY_WEIGHTS[18]


def test_hour_bins_follow_civil_time() -> None:
    edges, hours, weekdays = hour_bins(MONDAY, MONDAY + 2 * DAY, SHANGHAI)
    assert len(edges) == 49 and edges[0] == MONDAY and edges[-1] == MONDAY + 2 * DAY
    assert hours.tolist() == list(range(24)) * 2
    assert weekdays.tolist() == [0] * 24 + [1] * 24
    # A start off the hour gives a short first bin; a half-hour zone labels bins by midpoint.
    edges, hours, _ = hour_bins(MONDAY + 1800, MONDAY + 3 * 3600, ZoneInfo("Asia/Kolkata"))
    assert np.diff(edges).tolist() == [1800.0, 3600.0, 3600.0]
    # 00:30+08:00 is 22:00+05:30; bin midpoints 22:15, 23:00 and 00:00 (+05:30).
    assert hours.tolist() == [22, 23, 0]
    with pytest.raises(ValueError, match="must be after start"):
        hour_bins(MONDAY, MONDAY, SHANGHAI)


def test_expected_litres_over_a_week_equal_the_throughput() -> None:
    edges, hours, weekdays = hour_bins(MONDAY, MONDAY + 7 * DAY, SHANGHAI)
    mean_fill = DEFAULT_MIX.mean_fill_l(0.2, 700.0)
    rates = arrival_rates(edges, hours, weekdays, 5000.0, np.full(len(hours), mean_fill))
    assert float((rates * mean_fill).sum()) == pytest.approx(7 * 5000.0, rel=1e-12)


def test_mean_fill_matches_a_large_sample() -> None:
    rng = np.random.default_rng(3)
    c = generate_customers(rng, start=MONDAY, end=MONDAY + 60 * DAY, tz=SHANGHAI,
                           litres_per_day=20000.0, truck_share=0.4, prices_at=constant(700))
    volumes = np.where(c.full, c.full_l, np.asarray(c.preset_fen) / 700)
    assert volumes.mean() == pytest.approx(DEFAULT_MIX.mean_fill_l(0.4, 700.0), rel=0.02)
    assert np.mean(c.truck) == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize(("litres", "truck_share", "price"), [(3000.0, 0.0, 712),
                                                               (18000.0, 0.6, 690)])
def test_daily_litres_match_the_configured_throughput(litres: float, truck_share: float,
                                                      price: int) -> None:
    rng = np.random.default_rng(17)
    days = 28
    c = generate_customers(rng, start=MONDAY, end=MONDAY + days * DAY, tz=SHANGHAI,
                           litres_per_day=litres, truck_share=truck_share,
                           prices_at=constant(price))
    volumes = np.where(c.full, c.full_l, np.asarray(c.preset_fen) / price)
    assert volumes.sum() / days == pytest.approx(litres, rel=0.05)


def test_higher_prices_mean_more_customers_for_the_same_litres() -> None:
    kw = dict(start=MONDAY, end=MONDAY + 14 * DAY, tz=SHANGHAI, litres_per_day=6000.0,
              truck_share=0.0)
    cheap = generate_customers(np.random.default_rng(1), prices_at=constant(600), **kw)
    dear = generate_customers(np.random.default_rng(1), prices_at=constant(900), **kw)
    assert len(dear) > len(cheap)


def test_diurnal_and_weekday_shape_of_arrivals() -> None:
    c = generate_customers(np.random.default_rng(5), start=MONDAY, end=MONDAY + 28 * DAY,
                           tz=SHANGHAI, litres_per_day=8000.0, truck_share=0.0,
                           prices_at=constant(712))
    local = [datetime.fromtimestamp(t, SHANGHAI) for t in c.arrival]
    by_hour = np.bincount([d.hour for d in local], minlength=24)
    by_day = np.bincount([d.weekday() for d in local], minlength=7)
    assert by_hour[18] > 5 * by_hour[3] and by_hour[8] > 5 * by_hour[2]
    assert by_day[4] > by_day[1]  # Friday busier than Tuesday (7 % apart, 4 weeks of data)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), days=st.floats(0.05, 3.0),
       litres=st.floats(0.0, 30000.0), truck_share=st.floats(0.0, 1.0),
       offset=st.floats(0.0, 86400.0))
def test_customer_attributes_are_well_formed(seed: int, days: float, litres: float,
                                             truck_share: float, offset: float) -> None:
    start = MONDAY + offset
    end = start + days * DAY
    c = generate_customers(np.random.default_rng(seed), start=start, end=end, tz=SHANGHAI,
                           litres_per_day=litres, truck_share=truck_share,
                           prices_at=constant(700))
    n = len(c)
    assert all(len(col) == n for col in (c.truck, c.full, c.full_l, c.preset_fen, c.flow_lps,
                                         c.pre_fill_s, c.post_fill_s, c.pick))
    assert c.arrival == sorted(c.arrival)
    assert all(start <= t < end for t in c.arrival)
    m = DEFAULT_MIX
    for i in range(n):
        if c.truck[i]:
            assert m.truck_full_l[0] <= c.full_l[i] <= m.truck_full_l[1]
            assert c.preset_fen[i] in m.truck_amounts_fen
            assert m.truck_flow_lpm[0] <= c.flow_lps[i] * 60 <= m.truck_flow_lpm[1]
        else:
            assert m.car_full_l[0] <= c.full_l[i] <= m.car_full_l[1]
            assert c.preset_fen[i] in m.car_amounts_fen
            assert m.car_flow_lpm[2] <= c.flow_lps[i] * 60 <= m.car_flow_lpm[3]
        assert m.pre_fill_s[0] <= c.pre_fill_s[i] <= m.pre_fill_s[1]
        assert 0.0 <= c.pick[i] < 1.0
    if truck_share == 0.0:
        assert not any(c.truck)


def test_same_seed_same_customers() -> None:
    kw = dict(start=MONDAY, end=MONDAY + DAY, tz=SHANGHAI, litres_per_day=5000.0,
              truck_share=0.3, prices_at=constant(700))
    a = generate_customers(np.random.default_rng(9), **kw)
    b = generate_customers(np.random.default_rng(9), **kw)
    c = generate_customers(np.random.default_rng(10), **kw)
    assert a == b and a.arrival != c.arrival


@pytest.mark.parametrize(("kw", "message"), [
    (dict(litres_per_day=-1.0), "litres_per_day must be"),
    (dict(litres_per_day=float("nan")), "litres_per_day must be"),
    (dict(truck_share=1.5), "truck_share must be in"),
    (dict(end=MONDAY), "must be after start"),
])
def test_bad_demand_input(kw: dict, message: str) -> None:
    args = dict(start=MONDAY, end=MONDAY + DAY, tz=SHANGHAI, litres_per_day=100.0,
                truck_share=0.0, prices_at=constant(700))
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        generate_customers(np.random.default_rng(0), **args)
