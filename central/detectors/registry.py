"""The registered detectors, in evaluation order. To add one: write
central/detectors/<name>.py with a class that has `name`, `kinds` and
`evaluate(data, ctx) -> list[AlertProposal]` (copy a neighbour), list it here, document it in
docs/detectors.md and give it a test that shows it firing on its cheat and quiet on the
honest look-alike."""

from __future__ import annotations

from central.detectors.base import Detector
from central.detectors.continuity import ContinuityDetector
from central.detectors.delivery import DeliveryDetector
from central.detectors.gauge_plausibility import GaugePlausibilityDetector
from central.detectors.identity import IdentityDetector
from central.detectors.idle_loss import IdleLossDetector
from central.detectors.metrology import MetrologyDetector
from central.detectors.monotonicity import MonotonicityDetector
from central.detectors.nozzle_attribution import NozzleAttributionDetector
from central.detectors.price import PriceDetector
from central.detectors.tank_variance import TankVarianceDetector

DETECTORS: tuple[Detector, ...] = (
    TankVarianceDetector(),
    NozzleAttributionDetector(),
    IdleLossDetector(),
    ContinuityDetector(),
    MonotonicityDetector(),
    PriceDetector(),
    IdentityDetector(),
    DeliveryDetector(),
    GaugePlausibilityDetector(),
    MetrologyDetector(),
)
BY_NAME = {d.name: d for d in DETECTORS}


def kinds() -> dict[str, str]:
    """alert kind → the detector that raises it."""
    return {k: d.name for d in DETECTORS for k in d.kinds}
