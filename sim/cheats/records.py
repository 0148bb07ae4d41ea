"""Ground-truth records of the cheat catalogue (devices never see these).

- CheatActivation → table `cheats`: one row per switch on/off (the cheat timeline).
- CheatInstance → `cheat_instances`: one row per configured cheat, written at the end of
  the run: what it did and the signature an oracle should expect (docs/cheats.md).
- DeviceState → `device_states`: a device's identity and status at power-up and at every
  change (the source of the uplink `state` records).
- Inspection → `inspections`: market-regulation spot checks (市场监管抽查) per station.
- VerificationRecord → `verification_records`: verification/maintenance documents (the body
  of POST /api/v1/verification-records, docs/platform-api.md §5.8; sim/metrology.py).
- VerificationLapse → `verification_lapses`: a dispenser that sold with its verification
  expired (检定过期).
- OffBookDraw → `off_book_draws`: product that left a tank without a recorded sale
  (filtered/offline fills, blind sales, night withdrawals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CheatActivation:
    """One switch a cheat made (ground truth only; devices never see this record)."""

    station_id: str
    cheat: int  # index in the scenario's cheat list
    kind: str
    dispenser: int  # 0 when not applicable
    nozzle: int  # 0 = not applicable / every nozzle of the dispenser
    tank: int  # 0 when not applicable
    time: float  # epoch s
    action: str  # "start" | "end"
    value_old: float  # the changed quantity before / after (kind-specific, docs/cheats.md)
    value_new: float
    params: str  # the cheat's params as canonical JSON


@dataclass(frozen=True, slots=True)
class CheatInstance:
    """One configured cheat: where, when, how much, and its expected signature."""

    station_id: str
    cheat: int
    kind: str
    cheat_class: str  # "PULSE" … or "LOOK" (column `class`)
    lookalike: bool
    device: str  # "D<n>", "G" or ""
    dispenser: int
    nozzle: int
    tank: int
    first_start: float  # NaN = never active in the run
    last_end: float  # NaN = still active at the end (or never active)
    active_s: float
    effect_l: float
    effect_l_per_day: float
    trace: str  # JSON list of strings
    expected_alerts: str  # JSON list of alert kinds
    attribution: str  # "nozzle" | "device" | "tank" | "station"
    params: str  # canonical JSON


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's header as it presents itself (docs/register-map.md §4.1)."""

    station_id: str
    device: str  # "D<n>" or "G"
    time: float
    serial_number: str
    software_id: str
    mainboard_id: str  # "" for the gauge
    encoder_id: str  # "" for the gauge
    seal_state: int  # bit0 transducer, bit1 encoder, bit2 mainboard seal broken
    device_status: int  # bit0 locked (self-protection)
    offline: bool  # answers no request


@dataclass(frozen=True, slots=True)
class Inspection:
    """A market-regulation spot check at a station (市场监管抽查)."""

    station_id: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    """A verification / maintenance record (计量检定/维修记录), signed by the parties it
    names (sim/metrology.py)."""

    station_id: str
    cheat: int  # the cheat that made it; -1 for the world's periodic verifications
    device: str
    nozzle: int  # 0 = the whole dispenser
    performed_at: float  # epoch s
    kind: str  # the body's kind (verification | maintenance | parameter_change | …)
    body: str  # JSON body of POST /api/v1/verification-records
    valid_until: float = math.nan  # a verification: the end of its validity (epoch s)
    fully_signed: bool = True  # all three parties signed (维修单位、检定机构、加油站)
    missing_signatures: str = ""  # comma-separated signatories missing
    seal_mismatch: bool = False  # a seal found differs from the one the last record left


@dataclass(frozen=True, slots=True)
class VerificationLapse:
    """A dispenser that sold past the end of its verification's validity (检定过期)."""

    station_id: str
    device: str
    cheat: int  # the verification_lapse cheat that held the renewal; -1 for none
    performed_at: float  # the verification that expired
    expired_at: float  # its valid_until (epoch s; may precede the run)
    renewed_at: float  # the late verification; NaN = still expired at the end of the run


@dataclass(frozen=True, slots=True)
class OffBookDraw:
    """Product that left a tank without a recorded sale."""

    station_id: str
    cheat: int
    kind: str
    tank: int
    dispenser: int  # 0 = not through a dispenser (hidden line, pump)
    nozzle: int
    start_time: float
    end_time: float
    true_volume_l: float  # at the tank's temperature
    true_volume_20c_l: float
    displayed_volume_ml: int  # what the dispenser showed (0 when unmetered)
    amount_fen: int
    unit_price_fen: int
    totalized: bool  # the nozzle's totalizer counted it
