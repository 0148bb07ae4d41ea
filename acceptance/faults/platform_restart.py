"""platform_restart: the platform is stopped cleanly (SIGTERM) and started again at the end."""

from acceptance.faults.base import FaultKind

KIND = FaultKind(
    name="platform_restart", layer="platform", served_by="harness", scope="fleet",
    summary="SIGTERM to the reference platform (an upgrade, a host reboot); started again on "
            "the same database when the fault ends",
    expected="the platform finishes or abandons in-flight work without acknowledging what it "
             "did not store; collectors resend; nothing lost or duplicated after the restart",
    shows="the API unreachable while down, every record exactly once after; evidence: the "
          "restart in timeline.json, DAT-1..4 and STB-1",
    start=lambda chain, f: chain.stop_platform(kill=False),
    end=lambda chain, f: chain.start_platform())
