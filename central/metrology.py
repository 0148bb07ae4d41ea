"""The metrology audit (计量器具检定审核): 强制检定 — every dispenser verified and in date;
三方签字 — every record signed by the maintenance company, the verification institute and
the station; 问题倒查追溯 — the chain of seal numbers unbroken and every metrological change
covered by a signed record.

From a station's verification / maintenance records (POST /api/v1/verification-records,
central/inputs.py) and its devices' state reports and events, known up to an instant
`through` (device clock):

- **Validity.** A *renewal* is a `verification` record that states `valid_until` and did
  not fail. A dispenser is in date at t when a renewal performed at or before t is valid
  after t. Each renewal's end V is an *expiry* when no renewal performed at or before V is
  valid after V: the dispenser sold on with an expired verification (检定过期) from V, until
  a later renewal. Decided at V (the records performed by then say it; a renewal must be
  made before the validity ends, and a late one does not undo the lapse): `as_of` = V. A
  dispenser with no renewal on file has status `no_record` and is not flagged (the platform
  cannot tell an expired verification from one never reported).
- **Signatures.** A record that lacks one of the three signatures (`fully_signed` false;
  the author's signature is required to store it at all) is a finding at its instant.
- **Seals.** Per device, records in time order: a seal a record states as found (`before`)
  must be the one the device's previous record that named that position left (`after`);
  otherwise the seal was replaced with no record — a finding at the record's instant.
- **Changes without a signed record.** The identity detector's rule (central/detectors/
  identity.py `uncovered_changes`): component, seal and parameter changes the devices
  report that no fully signed record covers; listed here, alerted by identity.

The metrology detector (central/detectors/metrology.py) raises `verification_expired`,
`record_unsigned` and `seal_mismatch` from `findings`; GET /api/v1/metrology serves
`station_audit` (one item per dispenser).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from central.db import Conn
from central.detectors.base import DEFAULT_ZONE, iso
from central.detectors.data import StationData, Stream, load_station_data
from central.detectors.identity import IdentityLimits, uncovered_changes

DAY_S = 86400.0
KINDS = ("verification_expired", "record_unsigned", "seal_mismatch")
SEVERITY = {"verification_expired": "warning", "record_unsigned": "warning",
            "seal_mismatch": "critical"}
TITLES = {"verification_expired": "verification expired (检定过期), the device is in use",
          "record_unsigned": "record not signed by all three parties (三方签字不全)",
          "seal_mismatch": "seal found differs from the one last recorded (铅封号不符)"}
STATUSES = ("valid", "expired", "no_record", "unknown")
STREAMS = ("records", "states", "events")
_ZONE = ZoneInfo(DEFAULT_ZONE)  # for the words of a finding only


@dataclass(frozen=True)
class Finding:
    """Something the audit flags: its kind, device (and nozzle), the instant it became true
    (the alert's as_of), a stable key and its evidence."""

    kind: str
    device: str
    nozzle: int  # 0 = the whole device
    time: int
    key: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _record(r: Stream, i: int) -> dict[str, Any]:
    return {"id": str(r.id[i]), "kind": str(r.kind[i]),
            "certificate_no": str(r.certificate_no[i]) or None,
            "performed_at": float(r.performed_at[i]), "nozzle": int(r.nozzle[i]) or None}


def _as_of(t: float) -> int:
    return int(math.ceil(t))


def renewals(r: Stream) -> np.ndarray:
    """Indices of the records that renew a verification: passed verifications stating
    valid_until."""
    return np.flatnonzero((r.kind == "verification") & np.isfinite(r.valid_until)
                          & (r.result != "fail"))


def expiries(r: Stream, through: int, zone: ZoneInfo = _ZONE) -> list[Finding]:
    """Every validity end no renewal known by then carried on, decided by `through`."""
    out: list[Finding] = []
    ren = renewals(r)
    for dev in sorted(set(r.device[ren].tolist())):
        mine = ren[r.device[ren] == dev]
        seen: set[float] = set()
        for i in mine[np.argsort(r.valid_until[mine], kind="stable")]:
            v = float(r.valid_until[i])
            if v in seen or _as_of(v) > through:
                continue
            seen.add(v)
            before = mine[r.performed_at[mine] <= v]
            if np.any(r.valid_until[before] > v):
                continue  # renewed in time
            out.append(Finding(
                "verification_expired", str(dev), 0, _as_of(v),
                f"verification_expired/{dev}/{_as_of(v)}",
                f"{dev}: verification valid until {iso(v, zone)} expired; no "
                f"verification renewed it by then", {
                    "valid_until": v, "verification": _record(r, int(i)),
                    "renewals_known": int(len(before))}))
    return out


def unsigned(r: Stream, through: int) -> list[Finding]:
    """Records not signed by all three parties."""
    out = []
    for i in np.flatnonzero(r.fully_signed == 0):
        t = _as_of(float(r.performed_at[i]))
        if t > through:
            continue
        missing = [m for m in str(r.missing[i]).split(",") if m]
        out.append(Finding(
            "record_unsigned", str(r.device[i]), int(r.nozzle[i]), t,
            f"record_unsigned/{r.device[i]}/{t}/{r.kind[i]}/{int(r.nozzle[i])}",
            f"{r.device[i]}: {r.kind[i]} record {r.certificate_no[i] or r.id[i]} lacks the "
            f"signature of {', '.join(missing) or 'a party'}",
            {"record": _record(r, int(i)), "missing": missing}))
    return out


def _seals(text: str) -> list[dict[str, Any]]:
    try:
        seals = json.loads(text)
    except ValueError:
        return []
    return [s for s in seals if isinstance(s, dict)] if isinstance(seals, list) else []


def seal_mismatches(r: Stream, through: int) -> list[Finding]:
    """Records whose seal found differs from the one the device's previous record left."""
    out = []
    order = sorted(range(len(r)), key=lambda i: (str(r.device[i]), float(r.performed_at[i]),
                                                 str(r.kind[i]), str(r.certificate_no[i]),
                                                 str(r.id[i])))
    left: dict[tuple[str, str], tuple[str, int]] = {}  # (device, position) → (after, record)
    for i in order:
        dev = str(r.device[i])
        t = _as_of(float(r.performed_at[i]))
        wrong = []
        for seal in _seals(str(r.seals[i])):
            pos = str(seal.get("position"))
            last = left.get((dev, pos))
            found = seal.get("before")
            if last is not None and found is not None and found != last[0]:
                wrong.append({"position": pos, "found": found, "expected": last[0],
                              "expected_from": _record(r, last[1])})
            if seal.get("after") is not None:
                left[(dev, pos)] = (str(seal["after"]), i)
        if wrong and t <= through:
            out.append(Finding(
                "seal_mismatch", dev, int(r.nozzle[i]), t,
                f"seal_mismatch/{dev}/{t}/{r.kind[i]}/{int(r.nozzle[i])}",
                f"{dev}: {wrong[0]['position']} seal found {wrong[0]['found']}, the last "
                f"record left {wrong[0]['expected']}: replaced with no record",
                {"record": _record(r, i), "seals": wrong}))
    return out


def findings(r: Stream, through: int, zone: ZoneInfo = _ZONE) -> list[Finding]:
    """Every finding decided by `through`, in time order (`zone`: for the words only)."""
    out = expiries(r, through, zone) + unsigned(r, through) + seal_mismatches(r, through)
    return sorted(out, key=lambda f: (f.time, f.device, f.kind, f.key))


# -- per dispenser (GET /api/v1/metrology) ---------------------------------------------------

def dispenser_audit(data: StationData, through: int | None,
                    record_match_s: int = IdentityLimits().record_match_s
                    ) -> list[dict[str, Any]]:
    """One item per device (the registered dispensers, then any other a record names):
    verification status at `through` (None: the platform's data has no clock yet — status
    `unknown`), its findings and the changes no signed record covers."""
    r = data.records
    clock = through if through is not None else int(np.max(r.performed_at, initial=0))
    found = findings(r, clock)
    changes = uncovered_changes(data, record_match_s) if through is not None else []
    devices = [d for d in data.devices if d != "G"]
    devices += sorted(set(r.device.tolist()) - set(devices))
    ren = renewals(r)
    out = []
    for dev in devices:
        mine = ren[(r.device[ren] == dev) & (r.performed_at[ren] <= clock)]
        last = int(mine[np.argmax(r.performed_at[mine])]) if len(mine) else None
        valid_until = float(np.max(r.valid_until[mine])) if len(mine) else None
        status = ("unknown" if through is None else "no_record" if valid_until is None
                  else "valid" if valid_until > clock else "expired")
        mine_found = [f for f in found if f.device == dev]
        unsigned_changes = [{"kind": c.kind, "what": c.what, "old": c.old, "new": c.new,
                             "time": c.time, "nozzle": c.nozzle or None, "source": c.source}
                            for c, _ in changes if c.device == dev]
        out.append({
            "station_id": data.station_id, "device": dev, "as_of": through, "status": status,
            "last_verification": None if last is None else {
                **_record(r, last), "valid_until": float(r.valid_until[last])},
            "valid_until": valid_until,
            "overdue_since": valid_until if status == "expired" else None,
            "overdue_days": round((clock - valid_until) / DAY_S, 3)
            if status == "expired" and valid_until is not None else None,
            "records": int(np.sum(r.device == dev)),
            "expired": [_brief(f) for f in mine_found if f.kind == "verification_expired"],
            "unsigned_records": [_brief(f) for f in mine_found if f.kind == "record_unsigned"],
            "seal_mismatches": [_brief(f) for f in mine_found if f.kind == "seal_mismatch"],
            "unsigned_changes": unsigned_changes[:100],
            "flagged": bool(mine_found or unsigned_changes or status == "expired")})
    return out


def _brief(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "time": f.time, "nozzle": f.nozzle or None, "detail": f.detail,
            **{k: v for k, v in f.evidence.items() if k in ("record", "missing", "seals",
                                                            "valid_until")}}


def station_clock(conn: Conn, station_id: str) -> int | None:
    """How far the platform knows the station (device clock): the detectors' progress, else
    its watermark; None before either exists."""
    row = conn.query_one("SELECT evaluated_through, watermark FROM detection_progress "
                         "WHERE station_id = ?", (station_id,))
    if row is None:
        return None
    known = [int(v) for v in row if v is not None]
    return max(known) if known else None


def station_audit(conn: Conn, station_id: str) -> list[dict[str, Any]]:
    """GET /api/v1/metrology items of one station."""
    through = station_clock(conn, station_id)
    horizon = through if through is not None else 2**62
    data = load_station_data(conn, station_id, horizon, streams_only=STREAMS)
    return dispenser_audit(data, through)

