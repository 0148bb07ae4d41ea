"""collector_crash: the station's collector is killed (kill -9) and started again at the end."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="collector_crash", layer="collector", served_by="harness", scope="station",
    summary="kill -9 of the station's collector process (in fleet mode the fleet process serving "
            "it: timeline.json lists every station it took down, and each is excused); started "
            "again with the same arguments and spool when the fault ends",
    expected="nothing lost or duplicated: what was read from the devices but not acknowledged "
             "by the platform is in the durable spool and is sent after the restart; device "
             "FIFOs are acknowledged only after the platform's ack",
    shows="the collector off line (last will) until it is back; evidence: the crash and "
          "restart times in timeline.json, DAT-1/DAT-3/DAT-4 and STB-1 on the records",
    start=lambda chain, f: chain.kill_collector(f.station),
    end=lambda chain, f: chain.start_collector(f.station))
