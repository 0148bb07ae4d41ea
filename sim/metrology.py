"""A station's metrology paperwork (计量器具检定台账): the periodic verification of every
dispenser (周期检定, JJG 443), its lead seals (铅封) and the signed records the world files
(检定/维修记录 with the three signatures 维修单位、检定机构、加油站, domain brief §1 "三方签字",
§2 "6-month validity, twice a year").

- **Opening.** Each dispenser's last verification lies uniformly within the six months
  before the run (one child stream per dispenser of the station's metrology stream), so
  some fall due during a run. Its record (kind `verification`, performed before the start)
  is filed at power-up, so that a platform knows every dispenser's validity and seal
  numbers from the start.
- **Periodic verification.** The verification institute comes `lead` days (uniform 1–10)
  before the validity ends, at a working hour (09:00–16:00 local), never before the start
  of the run (then halfway to the due instant, at most an hour after the start). The
  verification passes, adjusts nothing and leaves the seals as found; its record is fully
  signed and valid for `VALIDITY_S` (182 days) from its own instant.
- **Seals.** Each dispenser has three numbered seals (transducer, encoder, mainboard);
  every record states each seal as found (`before`) and as left (`after`). Work that opens
  a seal (a recalibration, a maintenance) replaces it with the institute's next number.
  A seal replaced with no record (sim/cheats/seal_mismatch.py) leaves the next record's
  `before` different from the previous record's `after`: the record is marked
  `seal_mismatch` in the truth.
- **Validity.** Any verification record that passes renews the dispenser's validity to its
  instant + VALIDITY_S. A station that lets the verification lapse (a `verification_lapse`
  cheat: the book `hold`s its renewals) leaves the dispenser selling past `valid_until`:
  one truth row `verification_lapse` per such stretch (expired_at, renewed_at or NaN).

Record kinds follow POST /api/v1/verification-records (docs/platform-api.md §5.8); every
record is a truth record `verification_record` (table `verification_records`), whose `body`
the harness posts to the platform as it happens.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import simpy

from sim.cheats.records import VerificationLapse, VerificationRecord

DAY_S = 86400.0
VALIDITY_S = 182 * DAY_S  # a verification is valid six months (domain brief §2)
LEAD_DAYS = (1, 10)  # the institute comes this many days before the validity ends
WORK_HOURS = (9.0, 16.0)  # local hours at which it comes
ORGANISATION = "巴彦淖尔市计量检定测试所"  # verification institute (检定机构)
MAINTAINER = "乌拉特中旗加油机维修服务部"  # maintenance company (维修单位)
SIGNATORIES = ("maintainer", "verifier", "station")  # 维修单位、检定机构、加油站
SEAL_POSITIONS = ("transducer", "encoder", "mainboard")
INSTITUTE_SEAL = "QF"  # prefix of the institute's numbered seals


@dataclass
class _Dispenser:
    """What the book knows of one dispenser."""

    number: int
    rng: np.random.Generator
    performed_at: float  # last verification
    valid_until: float
    seal_serial: int  # the institute's next seal number for it
    seals: dict[str, str] = field(default_factory=dict)  # as physically fitted now
    recorded: dict[str, str] = field(default_factory=dict)  # as the last record left them
    hold: tuple[float, int] | None = None  # (renewals held until, the lapse cheat's index)
    filed: int = 0  # records filed (numbering)


class MetrologyBook:
    """The verification and maintenance records of one station (read the module doc)."""

    def __init__(self, station_id: str, dispensers: Iterable[int], start: float, end: float,
                 zone: ZoneInfo, seed: np.random.SeedSequence,
                 record_truth: Callable[[str, object], None]) -> None:
        self.station_id = station_id
        self.start, self.end, self.zone = start, end, zone
        self._record_truth = record_truth
        self.dispensers: dict[int, _Dispenser] = {}
        for number in sorted(dispensers):
            # one child stream per dispenser: a lapse or extra work on one never moves
            # another's draws
            rng = np.random.default_rng(np.random.SeedSequence(
                seed.entropy, spawn_key=(*seed.spawn_key, number)))
            age = float(rng.uniform(0.0, VALIDITY_S))
            performed = float(math.floor(start - age))
            serial = int(rng.integers(10_000_000, 90_000_000))
            d = _Dispenser(number, rng, performed, performed + VALIDITY_S, serial)
            for pos in SEAL_POSITIONS:
                d.seals[pos] = d.recorded[pos] = self._new_seal(d)
            self.dispensers[number] = d
        self.lapses: list[VerificationLapse] = []

    # -- cheats' hooks ------------------------------------------------------------------

    def hold(self, dispenser: int, expires_at: float, until: float | None, cheat: int) -> None:
        """The station lets dispenser `dispenser`'s verification lapse: its last
        verification before the run expires at `expires_at`, and no renewal is made before
        `until` (None: not in the run). Call before power-up (a cheat's `prepare`)."""
        d = self.dispensers[dispenser]
        d.valid_until = float(math.floor(expires_at))
        d.performed_at = d.valid_until - VALIDITY_S
        d.hold = (math.inf if until is None else float(until), cheat)

    def swap_seal(self, dispenser: int, position: str, number: str) -> str:
        """A seal cut and replaced by `number` with no record; returns the seal it replaced."""
        d = self.dispensers[dispenser]
        old, d.seals[position] = d.seals[position], number
        return old

    def seal(self, dispenser: int, position: str) -> str:
        return self.dispensers[dispenser].seals[position]

    # -- records ------------------------------------------------------------------------

    def opening(self) -> None:
        """File every dispenser's last verification before the run (at power-up)."""
        for d in self.dispensers.values():
            self._file(d, d.performed_at, "verification", cheat=-1, renew=False,
                       notes="periodic verification (周期检定) before the run")

    def file(self, dispenser: int, t: float, kind: str, *, cheat: int, nozzle: int = 0,
             missing: Sequence[str] = (), open_seals: Sequence[str] = (),
             parameters: Sequence[dict[str, Any]] = (), notes: str = "") -> VerificationRecord:
        """File a record of work on dispenser `dispenser` at `t`: `missing` signatories did
        not sign; `open_seals` were opened and replaced with the institute's next numbers. A
        `verification` renews the validity (it passes)."""
        return self._file(self.dispensers[dispenser], t, kind, cheat=cheat, nozzle=nozzle,
                          missing=missing, open_seals=open_seals, parameters=parameters,
                          notes=notes, renew=kind == "verification")

    def _file(self, d: _Dispenser, t: float, kind: str, *, cheat: int, renew: bool,
              nozzle: int = 0, missing: Sequence[str] = (), open_seals: Sequence[str] = (),
              parameters: Sequence[dict[str, Any]] = (), notes: str = "") -> VerificationRecord:
        bad = sorted(set(missing) - set(SIGNATORIES)) + sorted(set(open_seals)
                                                              - set(SEAL_POSITIONS))
        if bad:
            raise ValueError(f"station {self.station_id} D{d.number}: unknown signatory or "
                             f"seal position {bad}")
        t = float(math.floor(t))
        when = dt.datetime.fromtimestamp(t, self.zone)
        verification = kind == "verification"
        d.filed += 1
        seals, mismatch = [], False
        for pos in SEAL_POSITIONS:
            before = d.seals[pos]
            if pos in open_seals:
                d.seals[pos] = self._new_seal(d)
            seals.append({"position": pos, "before": before, "after": d.seals[pos]})
            mismatch |= before != d.recorded[pos]
            d.recorded[pos] = d.seals[pos]
        signed = {"maintainer": MAINTAINER, "verifier": ORGANISATION,
                  "station": f"{self.station_id} 站长"}
        for who in missing:
            signed.pop(who)
        valid_until = t + VALIDITY_S if verification else math.nan
        body: dict[str, Any] = {
            "station_id": self.station_id, "device": f"D{d.number}", "kind": kind,
            "performed_at": when.isoformat(timespec="seconds"),
            "organisation": ORGANISATION if verification else MAINTAINER,
            "certificate_no": (f"{'JD' if verification else 'WX'}-{when.year}-"
                               f"{self.station_id}-D{d.number}-{d.filed:03d}"),
            "signatures": signed, "seals": seals}
        if nozzle:
            body["nozzle"] = nozzle
        if verification:
            body["result"] = "pass"
            body["valid_until"] = dt.datetime.fromtimestamp(valid_until, self.zone).isoformat(
                timespec="seconds")
        if parameters:
            body["parameters"] = [dict(p) for p in parameters]
        if notes:
            body["notes"] = notes
        record = VerificationRecord(
            self.station_id, cheat, f"D{d.number}", nozzle, t, kind,
            json.dumps(body, ensure_ascii=False, sort_keys=True), valid_until=valid_until,
            fully_signed=not missing, missing_signatures=",".join(sorted(missing)),
            seal_mismatch=mismatch)
        self._record_truth("verification_record", record)
        if renew:
            self._renew(d, t)
        return record

    def _renew(self, d: _Dispenser, t: float) -> None:
        if t > d.valid_until:  # late: the dispenser sold without a valid verification
            self.lapses.append(self._lapse(d, t))
        d.performed_at, d.valid_until = t, t + VALIDITY_S

    def _lapse(self, d: _Dispenser, renewed_at: float) -> VerificationLapse:
        return VerificationLapse(self.station_id, f"D{d.number}", -1 if d.hold is None
                                 else d.hold[1], d.performed_at, d.valid_until, renewed_at)

    def _new_seal(self, d: _Dispenser) -> str:
        d.seal_serial += 1
        return f"{INSTITUTE_SEAL}{d.seal_serial:08d}"

    # -- the institute's round --------------------------------------------------------------

    def processes(self, env: simpy.Environment) -> list[Generator[simpy.Event, Any, None]]:
        return [self._periodic(env, d) for d in self.dispensers.values()]

    def _periodic(self, env: simpy.Environment,
                  d: _Dispenser) -> Generator[simpy.Event, Any, None]:
        """Verify `d` before each validity ends (unless a lapse holds it, then at the hold's
        end, late)."""
        while True:
            due = d.valid_until
            lead = int(d.rng.integers(LEAD_DAYS[0], LEAD_DAYS[1] + 1))
            hour = float(d.rng.uniform(*WORK_HOURS))
            at = self.planned(due, lead, hour)
            cheat = -1
            if d.hold is not None and at < d.hold[0]:
                at, cheat = d.hold[0], d.hold[1]
            if at > self.end:
                return
            yield env.timeout(max(0.0, at - env.now))
            if d.valid_until != due:  # renewed meanwhile (a recalibration): plan again
                continue
            late = at > due
            self._file(d, at, "verification", cheat=cheat, renew=True,
                       notes="periodic verification (周期检定)" + (
                           ", late: the verification had lapsed" if late else ""))

    def planned(self, due: float, lead_days: int, hour: float) -> float:
        """When the institute verifies a dispenser due at `due`: `lead_days` before it at
        `hour` local time; not before the start (then halfway to `due`, at most 1 h in)."""
        day = dt.datetime.fromtimestamp(due - lead_days * DAY_S, self.zone).date()
        at = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp() \
            + hour * 3600.0
        if at < self.start:
            at = self.start + min(3600.0, max(0.0, due - self.start) / 2.0)
        return float(math.floor(at))

    # -- the end of the run -----------------------------------------------------------------

    def finish(self, t_end: float) -> list[VerificationLapse]:
        """Truth rows of every lapse: those renewed late, then those still open at t_end."""
        out = list(self.lapses)
        for d in self.dispensers.values():
            if d.valid_until < t_end:
                out.append(VerificationLapse(
                    self.station_id, f"D{d.number}", -1 if d.hold is None else d.hold[1],
                    d.performed_at, d.valid_until, math.nan))
        for lapse in out:
            self._record_truth("verification_lapse", lapse)
        return out
