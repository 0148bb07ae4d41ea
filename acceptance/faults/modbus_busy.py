"""modbus_busy: a device answers every request with Modbus exception 06 (server busy)."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="modbus_busy", layer="field bus", served_by="devices", scope="device",
    summary="every request to the device is answered with exception 06 (server device busy), "
            "as a dispenser controller does while occupied; FIFOs keep buffering",
    expected="the collector treats the exception as a failed poll (retry with back-off, no "
             "record invented, no acknowledge written), and drains everything once the device "
             "answers normally",
    shows="the device off line at the platform within device_offline_shown_s (DAT-6), on line "
          "again after; evidence: availability samples, records complete and exactly once "
          "after it")
