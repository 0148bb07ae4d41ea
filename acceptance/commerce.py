"""The ground truth's commerce figures (商务运行分析的真值): what GET /api/v1/commerce/sales and
/commerce/stock-balance of a correct platform show for a run (docs/platform-api.md §5.15).

Computed from what the devices showed — `acceptance.compare.expected_records`: displayed
volumes and amounts, the gauge's readings and delivery records, in the uplink's integer
units and on the devices' clocks — with each station's town, ownership and tank grades from
the run's fleet ledger. The harness computes the published definitions itself; it never
imports the reference platform (central/).

- Sales cells: per (month, town, ownership, grade), the stations that sold, transactions,
  Σ volume_ml and Σ amount_fen; a transaction belongs to the local calendar month of its
  `end_time`.
- Stock balances, per station, tank and month: opening = the last reading at or before
  the month's start (else the tank's first reading), closing = the last reading at or
  before its end; sales with opening_time < end_time ≤ closing_time, each converted to 20 °C
  with the temperature of the reading before it (`sim.vcf`: the grade's nominal density, as
  the gauge and the platform assume); deliveries ending in (opening_time, closing_time]:
  the gauge's end − start plus the sales during the drop at the drop's mean temperature;
  variance = opening + received − sold − closing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sim.vcf import vcf

SALES_KEY = ("month", "town", "ownership", "grade")
SALES_VALUES = ("stations", "transactions", "volume_ml", "amount_fen")
BALANCE_KEY = ("station_id", "tank", "month")
# compared exactly (the devices' own figures) / within the 20 °C conversion tolerance
BALANCE_EXACT = ("grade", "opening_time", "opening_volume_20c_ml", "closing_time",
                 "closing_volume_20c_ml", "deliveries", "bol_volume_20c_ml",
                 "deliveries_without_bol", "transactions", "sales_ml")
BALANCE_CONVERTED = ("sales_20c_ml", "received_20c_ml", "variance_ml")
BALANCE_COLUMNS = tuple(dict.fromkeys([*BALANCE_KEY, "partial", *BALANCE_EXACT,
                                       *BALANCE_CONVERTED]))


@dataclass(frozen=True)
class Month:
    label: str  # YYYY-MM
    start: int  # epoch s of its local start
    end: int  # epoch s of the next month's start


def month_of(t: int, zone: ZoneInfo) -> Month:
    local = dt.datetime.fromtimestamp(t, zone)
    year, month = local.year, local.month
    nxt = (year + month // 12, month % 12 + 1)
    return Month(f"{year:04d}-{month:02d}",
                 int(dt.datetime(year, month, 1, tzinfo=zone).timestamp()),
                 int(dt.datetime(*nxt, 1, tzinfo=zone).timestamp()))


def months(first: float, last: float, zone: ZoneInfo) -> list[Month]:
    """The calendar months from the one holding `first` to the one holding `last`."""
    out = [month_of(int(first), zone)]
    while out[-1].end <= last:
        out.append(month_of(out[-1].end, zone))
    return out


def month_labels(t: np.ndarray, zone: ZoneInfo) -> np.ndarray:
    """YYYY-MM of each epoch second in `zone`."""
    if len(t) == 0:
        return np.array([], dtype=object)
    local = pd.to_datetime(np.asarray(t, dtype=np.int64), unit="s", utc=True)
    return np.asarray(local.tz_convert(zone.key).strftime("%Y-%m"), dtype=object)


def partial_months(start: float, end: float, zone: ZoneInfo) -> dict[str, bool]:
    """Each month the run [start, end) touches → True when only part of it is inside."""
    return {m.label: start > m.start or end < m.end
            for m in months(start, max(start, end - 1), zone)}


# ---- sales ------------------------------------------------------------------------------

def truth_sales(transactions: pd.DataFrame, fleet: Sequence[Mapping[str, Any]],
                zone: ZoneInfo) -> pd.DataFrame:
    """Sales cells of the expected transactions (station_id, grade, end_time, volume_ml,
    amount_fen), one row per SALES_KEY with SALES_VALUES, sorted by the key."""
    town = {str(r["station_id"]): str(r["town"]) for r in fleet}
    owner = {str(r["station_id"]): str(r["ownership"]) for r in fleet}
    sid = transactions["station_id"].astype(str)
    unknown = sorted(set(sid.unique()) - set(town))
    if unknown:
        raise ValueError(f"transactions of station(s) {unknown} that the fleet ledger "
                         f"does not list")
    df = pd.DataFrame({
        "month": month_labels(transactions["end_time"].to_numpy(np.int64), zone),
        "town": sid.map(town).to_numpy(), "ownership": sid.map(owner).to_numpy(),
        "grade": transactions["grade"].astype(str).to_numpy(), "station_id": sid.to_numpy(),
        "volume_ml": transactions["volume_ml"].to_numpy(np.int64),
        "amount_fen": transactions["amount_fen"].to_numpy(np.int64)})
    if not len(df):
        return pd.DataFrame(columns=[*SALES_KEY, *SALES_VALUES])
    cells = df.groupby(list(SALES_KEY), sort=True).agg(
        stations=("station_id", "nunique"), transactions=("station_id", "size"),
        volume_ml=("volume_ml", "sum"), amount_fen=("amount_fen", "sum")).reset_index()
    return cells.astype({k: np.int64 for k in SALES_VALUES})


def merge_sales(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The sales cells of several sets of stations (truth_sales of each), as truth_sales
    of them all would give: a station is in one part only, so the counts add up."""
    cells = [p for p in parts if len(p)]
    if not cells:
        return pd.DataFrame(columns=[*SALES_KEY, *SALES_VALUES])
    return (pd.concat(cells, ignore_index=True).groupby(list(SALES_KEY), sort=True)
            [list(SALES_VALUES)].sum().reset_index().astype({k: np.int64 for k in SALES_VALUES}))


# ---- stock balances ---------------------------------------------------------------------

def _vcf(grade: str, temperature_mc: np.ndarray) -> np.ndarray:
    """VCF per temperature (m°C), once per distinct value."""
    uniq, inverse = np.unique(np.asarray(temperature_mc, dtype=np.int64), return_inverse=True)
    table = np.array([vcf(grade, float(t) / 1000.0) for t in uniq])
    return table[inverse.reshape(-1)] if len(uniq) else np.zeros(0)


def _tank_balances(station_id: str, tank: int, grade: str, readings: pd.DataFrame,
                   tx: pd.DataFrame, drops: pd.DataFrame, zone: ZoneInfo
                   ) -> list[dict[str, Any]]:
    readings = readings.sort_values("device_time", kind="stable")
    rt = readings["device_time"].to_numpy(np.int64)
    rv = readings["volume_20c_ml"].to_numpy(np.int64)
    rtemp = readings["temperature_mc"].to_numpy(np.int64)
    end = tx["end_time"].to_numpy(np.int64)
    vol = tx["volume_ml"].to_numpy(np.int64)
    before = np.searchsorted(rt, end, "left") - 1  # the reading before each fill
    v20 = np.zeros(len(tx))
    for g in np.unique(tx["grade"].astype(str).to_numpy()):
        sel = (tx["grade"].astype(str).to_numpy() == g) & (before >= 0)
        v20[sel] = vol[sel] * _vcf(str(g), rtemp[before[sel]])
    d_start = drops["start_time"].to_numpy(np.int64)
    d_end = drops["end_time"].to_numpy(np.int64)
    received = (drops["end_volume_20c_ml"].to_numpy(np.int64)
                - drops["start_volume_20c_ml"].to_numpy(np.int64)).astype(float)
    temps = (drops["start_temperature_mc"].to_numpy(np.int64)
             + drops["end_temperature_mc"].to_numpy(np.int64))
    for k in range(len(drops)):  # sales during the drop, at its mean temperature
        during = int(vol[(end >= d_start[k]) & (end <= d_end[k])].sum())
        if during:
            received[k] += during * vcf(grade, float(temps[k]) / 2000.0)
    bol = (pd.to_numeric(drops["bol_volume_20c_ml"], errors="coerce").fillna(0)
           .to_numpy(np.int64) if "bol_volume_20c_ml" in drops.columns
           else np.zeros(len(drops), dtype=np.int64))
    out = []
    for m in months(rt[0], rt[-1], zone):
        i_open = max(0, int(np.searchsorted(rt, m.start, "right")) - 1)
        i_close = int(np.searchsorted(rt, m.end, "right")) - 1
        if i_close < 0 or rt[i_close] <= rt[i_open]:
            continue
        t_open, t_close = int(rt[i_open]), int(rt[i_close])
        sold_sel = (end > t_open) & (end <= t_close)
        drop_sel = (d_end > t_open) & (d_end <= t_close)
        sold, recv = round(float(v20[sold_sel].sum())), round(float(received[drop_sel].sum()))
        out.append({
            "station_id": station_id, "tank": tank, "grade": grade, "month": m.label,
            "partial": t_open > m.start or t_close < m.end,
            "opening_time": t_open, "opening_volume_20c_ml": int(rv[i_open]),
            "deliveries": int(drop_sel.sum()), "received_20c_ml": recv,
            "bol_volume_20c_ml": int(bol[drop_sel & (bol > 0)].sum()),
            "deliveries_without_bol": int((drop_sel & (bol <= 0)).sum()),
            "transactions": int(sold_sel.sum()), "sales_ml": int(vol[sold_sel].sum()),
            "sales_20c_ml": sold, "closing_time": t_close,
            "closing_volume_20c_ml": int(rv[i_close]),
            "variance_ml": int(rv[i_open]) + recv - sold - int(rv[i_close])})
    return out


def truth_balances(expected: Mapping[str, pd.DataFrame], fleet: Sequence[Mapping[str, Any]],
                   zone: ZoneInfo) -> pd.DataFrame:
    """Monthly balances of every tank with readings, from the expected records of the
    inventory, transactions and deliveries streams; one row per BALANCE_KEY."""
    grades = {(str(r["station_id"]), int(t["tank"])): str(t["grade"])
              for r in fleet for t in r["tanks"]}
    inv, tx, dl = expected["inventory"], expected["transactions"], expected["deliveries"]
    tx_by = dict(iter(tx.groupby(["station_id", "tank"]))) if len(tx) else {}
    dl_by = dict(iter(dl.groupby(["station_id", "tank"]))) if len(dl) else {}
    rows: list[dict[str, Any]] = []
    groups = cast(Iterable[tuple[tuple[str, int], pd.DataFrame]],
                  inv.groupby(["station_id", "tank"]) if len(inv) else [])
    for (sid, tank), readings in groups:
        key = (str(sid), int(tank))
        if key not in grades:
            raise ValueError(f"inventory of station {sid} tank {tank}, which the fleet "
                             f"ledger does not list")
        rows += _tank_balances(key[0], key[1], grades[key], readings,
                               tx_by.get((sid, tank), tx.iloc[0:0]),
                               dl_by.get((sid, tank), dl.iloc[0:0]), zone)
    return pd.DataFrame(rows, columns=list(BALANCE_COLUMNS))


@dataclass(frozen=True)
class FigurePart:
    """One station's truth sales cells and stock balances from its expected records, or why
    not (ValueError's message): picklable, for a comparison's worker processes
    (acceptance/station_compare.py `compare_parquet`)."""

    fleet: Sequence[Mapping[str, Any]]
    zone: ZoneInfo

    def __call__(self, expected: Mapping[str, pd.DataFrame]
                 ) -> tuple[pd.DataFrame, pd.DataFrame] | str:
        try:
            return (truth_sales(expected["transactions"], self.fleet, self.zone),
                    truth_balances(expected, self.fleet, self.zone))
        except ValueError as exc:
            return str(exc)


class TruthFigures:
    """The truth's sales cells and stock balances of a run, built station by station from
    each station's expected records (`add`), so memory does not grow with the run's length.
    `add` raises ValueError for a station or tank the ledger does not describe."""

    def __init__(self, fleet: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> None:
        self.fleet, self.zone = fleet, zone
        self._sales: list[pd.DataFrame] = []
        self._balances: list[pd.DataFrame] = []

    def add(self, expected: Mapping[str, pd.DataFrame]) -> None:
        self.add_part(FigurePart(self.fleet, self.zone)(expected))

    def add_part(self, part: tuple[pd.DataFrame, pd.DataFrame] | str) -> None:
        """A station's figures as `FigurePart` made them (its error message: ValueError)."""
        if isinstance(part, str):
            raise ValueError(part)
        self._sales.append(part[0])
        self._balances.append(part[1])

    def result(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(sales cells, stock balances) of every station added."""
        balances = [b for b in self._balances if len(b)]
        return merge_sales(self._sales), (pd.concat(balances, ignore_index=True) if balances
                                          else pd.DataFrame(columns=list(BALANCE_COLUMNS)))
