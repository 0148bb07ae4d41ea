"""The harness as the inspector (acceptance/inspector.py) against a fake platform: which alert
it rectifies, which it dismisses, and that a refusal is recorded, not fatal."""

from __future__ import annotations

from typing import Any

from acceptance.inspector import inspect
from acceptance.observe import ApiError

T = 1_775_000_000.0


class Scenario:
    """What inspect reads of a scenario: its cheats and their start instants."""

    def __init__(self, cheats: list[dict[str, Any]]) -> None:
        self.data = {"cheats": cheats}

    @staticmethod
    def instant(text: Any) -> float:
        return float(text)


class Platform:
    def __init__(self, alerts: list[dict[str, Any]], refuse: str | None = None) -> None:
        self.alerts = {a["id"]: {"status": "open", **a} for a in alerts}
        self.refuse = refuse  # a status change answered 409
        self.posts: list[tuple[str, str]] = []

    def items(self, resource: str, **filters: Any) -> list[dict[str, Any]]:
        assert resource == "alerts"
        return [dict(a) for a in self.alerts.values()
                if a["station_id"] == filters["station_id"]]

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        alert_id = path.split("/")[-2]
        self.posts.append((alert_id, body["status"]))
        if body["status"] == self.refuse:
            return 409, {"error": {"code": "conflict", "message": "no"}}
        self.alerts[alert_id]["status"] = body["status"]
        return 200, self.alerts[alert_id]


def alert(i: str, station: str, kind: str, as_of: float) -> dict[str, Any]:
    return {"id": i, "station_id": station, "kind": kind, "as_of": as_of}


CHEATS = [{"kind": "price_tamper", "station": "S2", "start": T},
          {"kind": "hot_delivery", "station": "S3", "start": T}]
ALERTS = [alert("x", "S1", "tank_loss", T),  # S1 has no cheat: left alone
          alert("a", "S2", "price_mismatch", T - 7200),  # before the cheat (− 1 h): not it
          alert("b", "S2", "verification_expired", T),  # not a cheat alert
          alert("c", "S2", "price_mismatch", T + 100),
          alert("d", "S2", "amount_mismatch", T + 50),
          alert("e", "S3", "delivery_short", T + 10)]


def test_rectifies_a_cheats_alert_and_dismisses_a_look_alikes():
    platform = Platform(ALERTS)
    out = inspect(platform, Scenario(CHEATS), ["S1", "S2", "S3"])
    assert platform.posts == [("d", "confirmed"), ("d", "closed"), ("e", "closed")]
    assert [(a["station_id"], a["status"], a["http"], a["error"]) for a in out["actions"]] == [
        ("S2", "confirmed", 200, None), ("S2", "closed", 200, None),
        ("S3", "closed", 200, None)]
    assert platform.alerts["a"]["status"] == "open" and "rectify" in out["policy"]


def test_a_refusal_is_recorded_and_nothing_follows_it():
    platform = Platform(ALERTS, refuse="confirmed")
    out = inspect(platform, Scenario(CHEATS[:1]), ["S2"])
    (only,) = out["actions"]
    assert (only["http"], only["status"]) == (409, "confirmed") and "conflict" in only["error"]
    assert platform.posts == [("d", "confirmed")]


def test_no_cheat_no_look_alike_no_action_and_unreadable_alerts():
    assert inspect(Platform(ALERTS), Scenario([]), ["S1", "S2"])["actions"] == []

    class Down(Platform):
        def items(self, resource: str, **filters: Any) -> list[dict[str, Any]]:
            raise ApiError("http://x/api/v1/alerts", None, "refused")

    out = inspect(Down([]), Scenario(CHEATS), ["S2"])
    assert out["actions"] == [] and "alerts not readable" in out["error"]
