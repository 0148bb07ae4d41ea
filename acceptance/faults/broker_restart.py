"""broker_restart: the MQTT broker is stopped and started again on the same port."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="broker_restart", layer="broker", served_by="harness", scope="fleet",
    summary="the broker the harness started is stopped for the fault's duration and started "
            "again on the same port (Mosquitto keeps persistent sessions on disk; the "
            "embedded broker loses them)",
    expected="collectors and the platform reconnect by themselves; what was in flight and not "
             "acknowledged is sent again; the platform de-duplicates; nothing lost",
    shows="every collector off line while the broker is down, on line again after; evidence: "
          "the restart in timeline.json, completeness and duplicates of the records",
    start=lambda chain, f: chain.stop_broker(),
    end=lambda chain, f: chain.start_broker())
