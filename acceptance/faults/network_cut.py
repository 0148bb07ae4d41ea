"""network_cut: the link between a station's collector and the broker is cut, then restored."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="network_cut", layer="network", served_by="harness", scope="station",
    summary="the station's TCP proxy to the broker resets its connections and refuses new ones "
            "(in fleet mode the proxy of the fleet process serving it: timeline.json lists every "
            "station it cut, and each is excused); restored when the fault ends",
    expected="the collector keeps polling and spools what it reads, reconnects with back-off, "
             "and sends the backlog once the link is back; nothing lost, nothing duplicated",
    shows="the collector off line at the platform during the cut (last will / heartbeat "
          "timeout); evidence: the cut in timeline.json, the records' completeness",
    start=lambda chain, f: chain.cut_network(f.station),
    end=lambda chain, f: chain.restore_network(f.station))
