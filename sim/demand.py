"""Customer demand (客户需求): who arrives when, wanting how much, at one station and grade.

Arrivals are a non-homogeneous Poisson process whose rate is piecewise constant per civil
hour: daily litres × weekday factor × hourly weight / mean fill volume. Because the
rate is constant within each hour bin, the process is generated exactly and vectorised:
a Poisson count per bin, then uniform times inside the bin. Every customer attribute
(vehicle, fill type, volume or preset amount, flow rate, handling times) is drawn up
front in numpy and handed to the event loop as Python lists, so the hot path does no
numpy scalar work.

Expected daily sales equal the configured throughput (litres at the nozzle): the weekday
factors average 1 over a week and the hourly weights sum to 1 over a day, and the mean
fill volume of each hour uses the unit price in force then (fixed-amount fills buy fewer
litres when the price is higher).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

# Share of a day's customers in each local hour 0..23: night trough, morning and evening
# peaks (commuters, trucks leaving at dawn), normalised to sum to 1 below.
_HOURLY_RAW = (
    0.6, 0.4, 0.3, 0.3, 0.4, 0.9,    # 00-05
    2.2, 4.6, 6.4, 5.8, 5.0, 4.9,    # 06-11
    5.2, 4.8, 4.7, 5.0, 5.7, 6.8,    # 12-17
    7.0, 6.2, 4.6, 3.4, 2.2, 1.2,    # 18-23
)
HOURLY_WEIGHTS: tuple[float, ...] = tuple(w / sum(_HOURLY_RAW) for w in _HOURLY_RAW)

# Monday..Sunday: busier Friday/Saturday (weekend trips), normalised to mean 1 below.
_WEEKDAY_RAW = (0.97, 0.95, 0.96, 0.98, 1.07, 1.06, 1.01)
WEEKDAY_FACTORS: tuple[float, ...] = tuple(f * 7 / sum(_WEEKDAY_RAW) for f in _WEEKDAY_RAW)


@dataclass(frozen=True)
class FillMix:
    """How customers fill. Volumes are true litres; amounts in fen; times in seconds."""

    car_full_share: float = 0.40  # 加满; the rest prepay a fixed amount
    car_full_l: tuple[float, float] = (25.0, 60.0)  # uniform
    car_amounts_fen: tuple[int, ...] = (10000, 20000, 30000)  # ¥100 / ¥200 / ¥300
    car_amount_probs: tuple[float, ...] = (0.35, 0.45, 0.20)
    truck_full_share: float = 0.50
    truck_full_l: tuple[float, float] = (150.0, 600.0)
    truck_amounts_fen: tuple[int, ...] = (100000, 200000, 300000)  # ¥1000 / ¥2000 / ¥3000
    truck_amount_probs: tuple[float, ...] = (0.30, 0.40, 0.30)
    car_flow_lpm: tuple[float, float, float, float] = (40.0, 4.0, 30.0, 50.0)  # mean, sd, lo, hi
    truck_flow_lpm: tuple[float, float] = (60.0, 90.0)  # uniform (heavy-truck diesel nozzles)
    pre_fill_s: tuple[float, float] = (20.0, 60.0)  # lift, authorise, open the filler cap
    car_post_fill_s: tuple[float, float] = (30.0, 120.0)  # hang up, pay, drive off
    truck_post_fill_s: tuple[float, float] = (60.0, 180.0)

    def mean_fill_l(self, truck_share: float, price_fen: Any) -> Any:
        """Expected true litres per customer at a unit price (fen/L; a float or an array)."""
        car_preset = sum(a * p for a, p in zip(self.car_amounts_fen, self.car_amount_probs,
                                               strict=True))
        truck_preset = sum(a * p for a, p in zip(self.truck_amounts_fen,
                                                 self.truck_amount_probs, strict=True))
        car = (self.car_full_share * sum(self.car_full_l) / 2
               + (1 - self.car_full_share) * car_preset / price_fen)
        truck = (self.truck_full_share * sum(self.truck_full_l) / 2
                 + (1 - self.truck_full_share) * truck_preset / price_fen)
        return (1 - truck_share) * car + truck_share * truck


DEFAULT_MIX = FillMix()


@dataclass(slots=True)
class Customers:
    """Customers of one grade in arrival order, as parallel Python lists (hot-path friendly)."""

    arrival: list[float]  # epoch s
    truck: list[bool]
    full: list[bool]  # True: fill to full (true litres `full_l`); False: prepay `preset_fen`
    full_l: list[float]
    preset_fen: list[int]
    flow_lps: list[float]  # true litres per second through the nozzle
    pre_fill_s: list[float]
    post_fill_s: list[float]
    pick: list[float]  # uniform [0, 1): which free nozzle the customer drives to
    meter_z: list[float]  # standard normal: the fill's meter repeatability scatter

    def __len__(self) -> int:
        return len(self.arrival)


@lru_cache(maxsize=4)  # every grade of every station of a world shares the same bins
def hour_bins(start: float, end: float, tz: ZoneInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split [start, end) at whole UTC hours; returns (edges, local hour, local weekday) with
    the civil labels taken at each bin's midpoint (so half-hour zones label sensibly).
    The arrays are read-only (shared)."""
    if not end > start:
        raise ValueError(f"demand: end ({end!r}) must be after start ({start!r})")
    first = math.floor(start / 3600.0) * 3600.0 + 3600.0
    inner = np.arange(first, end, 3600.0)
    edges = np.concatenate(([start], inner, [end]))
    mids = (edges[:-1] + edges[1:]) / 2
    hours = np.empty(len(mids), dtype=np.int64)
    weekdays = np.empty(len(mids), dtype=np.int64)
    for i, t in enumerate(mids.tolist()):
        local = datetime.fromtimestamp(t, tz)
        hours[i] = local.hour
        weekdays[i] = local.weekday()
    for a in (edges, hours, weekdays):
        a.flags.writeable = False
    return edges, hours, weekdays


def arrival_rates(edges: np.ndarray, hours: np.ndarray, weekdays: np.ndarray,
                  litres_per_day: float, mean_fill_l: np.ndarray) -> np.ndarray:
    """Expected number of customers in each bin."""
    weights = np.asarray(HOURLY_WEIGHTS)[hours] * np.asarray(WEEKDAY_FACTORS)[weekdays]
    hours_in_bin = np.diff(edges) / 3600.0
    return litres_per_day * weights * hours_in_bin / mean_fill_l


def generate_customers(rng: np.random.Generator, *, start: float, end: float, tz: ZoneInfo,
                       litres_per_day: float, truck_share: float,
                       prices_at: Callable[[np.ndarray], np.ndarray],
                       mix: FillMix = DEFAULT_MIX) -> Customers:
    """All customers of one grade at one station over [start, end).

    `prices_at(times)` gives the unit prices (fen/L) in force at an array of times; they set
    how many litres a fixed-amount fill buys and so how many customers make up the daily
    litres.
    `truck_share` is the share of customers in heavy trucks (0 for petrol grades).
    """
    if not (math.isfinite(litres_per_day) and litres_per_day >= 0):
        raise ValueError(f"demand: litres_per_day must be a finite number >= 0, "
                         f"got {litres_per_day!r}")
    if not 0.0 <= truck_share <= 1.0:
        raise ValueError(f"demand: truck_share must be in [0, 1], got {truck_share!r}")
    edges, hours, weekdays = hour_bins(start, end, tz)
    mids = (edges[:-1] + edges[1:]) / 2
    mean_fill = mix.mean_fill_l(truck_share, prices_at(mids).astype(np.float64))
    expected = arrival_rates(edges, hours, weekdays, litres_per_day, mean_fill)
    counts = rng.poisson(expected)
    n = int(counts.sum())
    lengths = np.diff(edges)
    arrival = np.sort(np.repeat(edges[:-1], counts) + rng.random(n) * np.repeat(lengths, counts))

    truck = rng.random(n) < truck_share
    full = rng.random(n) < np.where(truck, mix.truck_full_share, mix.car_full_share)
    full_l = np.where(truck, rng.uniform(*mix.truck_full_l, n), rng.uniform(*mix.car_full_l, n))
    preset = np.where(
        truck,
        rng.choice(np.asarray(mix.truck_amounts_fen), n, p=np.asarray(mix.truck_amount_probs)),
        rng.choice(np.asarray(mix.car_amounts_fen), n, p=np.asarray(mix.car_amount_probs)),
    )
    mean, sd, lo, hi = mix.car_flow_lpm
    car_flow = np.clip(rng.normal(mean, sd, n), lo, hi)
    flow_lpm = np.where(truck, rng.uniform(*mix.truck_flow_lpm, n), car_flow)
    pre = rng.uniform(*mix.pre_fill_s, n)
    post = np.where(truck, rng.uniform(*mix.truck_post_fill_s, n),
                    rng.uniform(*mix.car_post_fill_s, n))
    pick = rng.random(n)
    meter_z = rng.standard_normal(n)  # drawn last: the draws above do not depend on it
    return Customers(
        arrival=arrival.tolist(),
        truck=truck.tolist(),
        full=full.tolist(),
        full_l=full_l.tolist(),
        preset_fen=preset.astype(np.int64).tolist(),
        flow_lps=(flow_lpm / 60.0).tolist(),
        pre_fill_s=pre.tolist(),
        post_fill_s=post.tolist(),
        pick=pick.tolist(),
        meter_z=meter_z.tolist(),
    )
