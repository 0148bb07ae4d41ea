"""device_power_loss: a dispenser loses its power for a while (an honest outage, 停电)."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="device_power_loss", layer="device", served_by="world", scope="device",
    summary="a dispenser (device D<n>) loses power: fills in progress finish, it logs event 2 "
            "power_down, answers nothing and sells nothing for the duration, then logs event 1 "
            "power_up; its clock, totalizers and FIFO content survive (served by the world: "
            "sim.config.PowerCut, so the ground truth knows the lost sales never happened)",
    expected="the collector times out, marks the device off line, and after power-up drains "
             "its FIFOs including the power events; the platform raises no cheat alert for an "
             "honest outage (totalizers continue: not a totalizer reset)",
    shows="the dispenser off line at the platform during the outage, within "
          "device_offline_shown_s (DAT-6), its power events stored; "
          "evidence: availability samples, the events stream exactly once, ALM-FP")
