"""The credit grading rule (信用记录、分级分类监管, docs/platform-api.md §5.16) on hand-made
findings, in both of its implementations — the reference platform's (central/credit.py) and
the harness's own (acceptance/credit.py): they must agree finding for finding, and each
band, severity and lifecycle weight must be the published one."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acceptance import credit as harness
from central import credit as platform

T = 1_775_000_000.0
KINDS = {"cheat": "price_mismatch", "tax": "tax_under_declaration",
         "metrology": "verification_expired", "data": "device_offline"}


def alert(kind: str = "price_mismatch", severity: str = "critical", status: str = "open",
          confirmed: bool = False, as_of: float | None = T, n: int = 0) -> dict[str, Any]:
    return {"id": f"a{n:03d}", "kind": kind, "severity": severity, "status": status,
            "confirmed_at": T + 60 if confirmed else None, "as_of": as_of}


def both(alerts: list[dict[str, Any]], lo: float | None = None,
         hi: float | None = None) -> tuple[int, str]:
    """(score, grade) by the platform's rule; the harness's must say the same."""
    item = platform.grade_station("S1", alerts, lo, hi)
    frame = pd.DataFrame(alerts, columns=["id", "kind", "severity", "status", "confirmed_at",
                                          "as_of"])
    mine = harness.grade(frame, lo, hi)
    assert (mine.score, mine.grade) == (item["score"], item["grade"])
    assert mine.points == item["points"] and mine.counts == item["counts"]
    assert mine.findings == [f["id"] for f in item["findings"]]
    return item["score"], item["grade"]


RECTIFIED = {"status": "closed", "confirmed": True}
DISMISSED = {"status": "closed", "confirmed": False}


@pytest.mark.parametrize("category,severity,full", [
    ("cheat", "critical", 40), ("cheat", "warning", 32), ("cheat", "info", 32),
    ("tax", "critical", 40), ("tax", "warning", 32),
    ("metrology", "critical", 30), ("metrology", "warning", 24), ("metrology", "info", 24),
    ("data", "critical", 30), ("data", "warning", 24)])
def test_each_category_and_severity_costs_its_points_in_every_lifecycle(category, severity,
                                                                        full):
    kind = KINDS[category]
    assert both([alert(kind, severity)]) == (100 - full, harness.grade_of(100 - full))
    assert both([alert(kind, severity, "confirmed", confirmed=True)])[0] == 100 - full
    assert both([alert(kind, severity, **RECTIFIED)])[0] == 100 - full // 2  # 已整改: half
    assert both([alert(kind, severity, **DISMISSED)]) == (100, "A")  # a false alarm: nothing


@pytest.mark.parametrize("alerts,grade", [
    ([], "A"),
    # any finding that stands or was rectified leaves A: the smallest, a rectified
    # metrology / data warning, costs 12 (score 88)
    ([alert("record_unsigned", "warning", **RECTIFIED)], "B"),
    ([alert("device_offline", "warning", **RECTIFIED)], "B"),
    # a rectified cheat is 基本诚信 again, not 诚信
    ([alert(**RECTIFIED)], "B"),
    # a paperwork or equipment lapse alone: B
    ([alert("verification_expired", "warning")], "B"),
    ([alert("seal_mismatch", "critical")], "B"),
    # a cheat or an under-declaration that stands, at any severity: at most C
    ([alert()], "C"), ([alert(severity="warning")], "C"), ([alert(severity="info")], "C"),
    ([alert("tax_under_declaration", "warning", "confirmed", confirmed=True)], "C"),
    # two lapses: C
    ([alert("verification_expired", "warning", n=1), alert("record_unsigned", "warning",
                                                            n=2)], "C"),
    # two cheats, or a cheat with an under-declaration: D
    ([alert(n=1), alert(n=2)], "D"),
    ([alert(severity="warning", n=1), alert("tax_under_declaration", "warning", n=2)], "D"),
])
def test_bands(alerts, grade):
    assert both(alerts)[1] == grade


def test_band_edges_and_the_floor():
    assert [harness.grade_of(s) for s in (100, 90, 89, 70, 69, 40, 39, 0)] == \
        list("AABBCCDD") == [platform.grade_of(s) for s in (100, 90, 89, 70, 69, 40, 39, 0)]
    score, grade = both([alert(n=i) for i in range(5)])  # 200 points: no negative score
    assert (score, grade) == (0, "D")


def test_kinds_not_counted_and_unknown_words():
    # safety and operation, not integrity; a kind outside the vocabulary
    assert both([alert("leak_suspected", n=1), alert("water_high", n=2),
                 alert("tank_temperature", n=3)]) == (100, "A")
    # an unknown severity counts as a warning, an unknown status as open
    assert both([alert(severity="severe")])[0] == 100 - 32
    assert both([alert(status="acknowledged")])[0] == 60
    # a change with no signed record is a cheat alert (and counts once, there)
    assert both([alert("parameter_change")])[0] == 60


def test_the_grading_period_counts_by_as_of():
    alerts = [alert(as_of=T, n=1), alert(as_of=T + 86400, n=2), alert(as_of=None, n=3)]
    assert both(alerts)[0] == 0  # all three
    assert both(alerts, lo=T + 1)[0] == 60  # the second only: as_of in [from, to)
    assert both(alerts, hi=T + 86400)[0] == 60  # the first only
    assert both(alerts, lo=T, hi=T + 86400)[0] == 60
    assert both(alerts, lo=T + 86401)[0] == 100  # none; no as_of: outside a bounded period


def test_the_item_lists_what_cost_points():
    alerts = [alert(as_of=T + 10, n=2), alert("record_unsigned", "warning", as_of=T, n=1),
              alert(**DISMISSED, n=3)]
    item = platform.grade_station("S1", alerts)
    assert [(f["id"], f["category"], f["lifecycle"], f["points"]) for f in item["findings"]] \
        == [("a001", "metrology", "open", 24), ("a002", "cheat", "open", 40)]
    assert item["findings_total"] == 2 and item["counts"]["cheat"]["dismissed"] == 1
    assert item["grade_name"] == "严重失信" and item["period"] == {"from": None, "to": None}
    flat = platform.grade_station("S1", alerts, flat=True)  # the QA mutant
    assert (flat["score"], flat["grade"], flat["findings"]) == (100, "A", [])
    assert flat["counts"] == item["counts"]


_alerts = st.lists(st.builds(
    alert, kind=st.sampled_from([*KINDS.values(), "seal_mismatch", "leak_suspected"]),
    severity=st.sampled_from(["critical", "warning", "info"]),
    status=st.sampled_from(["open", "confirmed", "closed"]), confirmed=st.booleans(),
    as_of=st.one_of(st.none(), st.floats(T - 1e5, T + 1e5))), max_size=8)


@settings(max_examples=150, deadline=None)
@given(_alerts, st.randoms(use_true_random=False))
def test_deterministic_and_order_free(alerts, rnd: random.Random):
    for i, a in enumerate(alerts):
        a["id"] = f"a{i:03d}"
    score, grade = both(alerts)
    shuffled = list(alerts)
    rnd.shuffle(shuffled)
    assert both(shuffled) == (score, grade)
    # more findings never raise the score; dismissing one never lowers it
    assert both([*alerts, alert(n=999)])[0] <= score


def test_both_implementations_publish_the_same_tables():
    assert harness.CATEGORY == platform.CATEGORY and len(harness.CATEGORY) == 22
    assert harness.FULL_POINTS == platform.FULL_POINTS and harness.BANDS == platform.BANDS
    assert harness.HALVES == platform.HALVES and harness.GRADES == platform.GRADES


@pytest.mark.parametrize("rule", [platform.points, harness.cost])
def test_points_are_whole_and_halved_exactly(rule: Callable[[str, str, str], int]):
    for category, severity in itertools.product(platform.CATEGORIES,
                                                ("critical", "warning", "info")):
        full = rule(category, severity, "open")
        assert full % 2 == 0 and full >= 22  # rectified ≥ 11: never back to A
        assert rule(category, severity, "rectified") * 2 == full
        assert rule(category, severity, "dismissed") == 0
