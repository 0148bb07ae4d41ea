"""What every detector shares: the alert proposal, the detector interface, the evaluation
context (zone, VCF, settings) and small helpers (local days, JSON-safe evidence).

A detector is a pure function of a `StationData` snapshot: `evaluate(data, ctx)` returns
`AlertProposal`s. Causality rule (docs/detectors.md §1): a proposal with `as_of = T` is
decided from data with device time ≤ T only, so evaluating day by day or once at the end
gives the same proposals (same dedup keys, kinds, targets and as_of).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np

from central.vcf import Vcf

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

DEFAULT_ZONE = "Asia/Shanghai"
DAY_S = 86400
FILL_ATTRIBUTIONS = ("end", "apportioned")

# Published alert vocabulary (docs/platform-api.md §5.3, design §1.2).
CHEAT_KINDS = ("tank_gain", "tank_loss", "meter_skim", "idle_loss", "sequence_gap",
               "totalizer_gap", "totalizer_reset", "price_mismatch", "amount_mismatch",
               "parameter_change", "component_change", "seal_broken", "device_offline_sales",
               "delivery_short", "delivery_unbooked", "gauge_frozen", "gauge_step")
# Metrology findings (计量器具检定管理, central/metrology.py): not cheat alerts, the
# supervision of the paperwork (MET-1).
METROLOGY_KINDS = ("verification_expired", "record_unsigned", "seal_mismatch")
OPERATIONAL_KINDS = ("leak_suspected", "water_high", "device_offline")


@dataclass(frozen=True)
class AlertProposal:
    """An alert a detector wants raised; the runner stores it via `central.alerts`.

    `dedup_key` is unique within the station and detector; the same episode always gets the
    same key, so re-evaluation raises nothing new. `as_of` is the detection instant (device
    clock, epoch s): the time up to which the data proving the alert was examined.
    """

    kind: str
    severity: str
    as_of: int
    title: str
    detail: str
    evidence: dict[str, Any]
    dedup_key: str
    device: str | None = None
    nozzle: int | None = None
    tank: int | None = None

    @property
    def target(self) -> tuple[str | None, int | None, int | None]:
        return self.device, self.nozzle, self.tank


@dataclass(frozen=True)
class Settings:
    """Detection settings: per-detector limit overrides and the watermark rules.

    `limit_scale` multiplies every *statistical* limit (CUSUM h, t-statistic limits,
    k-sigma limits, minimum litres of the plausibility checks); arithmetic tolerances
    (price rounding, exact totalizer chains, sequence steps) are not scaled.
    `detect` False: collection only — detection progress advances, no alert is raised (a
    platform before go-live).
    """

    limit_scale: float = 1.0
    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    detect: bool = True
    zone: str = DEFAULT_ZONE
    densities: Mapping[str, float] = field(default_factory=dict)
    max_device_lag_s: int = DAY_S
    fallback_margin_s: int = 3600
    max_defer_s: int = 2 * DAY_S
    # how a fill's product is placed in time between two gauge readings: "end" — all of it
    # at its end_time, as the reconciliation books it (and as the reference simulation
    # draws it, at hang-up); "apportioned" — spread evenly over [start_time, end_time]
    # (real pumps deliver while the nozzle runs)
    fill_attribution: str = "end"
    # False (--no-tax): tax declarations are stored but never compared (central/tax.py)
    tax: bool = True
    # False (--no-metrology): verification records are stored but never audited
    # (central/metrology.py): no verification_expired, record_unsigned, seal_mismatch
    metrology: bool = True

    def __post_init__(self) -> None:
        if self.fill_attribution not in FILL_ATTRIBUTIONS:
            raise ValueError(f"fill_attribution {self.fill_attribution!r}: expected one of "
                             f"{FILL_ATTRIBUTIONS}")
        if not (math.isfinite(self.limit_scale) and self.limit_scale > 0):
            raise ValueError(f"limit_scale must be > 0, got {self.limit_scale!r}")

    def context(self) -> Context:
        return Context(ZoneInfo(self.zone), Vcf(self.densities), self)

    def limits(self, name: str, default: L) -> L:
        """The detector's limits: its defaults with any overrides for `name` applied."""
        over = dict(self.overrides.get(name, {}))
        return dataclasses.replace(default, **over) if over else default


L = TypeVar("L", bound="DataclassInstance")  # a detector's limits: a dataclass


@dataclass
class Context:
    """What a detector may use besides the data."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_ZONE))
    vcf: Vcf = field(default_factory=Vcf)
    settings: Settings = field(default_factory=Settings)
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scale(self) -> float:
        return self.settings.limit_scale

    def note(self, detector: str, message: str, **fields: Any) -> None:
        """A status remark (e.g. nothing to compare against); stored with the progress."""
        item = {"detector": detector, "message": message, **jsonable(fields)}
        if item not in self.notes:
            self.notes.append(item)


class Detector(Protocol):
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]

    def evaluate(self, data: Any, ctx: Context) -> list[AlertProposal]: ...


# -- local days -------------------------------------------------------------------------------
class DayGrid:
    """Local midnights (device clock) covering [t_min, t_max] in a zone, for vectorised
    day indexing: `index(times)` → day number, `start(i)`, `end(i)`, `label(i)`."""

    def __init__(self, zone: ZoneInfo, t_min: float, t_max: float) -> None:
        self.zone = zone
        first = dt.datetime.fromtimestamp(math.floor(t_min), zone).date()
        last = dt.datetime.fromtimestamp(math.floor(t_max), zone).date()
        days = []
        d = first
        while d <= last + dt.timedelta(days=1):
            days.append(d)
            d += dt.timedelta(days=1)
        self.dates = days
        self.starts = np.array([local_midnight(d, zone) for d in days], dtype=np.int64)

    def index(self, times: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, np.asarray(times), side="right") - 1

    def start(self, i: int) -> int:
        return int(self.starts[i])

    def end(self, i: int) -> int:
        return int(self.starts[i + 1])

    def label(self, i: int) -> str:
        return self.dates[i].isoformat()

    def __len__(self) -> int:
        return len(self.dates) - 1


def local_midnight(day: dt.date, zone: ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def local_date(t: float, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(math.floor(t), zone).date().isoformat()


def iso(t: float, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(t, zone).isoformat()


# -- evidence ---------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Evidence made JSON-safe: numpy scalars → Python, floats rounded, NaN → None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        f = float(value)
        return round(f, 6) if math.isfinite(f) else None
    if isinstance(value, np.str_):
        return str(value)
    return value


def litres(ml: float) -> float:
    return round(float(ml) / 1000.0, 3)


# -- decision horizons ------------------------------------------------------------------------
def device_horizon(data: Any, ctx: Context, device: str) -> int:
    """Device time up to which a decision on `device`'s records may be taken: its data is
    complete there, or it has been incomplete for longer than `max_defer_s` (then the
    decision goes ahead on what arrived, and says so)."""
    return max(data.complete_through(device), data.through - ctx.settings.max_defer_s)


def horizons(data: Any, ctx: Context, devices: np.ndarray) -> np.ndarray:
    """`device_horizon` for an array of device names (one lookup per distinct device)."""
    if len(devices) == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(devices, return_inverse=True)
    table = np.array([device_horizon(data, ctx, str(d)) for d in uniq], dtype=np.int64)
    return table[inverse.reshape(-1)]


def tank_horizon(data: Any, ctx: Context, tank: int) -> int:
    return max(data.tank_complete_through(tank), data.through - ctx.settings.max_defer_s)


def first_per_group(keys: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    """Indices of each group of equal `keys`, sorted by (time, index), groups in order of
    their first time: one episode per group."""
    if len(keys) == 0:
        return []
    order = np.lexsort((np.arange(len(keys)), times, keys))
    k = keys[order]
    cuts = np.flatnonzero(k[1:] != k[:-1]) + 1
    groups = np.split(order, cuts)
    groups.sort(key=lambda g: (times[g[0]], g[0]))
    return groups


SEQ_MOD = 65536  # device FIFO sequence numbers wrap at 16 bits (docs/register-map.md)


def sequence_order(device: np.ndarray, time: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Indices in the order each device made its records: by device, then its sequence
    number unwrapped along device-time order. A device's clock can jump (a drift set right,
    an RTC reset to 2000) and its times then lie about what came first; its sequence does
    not, as long as the time order misplaces a record by fewer than 32,768 records."""
    if len(seq) == 0:
        return np.zeros(0, dtype=np.int64)
    rough = np.lexsort((seq, time, device))
    d, s = device[rough], seq[rough].astype(np.int64)
    half = SEQ_MOD // 2
    step = (np.diff(s) + half) % SEQ_MOD - half  # the nearest way round: −32768…32767
    step[d[1:] != d[:-1]] = 0  # each device counts on its own (sorted by device first)
    unwrapped = np.r_[0, np.cumsum(step)]
    return rough[np.lexsort((np.arange(len(rough)), unwrapped, d))]


def complete_in_made_order(data: Any, ctx: Context, stream: str) -> np.ndarray:
    """Indices of the stream's records below their device's completeness horizon, in the
    order each device made them (sequence_order): of each device, the records made before
    the first one beyond the horizon — counting those timed after `through` (data.later).
    A record made later may carry an earlier time (a clock set back) but is no more
    complete than the one before it."""
    device, time, seq, n = data.made_rows(stream)
    order = sequence_order(device, time, seq)
    if len(order) == 0:
        return order
    d = device[order]
    beyond = ((order >= n) | (time[order] > horizons(data, ctx, d))).astype(np.int64)
    seen = np.cumsum(beyond)
    first = np.r_[True, d[1:] != d[:-1]]
    before = (seen - beyond)[first][np.cumsum(first) - 1]  # beyond ones before the device's
    return order[seen == before]


def day_labels(times: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """Local date (YYYY-MM-DD) of each device time, vectorised over a day grid."""
    if len(times) == 0:
        return np.array([], dtype="<U10")
    grid = DayGrid(zone, float(np.min(times)), float(np.max(times)))
    labels = np.array([d.isoformat() for d in grid.dates])
    return labels[grid.index(times)]
