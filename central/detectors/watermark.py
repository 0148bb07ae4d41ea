"""The station watermark: the device time up to which a station's data is complete.

Per device the collector reports `drained_through` in its heartbeat (uplink 1.1: every
record the device produced up to this instant has been read, spooled and acknowledged).
The station watermark is the minimum over its expected devices (the gauge G and every
dispenser of the registry), leaving out a device that

- the collector reports off line (device_status.online = 0), or
- lags the station's most advanced device by more than `max_device_lag_s` (24 h), or
- has no drained_through at all,

because otherwise one dispenser taken off line (a cheat) would blind the whole station.
The detectors see such a device's data as incomplete (`device_through` below the
checkpoint) and defer or qualify their decisions on it.

Fallback (a collector on uplink 1.0 reports no drained_through): when the collector's last
heartbeat had backlog 0, a device's data counts as complete up to the device_time of its
last good read minus `fallback_margin_s` (1 h: records read but not yet published).
The watermark never moves backwards (the caller keeps the maximum).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from central.db import Conn
from central.detectors.base import Settings


@dataclass(frozen=True)
class DeviceReport:
    online: bool
    device_time: float | None
    drained_through: int | None


@dataclass(frozen=True)
class Watermark:
    watermark: int | None  # None: unknown (no advance)
    device_through: dict[str, int]  # expected device → data complete up to (0 = unknown)
    excluded: dict[str, str] = field(default_factory=dict)  # device → why left out
    source: str = "none"  # drained_through | fallback | none


def compute_watermark(devices: tuple[str, ...], reports: Mapping[str, DeviceReport],
                      backlog: int | None, settings: Settings) -> Watermark:
    drained = {d: reports[d].drained_through for d in devices
               if d in reports and reports[d].drained_through is not None}
    if drained:
        source = "drained_through"
        known: dict[str, int] = {d: int(v) for d, v in drained.items() if v is not None}
    elif backlog == 0:
        source = "fallback"
        known = {d: int(reports[d].device_time) - settings.fallback_margin_s  # type: ignore
                 for d in devices if d in reports and reports[d].device_time is not None}
    else:
        return Watermark(None, {d: 0 for d in devices},
                         {d: "no drained_through and collector backlog not 0"
                          for d in devices}, "none")
    excluded: dict[str, str] = {}
    for d in devices:
        if d not in known:
            excluded[d] = "no completeness reported"
    if not known:
        return Watermark(None, {d: 0 for d in devices}, excluded, source)
    lead = max(known.values())
    included = []
    for d, t in known.items():
        if not reports[d].online:
            excluded[d] = "off line"
        elif t < lead - settings.max_device_lag_s:
            excluded[d] = f"lags the station by {(lead - t) / 3600:.1f} h"
        else:
            included.append(t)
    through = {d: known.get(d, 0) for d in devices}
    return Watermark(min(included) if included else None, through, excluded, source)


def station_devices(conn: Conn, station_id: str) -> tuple[str, ...]:
    dispensers = sorted({int(d) for (d,) in conn.query(
        "SELECT DISTINCT dispenser FROM station_nozzles WHERE station_id = ?", (station_id,))})
    return ("G",) + tuple(f"D{d}" for d in dispensers)


def station_watermark(conn: Conn, station_id: str, settings: Settings) -> Watermark:
    reports = {str(d): DeviceReport(bool(int(on)), None if t is None else float(t),
                                    None if dr is None else int(dr))
               for d, on, t, dr in conn.query(
                   "SELECT device, online, device_time, drained_through FROM device_status "
                   "WHERE station_id = ?", (station_id,))}
    row = conn.query_one("SELECT backlog FROM collector_status WHERE station_id = ?",
                         (station_id,))
    backlog = None if row is None or row[0] is None else int(row[0])
    return compute_watermark(station_devices(conn, station_id), reports, backlog, settings)
