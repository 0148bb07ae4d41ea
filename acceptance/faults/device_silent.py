"""device_silent: one device (or a whole station's) stops answering Modbus for a while."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="device_silent", layer="field bus", served_by="devices", scope="device",
    summary="the device ignores every Modbus request (no reply: a dead RS-485 node or a crashed "
            "board); its FIFOs keep buffering",
    expected="the collector times out, marks the device off line in its heartbeats, keeps "
             "polling the others, and drains the device's FIFOs when it answers again",
    shows="the device off line at the platform while silent (GET /api/v1/stations), within "
          "device_offline_shown_s (DAT-6), on line "
          "again after; evidence: availability samples, records complete after the silence")
