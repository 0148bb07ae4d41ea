"""price_tamper (改价): the dispenser charges posted × (1 + markup), rounded to the fen; its
unit-price register and each transaction's unit price show the tampered price, the posted
price (挂牌价) stays the scenario's (domain brief §6 #14 "display ≠ tax-port price").
`nozzle` 0 = every nozzle of the dispenser.
"""

from __future__ import annotations

from typing import Any

from sim.cheats.pricing import PriceCheat, PriceTap, round_half_up


class TamperedPriceTap(PriceTap):
    __slots__ = ()

    def charge(self, nozzle: Any, price: int) -> int:
        return round_half_up(price * (1.0 + self.cheat.p["markup"]))


class PriceTamper(PriceCheat):
    kind = "price_tamper"
    cheat_class = "PRICE"
    summary = "charged unit price = posted × (1 + markup)"
    resources = ("price",)
    tap_class = TamperedPriceTap

    def trace(self) -> list[str]:
        return ["price"]

    def expected_alerts(self) -> list[str]:
        return ["price_mismatch"]
