"""verification_lapse (检定过期, 超期使用): the station lets a dispenser's periodic verification
lapse (domain brief §2: valid six months, twice a year) and goes on selling with it. The
dispenser's last verification before the run expires at `start` (sim/metrology.py `hold`:
its opening record says valid_until = start); the verification institute is not called, so
no record renews it until `end` (if given: a late verification, filed then), and the
dispenser keeps selling, metering as before. Nothing shows on the devices: only the
paperwork — the platform knows valid_until from the record it received — gives it away.
The truth has one `verification_lapses` row per stretch sold expired.
"""

from __future__ import annotations

from sim.cheats.base import Cheat


class VerificationLapse(Cheat):
    kind = "verification_lapse"
    cheat_class = "MET"
    target = "dispenser"
    attribution = "device"
    summary = "the dispenser's verification expires at start; no renewal until end"
    resources = ("verification",)
    param_spec = {}

    def validate(self) -> None:
        if self.config.nozzle:
            raise ValueError(f"{self.where}: kind {self.kind!r} acts on a whole dispenser (its "
                             f"verification): nozzle must be omitted, got {self.config.nozzle}")

    def prepare(self) -> None:
        c = self.config
        self.h.metrology.hold(c.dispenser, c.start, c.end, self.index)

    def switch_on(self, t: float) -> tuple[float, float]:
        return 1.0, 0.0  # valid → expired

    def switch_off(self, t: float) -> tuple[float, float]:
        return 0.0, 1.0  # the late verification (filed by the metrology book at `end`)

    def trace(self) -> list[str]:
        late = self.last_end == self.last_end  # not NaN: renewed inside the run
        return ["verification_expired"] + (["verification_record"] if late else [])

    def expected_alerts(self) -> list[str]:
        return ["verification_expired"]
