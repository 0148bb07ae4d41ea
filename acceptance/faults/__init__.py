"""The fault catalogue (故障目录): one module per kind, collected here.

    from acceptance.faults import KINDS
    KINDS["network_cut"].expected

To add a kind: copy a module of the same `served_by`, give it a new name, add it to
`_MODULES` below and to the `faults[].kind` enum of scenarios/scenario.schema.json (a test
checks they agree), and describe it in docs/faults.md (`forecourt faults --markdown`).
"""

from __future__ import annotations

from acceptance.faults import (
    broker_restart,
    collector_crash,
    collector_disk_full,
    collector_stall,
    device_clock_drift,
    device_clock_reset,
    device_power_loss,
    device_silent,
    modbus_busy,
    modbus_garbled,
    modbus_slow,
    network_cut,
    platform_crash,
    platform_db_unavailable,
    platform_restart,
    platform_stall,
    rtu_line_noise,
)
from acceptance.faults.base import FaultKind

_MODULES = (collector_crash, collector_stall, network_cut, broker_restart, platform_crash,
            platform_restart, platform_stall, device_silent, device_power_loss, modbus_busy,
            modbus_slow, rtu_line_noise, modbus_garbled, collector_disk_full,
            platform_db_unavailable, device_clock_drift, device_clock_reset)
KINDS: dict[str, FaultKind] = {m.KIND.name: m.KIND for m in _MODULES}


def kind(name: str) -> FaultKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(KINDS)}") from None


def markdown() -> str:
    """The catalogue as a Markdown table (docs/faults.md)."""
    lines = ["| kind | layer | served by | names | what happens | what a correct SUT does | "
             "what the platform shows, evidence |", "|---|---|---|---|---|---|---|"]
    for k in KINDS.values():
        lines.append(f"| `{k.name}` | {k.layer} | {k.served_by} | {k.scope} | {k.summary} | "
                     f"{k.expected} | {k.shows} |")
    return "\n".join(lines)
