"""modbus_garbled: a Modbus TCP gateway garbles some of a device's replies."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="modbus_garbled", layer="field bus", served_by="devices", scope="device",
    summary="on a station served over Modbus TCP, a fraction `rate` (default 0.3) of the "
            "device's replies leaves the gateway garbled: a wrong transaction id, protocol id "
            "or unit id in the MBAP header, or the PDU cut short (with or without the length "
            "made to fit); which replies, and how, follows from the scenario's seed",
    expected="the collector discards replies whose header does not match its request or whose "
             "PDU is incomplete, reconnects if its Modbus client dropped the connection, "
             "repeats the read, and acknowledges only records it read intact and spooled; "
             "nothing lost, nothing duplicated",
    shows="records complete and exactly once (DAT-1/DAT-2/DAT-3); a device whose every reply "
          "is garbled may show off line; evidence: the records, availability samples")
