"""SIGTERM or SIGINT outside the run proper (setting up, checking) is no verdict: exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

import acceptance.check
import acceptance.run
from acceptance.run import EXIT_HARNESS, RunInterrupted, RunOptions

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("where", ["execute", "check_run"])
def test_an_interrupt_outside_the_run_proper_is_exit_2_not_a_verdict(monkeypatch, capsys, tmp_path,
                                                                    where):
    def interrupted(*_a, **_k):
        raise RunInterrupted("SIGTERM")

    if where == "execute":
        monkeypatch.setattr(acceptance.run, "execute", interrupted)
    else:
        monkeypatch.setattr(acceptance.run, "execute", lambda opts: ({}, tmp_path))
        monkeypatch.setattr(acceptance.check, "check_run", interrupted)
    opts = RunOptions(scenario=ROOT / "scenarios" / "smoke.yaml", out=tmp_path / "run")
    assert acceptance.run.run(opts) == EXIT_HARNESS
    assert "interrupted by SIGTERM before a verdict" in capsys.readouterr().err


def test_ctrl_c_of_any_command_is_exit_2(monkeypatch, capsys):
    """Exit 1 is a finding for run (not accepted), verify and check; an interrupt is none."""
    import acceptance.cli

    def cancelled(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(acceptance.cli, "cmd_faults", cancelled)
    assert acceptance.cli.main(["faults"]) == 2
    assert "interrupted" in capsys.readouterr().err
