"""platform_stall: the platform hangs (SIGSTOP) mid-ingest and resumes (SIGCONT) at the end."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="platform_stall", layer="platform", served_by="harness", scope="fleet",
    summary="the reference platform is frozen, its detection worker too (SIGSTOP: a stalled "
            "database, a full garbage collection, an overloaded host): no acks, no API, no "
            "alerts; resumed (SIGCONT) when the fault ends",
    expected="collectors keep spooling, time out waiting for acks and resend; the platform, "
             "once resumed, stores each record once (resends are duplicates it recognises) and "
             "acknowledges them",
    shows="the API unresponsive while frozen; afterwards every record exactly once; evidence: "
          "the stall in timeline.json, DAT-1..4 and STB-1",
    start=lambda chain, f: chain.freeze_platform(True),
    end=lambda chain, f: chain.freeze_platform(False))
