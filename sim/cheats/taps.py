"""Per-fill hooks: how a cheat acts on the fills of one nozzle.

The station keeps `nozzle.hook = None` for an honest nozzle (the hot path pays one
attribute test per call site). A cheat that acts on fills installs a `Tap` on the nozzle;
the station then calls the nozzle's `NozzleHook`, which runs every installed tap in
installation order:

1. `charge(nozzle, price)` when the nozzle is lifted: the unit price charged (fen/L);
2. `measure(nozzle, full, price, shown_ml, amount_fen, true_l)`: the fill as the meter
   measured it, possibly changed (shown mL, amount fen, true litres);
3. `lifted(nozzle)` once the fill is authorised (its values are `nozzle.fill()`);
4. `settle(nozzle, drawn_20c_l)` at hang-up: NORMAL, or HIDE (the fill never enters the
   FIFO; the totalizer counts it) or HIDE_UNCOUNTED (the totalizer does not count it
   either). The first tap that hides a fill gets `hidden(...)` to record it.
"""

from __future__ import annotations

from typing import Any, Protocol

NORMAL, HIDE, HIDE_UNCOUNTED = 0, 1, 2


class HookedNozzle(Protocol):
    """What a tap sees of a nozzle (sim.station.Nozzle)."""

    nozzle: int
    grade: str
    meter: Any
    hook: NozzleHook | None

    @property
    def tank(self) -> int: ...

    def fill(self) -> tuple[float, float, float, int, int, int]: ...


class Tap:
    """One cheat's per-fill behaviour on one nozzle; override what the cheat needs."""

    def charge(self, nozzle: HookedNozzle, price: int) -> int:
        return price

    def measure(self, nozzle: HookedNozzle, full: bool, price: int, shown: int, amount: int,
                true_l: float) -> tuple[int, int, float]:
        return shown, amount, true_l

    def lifted(self, nozzle: HookedNozzle) -> None:
        pass

    def settle(self, nozzle: HookedNozzle, drawn_20c_l: float) -> int:
        return NORMAL

    def hidden(self, nozzle: HookedNozzle, drawn_20c_l: float, counted: bool) -> None:
        pass


class NozzleHook:
    """The taps installed on one nozzle, called in installation order."""

    __slots__ = ("taps",)

    def __init__(self, taps: tuple[Tap, ...]) -> None:
        self.taps = taps

    def charge(self, nozzle: HookedNozzle, price: int) -> int:
        for tap in self.taps:
            price = tap.charge(nozzle, price)
        return price

    def measure(self, nozzle: HookedNozzle, full: bool, price: int, shown: int, amount: int,
                true_l: float) -> tuple[int, int, float]:
        for tap in self.taps:
            shown, amount, true_l = tap.measure(nozzle, full, price, shown, amount, true_l)
        return shown, amount, true_l

    def lifted(self, nozzle: HookedNozzle) -> None:
        for tap in self.taps:
            tap.lifted(nozzle)

    def settle(self, nozzle: HookedNozzle, drawn_20c_l: float) -> bool:
        """True if a tap took the fill off the record (it is then booked or not here, and
        recorded by that tap); False: the station records it as usual."""
        hider: Tap | None = None
        how = NORMAL
        for tap in self.taps:
            verdict = tap.settle(nozzle, drawn_20c_l)
            if verdict and hider is None:
                hider, how = tap, verdict
        if hider is None:
            return False
        counted = how == HIDE
        if counted:
            _, _, _, shown, amount, _ = nozzle.fill()
            nozzle.meter.book(shown, amount)
        hider.hidden(nozzle, drawn_20c_l, counted)
        return True


def install(nozzle: HookedNozzle, tap: Tap) -> None:
    taps = () if nozzle.hook is None else nozzle.hook.taps
    nozzle.hook = NozzleHook((*taps, tap))


def remove(nozzle: HookedNozzle, tap: Tap) -> None:
    if nozzle.hook is None:
        return
    taps = tuple(t for t in nozzle.hook.taps if t is not tap)
    nozzle.hook = NozzleHook(taps) if taps else None
