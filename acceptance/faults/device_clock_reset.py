"""device_clock_reset: a device's clock (RTC) jumps back to its zero, until it is set right."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="device_clock_reset", layer="device", served_by="world", scope="device",
    summary="at the fault's start the device's clock jumps to `reset_to` (default "
            "2000-01-01 00:00:00 local: the RTC's zero after its backup battery went flat) "
            "and runs on from there; at its end it is set right (jumps forward). Records "
            "logged meanwhile carry times years in the past; the FIFO sequence numbers go "
            "on (served by the world: sim.config.ClockFault)",
    expected="the collector never uses device time as a cursor or for de-duplication (a "
             "record older than the newest one sent is still new: the sequence number says "
             "so) and loses or duplicates nothing; the platform orders a device's records "
             "by its sequence, not by its clock, and raises no cheat alert (e.g. a "
             "totalizer reset) because the clock went back",
    shows="every record of the device exactly once with the times the device showed; no "
          "false alert; evidence: DAT-1/DAT-2 against the device-clock times of the ground "
          "truth, ALM-FP",
    excused=False)
