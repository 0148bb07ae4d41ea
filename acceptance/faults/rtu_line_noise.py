"""rtu_line_noise: RS-485 line noise corrupts some of a device's replies (bad CRC)."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="rtu_line_noise", layer="field bus", served_by="devices", scope="device",
    summary="on a station served over Modbus RTU (`rtu_stations`), a fraction `rate` (default "
            "0.3) of the device's reply frames is corrupted on the wire: one to three bits "
            "flipped, so the CRC fails, or now and then the frame cut short; which replies, "
            "and how, follows from the scenario's seed, so the same scenario gives the same "
            "pattern",
    expected="the collector discards every frame whose CRC fails (or that never completes), "
             "repeats the read, never takes a corrupted frame's registers for data, and "
             "acknowledges a FIFO record only once it has read it intact and spooled it; "
             "nothing lost, nothing duplicated",
    shows="records complete and exactly once (DAT-1/DAT-2/DAT-3); a device whose every reply "
          "is corrupted may show off line; evidence: the records, availability samples")
