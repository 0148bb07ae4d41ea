"""Fuel deliveries (进油/卸油): reorder, tanker delay, bill of lading vs physical drop.

When a tank's gross volume falls below `reorder_fraction` of its capacity (and it has no
open order), the station orders whole tanker compartments up to `fill_target` of the
capacity, less what it expects to sell before the tanker arrives. The tanker arrives after
a uniform lead time; the bill of lading (提单) states the ordered compartments at 20 °C,
but a little is lost in transit, and the product arrives at the tanker's temperature
(warmer than the ground in summer, colder in winter). If the tank cannot take every
compartment (sales were slower than expected), the driver drops only the whole
compartments that fit below `MAX_FILL` and the bill of lading covers just those.

The drop runs at `drop_rate_l_per_min` in one-minute portions while sales go on; the
gauge flags "delivery in progress" from the start of the drop until it closes the
delivery `SETTLE_S` after the product stopped (a gauge waits for the surface to settle),
and records the start and end readings.

Cheats and honest look-alikes change drops through `add_adjuster` (a DropPlan per drop:
warmer product, a short drop, a BOL not keyed in) and `extra_drop` (an off-book tanker);
the station keys in the full BOL (`bol_keyed_20c_l`) unless a plan says otherwise.

Each drop is a batch with its own density at 20 °C (inside the grade's band) and leaves the
tank stratified for a while, so the probe's averaged temperature misses the true mean
(`sim.probe.GaugeErrors`; docs/noise-budget.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import simpy

from sim.config import DeliveryPolicy
from sim.imperfections import stratification_gain
from sim.probe import GaugeErrors
from sim.records import DeliveryRecord, GaugeReading
from sim.tank import Tank
from sim.thermal import ground_temperature_c
from sim.vcf import alpha_for_density, vcf_alpha

MAX_FILL = 0.95  # never fill a tank above this fraction of its capacity (overfill margin)
SETTLE_S = 600.0  # the gauge closes a delivery this long after the product stopped
DROP_STEP_S = 60.0
EVENT_DELIVERY_START = 50
EVENT_DELIVERY_END = 51

# Air temperature at Urad Middle Banner: coldest mid-January (≈ −11 °C mean), warmest
# mid-July (≈ +23 °C), ±6 °C over the day with the maximum mid-afternoon.
AIR_MEAN_C = 6.0
AIR_SEASONAL_AMPLITUDE_C = 17.0
AIR_COLDEST_DAY = 15.0
AIR_DIURNAL_AMPLITUDE_C = 6.0
AIR_DIURNAL_PEAK_H = 15.0
TANKER_AIR_COUPLING = 0.4  # the tanker's load moves this far from depot (ground) to air temp
TANKER_TEMP_SD_C = 1.0


def air_temperature_c(epoch_s: float, utc_offset_h: float = 8.0) -> float:
    local_days = (epoch_s + utc_offset_h * 3600.0) / 86400.0
    seasonal = -AIR_SEASONAL_AMPLITUDE_C * math.cos(
        2.0 * math.pi * (local_days - AIR_COLDEST_DAY) / 365.2425)
    hour = (local_days % 1.0) * 24.0
    diurnal = AIR_DIURNAL_AMPLITUDE_C * math.cos(2.0 * math.pi * (hour - AIR_DIURNAL_PEAK_H) / 24)
    return AIR_MEAN_C + seasonal + diurnal


def tanker_temperature_c(epoch_s: float, utc_offset_h: float, rng: np.random.Generator) -> float:
    """Product temperature in an arriving tanker: loaded at depot (≈ ground) temperature,
    drawn towards the air temperature on the road."""
    ground = ground_temperature_c(epoch_s, utc_offset_h)
    air = air_temperature_c(epoch_s, utc_offset_h)
    return ground + TANKER_AIR_COUPLING * (air - ground) + float(rng.normal(0.0, TANKER_TEMP_SD_C))


class DeliveryTank(Protocol):
    tank: int
    grade: str
    capacity_l: float
    physics: Tank
    gauge_errors: GaugeErrors
    order_open: bool
    delivering: bool


class Snapshot(Protocol):
    reading: GaugeReading


class DeliveryHost(Protocol):
    """What the delivery process needs from its station."""

    env: simpy.Environment
    station_id: str
    utc_offset_h: float

    def snapshot(self, unit: Any, time: float, kind: str) -> Snapshot: ...

    def gauge_event(self, code: int, name: str, unit: int, value_old: float,
                    value_new: float) -> None: ...

    def next_delivery_seq(self) -> int: ...

    def emit_delivery(self, record: DeliveryRecord) -> None: ...


@dataclass
class DropPlan:
    """What cheats and honest look-alikes change about one drop (sim/cheats/delivery.py)."""

    temperature_delta_c: float = 0.0  # added to the tanker's temperature
    short_fraction: float = 0.0  # share of the drop withheld (the BOL stays)
    keyed: bool = True  # the BOL is keyed in at the gauge console
    done: list[Callable[[DeliveryRecord], None]] = field(default_factory=list)


# (unit, drop start, order tag, plan) -> None; changes the plan of a drop of its tank
DropAdjuster = Callable[[Any, float, object, DropPlan], None]


class DeliveryManager:
    """Reorders and drops fuel for every tank of one station."""

    def __init__(self, host: DeliveryHost, policy: DeliveryPolicy, rng: np.random.Generator,
                 sales_l_per_s: dict[int, float]) -> None:
        _check_policy(policy)
        self.host = host
        self.policy = policy
        self.rng = rng
        self.sales_l_per_s = sales_l_per_s  # expected sales per tank number
        self.ordered = 0
        self.dropped = 0
        self.cancelled = 0
        self.adjusters: dict[int, list[DropAdjuster]] = {}  # tank -> drop adjusters (cheats)

    def add_adjuster(self, tank: int, adjuster: DropAdjuster) -> None:
        """Let `adjuster` change the plan of every drop into `tank` (called at its start)."""
        self.adjusters.setdefault(tank, []).append(adjuster)

    def extra_drop(self, unit: DeliveryTank, compartments: int, tag: object) -> bool:
        """Start an extra drop of `compartments` now (an off-book tanker), tagged `tag` for the
        adjusters; False (nothing happens) while the tank has an order open."""
        if unit.order_open:
            return False
        unit.order_open = True
        self.host.env.process(self._drop(unit, self.host.env.now, 0.0, compartments, tag))
        return True

    def _plan(self, unit: DeliveryTank, start: float, tag: object) -> DropPlan | None:
        adjusters = self.adjusters.get(unit.tank)
        if not adjusters:
            return None
        plan = DropPlan()
        for adjust in adjusters:
            adjust(unit, start, tag, plan)
        return plan

    def check(self, unit: DeliveryTank) -> None:
        """Order for `unit` if it is below the reorder point and has no open order."""
        if unit.order_open:
            return
        if unit.physics.gross_l >= self.policy.reorder_fraction * unit.capacity_l:
            return
        self._order(unit)

    def _order(self, unit: DeliveryTank) -> None:
        p = self.policy
        now = self.host.env.now
        lead_s = float(self.rng.uniform(*p.lead_time_h)) * 3600.0
        expected_at_arrival = unit.physics.gross_l - self.sales_l_per_s.get(unit.tank, 0.0) * lead_s
        room = p.fill_target * unit.capacity_l - max(0.0, expected_at_arrival)
        compartments = max(1, math.floor(room / p.compartment_l))
        unit.order_open = True
        self.ordered += 1
        self.host.env.process(self._drop(unit, now, lead_s, compartments))

    def _drop(self, unit: DeliveryTank, ordered_time: float, lead_s: float,
              compartments: int, tag: object = None) -> Generator[simpy.Event, Any, None]:
        p, env, host, tank = self.policy, self.host.env, self.host, unit.physics
        yield env.timeout(lead_s)
        start = env.now
        tank.advance(start)
        temp = tanker_temperature_c(start, host.utc_offset_h, self.rng)
        plan = self._plan(unit, start, tag)  # None unless a cheat acts on this tank's drops
        if plan is not None:
            temp += plan.temperature_delta_c
        density, strat = unit.gauge_errors.new_batch()  # this batch's density, stratification
        batch_alpha = alpha_for_density(density)
        loss = min(max(float(self.rng.normal(p.transit_loss, p.transit_loss / 3)), 0.0),
                   3 * p.transit_loss)
        compartment_gross = p.compartment_l * (1.0 - loss) / vcf_alpha(batch_alpha, temp)
        room_gross = MAX_FILL * unit.capacity_l - tank.total_l
        compartments = min(compartments, math.floor(room_gross / compartment_gross))
        if compartments <= 0:  # the tank cannot take a whole compartment: tanker turns back
            self.cancelled += 1
            unit.order_open = False
            return
        bol_20c = compartments * p.compartment_l
        drop_20c = bol_20c * (1.0 - loss)
        if plan is not None:
            drop_20c *= 1.0 - plan.short_fraction
        drop_gross = drop_20c / vcf_alpha(batch_alpha, temp)
        duration = drop_gross / p.drop_rate_l_per_min * 60.0

        before = host.snapshot(unit, start, "pre_delivery")
        share = drop_gross / (tank.gross_l + drop_gross)
        unit.gauge_errors.stratify(start, start + duration, strat * (temp - tank.temperature_c)
                                   * stratification_gain(share))
        unit.delivering = True
        host.gauge_event(EVENT_DELIVERY_START, "delivery_start", unit.tank, 0.0,
                         before.reading.gross_l)
        steps = max(1, math.ceil(duration / DROP_STEP_S))
        portion = drop_20c / steps
        for k in range(1, steps + 1):
            yield env.timeout(max(0.0, start + duration * k / steps - env.now))
            tank.advance(env.now)
            tank.deliver(portion, temp, density)
        end = start + duration + SETTLE_S
        yield env.timeout(max(0.0, end - env.now))
        tank.advance(env.now)
        after = host.snapshot(unit, end, "post_delivery")
        unit.delivering = False
        host.gauge_event(EVENT_DELIVERY_END, "delivery_end", unit.tank, before.reading.gross_l,
                         after.reading.gross_l)
        record = DeliveryRecord(
            station_id=host.station_id, tank=unit.tank, seq=host.next_delivery_seq(),
            grade=unit.grade, ordered_time=ordered_time, start_time=start, end_time=end,
            bol_volume_20c_l=bol_20c, true_drop_20c_l=drop_20c, true_drop_gross_l=drop_gross,
            delivery_temperature_c=temp, start_reading=before.reading,
            end_reading=after.reading, density_20c_kg_m3=density,
            bol_keyed_20c_l=bol_20c if plan is None or plan.keyed else 0.0)
        host.emit_delivery(record)
        self.dropped += 1
        unit.order_open = False
        if plan is not None:
            for done in plan.done:
                done(record)
        self.check(unit)


def _check_policy(p: DeliveryPolicy) -> None:
    lo, hi = p.lead_time_h
    problems = []
    if not 0 < p.reorder_fraction < p.fill_target <= MAX_FILL:
        problems.append(f"need 0 < reorder_fraction ({p.reorder_fraction}) < fill_target "
                        f"({p.fill_target}) <= {MAX_FILL}")
    if not 0 <= lo <= hi:
        problems.append(f"lead_time_h must be (low, high) with 0 <= low <= high, got {p.lead_time_h}")
    if not p.compartment_l > 0:
        problems.append(f"compartment_l must be > 0, got {p.compartment_l}")
    if not 0 <= p.transit_loss < 0.05:
        problems.append(f"transit_loss must be in [0, 0.05), got {p.transit_loss}")
    if not p.drop_rate_l_per_min > 0:
        problems.append(f"drop_rate_l_per_min must be > 0, got {p.drop_rate_l_per_min}")
    if problems:
        raise ValueError("deliveries: " + "; ".join(problems))

