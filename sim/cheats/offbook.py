"""Recording product that left a tank without a recorded sale (table `off_book_draws`)."""

from __future__ import annotations

from typing import Any

from sim.cheats.records import OffBookDraw


def record_hidden_fill(cheat: Any, nozzle: Any, drawn_20c_l: float, counted: bool) -> None:
    """A fill the cheat kept out of the FIFO: its product is the cheat's effect."""
    start, end, true_l, shown, amount, price = nozzle.fill()
    cheat.effect_l += true_l
    c = cheat.config
    cheat.h.record_truth("off_book_draw", OffBookDraw(
        c.station_id, cheat.index, cheat.kind, nozzle.tank, c.dispenser, nozzle.nozzle, start,
        end, true_l, drawn_20c_l, shown, amount, price, counted))


def draw(cheat: Any, tank: int, litres: float, seconds: float) -> float:
    """Draw `litres` from `tank` now through an unmetered line that ran `seconds`; returns the
    litres drawn (0 when the tank cannot supply them above its dead stock)."""
    host = cheat.h
    drawn_20c = host.draw_off_book(tank, litres)
    if drawn_20c is None:
        return 0.0
    cheat.effect_l += litres
    c, now = cheat.config, host.now
    host.record_truth("off_book_draw", OffBookDraw(
        c.station_id, cheat.index, cheat.kind, tank, 0, 0, now - seconds, now, litres,
        drawn_20c, 0, 0, 0, False))
    return litres
