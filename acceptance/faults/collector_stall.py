"""collector_stall: the station's collector hangs (SIGSTOP) and resumes (SIGCONT) at the end."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="collector_stall", layer="collector", served_by="harness", scope="station",
    summary="the collector process is frozen (SIGSTOP: a hung box, blocked I/O); its TCP "
            "connections stay open, so the broker sends no last will until the keepalive "
            "expires; resumed (SIGCONT) when the fault ends",
    expected="after resuming, the collector notices its stale connection, reconnects if the "
             "broker dropped it, and sends everything the devices buffered meanwhile; nothing "
             "lost or duplicated",
    shows="the collector off line at the platform once its heartbeats stop (heartbeat timeout "
          "or the broker's keepalive), back on line after; evidence: availability samples, "
          "the records' completeness",
    start=lambda chain, f: chain.freeze_collector(f.station, True),
    end=lambda chain, f: chain.freeze_collector(f.station, False))
