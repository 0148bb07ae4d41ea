"""Tax declarations (纳税申报): every station files one per declaration period and grade it
sells, and the ground truth keeps each with the sales it should have declared.

The station's books (`TaxBooks`, one per station) take every transaction its dispensers
record. A period is a calendar month in the world's zone (`TaxPolicy.period_days` None), or
`period_days` days counted from the start (a shortened period for short runs); only periods
that end inside the run are declared. At a period's end the books close:

- the *booked* sales of a grade are the fills whose end_time lies in
  [start − cutoff, end − cutoff): the station's daily close (日结) is `booking_cutoff_min`
  before the period ends, so the fills of those last minutes are booked in the next period —
  the honest timing difference, bounded by the sales of `cutoff` minutes at each end;
- an honest declaration states the booked volume (mL) and amount (fen); its tax base is the
  amount without VAT (prices include it) and its tax the VAT on that base;
- a cheat of the kind `tax_under_declaration` (sim/cheats/tax_under_declaration.py) may
  declare only a share of the books, or omit a grade (no declaration at all);
- the *true* sales of the period are the fills whose end_time lies in [start, end) — what
  a platform that holds every transaction sums for the period.

Each declaration is a truth record `tax_declaration` made at the period's end (table
`tax_declarations`, docs/ground-truth.md), stamped with the instant it is filed
(`filed_at`: the end + `filing_lag_h`) and carrying the JSON body of POST
/api/v1/tax-declarations (docs/platform-api.md §5.8) the harness posts once the world has
reached `filed_at`. Nothing here draws random numbers: the declarations follow from the
transactions, the scenario and its cheats.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import simpy

from sim.config import TaxPolicy

AUTHORITY = "旗税务局"  # the banner's taxation bureau, to whom the stations declare
MONTH_PERIOD = "calendar month"


@dataclass(frozen=True, slots=True)
class TaxDeclaration:
    """One station's declaration for one period and grade, with the sales it should state."""

    station_id: str
    period_start: float  # epoch s (whole seconds)
    period_end: float  # epoch s, exclusive
    grade: str
    reference: str  # the declaration number; unique per station
    filed: bool  # False: the grade was left out of the declaration (nothing was filed)
    filed_at: float  # epoch s: when the station files it (the harness posts it then)
    booked_from: float  # the station's books of the period: fills ending in [from, to)
    booked_to: float
    declared_volume_ml: int
    declared_amount_fen: int
    declared_tax_base_fen: int  # amount without VAT
    declared_tax_fen: int  # VAT on the base
    true_volume_ml: int  # fills recorded with end_time in [period_start, period_end)
    true_amount_fen: int
    true_transactions: int
    gap_volume_ml: int  # true − declared (> 0: less declared than sold)
    gap_amount_fen: int
    under_declared: bool  # a cheat changed this declaration
    cheat: int  # that cheat's index, −1 for none
    declared_share: float  # declared / booked as the cheat set it (1 honest, 0 omitted)
    body: str  # JSON body of POST /api/v1/tax-declarations ("" when not filed)


class DeclarationRule(Protocol):
    """A cheat that changes declarations: `shares(period_no)` at each period's close returns
    {grade: share declared, None = grade omitted} for the grades it changes, or None when it
    leaves this period alone. The litres it kept off the declarations go to its `effect_l`."""

    index: int
    effect_l: float

    def shares(self, period_no: int, grades: tuple[str, ...]) -> dict[str, float | None] | None: ...


def period_bounds(start: float, end: float, policy: TaxPolicy,
                  zone: ZoneInfo) -> list[tuple[int, int]]:
    """[(period_start, period_end)] of the periods ending inside (start, end], whole seconds.

    Calendar months begin at local midnight on the 1st (the first may begin before `start`:
    the books only hold what the run sold); fixed periods are counted from `start`."""
    out: list[tuple[int, int]] = []
    if policy.period_days is not None:
        length = policy.period_days * 86400.0
        k = 1
        while start + k * length <= end + 1e-6:
            out.append((round(start + (k - 1) * length), round(start + k * length)))
            k += 1
        return out
    first = dt.datetime.fromtimestamp(start, zone)
    month = dt.datetime(first.year, first.month, 1, tzinfo=zone)
    while True:
        nxt = (month + dt.timedelta(days=32)).replace(day=1)
        a, b = round(month.timestamp()), round(nxt.timestamp())
        if b > end + 1e-6:
            return out
        if b > start:
            out.append((a, b))
        month = nxt


def describe_period(policy: TaxPolicy) -> str:
    """The declaration period in words (records and reports)."""
    if policy.period_days is None:
        return MONTH_PERIOD
    return f"{policy.period_days:g} day(s)"


def vat_split(amount_fen: int, rate: float) -> tuple[int, int]:
    """(tax base, tax) of an amount that includes VAT, in fen."""
    base = round(amount_fen / (1.0 + rate))
    return base, round(base * rate)


class TaxBooks:
    """A station's books (账簿) and its declaration process."""

    def __init__(self, station_id: str, grades: Iterable[str], start: float, end: float,
                 policy: TaxPolicy, zone: ZoneInfo,
                 record_truth: Callable[[str, object], None]) -> None:
        self.station_id = station_id
        self.grades = tuple(grades)
        self.policy = policy
        self.zone = zone
        self.periods = period_bounds(start, end, policy, zone)
        self._ends = [b for _, b in self.periods]
        self._cutoff_s = policy.booking_cutoff_min * 60.0
        self._record_truth = record_truth
        # (period number, grade) -> [volume mL, amount fen, fills]
        self._true: dict[tuple[int, str], list[int]] = {}
        self._booked: dict[tuple[int, str], list[int]] = {}
        self.rules: list[DeclarationRule] = []

    def add_rule(self, rule: DeclarationRule) -> None:
        self.rules.append(rule)

    def add(self, end_time: float, grade: str, volume_ml: int, amount_fen: int) -> None:
        """A transaction the dispensers recorded (a fill kept off the FIFO is not on the books)."""
        for bins, t in ((self._true, end_time), (self._booked, end_time + self._cutoff_s)):
            k = bisect.bisect_right(self._ends, t)
            if k < len(self._ends) and t >= self.periods[k][0]:
                acc = bins.setdefault((k, grade), [0, 0, 0])
                acc[0] += volume_ml
                acc[1] += amount_fen
                acc[2] += 1

    def process(self, env: simpy.Environment) -> Generator[simpy.Event, Any, None]:
        """Close the books at each period's end and make its declarations."""
        for k, (_, b) in enumerate(self.periods):
            yield env.timeout(max(0.0, b - env.now))
            for decl in self.close(k):
                self._record_truth("tax_declaration", decl)

    def close(self, k: int) -> list[TaxDeclaration]:
        """The declarations of period k, one per grade sold (its books are complete now)."""
        changes: list[tuple[DeclarationRule, dict[str, float | None]]] = []
        for rule in self.rules:
            got = rule.shares(k, self.grades)
            if got:
                changes.append((rule, got))
        out = []
        for grade in self.grades:
            booked = self._booked.pop((k, grade), [0, 0, 0])
            true = self._true.pop((k, grade), [0, 0, 0])
            share: float | None = 1.0
            cheat = -1
            for rule, got in changes:
                if grade in got:
                    cheat = rule.index if cheat < 0 else cheat
                    part = got[grade]
                    share = None if share is None or part is None else share * part
            out.append(self._declaration(k, grade, booked, true, share, cheat))
            if cheat >= 0:
                rule = next(r for r, _ in changes if r.index == cheat)
                rule.effect_l += (booked[0] - out[-1].declared_volume_ml) / 1000.0
        return out

    def _declaration(self, k: int, grade: str, booked: list[int], true: list[int],
                     share: float | None, cheat: int) -> TaxDeclaration:
        a, b = self.periods[k]
        filed = share is not None
        factor = 0.0 if share is None else share
        volume = booked[0] if factor == 1.0 else math.floor(booked[0] * factor + 0.5)
        amount = booked[1] if factor == 1.0 else math.floor(booked[1] * factor + 0.5)
        base, tax = vat_split(amount, self.policy.vat_rate)
        filed_at = b + self.policy.filing_lag_h * 3600.0
        reference = self.reference(a, grade)
        body = ""
        if filed:
            start_text, end_text = self._period_text(a, b)
            body = json.dumps({
                "station_id": self.station_id, "period_start": start_text,
                "period_end": end_text, "grade": grade, "declared_volume_ml": volume,
                "declared_sales_fen": amount, "declared_tax_fen": tax,
                "declared_at": dt.datetime.fromtimestamp(filed_at, self.zone).isoformat(),
                "authority": AUTHORITY, "reference": reference},
                ensure_ascii=False, sort_keys=True)
        return TaxDeclaration(
            self.station_id, float(a), float(b), grade, reference, filed, filed_at,
            a - self._cutoff_s, b - self._cutoff_s, volume if filed else 0,
            amount if filed else 0, base if filed else 0, tax if filed else 0,
            true[0], true[1], true[2], true[0] - (volume if filed else 0),
            true[1] - (amount if filed else 0), cheat >= 0, cheat, factor, body)

    def reference(self, period_start: int, grade: str) -> str:
        local = dt.datetime.fromtimestamp(period_start, self.zone)
        return f"TAX-{self.station_id}-{local:%Y%m%dT%H%M}-{grade}"

    def _period_text(self, a: int, b: int) -> tuple[str, str]:
        """Calendar months as the tax form writes them (first and last day, inclusive); a
        shortened period as ISO 8601 date-times with the offset (half-open)."""
        start = dt.datetime.fromtimestamp(a, self.zone)
        end = dt.datetime.fromtimestamp(b, self.zone)
        if self.policy.period_days is None:
            return start.date().isoformat(), (end - dt.timedelta(days=1)).date().isoformat()
        return start.isoformat(), end.isoformat()
