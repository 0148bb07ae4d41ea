"""modbus_slow: every reply of a device comes late (a loaded controller, a long line)."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="modbus_slow", layer="field bus", served_by="devices", scope="device",
    summary="every reply of the device is delayed by `delay_ms` wall milliseconds (default "
            "800: inside the reference collector's 1 s timeout; above it, replies arrive after "
            "the request timed out)",
    expected="the collector waits up to its timeout, never pairs a late reply with a later "
             "request, and loses or duplicates nothing (a reply that arrives after its timeout "
             "is discarded and the read repeated)",
    shows="records complete and exactly once; a device slower than the collector's timeout "
          "may show off line; evidence: DAT-1/DAT-3 and availability")
