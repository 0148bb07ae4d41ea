"""Meters: display rounding, exact amounts, prepaid fills, totalizers, price schedules."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.config import PriceChange
from sim.meter import (
    METER_ERROR_CLIP,
    MPE,
    Meter,
    PriceSchedule,
    amount_fen,
    display_ml,
    draw_meter_error,
    preset_volume_ml,
)

prices = st.integers(300, 1500)  # fen/L


def _half_up(value: Decimal, step: int = 1) -> int:
    return int((value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


@given(st.floats(0.0, 5000.0))
def test_display_rounds_to_hundredths_of_a_litre(litres: float) -> None:
    shown = display_ml(litres)
    assert shown % 10 == 0
    assert abs(shown - litres * 1000) <= 5 + 1e-6


@given(st.integers(0, 10**7), prices)
def test_amount_is_volume_times_price_rounded_half_up(volume_ml: int, price: int) -> None:
    assert amount_fen(volume_ml, price) == _half_up(Decimal(volume_ml) * price / 1000)


@given(st.integers(1, 10**6), prices)
def test_preset_volume_is_amount_over_price_to_hundredths(preset: int, price: int) -> None:
    assert preset_volume_ml(preset, price) == _half_up(Decimal(preset) * 1000 / price, 10)


@given(st.floats(1.0, 600.0), prices, st.floats(-0.0025, 0.0025), st.floats(0.8, 1.25))
def test_fill_to_full_shows_true_volume_times_gain(true_l: float, price: int, error: float,
                                                   factor: float) -> None:
    meter = Meter(error, 0, 0, factor)
    shown, amount = meter.fill_full(true_l, price)
    assert abs(shown - true_l * (1 + error) * factor * 1000) <= 5 + 1e-6
    assert amount == amount_fen(shown, price)


@given(st.sampled_from([10000, 20000, 30000, 100000]), prices, st.floats(-0.0025, 0.0025),
       st.floats(0.8, 1.25))
def test_prepaid_fill_stops_at_the_amount(preset: int, price: int, error: float,
                                          factor: float) -> None:
    meter = Meter(error, 0, 0, factor)
    shown, amount, true_l = meter.fill_preset(preset, price)
    assert amount == preset
    assert true_l * (1 + error) * factor * price == pytest.approx(preset, rel=1e-12)
    # The amount is off the volume × price product by at most half a display step.
    assert abs(amount * 1000 - shown * price) <= 5 * price


def test_totalizers_add_exactly() -> None:
    meter = Meter(0.001, 1_000_000_000_000, 7_000_000_000)
    assert meter.book(12340, 8786) == (1_000_000_000_000, 1_000_000_012_340,
                                       7_000_000_000, 7_000_008_786)
    assert (meter.volume_total_ml, meter.amount_total_fen) == (1_000_000_012_340, 7_000_008_786)


def test_honest_meter_errors_stay_inside_the_mpe() -> None:
    rng = np.random.default_rng(0)
    errors = np.array([draw_meter_error(rng) for _ in range(5000)])
    assert np.abs(errors).max() <= METER_ERROR_CLIP < MPE
    assert abs(errors.mean()) < 1e-4 and 0.0008 < errors.std() < 0.0011


START = 1_775_000_000.0


def test_price_schedule_initial_changes_and_lookup() -> None:
    changes = [PriceChange(START - 500, "92", 700), PriceChange(START - 100, "92", 712),
               PriceChange(START - 100, "0", 690), PriceChange(START + 50, "0", 701),
               PriceChange(START + 50, "92", 735), PriceChange(START + 9999, "92", 800),
               PriceChange(START, "95", 1)]  # 95 is not sold here: ignored
    schedule = PriceSchedule(changes, ["92", "0"], START, START + 1000)
    assert (schedule.initial("92"), schedule.initial("0")) == (712, 690)
    assert schedule.changes == ((START + 50, "92", 735), (START + 50, "0", 701))
    assert schedule.price_at("92", START - 1000) == 712
    assert schedule.price_at("92", START + 49.9) == 712
    assert schedule.price_at("92", START + 50) == 735
    assert schedule.price_at("92", START + 5000) == 735  # the change after the end is dropped
    times = np.array([START, START + 50, START + 60])
    assert schedule.prices_at("0", times).tolist() == [690, 701, 701]


@pytest.mark.parametrize(("changes", "message"), [
    ([PriceChange(START + 1, "92", 700)], "no price for grade '92' at or before the start"),
    ([PriceChange(START, "92", 0)], r"prices\[0\]: price_fen must be"),
    ([PriceChange(START, "92", 7.12)], r"prices\[0\]: price_fen must be"),  # type: ignore[arg-type]
    ([PriceChange(float("nan"), "92", 700)], r"prices\[0\]: at must be"),
])
def test_bad_prices_are_rejected(changes: list[PriceChange], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceSchedule(changes, ["92"], START, START + 10)
