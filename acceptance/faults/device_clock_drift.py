"""device_clock_drift: a device's clock (RTC) runs fast or slow, until it is set right."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="device_clock_drift", layer="device", served_by="world", scope="device",
    summary="from the fault's start the device's clock gains `drift_s_per_day` seconds per "
            "simulated day (negative: it loses; default 600, a failing RTC crystal); at its "
            "end the clock is set right. The records it logs meanwhile carry its wrong clock "
            "(served by the world: sim.config.ClockFault, so the ground truth knows which "
            "device times to expect)",
    expected="the collector forwards the device's times as the device shows them (they are "
             "the record's identity: docs/uplink.md §3) and loses or duplicates nothing; the "
             "platform stores every record exactly once with its device time",
    shows="every record of the device exactly once with the device's own (drifted) times; "
          "no cheat alert because the clock is wrong; evidence: DAT-1/DAT-2 against the "
          "device-clock times of the ground truth, ALM-FP",
    excused=False)
