"""What a fault kind is (故障类型): where it strikes, who serves it, what a correct SUT does.

Each kind is one small module of acceptance/faults/ defining `KIND`; the registry
(acceptance/faults/__init__.py) collects them, `forecourt faults` lists them and
docs/faults.md describes them. Kinds served by the harness carry `start`/`end` callables
that act on the running chain; kinds served by the devices are windows the devices process
applies to its Modbus replies (devices/silence.py); kinds served by the world change the
simulation itself, so the ground truth knows them (sim.config.PowerCut).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acceptance.chain import Chain
    from acceptance.schedule import Fault

Action = Callable[["Chain", "Fault"], None]


@dataclass(frozen=True)
class FaultKind:
    name: str
    layer: str  # collector | network | broker | platform | device | field bus
    served_by: str  # harness | devices | world
    scope: str  # station | device | fleet (what the scenario's fault names)
    summary: str  # what happens
    expected: str  # what a correct SUT does about it
    shows: str  # what the platform must show while it lasts, and the evidence
    start: Action | None = None  # harness kinds: begin the fault
    end: Action | None = None  # harness kinds: end it (restore, restart)
    excused: bool = True  # off-line time inside it (and its recovery) is not the SUT's fault

    def __post_init__(self) -> None:
        if self.served_by not in ("harness", "devices", "world"):
            raise ValueError(f"fault kind {self.name}: served_by {self.served_by!r}")
        if (self.served_by == "harness") != (self.start is not None and self.end is not None):
            raise ValueError(f"fault kind {self.name}: a harness kind needs start and end, "
                             f"the others neither")
        if self.scope not in ("station", "device", "fleet"):
            raise ValueError(f"fault kind {self.name}: scope {self.scope!r}")
