"""Pacing of the world's clock (devices/pace.py): windows, ceiling, flow control."""

from __future__ import annotations

import pytest

from devices.pace import Pacer, PaceWindow


def test_parse_and_format_round_trip_and_errors_name_the_option():
    w = PaceWindow.parse("100:200:50:latency")
    assert (w.start, w.end, w.compression, w.latency) == (100.0, 200.0, 50.0, True)
    assert PaceWindow.parse(w.format()) == w
    for bad in ("100:200", "100:200:x", "200:100:5", "1:2:0", "1:2:3:fast"):
        with pytest.raises(ValueError):
            PaceWindow.parse(bad)


def test_overlapping_windows_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        Pacer([PaceWindow(0, 100, 10), PaceWindow(50, 150, 10)])


def test_max_mode_is_flow_controlled_and_stops_at_the_next_window():
    pacer = Pacer([PaceWindow(1000, 2000, 10)])
    assert pacer.target(0, wall=0.0, step=300) == (300, True)
    assert pacer.target(900, wall=0.1, step=300) == (1000, True)  # not past the window


def test_ceiling_caps_max_mode_from_its_own_anchor():
    pacer = Pacer(ceiling=100.0)
    pacer.target(0, wall=10.0, step=1e9)  # anchor: wall 10, sim 0
    target, flow = pacer.target(0, wall=12.0, step=1e9)
    assert (target, flow) == (200.0, True)


def test_a_window_runs_at_its_compression_at_most_and_ends_on_time():
    """A window's compression is a ceiling: flow control still holds the world for a FIFO at
    high water (a 1-day fault served in 6 s would otherwise outrun a correct chain), except
    the exempt stations' — those a fault keeps from draining; "*" exempts every station."""
    pacer = Pacer([PaceWindow(1000, 2000, 10, exempt=("UMB43",)),
                   PaceWindow(3000, 4000, 10, exempt=("*",))])
    assert pacer.target(1000, wall=5.0, step=300) == (1000, True)  # window clock starts
    assert pacer.target(1000, wall=6.0, step=300) == (1010, True)
    assert pacer.target(1500, wall=500.0, step=300) == (2000, True)  # clipped at its end
    assert pacer.window(2000) is None and pacer.window(1999.9).compression == 10
    assert pacer.exempt(1500) == ("UMB43",) and pacer.exempt(2500) == ()
    assert pacer.target(3000, wall=600.0, step=300) == (3000, False)


def test_exempt_stations_round_trip_through_the_option():
    w = PaceWindow.parse("100:200:50:latency:exempt=UMB01,UMB03")
    assert w.exempt == ("UMB01", "UMB03") and w.latency
    assert PaceWindow.parse(w.format()) == w
    assert PaceWindow.parse("100:200:50:exempt=*").exempt == ("*",)
    with pytest.raises(ValueError):
        PaceWindow.parse("100:200:50:fast:exempt=UMB01")


def test_fixed_default_compression_has_no_flow_control():
    pacer = Pacer(default=60.0)
    pacer.target(0, wall=0.0, step=300)
    assert pacer.target(0, wall=2.0, step=300) == (120.0, False)
