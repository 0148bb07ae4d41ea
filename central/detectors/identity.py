"""Metrological identity (计量器具身份): component, software, seal and parameter changes
that no signed verification or maintenance record (三方签字) covers.

Changes come from two sources:

- device state reports (`states`): a change of mainboard_id, encoder_id, software_id or
  serial_number from the device's previous report → `component_change`; seal_state bits
  newly set → `seal_broken`; device_status bit 0 (self-lock 自锁) newly set →
  `parameter_change` (the device's own protection tripped);
- device events: 11 pulse_factor_change, 12 parameter_change, 25 self_lock →
  `parameter_change`; 20 seal_broken → `seal_broken`; 21 mainboard_replaced,
  22 encoder_replaced, 24 software_changed → `component_change`.

A change is covered when a fully signed record (verification_records.fully_signed = 1)
of the same device — and the same nozzle, when both name one — was performed within
`record_match_s` (1 day) of it. Since a record may be performed after the change, a change
is decided at t + record_match_s: that is its as_of. One alert per (kind, device, local
day of the change); evidence lists the changes and the records found (unsigned ones
included, to show why they did not count) or their absence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from central.detectors.base import AlertProposal, Context, local_date
from central.detectors.data import StationData

EVENT_KINDS = {11: ("parameter_change", "pulse_factor_change"),
               12: ("parameter_change", "parameter_change"),
               25: ("parameter_change", "self_lock"),
               20: ("seal_broken", "seal_broken"),
               21: ("component_change", "mainboard_replaced"),
               22: ("component_change", "encoder_replaced"),
               24: ("component_change", "software_changed")}
ID_FIELDS = ("mainboard_id", "encoder_id", "software_id", "serial_number")
LOCK_BIT = 1
TITLES = {"component_change": "component or software changed without a signed record",
          "seal_broken": "seal broken without a signed record",
          "parameter_change": "metrological parameter changed without a signed record"}


@dataclass(frozen=True)
class IdentityLimits:
    record_match_s: int = 86400


@dataclass(frozen=True)
class Change:
    kind: str
    device: str
    nozzle: int
    time: int
    what: str
    old: Any
    new: Any
    source: str  # "state" | "event"


class IdentityDetector:
    name: ClassVar[str] = "identity"
    kinds: ClassVar[tuple[str, ...]] = ("component_change", "seal_broken", "parameter_change")

    def evaluate(self, data: StationData, ctx: Context) -> list[AlertProposal]:
        lim = ctx.settings.limits(self.name, IdentityLimits())
        episodes: dict[tuple[str, str, str], list[tuple[Change, list[dict]]]] = {}
        for c, seen in uncovered_changes(data, lim.record_match_s):
            key = (c.kind, c.device, local_date(c.time, ctx.zone))
            episodes.setdefault(key, []).append((c, seen))
        out = []
        for (kind, dev, day), items in episodes.items():
            first, seen = items[0]
            changes_ev = [{"what": c.what, "old": c.old, "new": c.new, "time": c.time,
                           "nozzle": c.nozzle or None, "source": c.source}
                          for c, _ in items[:20]]
            # a change the device logged for a nozzle names it; a state change (nozzle 0)
            # seen with it is the same episode
            nozzles = {c.nozzle for c, _ in items if c.nozzle}
            out.append(AlertProposal(
                kind, "critical", first.time + lim.record_match_s,
                f"{dev}: {TITLES[kind]}",
                f"{len(items)} change(s) on {day}, first {first.what} "
                f"({first.old} → {first.new}); no fully signed record within "
                f"{lim.record_match_s / 3600:g} h", {
                    "day": day, "changes": changes_ev, "count": len(items),
                    "records_nearby": seen, "record_match_s": lim.record_match_s,
                    "signed_record": None},
                f"{kind}/{dev}/{day}", device=dev,
                nozzle=nozzles.pop() if len(nozzles) == 1 else None))
        return out


def uncovered_changes(data: StationData,
                      record_match_s: int) -> list[tuple[Change, list[dict]]]:
    """The changes decided by `data.through` (t + record_match_s ≤ through) that no fully
    signed record covers, in time order, each with the records seen near it (also the
    metrology audit's "changes without a signed record", central/metrology.py)."""
    changes = state_changes(data) + event_changes(data)
    decided = [c for c in changes if c.time + record_match_s <= data.through]
    out = []
    for c in sorted(decided, key=lambda c: (c.time, c.device, c.kind, c.what)):
        covering, seen = covering_records(data, c, record_match_s)
        if not covering:
            out.append((c, seen))
    return out


def covering_records(data: StationData, c: Change,
                     record_match_s: int) -> tuple[bool, list[dict]]:
    """Whether a fully signed record of the change's device (and nozzle, when both name one)
    performed within record_match_s of it covers it; and every record seen near it."""
    r = data.records
    near = np.flatnonzero((r.device == c.device)
                          & (np.abs(r.performed_at - c.time) <= record_match_s))
    seen = []
    covering = False
    for i in near:
        same_nozzle = c.nozzle == 0 or r.nozzle[i] == 0 or r.nozzle[i] == c.nozzle
        signed = bool(r.fully_signed[i])
        covering |= signed and same_nozzle
        seen.append({"id": str(r.id[i]), "kind": str(r.kind[i]),
                     "performed_at": float(r.performed_at[i]), "fully_signed": signed,
                     "nozzle": int(r.nozzle[i]) or None, "same_nozzle": same_nozzle})
    return covering, seen


def state_changes(data: StationData) -> list[Change]:
    st = data.states
    out: list[Change] = []
    for dev in np.unique(st.device):
        rows = np.flatnonzero(st.device == dev)
        rows = rows[np.lexsort((st.seq[rows], st.device_time[rows]))]
        if len(rows) < 2:
            continue
        a, b = rows[:-1], rows[1:]
        for f in ID_FIELDS:
            col = st.columns[f]
            for i, j in zip(a[col[a] != col[b]], b[col[a] != col[b]], strict=True):
                out.append(Change("component_change", str(dev), 0, int(st.device_time[j]),
                                  f, str(col[i]), str(col[j]), "state"))
        seal_new = st.seal_state[b] & ~st.seal_state[a]
        for i, j in zip(a[seal_new != 0], b[seal_new != 0], strict=True):
            out.append(Change("seal_broken", str(dev), 0, int(st.device_time[j]), "seal_state",
                              int(st.seal_state[i]), int(st.seal_state[j]), "state"))
        lock_new = (st.device_status[b] & ~st.device_status[a]) & LOCK_BIT
        for i, j in zip(a[lock_new != 0], b[lock_new != 0], strict=True):
            out.append(Change("parameter_change", str(dev), 0, int(st.device_time[j]),
                              "self_lock", int(st.device_status[i]),
                              int(st.device_status[j]), "state"))
    return out


def event_changes(data: StationData) -> list[Change]:
    ev = data.events
    sel = np.flatnonzero(np.isin(ev.code, list(EVENT_KINDS)) & (ev.device != "G"))
    return [Change(EVENT_KINDS[int(ev.code[i])][0], str(ev.device[i]), int(ev.unit[i]),
                   int(ev.device_time[i]), EVENT_KINDS[int(ev.code[i])][1],
                   int(ev.value_old_e4[i]) / 1e4, int(ev.value_new_e4[i]) / 1e4, "event")
            for i in sel]
