"""encoder_swap (换编码器): a doctored encoder sends extra pulses for one nozzle (domain brief
§1 "extra encoder-disc teeth", §6 #4, #8). encoder_id changes, the encoder seal (bit1) is
broken; events 20, 22 only with `log_events`.
"""

from __future__ import annotations

from sim.cheats import events
from sim.cheats.part import PartCheat


class EncoderSwap(PartCheat):
    kind = "encoder_swap"
    cheat_class = "PART"
    target = "nozzle"
    summary = "doctored encoder on a nozzle: new encoder id, seal bit1, skim"
    resources = ("factor", "encoder", "seal_encoder")
    replaced = ("encoder_id",)
    seal_bit = events.SEAL_ENCODER
