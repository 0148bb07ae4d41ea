"""One poll of a live platform's API (docs/platform-api.md): the stations' on-line state,
the records that arrived since the last poll, and the alerts — gathered into a `PollData`
that the store commits in one transaction.

Records are read per station and resource from a *settled* device time on: the earliest
`drained_through` (§5.1) of the station's devices when the poll began — the platform holds
every record before it — less an overlap, so a record stored late (store-and-forward) is
still read. The API's own cursors are opaque and end with null on the last page, so they
cannot resume a walk later; the settled time is the observer's cursor. A platform that
does not report `drained_through` is read from the newest device time seen less
`lookback_s`. Reading a record twice changes nothing (the store keys them).

An error answer or no answer to GET /api/v1/stations is a sample of an unavailable
platform, not a failure of the observer; an error on a record or alert resource is noted
in the poll and retried by the next (its settled time does not move).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acceptance.observe import ApiError, PlatformClient
from acceptance.observing.store import STREAM_TIME, PollData

ALERT_RESOURCE = "alerts"


@dataclass(frozen=True)
class PollSettings:
    since: float  # device time records are read from on a fresh start
    overlap_s: float = 600.0  # re-read before the settled time (a late drained_through)
    lookback_s: float = 86400.0  # without drained_through: re-read this far back


class MalformedAnswer(ValueError):
    """The platform answered, but not with what the API promises (names the field)."""


def registry_row(st: dict[str, Any]) -> dict[str, Any]:
    """A station of GET /api/v1/stations as a ledger row with equipment counts."""
    disp = st.get("dispensers") or []
    return {"station_id": str(st["station_id"]), "name": st.get("name"),
            "town": st.get("town"), "ownership": st.get("ownership"),
            "active": int(bool(st.get("active", True))), "dispensers": len(disp),
            "nozzles": sum(len(d.get("nozzles") or []) for d in disp),
            "tanks": len(st.get("tanks") or [])}


def station_sample(st: dict[str, Any]) -> tuple[bool, bool | None, list[str]]:
    """(on line, collector on line, what is off line): a station is on line when its
    collector is (effective state, §5.1) and so is every device the ledger expects."""
    collector = (st.get("collector") or {}).get("online")
    off = [] if collector else ["collector"]
    for d in st.get("devices") or []:
        if d.get("expected", True) and not d.get("online"):
            off.append(str(d.get("device")))
    return (bool(collector) and not off, None if collector is None else bool(collector), off)


def drained_through(st: dict[str, Any]) -> float | None:
    """The earliest `drained_through` of the station's expected devices; None when any of
    them has none (never reported, or a 1.0 platform)."""
    times = [d.get("drained_through") for d in st.get("devices") or []
             if d.get("expected", True)]
    if not times or any(not isinstance(t, int | float) for t in times):
        return None
    return float(min(times))


# what the store keeps of a record besides its identity: (field, type), null allowed
OPTIONAL_FIELDS = (("nozzle", int), ("volume_ml", int), ("volume_total_ml", int),
                   ("received_at", int | float))
LAST_INSTANT = 253402300799.0  # 9999-12-31T23:59:59Z: a device time in ms is beyond it
INT64 = 1 << 63


def check_stations(items: list[Any], where: str) -> list[dict[str, Any]]:
    for i, st in enumerate(items):
        if not isinstance(st, dict) or not isinstance(st.get("station_id"), str):
            raise MalformedAnswer(f"{where}: items[{i}].station_id: expected a string")
        if not isinstance(st.get("collector"), dict | None):
            raise MalformedAnswer(f"{where}: items[{i}].collector: expected an object")
        if not isinstance(st.get("devices"), list | None):
            raise MalformedAnswer(f"{where}: items[{i}].devices: expected a list")
        for j, d in enumerate(st.get("devices") or []):
            if not isinstance(d, dict):
                raise MalformedAnswer(f"{where}: items[{i}].devices[{j}]: expected an object")
    return items


def check_records(stream: str, items: list[Any], where: str) -> list[dict[str, Any]]:
    tf = STREAM_TIME[stream]
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise MalformedAnswer(f"{where}: items[{i}]: expected an object")
        for name, kind in (("key", str), ("station_id", str), ("device", str), ("seq", int),
                           (tf, int | float), *OPTIONAL_FIELDS):
            v = it.get(name)
            if v is None and (name, kind) in OPTIONAL_FIELDS:
                continue
            if not isinstance(v, kind) or isinstance(v, bool):
                raise MalformedAnswer(f"{where}: items[{i}].{name}: expected "
                                      f"{'a string' if kind is str else 'a number'}, "
                                      f"found {str(v)[:80]!r}")
            if isinstance(v, int) and not -INT64 <= v < INT64:
                raise MalformedAnswer(f"{where}: items[{i}].{name}: {v} is beyond 64 bits")
        if not 0 <= it["seq"] <= 0xFFFF:
            raise MalformedAnswer(f"{where}: items[{i}].seq: expected 0..65535 (a 16-bit FIFO "
                                  f"sequence number), found {it['seq']}")
        if not 0 <= it[tf] <= LAST_INSTANT:
            raise MalformedAnswer(f"{where}: items[{i}].{tf}: {it[tf]} is no epoch second "
                                  "(milliseconds?)")
    return items


def poll_once(client: PlatformClient, settled: dict[tuple[str, str], float | None],
              settings: PollSettings, now: float) -> PollData:
    """Read the platform once; never raises for what the platform answers (an error is
    recorded in the returned PollData)."""
    data = PollData(at=now, ok=False)
    where = client.url("/api/v1/stations")
    try:
        stations = check_stations(list(client.items("stations")), where)
    except (ApiError, MalformedAnswer) as exc:
        data.error = str(exc)
        return data
    data.ok = True
    data.stations = [registry_row(st) for st in stations]
    data.samples = {str(st["station_id"]): station_sample(st) for st in stations}
    for stream in STREAM_TIME:
        data.records[stream] = []
        for st in stations:
            sid = str(st["station_id"])
            _read_stream(client, data, stream, sid, settled.get((stream, sid)),
                         drained_through(st), settings)
    try:
        data.alerts = [a for a in client.items(ALERT_RESOURCE) if isinstance(a, dict)]
    except ApiError as exc:
        data.errors.append(f"alerts: {exc}")
    return data


def _read_stream(client: PlatformClient, data: PollData, stream: str, sid: str,
                 settled: float | None, drained: float | None, s: PollSettings) -> None:
    since = s.since if settled is None else settled
    start = since - s.overlap_s
    where = client.url(f"/api/v1/{stream}", {"station_id": sid, "from": start})
    filters: dict[str, Any] = {"station_id": sid, "from": start}
    try:
        items = check_records(stream, list(client.items(stream, **filters)), where)
    except (ApiError, MalformedAnswer) as exc:
        data.errors.append(f"{stream} {sid}: {exc}")
        return
    data.records[stream] += items
    if drained is not None:
        new = drained
    else:
        newest = max((float(it[STREAM_TIME[stream]]) for it in items), default=None)
        new = since if newest is None else newest - s.lookback_s
    data.settled[(stream, sid)] = max(since, new)
