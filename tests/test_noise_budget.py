"""Noise budget (sim/noise_budget.py): the empirical daily variance as the platform reconciles,
and the analytic budget agreeing with it on a simulated station."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from sim.config import (
    CheatConfig,
    DispenserConfig,
    PriceChange,
    ProbeConfig,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.ledger import LEDGER_STREAMS, StationTruth
from sim.noise_budget import (
    daily_variance,
    honest_tanks,
    median_daily_variance_sd_pct,
    variance_stats,
)
from sim.vcf import vcf
from sim.world import World

TZ = "Asia/Shanghai"
START = datetime(2026, 4, 6, tzinfo=ZoneInfo(TZ)).timestamp()
DAY = 86400.0


def columns(truth: StationTruth, sid: str) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for table, cols in truth.export().items():
        n = len(next(iter(cols.values())))
        out[table] = {"station_id": np.array([sid] * n, dtype=object), **cols}
    return out


def simulate(days: float, **kw: object) -> tuple[World, dict[str, dict[str, np.ndarray]]]:
    station = StationConfig(
        station_id="S1", name="t", town="t", ownership="private", dialect="int_be",
        transport="tcp",
        tanks=(TankConfig(1, "92", 30), TankConfig(2, "95", 20), TankConfig(3, "0", 50)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 3)),
                    DispenserConfig(3, (3, 3))),
        throughput_l_per_day={"92": 3000.0, "95": 800.0, "0": 6000.0}, truck_share=0.3)
    prices = tuple(PriceChange(START - DAY, g, p) for g, p in (("92", 712), ("95", 761),
                                                                ("0", 701)))
    cfg = WorldConfig(seed=kw.pop("seed", 3), start=START, days=days,  # type: ignore[arg-type]
                      timezone=TZ, stations=(station,), prices=prices,
                      **kw)  # type: ignore[arg-type]
    world = World(cfg)
    truth = StationTruth("S1")
    world.add_listener(truth, streams=LEDGER_STREAMS)
    world.add_truth_listener(truth.on_truth)
    world.run_until(world.end)
    return world, columns(truth, "S1")


# --- the empirical series, by hand ---------------------------------------------------------

def test_daily_variance_follows_the_platform_reconciliation() -> None:
    t0 = START  # a local midnight
    times = np.array([t0, t0 + 43200.0, t0 + DAY, t0 + DAY + 43200.0, t0 + 2 * DAY])
    states = {"station_id": np.array(["A"] * 5, dtype=object), "tank": np.ones(5, int),
              "time": times, "kind": np.array(["interval"] * 5, dtype=object),
              "gauge_volume_20c_l": np.array([10000.0, 9000.0, 8000.0, 16900.0, 15500.0]),
              "gauge_temperature_c": np.array([10.0, 12.0, 14.0, 16.0, 18.0])}
    # fills: two on day 1, one during the drop on day 2, one after it
    te = np.array([t0 + 3600.0, t0 + 50000.0, t0 + DAY + 3700.0, t0 + DAY + 50000.0])
    txns = {"station_id": np.array(["A"] * 4, dtype=object), "tank": np.ones(4, int),
            "grade": np.array(["92"] * 4, dtype=object), "end_time": te,
            "displayed_volume_ml": np.array([1_000_000, 1_000_000, 50_000, 1_400_000])}
    drops = {"station_id": np.array(["A"], dtype=object), "tank": np.ones(1, int),
             "start_time": np.array([t0 + DAY + 3600.0]), "end_time": np.array([t0 + DAY + 7200.0]),
             "start_volume_20c_l": np.array([7900.0]), "end_volume_20c_l": np.array([16950.0]),
             "start_temperature_c": np.array([14.0]), "end_temperature_c": np.array([16.0])}
    [(key, series)] = daily_variance(states, txns, drops, TZ).items()
    assert key == ("A", 1)
    assert list(series.day_start) == [t0, t0 + DAY]
    sales1 = 1000.0 * vcf("92", 10.0) + 1000.0 * vcf("92", 12.0)
    assert series.sales_20c_l[0] == pytest.approx(sales1)
    assert series.variance_l[0] == pytest.approx(10000.0 - sales1 - 8000.0)
    sold_during = 50.0 * vcf("92", 15.0)
    deliv = 16950.0 - 7900.0 + sold_during
    sales2 = 50.0 * vcf("92", 14.0) + 1400.0 * vcf("92", 16.0)
    assert series.deliveries_20c_l[1] == pytest.approx(deliv) and series.n_deliveries[1] == 1
    assert series.variance_l[1] == pytest.approx(8000.0 + deliv - sales2 - 15500.0)
    assert not series.straddle.any()
    # a drop in progress at midnight flags both days it touches
    drops["start_time"] = np.array([t0 + DAY - 600.0])
    drops["end_time"] = np.array([t0 + DAY + 1200.0])
    straddled = daily_variance(states, txns, drops, TZ)[("A", 1)]
    assert straddled.straddle.tolist() == [True, True]


def test_honest_tanks_leave_out_leaks_and_cheated_tanks() -> None:
    tanks = {"station_id": ["A", "A", "B"], "tank": [1, 2, 1], "leak_l_per_h": [0.0, 0.76, 0.0]}
    nozzles = {"station_id": ["A", "A", "B"], "dispenser": [1, 1, 1], "nozzle": [1, 2, 1],
               "tank": [1, 2, 1]}
    assert honest_tanks(tanks, nozzles) == {("A", 1), ("B", 1)}
    cheats = {"station_id": ["B"], "dispenser": [1], "nozzle": [1]}
    assert honest_tanks(tanks, nozzles, cheats) == {("A", 1)}


# --- the budget against a simulated station ------------------------------------------------

def test_budget_sigma_agrees_with_the_simulated_daily_variance() -> None:
    world, cols = simulate(50.0)
    series = daily_variance(cols["tank_states"], cols["transactions"], cols["deliveries"], TZ)
    stats = {k: variance_stats(v) for k, v in series.items()}
    budget = {int(t): (sd, bias) for t, sd, bias in zip(
        cols["tanks"]["tank"], cols["tanks"]["variance_sd_day_l"],
        cols["tanks"]["variance_bias_day_l"], strict=True)}
    for (_, tank), st in stats.items():
        sd, bias = budget[tank]
        assert st.days >= 45
        assert 0.7 < st.sd_l / sd < 1.4, (tank, st.sd_l, sd)
        assert abs(st.mean_l - bias) < 3 * st.sd_l / math.sqrt(st.days) + 0.2 * abs(bias) + 1
        assert 0.05 < st.sd_pct_of_sales < 2.0
    assert 0.05 < median_daily_variance_sd_pct(stats) < 2.0


def test_budget_grows_with_probe_noise_and_the_ideal_world_is_quieter() -> None:
    _, real = simulate(3.0)
    _, noisy = simulate(3.0, probe=ProbeConfig(level_noise_mm=1.0))
    _, ideal = simulate(3.0, imperfections="ideal")
    sd = {name: np.asarray(c["tanks"]["variance_sd_day_l"])
          for name, c in (("real", real), ("noisy", noisy), ("ideal", ideal))}
    assert np.all(sd["noisy"] > sd["real"])
    assert np.all(sd["ideal"] <= sd["real"] + 1e-9)
    month = np.asarray(real["tanks"]["variance_sd_month_l"])
    assert np.all(month > sd["real"])  # a month carries its deliveries' errors


def test_a_skim_shows_as_a_mean_far_outside_the_honest_budget() -> None:
    cheat = CheatConfig("pulse_factor", "S1", 2, 2, START, params={"factor": 1.03})
    _, cols = simulate(20.0, cheats=(cheat,))
    series = daily_variance(cols["tank_states"], cols["transactions"], cols["deliveries"], TZ)
    st = variance_stats(series[("S1", 3)])
    sd = float(np.asarray(cols["tanks"]["variance_sd_day_l"])[2])
    assert st.mean_l < -3 * sd  # books exceed the tank's drop: a gain far beyond the noise
