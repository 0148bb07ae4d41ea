"""The harness as the inspector (现场核查): before the platform is observed, it moves a few
alerts along their lifecycle (POST /api/v1/alerts/{id}/status, docs/platform-api.md §5.12)
as an inspection would, so that the credit grade's lifecycle weights (§5.16) are exercised:

- at the first station (ledger order) where the scenario has a cheat of a cheat class
  (PULSE … DELIV, not a look-alike) and the platform raised a cheat alert at or after that
  cheat's start (less an hour), the earliest such alert is confirmed on site (现场核查属实)
  and then closed as rectified (已整改);
- at the first station whose scenario cheats are all honest look-alikes and where the
  platform raised a cheat alert, the earliest is closed while open: dismissed (误报).

The inspection knows what the scenario did, as an inspection on site finds out. Each action
and the platform's answer go to run.json `inspector`; a refusal or no answer is recorded,
never fatal (CRD-1 grades the statuses as observed). Alerts of other kinds are left open.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from acceptance.observe import ApiError, PlatformClient
from acceptance.oracle import CHEAT_ALERT_KINDS, CLASSES, LOOKALIKE, MATCH_BEFORE_S
from scenarios.loader import Scenario
from sim.cheats.registry import CHEAT_KINDS

CONFIRM_NOTE = "现场核查属实 (confirmed on site; the harness as the inspector)"
RECTIFIED_NOTE = "已整改 (rectified; the harness as the inspector)"
DISMISSED_NOTE = "误报，已排除 (dismissed: an honest look-alike; the harness as the inspector)"
POLICY = ("rectify the earliest cheat alert of the first station with a cheat (confirm, then "
          "close); dismiss the earliest cheat alert of the first station with only honest "
          "look-alikes (close while open)")


def _cheats_by_station(scenario: Scenario) -> dict[str, list[tuple[str, float]]]:
    """station → (class, start epoch) of each cheat the scenario configures."""
    out: dict[str, list[tuple[str, float]]] = {}
    for c in scenario.data.get("cheats") or []:
        cls = str(CHEAT_KINDS[c["kind"]].cheat_class)
        out.setdefault(str(c["station"]), []).append((cls, scenario.instant(c["start"])))
    return out


def _cheat_alerts(client: PlatformClient, station_id: str, since: float) -> list[dict[str, Any]]:
    """The station's open cheat alerts with as_of ≥ since, earliest first."""
    items = [a for a in client.items("alerts", station_id=station_id)
             if a.get("kind") in CHEAT_ALERT_KINDS and a.get("status") == "open"
             and isinstance(a.get("as_of"), int | float) and float(a["as_of"]) >= since]
    return sorted(items, key=lambda a: (float(a["as_of"]), str(a["id"])))


def _move(client: PlatformClient, alert: dict[str, Any], status: str, note: str,
          why: str) -> dict[str, Any]:
    path = f"/api/v1/alerts/{alert['id']}/status"
    action = {"station_id": alert.get("station_id"), "alert_id": alert["id"],
              "kind": alert.get("kind"), "as_of": alert.get("as_of"), "status": status,
              "why": why}
    try:
        code, answer = client.post(path, {"status": status, "note": note})
    except ApiError as exc:
        return {**action, "http": None, "error": str(exc)}
    error = answer.get("error") if isinstance(answer, dict) else None
    return {**action, "http": code, "error": None if code == 200 else str(error or answer)}


def _first(client: PlatformClient, station_ids: list[str],
           since: Callable[[str], float | None]) -> tuple[str, dict[str, Any]] | None:
    """The first station (in order) that `since` picks, with its earliest cheat alert from
    then on; None when no picked station has one."""
    for sid in station_ids:
        t = since(sid)
        alerts = [] if t is None else _cheat_alerts(client, sid, t)
        if alerts:
            return sid, alerts[0]
    return None


def inspect(client: PlatformClient, scenario: Scenario,
            station_ids: list[str]) -> dict[str, Any]:
    """Carry out the inspections (see the module docstring); run.json's `inspector`."""
    cheats = _cheats_by_station(scenario)

    def cheating_since(sid: str) -> float | None:
        starts = [t for cls, t in cheats.get(sid, []) if cls in CLASSES]
        return min(starts) - MATCH_BEFORE_S if starts else None

    def honest_since(sid: str) -> float | None:
        mine = cheats.get(sid, [])
        return -math.inf if mine and all(cls == LOOKALIKE for cls, _ in mine) else None

    try:
        rectify = _first(client, station_ids, cheating_since)
        dismiss = _first(client, station_ids, honest_since)
    except ApiError as exc:
        return {"policy": POLICY, "actions": [], "error": f"alerts not readable: {exc}"}
    actions: list[dict[str, Any]] = []
    if rectify is not None:
        sid, alert = rectify
        why = f"{sid} cheats (a cheat of a cheat class in the scenario)"
        confirmed = _move(client, alert, "confirmed", CONFIRM_NOTE, why)
        actions.append(confirmed)
        if confirmed["http"] == 200:
            actions.append(_move(client, alert, "closed", RECTIFIED_NOTE, why))
    if dismiss is not None:
        sid, alert = dismiss
        actions.append(_move(client, alert, "closed", DISMISSED_NOTE,
                             f"{sid} has only honest look-alikes in the scenario"))
    return {"policy": POLICY, "actions": actions}
