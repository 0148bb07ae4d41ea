"""Run a command that dies with the harness: `python -m acceptance.guard PARENT_PID -- CMD...`.

Every process the harness starts (devices, collectors, broker, platform, a vendor's
collector) is started through this guard. It asks Linux to send the process SIGTERM when
its parent dies (prctl PR_SET_PDEATHSIG, kept across execve), checks that the parent is
still the harness (it may have died before the request), and then becomes the command
(execvp: same pid, so the harness still stops it by pid). A harness killed with SIGKILL, or
one that crashes, therefore leaves nothing of its run behind; a clean stop or SIGTERM/SIGINT
is handled by the harness itself (acceptance/run.py), which stops every part in order.

Why not `preexec_fn`: it is unsafe in a process with threads, as the harness is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guarded(argv: list[str]) -> list[str]:
    """`argv` wrapped so that it dies with this process (Linux only; elsewhere unchanged)."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-m", "acceptance.guard", str(os.getpid()), "--", *argv]


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("usage: python -m acceptance.guard PARENT_PID -- CMD [ARG...]", file=sys.stderr)
        return 2
    parent, cmd = int(argv[0]), argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        print(f"guard: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 2
    if os.getppid() != parent:  # the harness died before the request took effect
        return 0
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        print(f"guard: cannot run {cmd[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
