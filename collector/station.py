"""One station's collector: poller → spool → uplink, plus heartbeats.

`StationCollector.run(stop)` runs until `stop` is set, then shuts down in the order that
keeps the store-and-forward promise: finish the poll round in progress (its records are
committed before their FIFO acks), give outstanding platform acks a moment, publish
`online: false`, disconnect, close the spool.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from collector import __version__
from collector.aio import sleep_or_stop, wait_any
from collector.endpoints import StationEndpoint
from collector.keys import StationKeys
from collector.poller import PollSettings, StationPoller
from collector.profile import Profile
from collector.spool import Spool
from collector.uplink import Uplink, UplinkSettings
from collector.uplink_records import RecordBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorSettings:
    heartbeat_interval: float = 30.0  # s of collector wall time
    # a device going on or off line is reported at once, but not more often than this
    status_min_gap: float = 0.5
    spool_synchronous: str = "FULL"
    poll: PollSettings = PollSettings()
    uplink: UplinkSettings = UplinkSettings()


class StationCollector:
    def __init__(self, endpoint: StationEndpoint, profiles: dict[str, Profile],
                 keys: StationKeys, broker: tuple[str, int], spool_dir: Path,
                 settings: CollectorSettings | None = None,
                 account: tuple[str, str | None] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """`account`: MQTT (username, password), None to connect anonymously; `tls`: how to
        verify the broker (mqtts), None for plain TCP."""
        self.station_id = endpoint.station_id
        self.settings = settings or CollectorSettings()
        self._device_changed = asyncio.Event()
        self.spool = Spool(spool_dir, self.station_id,
                           synchronous=self.settings.spool_synchronous)
        try:
            builder = RecordBuilder(self.station_id, profiles)
            self.uplink = Uplink(self.station_id, broker[0], broker[1], keys, self.spool,
                                 self.spool.boot_id, self.settings.uplink, account, tls)
            self.poller = StationPoller(endpoint, profiles, builder, self.spool,
                                        self.settings.poll,
                                        on_spooled=lambda n: self.uplink.wake.set(),
                                        on_device_change=self._device_changed.set)
        except Exception:
            self.spool.close()
            raise

    def heartbeat_fields(self) -> dict:
        return {"boot_id": self.spool.boot_id, "collector_version": __version__,
                "backlog": self.spool.backlog, "devices": self.poller.heartbeat_devices()}

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Every `heartbeat_interval`, and at once (after at least `status_min_gap`) when a
        device goes on or off line: the platform shows it within a poll's failures, not a
        heartbeat period later (DAT-6), whatever the period."""
        interval = self.settings.heartbeat_interval
        gap = min(self.settings.status_min_gap, interval)
        # The first one soon after start-up, once the first poll sweep had its chance.
        if await sleep_or_stop(stop, min(2.0, interval)):
            return
        while True:
            self._device_changed.clear()  # this heartbeat reports the change
            if self.uplink.connected.is_set():
                self.uplink.publish_status("heartbeat", self.heartbeat_fields())
            if await sleep_or_stop(stop, gap):
                return
            await wait_any([stop, self._device_changed], interval - gap)
            if stop.is_set():
                return

    async def run(self, stop: asyncio.Event) -> None:
        stop_polling = asyncio.Event()
        stop_uplink = asyncio.Event()
        log.info("%s: collecting from %s (spool %s, boot %d)", self.station_id,
                 self.poller.endpoint.describe(), self.spool.path, self.spool.boots)
        poll_task = asyncio.create_task(self.poller.run(stop_polling), name="poll")
        uplink_task = asyncio.create_task(self.uplink.run(stop_uplink), name="uplink")
        beat_task = asyncio.create_task(self._heartbeats(stop_uplink), name="heartbeat")
        tasks = [poll_task, uplink_task, beat_task]
        try:
            stop_waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stop_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_waiter.cancel()
            for task in done:
                if task is not stop_waiter and (exc := task.exception()) is not None:
                    raise exc
        finally:
            stop_polling.set()
            await asyncio.gather(poll_task, return_exceptions=True)
            stop_uplink.set()  # no reconnects from here on
            await asyncio.gather(uplink_task, beat_task, return_exceptions=True)
            await self.uplink.close()
            self.spool.close()
            log.info("%s: stopped (backlog %d records in the spool)", self.station_id,
                     self.spool.backlog)
