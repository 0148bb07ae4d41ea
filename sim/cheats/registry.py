"""The registry of cheat kinds: add a kind by writing its module (copy a neighbour) and
listing its class here (and in scenarios/scenario.schema.json; a test keeps them equal)."""

from __future__ import annotations

import math

from sim.cheats.amount_mismatch import AmountMismatch
from sim.cheats.base import RESOURCES, Cheat
from sim.cheats.blind_sales import BlindSales
from sim.cheats.delivery_short_drop import DeliveryShortDrop
from sim.cheats.dispenser_offline import DispenserOffline
from sim.cheats.encoder_swap import EncoderSwap
from sim.cheats.fake_totalizer import FakeTotalizer
from sim.cheats.gauge_frozen import GaugeFrozen
from sim.cheats.gauge_offset import GaugeOffset
from sim.cheats.hot_delivery import HotDelivery
from sim.cheats.keypad_edit_logged import KeypadEditLogged
from sim.cheats.keypad_edit_unlogged import KeypadEditUnlogged
from sim.cheats.large_fill_skim import LargeFillSkim
from sim.cheats.leak import Leak
from sim.cheats.mainboard_swap import MainboardSwap
from sim.cheats.meter_drift import MeterDrift
from sim.cheats.night_withdrawal import NightWithdrawal
from sim.cheats.price_tamper import PriceTamper
from sim.cheats.pulse_factor import PulseFactor
from sim.cheats.remote_skim import RemoteSkim
from sim.cheats.seal_breach import SealBreach
from sim.cheats.seal_mismatch import SealMismatch
from sim.cheats.self_lock_bypass import SelfLockBypass
from sim.cheats.tax_under_declaration import TaxUnderDeclaration
from sim.cheats.totalizer_reset import TotalizerReset
from sim.cheats.transaction_filter import TransactionFilter
from sim.cheats.unbooked_delivery import UnbookedDelivery
from sim.cheats.unsigned_record import UnsignedRecord
from sim.cheats.verification_lapse import VerificationLapse
from sim.cheats.verified_recalibration import VerifiedRecalibration
from sim.config import CheatConfig, StationConfig

_KINDS: tuple[type[Cheat], ...] = (
    # PULSE
    PulseFactor, RemoteSkim, LargeFillSkim, KeypadEditLogged, KeypadEditUnlogged,
    # PART
    MainboardSwap, EncoderSwap, SealBreach, SelfLockBypass,
    # DATA
    TransactionFilter, FakeTotalizer, TotalizerReset, DispenserOffline,
    # PRICE
    PriceTamper, AmountMismatch,
    # STOCK
    BlindSales, NightWithdrawal, GaugeFrozen, GaugeOffset,
    # DELIV
    DeliveryShortDrop, UnbookedDelivery,
    # TAX (the station's paperwork)
    TaxUnderDeclaration,
    # MET (the station's metrology paperwork: verification, signatures, seals)
    VerificationLapse, UnsignedRecord, SealMismatch,
    # honest look-alikes
    MeterDrift, HotDelivery, Leak, VerifiedRecalibration,
)
CHEAT_KINDS: dict[str, type[Cheat]] = {cls.kind: cls for cls in _KINDS}


def make_cheat(config: CheatConfig, where: str, index: int) -> Cheat:
    """Build and validate the cheat of `config`; `where` names it in errors (e.g. "cheats[2]"),
    `index` is its place in the scenario's cheat list."""
    try:
        cls = CHEAT_KINDS[config.kind]
    except KeyError:
        raise ValueError(f"{where}: unknown cheat kind {config.kind!r}; "
                         f"known kinds: {sorted(CHEAT_KINDS)}") from None
    return cls(config, where, index)


def check_overlaps(cheats: list[Cheat], stations: dict[str, StationConfig]) -> None:
    """Two cheats that change and restore the same resource (a nozzle's factor, a dispenser's
    mainboard, a tank's gauge reading…) must not overlap in time: each restores what it found,
    so overlapping ones would undo each other in the wrong order."""
    spans: dict[tuple[str, str, str], list[tuple[float, float, str]]] = {}
    for cheat in cheats:
        station = stations.get(cheat.config.station_id)
        if station is None:
            continue
        start, end = cheat.span()
        for res, place in cheat.resource_keys(station):
            spans.setdefault((cheat.config.station_id, res, place), []).append(
                (start, end, cheat.where))
    for (sid, res, place), items in spans.items():
        items.sort(key=lambda s: (s[0], s[1] if math.isfinite(s[1]) else math.inf))
        for (_, end_a, where_a), (start_b, _, where_b) in zip(items, items[1:], strict=False):
            if start_b < end_a:
                raise ValueError(f"{where_b}: overlaps {where_a} (both change the "
                                 f"{RESOURCES[res][1]} of station {sid} {place}); end one "
                                 f"before the next starts")
