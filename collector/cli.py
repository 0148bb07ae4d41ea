"""Command lines of the reference collector (wired as `forecourt collector` / `collectors`).

    collector --station S --endpoints FILE --broker mqtt[s]://[user:password@]host:port
              --spool DIR --keys FILE [--mqtt-credentials FILE] [--mqtt-ca FILE] [--profiles DIR]
              [--heartbeat S] [--poll-interval S] [--idle-poll-max S] [--log-level LEVEL]
    collectors --endpoints FILE --broker mqtt://host:port --spool-dir DIR --keys FILE [...]

MQTT account (docs/uplink.md §1): `user:password@` in --broker (URL-quoted; every station
of the process uses it), or --mqtt-credentials FILE, where station S uses account fc-col-S.
TLS: `mqtts://` (default port 8883) verifies the broker against --mqtt-ca FILE (a PEM CA
bundle), or the system trust store without it.

Both stop cleanly on SIGTERM/SIGINT: the poll round in progress finishes (records committed,
then FIFO acks), outstanding acks get a moment, `online: false` is published.
Exit codes: 0 stopped cleanly, 1 a station's collector failed (all were stopped cleanly),
2 bad arguments or input files (the message says which).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from collector import aio
from collector.credentials import load_mqtt_password, station_account
from collector.endpoints import EndpointError, StationEndpoint, load_endpoints
from collector.keys import KeyFileError, StationKeys, load_key_file, station_keys
from collector.poller import PollSettings
from collector.profile import DEFAULT_PROFILES_DIR, Profile, ProfileError, load_profiles
from collector.spool import SpoolError
from collector.station import CollectorSettings, StationCollector
from collector.tls import client_context
from collector.uplink import UplinkSettings
from collector.uplink_records import MappingError

log = logging.getLogger("collector")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False  # mqtts://


def parse_broker(url: str) -> BrokerAddress:
    """`mqtt[s]://[user[:password]@]host[:port]` (default port 1883, 8883 with mqtts; user
    and password are URL-unquoted)."""
    parsed = urlparse(url)
    shown = url.replace(f":{parsed.password}@", ":***@") if parsed.password else url
    if parsed.scheme not in ("mqtt", "tcp", "mqtts") or not parsed.hostname:
        raise ValueError(f"--broker {shown!r}: expected mqtt://[user:password@]host:port "
                         f"(or mqtts:// for TLS)")
    tls = parsed.scheme == "mqtts"
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"--broker {shown!r}: the port must be a number 1..65535") from None
    return BrokerAddress(parsed.hostname, port,
                         unquote(parsed.username) if parsed.username else None,
                         unquote(parsed.password) if parsed.password is not None else None,
                         tls)


def _tls(args: argparse.Namespace, broker: BrokerAddress) -> ssl.SSLContext | None:
    """How to verify the broker: None for plain mqtt://."""
    if not broker.tls:
        if args.mqtt_ca is not None:
            raise ValueError(f"--mqtt-ca {args.mqtt_ca}: given for a plain mqtt:// broker; "
                             f"use mqtts://host:port in --broker for TLS")
        return None
    return client_context(args.mqtt_ca)


def _accounts(args: argparse.Namespace, broker: BrokerAddress,
              ids: Sequence[str]) -> dict[str, tuple[str, str | None] | None]:
    """Each station's MQTT (username, password), or None to connect anonymously."""
    if args.mqtt_credentials is not None:
        if broker.username is not None:
            raise ValueError("--broker carries user:password and --mqtt-credentials is given "
                             "too: expected one of them")
        return {sid: (station_account(sid),
                      load_mqtt_password(args.mqtt_credentials, station_account(sid)))
                for sid in ids}
    if broker.username is not None:
        return {sid: (broker.username, broker.password) for sid in ids}
    return dict.fromkeys(ids)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoints", required=True, type=Path,
                        help="endpoint map written by `forecourt devices` (endpoints.json)")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883",
                        help="mqtt://[user:password@]host:port, or mqtts:// for TLS")
    parser.add_argument("--mqtt-ca", type=Path,
                        help="with mqtts://: PEM CA bundle to verify the broker with "
                             "(default: the system trust store)")
    parser.add_argument("--mqtt-credentials", type=Path,
                        help="MQTT credentials file (forecourt-mqtt-credentials/1): station S "
                             "connects as account fc-col-S (docs/uplink.md §1)")
    parser.add_argument("--keys", required=True, type=Path,
                        help="key file (format forecourt-keys/1, docs/uplink.md §2)")
    parser.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES_DIR,
                        help="directory of register profiles (default: %(default)s)")
    parser.add_argument("--heartbeat", type=_positive, default=30.0,
                        help="heartbeat period, s (default 30)")
    parser.add_argument("--poll-interval", type=_positive, default=0.5,
                        help="s between sweeps over every device FIFO (default 0.5)")
    parser.add_argument("--idle-poll-max", type=_positive, default=2.0,
                        help="s, the longest sweep interval of a FIFO that stays empty: it "
                             "doubles from --poll-interval up to this (default 2)")
    parser.add_argument("--live-interval", type=_positive, default=5.0,
                        help="s between reads of RTC and nozzle/tank blocks (default 5)")
    parser.add_argument("--modbus-timeout", type=_positive, default=1.0,
                        help="s per Modbus request (default 1)")
    parser.add_argument("--offline-after", type=int, default=5,
                        help="consecutive failures before a device is reported off line")
    parser.add_argument("--backoff-max", type=_positive, default=10.0,
                        help="cap of the retry delay for a failing device, s (default 10)")
    parser.add_argument("--ack-timeout", type=_positive, default=30.0,
                        help="s before records without a platform ack are sent again")
    parser.add_argument("--window", type=int, default=16,
                        help="data messages awaiting the platform's ack (default 16)")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="s the uplink waits after it published all the spool held, so "
                             "that the next messages carry more records (default 0.5; 0: "
                             "send each poll round's records at once)")
    parser.add_argument("--spool-sync", choices=("FULL", "NORMAL"), default="FULL",
                        help="SQLite synchronous mode of the spool (default FULL: power-safe)")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _settings(args: argparse.Namespace) -> CollectorSettings:
    if args.offline_after < 1 or args.window < 1:
        raise ValueError("--offline-after and --window must be at least 1")
    return CollectorSettings(
        heartbeat_interval=args.heartbeat, spool_synchronous=args.spool_sync,
        poll=PollSettings(poll_interval=args.poll_interval, live_interval=args.live_interval,
                          timeout=args.modbus_timeout, offline_after=args.offline_after,
                          backoff_max=args.backoff_max, idle_poll_max=args.idle_poll_max),
        uplink=UplinkSettings(window=args.window, ack_timeout=args.ack_timeout,
                              linger=args.linger))


def _logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # pymodbus logs every timeout at ERROR; the poller reports comms state itself.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def run_stations(collectors: list[StationCollector]) -> bool:
    """Run collectors until SIGTERM/SIGINT, then stop them all cleanly.

    A station whose collector fails (e.g. its spool became unwritable) fails alone: it is
    logged at ERROR, its connection ends (the platform shows it off line), and the other
    stations of the process go on. Returns False if any station failed.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(c.run(stop), name=c.station_id) for c in collectors]
    failed = False
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    failed = True
                    log.error("station %s failed and stopped; %d other station(s) go on",
                              task.get_name(), len(pending), exc_info=task.exception())
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return not failed


@dataclass(frozen=True)
class _Plan:
    """Everything checked before any connection is made."""

    stations: list[StationEndpoint]
    profiles: dict[str, Profile]
    keys: dict[str, StationKeys]
    broker: BrokerAddress
    settings: CollectorSettings
    accounts: dict[str, tuple[str, str | None] | None]  # station → MQTT (username, password)
    tls: ssl.SSLContext | None = None  # mqtts: how to verify the broker


def _plan(args: argparse.Namespace, station_ids: Sequence[str] | None) -> _Plan:
    endpoints = load_endpoints(args.endpoints)
    profiles = load_profiles(args.profiles)
    keyring = load_key_file(args.keys)
    ids = list(endpoints.stations) if station_ids is None else list(station_ids)
    for sid in ids:
        if sid not in endpoints.stations:
            raise EndpointError(f"{args.endpoints}: station {sid!r} is not in the endpoint map "
                                f"(stations: {', '.join(sorted(endpoints.stations))})")
    broker = parse_broker(args.broker)
    return _Plan([endpoints.stations[sid] for sid in ids], profiles,
                 {sid: station_keys(keyring, sid, str(args.keys)) for sid in ids},
                 broker, _settings(args), _accounts(args, broker, ids), _tls(args, broker))


async def _serve(plan: _Plan, spool_for) -> int:
    # Built inside the running loop: pymodbus clients bind to it when created.
    collectors: list[StationCollector] = []
    unusable: list[str] = []
    try:
        for ep in plan.stations:
            try:
                collectors.append(StationCollector(ep, plan.profiles, plan.keys[ep.station_id],
                                                   (plan.broker.host, plan.broker.port),
                                                   spool_for(ep.station_id), plan.settings,
                                                   account=plan.accounts[ep.station_id],
                                                   tls=plan.tls))
            except (SpoolError, OSError, sqlite3.Error) as exc:
                if len(plan.stations) == 1:
                    raise SpoolError(str(exc)) from exc
                # one station's spool must not take the others down (a fleet box)
                log.error("station %s: cannot open its spool (%s); it is not served, the "
                          "other stations are", ep.station_id, exc)
                unusable.append(ep.station_id)
    except _INPUT_ERRORS as exc:
        for c in collectors:
            c.spool.close()
        print(f"collector: {exc}", file=sys.stderr)
        return 2
    if not collectors:
        print(f"collector: no station could open its spool ({', '.join(unusable)})",
              file=sys.stderr)
        return 2
    return 0 if await run_stations(collectors) and not unusable else 1


_INPUT_ERRORS = (EndpointError, KeyFileError, ProfileError, SpoolError, MappingError, ValueError)


def _main(args: argparse.Namespace, station_ids, spool_for) -> int:
    _logging(args.log_level)
    try:
        plan = _plan(args, station_ids)
    except _INPUT_ERRORS as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 2
    return aio.run(_serve(plan, spool_for))


def collector_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forecourt collector",
                                     description="Reference station collector for one station.")
    parser.add_argument("--station", required=True, help="station id in the endpoint map")
    parser.add_argument("--spool", required=True, type=Path, help="spool directory")
    _common(parser)
    return parser


def collectors_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forecourt collectors",
                                     description="Reference collectors for every station of "
                                                 "the endpoint map, in one process.")
    parser.add_argument("--spool-dir", required=True, type=Path,
                        help="directory holding one spool per station (<dir>/<station_id>)")
    parser.add_argument("--stations", nargs="*", default=None,
                        help="only these stations (default: all in the endpoint map)")
    _common(parser)
    return parser


def main_collector(argv: Sequence[str] | None = None) -> int:
    args = collector_parser().parse_args(argv)
    return _main(args, [args.station], lambda sid: args.spool)


def main_collectors(argv: Sequence[str] | None = None) -> int:
    args = collectors_parser().parse_args(argv)
    return _main(args, args.stations, lambda sid: args.spool_dir / sid)


if __name__ == "__main__":
    sys.exit(main_collector())
