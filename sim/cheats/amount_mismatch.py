"""amount_mismatch (金额不符): the unit price is the posted one, but the amount charged is
round(volume × price × (1 + markup)); a prepaid fill stops when that reaches the preset, so
it delivers less (domain brief §6 #14 "amount ≠ volume × price"). `nozzle` 0 = every nozzle.
"""

from __future__ import annotations

from typing import Any

from sim.cheats.pricing import PriceCheat, PriceTap, round_half_up
from sim.meter import display_ml


class WrongAmountTap(PriceTap):
    __slots__ = ()

    def measure(self, nozzle: Any, full: bool, price: int, shown: int, amount: int,
                true_l: float) -> tuple[int, int, float]:
        k = 1.0 + self.cheat.p["markup"]
        if full:
            return shown, round_half_up(shown * price * k / 1000.0), true_l
        return display_ml(amount / (price * k)), amount, true_l / k


class AmountMismatch(PriceCheat):
    kind = "amount_mismatch"
    cheat_class = "PRICE"
    summary = "amount = round(volume × posted price × (1 + markup))"
    resources = ("amount",)
    tap_class = WrongAmountTap

    def trace(self) -> list[str]:
        return ["amount"]

    def expected_alerts(self) -> list[str]:
        return ["amount_mismatch"]
