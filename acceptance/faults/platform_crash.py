"""platform_crash: the platform process is killed (kill -9) and started again at the end."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="platform_crash", layer="platform", served_by="harness", scope="fleet",
    summary="kill -9 of the reference platform process mid-ingest; started again on the same "
            "database when the fault ends (a vendor's platform cannot be crashed by the harness)",
    expected="collectors keep spooling and resend what the platform never acknowledged; the "
             "platform stored each record before acknowledging it, so after the restart it "
             "has everything exactly once",
    shows="the platform's API unreachable while down; afterwards every record exactly once; "
          "evidence: the crash in timeline.json, DAT-1..4 and STB-1",
    start=lambda chain, f: chain.stop_platform(kill=True),
    end=lambda chain, f: chain.start_platform())
