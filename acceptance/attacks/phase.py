"""The SEC-1 attack phase of an acceptance run (安全攻击阶段).

Once every station is on line and before the world starts moving, the harness acts as an
intruder on the station network, as a dishonest station and as an API client without the
right token (the attacks registered in acceptance/attacks/: intruder, dishonest, api), then
judges what the platform made of each message from the platform's own evidence:

- its rejection sample (GET /api/v1/ingest/rejections, matched by the payload's SHA-256):
  each message must be found there with a documented reason (not `internal_error`), or —
  for a replay of an honest message within the replay window — be counted as redelivered;
  a platform without the sample is judged on its rejection counters (GET
  /api/v1/stats/ingest), in bulk;
- afterwards, every station's honest messages must still be ingested (its counters move on
  after the attacks), so the attacks did not disturb honest ingest.

The result goes to `security.json` (docs/run-record.md); acceptance/checkers/security.py
decides SEC-1 from it and from the data the platform serves (no forged fill may appear).
Waits are on conditions, each bounded by `SETTLE_TIMEOUT_S`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the attack modules register themselves (acceptance.attacks.base.attack)
from acceptance.attacks import api as _api  # noqa: F401
from acceptance.attacks import dishonest as _dishonest  # noqa: F401
from acceptance.attacks import intruder as _intruder  # noqa: F401
from acceptance.attacks.base import (
    ALLOWED,
    ATTACKS,
    DELIVERED,
    NOT_DELIVERED,
    REFUSED,
    Attempt,
    Context,
    MqttSession,
)
from acceptance.observe import ApiError, PlatformClient

SETTLE_TIMEOUT_S = 60.0
MONITOR_ACCOUNT = "fc-harness"
INTERNAL_ERROR = "internal_error"


def station_keys(path: Path) -> dict[str, tuple[str, bytes]]:
    """station → (active kid, key) from a key file (docs/uplink.md §2)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return {sid: (s["active"], bytes.fromhex(s["keys"][s["active"]]))
            for sid, s in doc["stations"].items()}


def _wait(predicate: Callable[[], bool], timeout: float = SETTLE_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return True


def _counters(api: PlatformClient, stations: list[str]) -> dict[str, dict[str, Any]]:
    return {sid: api.ingest_stats(sid) for sid in stations}


def _honest_messages(stats: dict[str, Any]) -> int:
    return sum(int(v) for k, v in (stats.get("messages") or {}).items() if k != "redelivered")


def _monitor(ctx: Context) -> tuple[MqttSession | None, str]:
    accounts = ctx.accounts
    if accounts is not None and MONITOR_ACCOUNT not in accounts:
        return None, f"the broker's accounts have no {MONITOR_ACCOUNT}"
    creds = (MONITOR_ACCOUNT, accounts[MONITOR_ACCOUNT]) if accounts is not None else None
    s = MqttSession(ctx.broker_host, ctx.broker_port, creds, MONITOR_ACCOUNT, ctx.tls)
    if not s.connect():
        s.close()
        return None, f"the monitor's connection was refused (CONNACK {s.connack})"
    code = s.subscribe("fsx/v1/#")
    if code is None or code >= 0x80:
        s.close()
        return None, f"the monitor's subscription to fsx/v1/# was refused (SUBACK {code})"
    return s, "fc-harness" if creds else "anonymous (the broker has no accounts)"


def _capture(ctx: Context) -> None:
    """An honest heartbeat of the first station, as an eavesdropper would record it."""
    monitor = ctx.monitor
    if monitor is None:
        return
    topic = f"fsx/v1/{ctx.a}/status/heartbeat"

    if monitor.wait_until(lambda got: any(t == topic for t, _ in got), SETTLE_TIMEOUT_S):
        ctx.captured[topic] = next(p for t, p in monitor.messages() if t == topic)


def _rejections(api: PlatformClient, since: float) -> dict[str, str] | None:
    """payload SHA-256 → reason, from the platform's rejection sample (None: not offered)."""
    window: dict[str, Any] = {"from": since}  # `from` is a Python keyword
    try:
        return {str(r.get("payload_sha256")): str(r.get("reason"))
                for r in api.items("ingest/rejections", **window)}
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _judge_platform(ctx: Context, attempts: list[Attempt], since: float,
                    before: dict[str, dict[str, Any]]) -> bool:
    """Fill in what the platform made of each message that reached it; returns whether the
    platform offers a rejection sample."""
    reached = [a for a in attempts if a.outcome in (DELIVERED, ALLOWED) and a.payload_sha256
               and a.layer in ("platform", "broker")]
    sample: dict[str, str] | None = {}

    def settled() -> bool:
        nonlocal sample
        sample = _rejections(ctx.api, since)
        if sample is None:
            return True
        for a in reached:
            if a.payload_sha256 in sample:
                a.platform_outcome = f"rejected:{sample[a.payload_sha256]}"
            elif "redelivered" in a.expected and a.station_id:
                grown = _redelivered(ctx.api.ingest_stats(a.station_id)) \
                    - _redelivered(before[a.station_id])
                a.platform_outcome = "redelivered" if grown > 0 else None
        return all(a.platform_outcome for a in reached)

    _wait(settled)
    if sample is None:
        _judge_by_counters(ctx, reached, before)
        return False
    for a in reached:
        a.platform_outcome = a.platform_outcome or "unseen"
    return True


def _redelivered(stats: dict[str, Any]) -> int:
    return int((stats.get("messages") or {}).get("redelivered", 0))


def _judge_by_counters(ctx: Context, reached: list[Attempt],
                       before: dict[str, dict[str, Any]]) -> None:
    """Without a sample: the rejection counters must have grown by every message sent to be
    rejected, and a replay within the window counts as redelivered (or rejected)."""
    replays = [a for a in reached if "redelivered" in a.expected]
    rejected = [a for a in reached if a not in replays]

    def grown(name: str) -> int:
        after = _counters(ctx.api, ctx.station_ids)
        count = _redelivered if name == "redelivered" else (
            lambda st: int(st.get("rejected_total", 0)))
        return sum(count(after[s]) - count(b) for s, b in before.items())

    enough = _wait(lambda: grown("rejected") >= len(rejected))
    for a in rejected:
        a.platform_outcome = ("rejected (counted in bulk: the platform keeps no sample)"
                              if enough else "unseen")
    if replays:
        outcome = ("redelivered" if grown("redelivered") >= len(replays) else
                   "rejected:replay" if grown("rejected") >= len(rejected) + len(replays)
                   else "unseen")
        for a in replays:
            a.platform_outcome = outcome


def _passed(a: Attempt) -> bool | None:
    if a.layer in ("broker", "api"):
        if a.outcome in (REFUSED, NOT_DELIVERED):
            return True
        return False if a.outcome in (DELIVERED, ALLOWED) else None
    if a.outcome != DELIVERED:
        return None  # the attempt never reached the platform: nothing to judge
    got = a.platform_outcome or "unseen"
    if got in a.expected:
        return True
    if "rejected" in a.expected and got.startswith("rejected"):
        return not got.endswith(f":{INTERNAL_ERROR}")
    return False


def run_attack_phase(ctx: Context, out: Path) -> dict[str, Any]:
    """Run every registered attack, judge it, write `out/security.json` and return it."""
    started = time.time()
    before = _counters(ctx.api, ctx.station_ids)
    ctx.monitor, monitor_note = _monitor(ctx)
    attempts: list[Attempt] = []
    try:
        _capture(ctx)
        for fn in ATTACKS:
            try:
                attempts += fn(ctx)
            except Exception as exc:  # one attack's failure must not hide the others
                attempts.append(Attempt(fn.__name__, "harness", "the attack itself failed",
                                        "-", "harness", [], outcome="error",
                                        note=f"{type(exc).__name__}: {exc}"))
    finally:
        if ctx.monitor is not None:
            ctx.monitor.close()
    sample = _judge_platform(ctx, attempts, started - 5.0, before)
    for a in attempts:
        a.passed = _passed(a)
    # honest ingest must go on *after* the attacks: every station's counters move on
    t0 = time.monotonic()
    after = _counters(ctx.api, ctx.station_ids)
    moved: set[str] = set()

    def progressed() -> bool:
        for sid in set(ctx.station_ids) - moved:
            if _honest_messages(ctx.api.ingest_stats(sid)) > _honest_messages(after[sid]):
                moved.add(sid)
        return len(moved) == len(ctx.station_ids)

    _wait(progressed)
    doc = {"started_wall": started, "ended_wall": time.time(),
           "broker_accounts": ctx.accounts is not None, "monitor": monitor_note,
           "rejection_sample": sample,
           "honest_ingest": {"stations": len(ctx.station_ids), "progressed": sorted(moved),
                             "waited_s": round(time.monotonic() - t0, 3)},
           "attempts": [a.to_dict() for a in attempts]}
    (out / "security.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False),
                                       encoding="utf-8")
    return doc
