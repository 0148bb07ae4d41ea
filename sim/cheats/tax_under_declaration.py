"""tax_under_declaration (少报销售收入/偷逃税款): the station declares to the tax bureau less than
its books hold — `declared_share` of each grade's booked sales, or nothing at all for
`omit_grade` — in one period of every `every_n` (counted from the first period that ends
while it is on). The dispensers, the FIFOs and the tank are untouched: only the paperwork
differs, which a platform finds by comparing its sales with the declarations (以销核税,
domain plan 一（五）"精准比对进销存数据与纳税申报信息，防范偷逃税款").
"""

from __future__ import annotations

from sim.cheats.base import Cheat
from sim.cheats.params import Param
from sim.config import GRADES, StationConfig


class TaxUnderDeclaration(Cheat):
    kind = "tax_under_declaration"
    cheat_class = "TAX"
    target = "station"
    attribution = "station"
    summary = "declares declared_share of the books (or omits a grade) in 1 of every_n periods"
    param_spec = {
        "declared_share": Param("number", default=0.85, minimum=0.0, maximum=1.0,
                                unit="fraction",
                                doc="share of the booked sales declared (1 = all)"),
        "omit_grade": Param("choice", choices=GRADES,
                            doc="a grade left out of the declarations altogether (quoted, "
                                "e.g. \"0\")"),
        "every_n": Param("integer", default=1, minimum=1, maximum=1000,
                         doc="acts in 1 of every_n periods (1 = every period)"),
    }

    def validate(self) -> None:
        if self.p["declared_share"] == 1.0 and self.p["omit_grade"] is None:
            raise ValueError(f"{self.where}: kind {self.kind!r} with declared_share 1 and no "
                             f"omit_grade changes nothing; give a share below 1 or a grade "
                             f"to omit")

    def check_target(self, station: StationConfig) -> str | None:
        grade = self.p["omit_grade"]
        sold = {t.grade for t in station.tanks}
        if grade is not None and grade not in sold:
            return (f"{self.where}: omit_grade {grade!r}: station {station.station_id} sells "
                    f"{sorted(sold)}")
        return None

    def prepare(self) -> None:
        self.periods_on = 0  # periods closed while it was on
        self.periods_acted = 0
        self.h.tax.add_rule(self)

    def switch_on(self, t: float) -> tuple[float, float]:
        return 1.0, float(self.p["declared_share"])

    def switch_off(self, t: float) -> tuple[float, float]:
        return float(self.p["declared_share"]), 1.0

    def shares(self, period_no: int, grades: tuple[str, ...]) -> dict[str, float | None] | None:
        """sim.tax.DeclarationRule: what it declares of period `period_no`, or None."""
        if not self.active or self._on_at >= self.h.now:
            return None  # off, or switched on at this very close: the books were kept honest
        n = self.periods_on
        self.periods_on += 1
        if n % self.p["every_n"]:
            return None
        self.periods_acted += 1
        share = float(self.p["declared_share"])
        out: dict[str, float | None] = {}
        for g in grades:
            if g == self.p["omit_grade"]:
                out[g] = None
            elif share < 1.0:
                out[g] = share
        return out

    def trace(self) -> list[str]:
        return ["tax_under_declared"]

    def expected_alerts(self) -> list[str]:
        return ["tax_under_declaration"]
