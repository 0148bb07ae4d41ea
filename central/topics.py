"""The uplink topic tree (docs/uplink.md §1), parsed strictly."""

from __future__ import annotations

import re
from dataclasses import dataclass

STATION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
DEVICE_RE = re.compile(r"G|D[1-9][0-9]{0,2}")
DATA_KINDS = ("transaction", "inventory", "delivery", "event", "state")
STATUS_KINDS = ("heartbeat", "online")
STREAM_OF_KIND = {"transaction": "transactions", "inventory": "inventory",
                  "delivery": "deliveries", "event": "events", "state": "states"}

# What the platform subscribes to (QoS 1).
SUBSCRIPTIONS = ("fsx/v1/+/+/evt/+", "fsx/v1/+/status/#")


class TopicError(ValueError):
    pass


@dataclass(frozen=True)
class Topic:
    station_id: str
    kind: str  # one of DATA_KINDS or STATUS_KINDS
    device: str | None  # data messages only


def parse_topic(topic: str) -> Topic:
    """`fsx/v1/<station>/<device>/evt/<kind>` or `fsx/v1/<station>/status/<kind>`."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "fsx" or parts[1] != "v1":
        raise TopicError("expected fsx/v1/<station_id>/…")
    station = parts[2]
    if not STATION_RE.fullmatch(station):
        raise TopicError(f"station id {station[:40]!r} does not match ^[A-Za-z0-9_-]{{1,32}}$")
    if len(parts) == 5 and parts[3] == "status":
        if parts[4] not in STATUS_KINDS:
            raise TopicError(f"unknown status kind {parts[4][:40]!r}; expected {STATUS_KINDS}")
        return Topic(station, parts[4], None)
    if len(parts) == 6 and parts[4] == "evt":
        device, kind = parts[3], parts[5]
        if not DEVICE_RE.fullmatch(device):
            raise TopicError(f"device {device[:40]!r} is neither G nor D<n>")
        if kind not in DATA_KINDS:
            raise TopicError(f"unknown data kind {kind[:40]!r}; expected {DATA_KINDS}")
        return Topic(station, kind, device)
    raise TopicError("expected fsx/v1/<station_id>/<device>/evt/<kind> or "
                     "fsx/v1/<station_id>/status/<heartbeat|online>")


def ack_topic(station_id: str) -> str:
    return f"fsx/v1/{station_id}/ack"
