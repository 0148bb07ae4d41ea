"""The SEC-1 attack phase's judgement (acceptance/attacks/phase.py) on a platform that keeps
no rejection sample: judged on its counters, and refused when they do not move."""

from __future__ import annotations

from typing import Any

import pytest

from acceptance.attacks import phase
from acceptance.attacks.base import ALLOWED, DELIVERED, NOT_ATTEMPTED, REFUSED, Attempt, Context
from acceptance.observe import ApiError


class CountersOnly:
    """A platform API without /ingest/rejections; its counters are what the test sets."""

    base_url, timeout = "http://127.0.0.1:9", 1.0

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, Any]] = {"A": {"rejected_total": 0, "messages": {}}}

    def items(self, resource: str, **_: Any) -> Any:
        raise ApiError(f"/api/v1/{resource}", 404, "not found")

    def ingest_stats(self, station_id: str | None = None) -> dict[str, Any]:
        return dict(self.stats[station_id or "A"])


def _attempts() -> list[Attempt]:
    return [Attempt("tampered", "dishonest_station", "x", "t", "platform", ["rejected"],
                    outcome=DELIVERED, payload_sha256="1", station_id="A"),
            Attempt("replay-identical", "dishonest_station", "x", "t", "platform",
                    ["redelivered", "rejected:replay"], outcome=DELIVERED,
                    payload_sha256="2", station_id="A")]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> CountersOnly:
    wait = phase._wait
    monkeypatch.setattr(phase, "_wait", lambda predicate, timeout=0.5: wait(predicate, 0.5))
    return CountersOnly()


def _judge(api: CountersOnly, attempts: list[Attempt], after: dict[str, Any]) -> bool:
    """The counters move from what they were to `after` while the attacks run."""
    ctx = Context("127.0.0.1", 9, None, {}, ["A"], api, 0.0)  # type: ignore[arg-type]
    before = {"A": api.ingest_stats("A")}
    api.stats["A"] = after
    return phase._judge_platform(ctx, attempts, 0.0, before)


def test_counters_that_moved_pass_each_attempt(api: CountersOnly) -> None:
    attempts = _attempts()
    moved = {"rejected_total": 1, "messages": {"redelivered": 1}}
    assert _judge(api, attempts, moved) is False  # no sample offered
    assert [a.platform_outcome for a in attempts] == [
        "rejected (counted in bulk: the platform keeps no sample)", "redelivered"]
    assert [phase._passed(a) for a in attempts] == [True, True]


def test_counters_that_did_not_move_fail_each_attempt(api: CountersOnly) -> None:
    attempts = _attempts()
    _judge(api, attempts, {"rejected_total": 0, "messages": {}})
    assert [a.platform_outcome for a in attempts] == ["unseen", "unseen"]
    assert [phase._passed(a) for a in attempts] == [False, False]


def test_broker_and_api_attempts_pass_only_when_refused() -> None:
    def one(layer: str, outcome: str) -> bool | None:
        return phase._passed(Attempt("x", "intruder", "x", "t", layer, [REFUSED],
                                     outcome=outcome))

    assert one("broker", REFUSED) and one("broker", "not_delivered") and one("api", REFUSED)
    assert one("broker", ALLOWED) is False and one("broker", DELIVERED) is False
    assert one("api", ALLOWED) is False
    assert one("broker", NOT_ATTEMPTED) is None  # not made: SEC-1 incomplete, never passed
