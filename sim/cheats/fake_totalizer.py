"""fake_totalizer (假总累): as transaction_filter, but the kept-out fills are not added to
the electronic totalizer either (a modified mainboard, domain brief §1 "monitoring MCU and
metering program differ from the factory build"). Records and totalizers agree; only the
tank (its drop without sales) gives it away.
"""

from __future__ import annotations

from sim.cheats.filters import FilterCheat


class FakeTotalizer(FilterCheat):
    kind = "fake_totalizer"
    cheat_class = "DATA"
    summary = "1 in every_n fills kept out of the FIFO and of the totalizer"
    counted = False

    def trace(self) -> list[str]:
        return ["tank_loss", "idle_loss"]  # a kept-out fill in an idle hour: idle loss

    def expected_alerts(self) -> list[str]:
        return ["tank_loss", "idle_loss"]  # a kept-out fill in an idle hour: idle loss

    def attribution_level(self) -> str:
        return "tank" if self.instance_tank() else "station"
