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


def test_ctrl_c_of_a_command_is_exit_2_but_simulate_says_incomplete(monkeypatch, capsys,
                                                                      tmp_path):
    """Exit 1 is a finding for run (not accepted), verify and check; an interrupt is none.
    `forecourt simulate` keeps its own rule: an incomplete manifest is exit 1
    (docs/scenarios.md)."""
    import acceptance.cli

    def cancelled(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(acceptance.cli, "cmd_faults", cancelled)
    assert acceptance.cli.main(["faults"]) == 2
    assert "interrupted" in capsys.readouterr().err
    import sim.runner

    monkeypatch.setattr(sim.runner, "simulate", lambda *a, **k: cancelled(None))
    out = tmp_path / "sim"
    assert acceptance.cli.main(["simulate", str(ROOT / "scenarios" / "smoke.yaml"), "--days",
                                "0.1", "--out", str(out)]) == 1
    assert '"complete": false' in capsys.readouterr().err


def test_once_the_verdict_is_written_its_reports_and_seal_are_finished(monkeypatch, capsys,
                                                                       tmp_path):
    """SIGTERM while the reports are rendered: ignored, the run ends sealed with its verdict."""
    import os
    import signal
    from types import SimpleNamespace

    import acceptance.manifest
    import reports.junit
    import reports.render

    record = SimpleNamespace(exit_code=1, verdict_line=lambda: "NOT ACCEPTED")
    sealed = []
    monkeypatch.setattr(acceptance.run, "execute", lambda opts: ({}, tmp_path))
    monkeypatch.setattr(acceptance.check, "check_run", lambda out: record)
    monkeypatch.setattr(reports.junit, "write_junit", lambda *a: None)

    def render(*_a, **_k):
        os.kill(os.getpid(), signal.SIGTERM)
        return [tmp_path / "report.html"]

    monkeypatch.setattr(reports.render, "render_reports", render)
    monkeypatch.setattr(acceptance.manifest, "seal", lambda out, by: sealed.append(out))
    opts = RunOptions(scenario=ROOT / "scenarios" / "smoke.yaml", out=tmp_path / "run")
    assert acceptance.run.run(opts) == 1 and sealed == [tmp_path]
    assert "NOT ACCEPTED" in capsys.readouterr().out


def test_a_signal_while_the_parts_are_stopped_is_held_off():
    """Stopping the chain (the devices may take minutes to write the ground truth) is not cut
    short by a signal: it would leave the platform and broker running; the handler is back
    afterwards."""
    import os
    import signal

    from acceptance.run import _interrupt, _signals_held

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _signals_held():
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: no RunInterrupted here
        assert signal.getsignal(signal.SIGTERM) is _interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
