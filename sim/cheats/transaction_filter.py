"""transaction_filter (交易截留): an interception box on the dispenser's data line keeps 1 in
`every_n` fills out of the transaction FIFO while the totalizer still counts them (domain
brief §1 "interception / modified mainboard filters transaction data", "1 record reported per
99 transactions"; §6 #10, #12). No sequence gap (the FIFO numbers what it receives); the
next recorded fill's totalizer "before" jumps; the tank drops without a sale.
"""

from __future__ import annotations

from sim.cheats.filters import FilterCheat


class TransactionFilter(FilterCheat):
    kind = "transaction_filter"
    cheat_class = "DATA"
    summary = "1 in every_n fills kept out of the FIFO; the totalizer counts them"
    counted = True

    def trace(self) -> list[str]:
        return ["totalizer_gap", "tank_loss", "idle_loss"]

    def expected_alerts(self) -> list[str]:
        return ["totalizer_gap", "tank_loss", "idle_loss"]
