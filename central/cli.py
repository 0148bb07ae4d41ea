"""`forecourt platform`: the reference central platform (市级监管平台).

    forecourt platform --db sqlite:///runs/platform.db --broker mqtt://127.0.0.1:1883 \\
        --http 127.0.0.1:8080 --keys runs/keys.json \\
        --registry scenarios/fleets/urad-middle-banner.csv [--tokens tokens.json]

At start it applies pending schema migrations, imports the station registry, subscribes
to the uplink, serves the HTTP API (its chain check, GET /api/v1/integrity/chain, in a
process of its own, or the request's thread with --chain-check thread) and starts the
detection service (central/detectors/; in a worker process of its own, or a thread with
--detection thread: cheat alerts on each station's data up to its watermark, every
--detect-interval s; limits scaled by --limit-scale, none raised with --no-detect; the
sales vs tax declarations comparison of central/tax.py, off with --no-tax; the metrology
audit of central/metrology.py, off with --no-metrology; the credit grade of
central/credit.py, every station A with the QA option --flat-credit); then prints one JSON line to stdout
({"event": "ready", "http": …, "tokens": {…only if generated…}}). SIGTERM/SIGINT stop
it cleanly (exit 0). `migrate(argv)` (or `--migrate-only`) only applies migrations;
`--verify-chain [--station S] [--heads FILE]` only verifies the stored records against their
hash chains, and the chains against heads recorded earlier (central/integrity.py): exit 0
intact, 1 tampered, 2 bad input.

With `--broker mqtts://host:port` ingest speaks TLS and verifies the broker's certificate and
host name against `--mqtt-ca FILE`, or the system trust store without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.auth import TokenError, load_tokens
from central.chain_check import ChainCheckProcess, verify_here
from central.credentials import load_mqtt_password
from central.db import Conn, Database, DatabaseError, redact_url
from central.detectors.base import Settings
from central.detectors.service import DetectionService
from central.detectors.worker import DetectionProcess
from central.http_api import Api, ApiServer
from central.ingest import IngestService, parse_broker_url
from central.integrity import load_heads, stations_to_verify, verify_station
from central.keys import KeyFile, KeyFileError
from central.migrate import MigrationError, applied
from central.migrate import migrate as apply_migrations
from central.registry import RegistryError, import_registry, load_registry
from central.resources import Context
from central.tls import client_context
from central.vcf import Vcf, parse_densities

log = logging.getLogger("central")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected host:port, e.g. 127.0.0.1:8080, got {text!r}")
    return host or "127.0.0.1", int(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _share(text: str) -> float:
    value = _positive(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a share of one core is at most 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forecourt platform",
                                description="Reference central platform: MQTT ingest, "
                                            "storage, analytics and HTTP API.")
    p.add_argument("--db", required=True,
                   help="sqlite:///path/to/platform.db or postgresql://user@host:port/db")
    p.add_argument("--broker", help="mqtt://[user:password@]host:port of the uplink broker, "
                                    "or mqtts:// for TLS")
    p.add_argument("--mqtt-ca", type=Path,
                   help="with mqtts://: PEM CA bundle to verify the broker with (default: the "
                        "system trust store)")
    p.add_argument("--mqtt-credentials", type=Path,
                   help="MQTT credentials file (forecourt-mqtt-credentials/1, docs/uplink.md "
                        "§1): the platform connects as the account named by --client-id")
    p.add_argument("--http", type=_host_port, default=("127.0.0.1", 8080),
                   help="host:port for the HTTP API (default 127.0.0.1:8080; port 0 = any)")
    p.add_argument("--keys", type=Path, help="station key file (docs/uplink.md §2)")
    p.add_argument("--registry", type=Path, help="fleet ledger CSV (站点台账)")
    p.add_argument("--tokens", type=Path,
                   help="API tokens JSON; default: FORECOURT_PLATFORM_TOKENS / "
                        "FORECOURT_ADMIN_TOKEN / FORECOURT_READ_TOKEN, else generated")
    p.add_argument("--client-id", default="fc-platform",
                   help="MQTT client id (and account name in --mqtt-credentials)")
    p.add_argument("--timezone", default="Asia/Shanghai",
                   help="zone of the reconciliation day boundaries (default Asia/Shanghai)")
    p.add_argument("--replay-window", type=float, default=600.0,
                   help="seconds after sent_at within which a redelivery is re-acked (600)")
    p.add_argument("--heartbeat-timeout", type=float, default=90.0,
                   help="seconds without a status message before a collector counts as "
                        "off line (90); ingest that receives nothing for this long on an "
                        "open connection connects to the broker again")
    p.add_argument("--densities", default="",
                   help="product densities at 20 °C for the VCF, e.g. 92=725,95=737,0=835")
    p.add_argument("--max-batch", type=int, default=500,
                   help="messages per ingest transaction at most (500)")
    p.add_argument("--detect-interval", type=_positive, default=1.0,
                   help="wall seconds between detection passes (1.0); each pass evaluates "
                        "every station whose watermark reached a new checkpoint")
    p.add_argument("--detect-budget", type=_share, default=0.05,
                   help="share of a core (0 < b ≤ 1) the evaluations of stations whose data "
                        "still arrives may use (0.05); binds only in compressed runs, where "
                        "it defers evaluations, never their alerts' as_of "
                        "(central/detectors/service.py)")
    p.add_argument("--detection", choices=("process", "thread"), default="process",
                   help="where detection runs: a worker process of its own, using a second "
                        "core (default), or a thread of this process "
                        "(central/detectors/worker.py)")
    p.add_argument("--chain-check", choices=("process", "thread"), default="process",
                   help="where GET /api/v1/integrity/chain verifies a chain: a process of "
                        "its own, started with the platform, so the check uses a second core "
                        "(default), or the request's thread (central/chain_check.py)")
    p.add_argument("--limit-scale", type=_positive, default=1.0,
                   help="multiply every statistical detection limit (CUSUM, t and k-sigma "
                        "limits, minimum litres) by this factor (1.0; docs/detectors.md)")
    p.add_argument("--no-detect", action="store_true",
                   help="collection only: detection progress advances but no alert is "
                        "raised (a platform before go-live)")
    p.add_argument("--no-tax", action="store_true",
                   help="store tax declarations but never compare them with the sales "
                        "(GET /api/v1/tax-checks serves nothing, no tax alert)")
    p.add_argument("--no-metrology", action="store_true",
                   help="store verification and maintenance records but never audit them "
                        "(GET /api/v1/metrology serves nothing; no verification_expired, "
                        "record_unsigned or seal_mismatch alert)")
    p.add_argument("--flat-credit", action="store_true",
                   help="QA only: grade every station A with a full score whatever its "
                        "findings (GET /api/v1/credit ignores the rule of central/credit.py)")
    p.add_argument("--migrate-only", action="store_true",
                   help="apply schema migrations and exit")
    p.add_argument("--verify-chain", action="store_true",
                   help="verify the stored records against each station's hash chain, print "
                        "the findings and exit (0 intact, 1 tampered, 2 bad input)")
    p.add_argument("--station", help="with --verify-chain: only this station")
    p.add_argument("--heads", type=Path,
                   help="with --verify-chain: chain heads recorded earlier (a run's "
                        "chain-heads.json): each must still be a link of its station's chain")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _fail(message: str) -> int:
    print(f"forecourt platform: {message}", file=sys.stderr)
    return 2


def migrate(argv: list[str] | None = None) -> int:
    """Apply pending migrations to --db and exit (0 ok, 2 error)."""
    p = argparse.ArgumentParser(prog="forecourt platform-migrate")
    p.add_argument("--db", required=True)
    args = p.parse_args(argv)
    try:
        db = Database(args.db)
        done = apply_migrations(db)
    except (DatabaseError, MigrationError) as exc:
        return _fail(str(exc))
    print(json.dumps({"event": "migrated", "db": redact_url(args.db), "applied": done}))
    return 0


def verify_chain(url: str, station: str | None, heads_file: Path | None = None) -> int:
    """Verify each station's chain; one summary line per station, findings under it."""
    try:
        heads = load_heads(heads_file) if heads_file is not None else {}
    except ValueError as exc:
        return _fail(str(exc))
    if url.startswith("sqlite:///") and not Path(unquote(url[len("sqlite:///"):])).is_file():
        return _fail(f"--db {url}: no such SQLite database")  # do not create an empty one
    try:
        db = Database(url)
        try:
            with db.borrow() as conn:
                if "0008_record_chain" not in _applied(conn):
                    return _fail(f"--db {redact_url(url)}: no record chain (migration 0008 "
                                 "not applied; run --migrate-only first)")
                chosen = stations_to_verify(conn)
                unknown = sorted(set(heads) - set(chosen))
                if unknown:
                    return _fail(f"--heads {heads_file}: station(s) {', '.join(unknown)} "
                                 "neither in the registry nor in the chain")
                if station is not None:
                    if station not in chosen:
                        return _fail(f"--station {station}: no such station in the registry "
                                     "or the chain")
                    chosen = [station]
                reports = [verify_station(conn, sid, heads.get(sid)) for sid in chosen]
        finally:
            db.close()
    except DatabaseError as exc:
        return _fail(str(exc))
    for r in reports:
        state = "intact" if r.intact else f"TAMPERED ({r.findings_total} finding(s))"
        print(f"{r.station_id}: {state}; {r.records} chained record(s), head {r.head}")
        for f in r.findings:
            where = f.get("key", f.get("position"))
            print(f"  {f['finding']} {where}: {f['detail']}")
        if r.findings_total > len(r.findings):
            print(f"  … and {r.findings_total - len(r.findings)} more")
    bad = sum(not r.intact for r in reports)
    print(f"{len(reports)} station(s) verified, {bad} tampered")
    return 1 if bad else 0


def _applied(conn: Conn) -> set[str]:
    try:
        return {f"{v:04d}_{n}" for v, (n, _) in applied(conn).items()}
    except Exception:  # no schema_migrations table (either engine's error): not a platform DB
        conn.rollback_quietly()
        return set()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.migrate_only:
        return migrate(["--db", args.db])
    if args.verify_chain:
        return verify_chain(args.db, args.station, args.heads)
    missing = [f"--{n}" for n in ("broker", "keys", "registry") if getattr(args, n) is None]
    if missing:
        return _fail(f"missing {', '.join(missing)} (needed unless --migrate-only)")
    try:
        zone = ZoneInfo(args.timezone)
        vcf = Vcf(parse_densities(args.densities))
        address = parse_broker_url(args.broker)
        account = None
        if args.mqtt_credentials is not None:
            if address.username is not None:
                raise ValueError("--broker carries user:password and --mqtt-credentials is "
                                 "given too: expected one of them")
            account = (args.client_id, load_mqtt_password(args.mqtt_credentials,
                                                          args.client_id))
        if address.tls:
            tls: ssl.SSLContext | None = client_context(args.mqtt_ca)
        elif args.mqtt_ca is not None:
            raise ValueError(f"--mqtt-ca {args.mqtt_ca}: given for a plain mqtt:// broker; "
                             f"use mqtts://host:port in --broker for TLS")
        else:
            tls = None
        keyfile = KeyFile(args.keys)
        registry = load_registry(args.registry)
        tokens, generated = load_tokens(args.tokens)
        db = Database(args.db)
        applied = apply_migrations(db)
        with db.borrow() as conn:
            import_registry(conn, registry)
    except (ZoneInfoNotFoundError, ValueError, KeyFileError, RegistryError, TokenError,
            DatabaseError, MigrationError) as exc:
        return _fail(str(exc))
    if applied:
        log.info("schema migrations applied: %s", ", ".join(applied))
    unkeyed = sorted(s.station_id for s in registry
                     if s.station_id not in keyfile.current().stations)
    if unkeyed:
        log.warning("%d registry station(s) have no key and will be rejected (unknown_kid): "
                    "%s", len(unkeyed), ", ".join(unkeyed[:10]))

    stations = {s.station_id: s for s in registry}
    ingest = IngestService(db, args.broker, stations, keyfile, client_id=args.client_id,
                           account=account, tls=tls,
                           replay_window_s=args.replay_window, max_batch=args.max_batch,
                           quiet_reconnect_s=args.heartbeat_timeout)

    def health() -> dict:
        return {"mqtt_connected": ingest.connected, "mqtt_subscribed": ingest.subscribed,
                "queue": ingest.backlog,
                "batches": ingest.batches, "messages": ingest.messages,
                "last_error": ingest.last_error, "quiet_reconnects": ingest.quiet_reconnects,
                # quiet for as long as a collector may be before it counts as off line
                "problems": ingest.problems(quiet_s=args.heartbeat_timeout)}

    settings = Settings(limit_scale=args.limit_scale, detect=not args.no_detect,
                        zone=args.timezone, densities=parse_densities(args.densities),
                        tax=not args.no_tax, metrology=not args.no_metrology)
    detection: DetectionService | DetectionProcess = (
        DetectionProcess(args.db, settings, interval_s=args.detect_interval,
                         budget=args.detect_budget, log_level=args.log_level)
        if args.detection == "process" else
        DetectionService(db, settings, interval_s=args.detect_interval,
                         budget=args.detect_budget))
    if args.no_detect or args.limit_scale != 1.0:
        log.warning("detection %s", "off (collection only)" if args.no_detect
                    else f"limits scaled by {args.limit_scale:g}")
    if args.no_tax:
        log.warning("tax comparison off: declarations are stored, never compared")
    if args.no_metrology:
        log.warning("metrology audit off: verification records are stored, never audited")
    if args.flat_credit:
        log.warning("credit grading flat: every station is graded A whatever its findings")

    ctx = Context(zone, vcf, args.heartbeat_timeout, time.time, tax=not args.no_tax,
                  metrology=not args.no_metrology, flat_credit=args.flat_credit)
    try:
        chain_check = ChainCheckProcess(args.db) if args.chain_check == "process" else None
        server = ApiServer(Api(db, tokens, ctx, health,
                               chain_check.verify if chain_check else verify_here), *args.http)
    except OSError as exc:
        return _fail(f"--http {args.http[0]}:{args.http[1]}: cannot listen ({exc.strerror})")

    stop = threading.Event()
    # set from another thread: the handler runs in the main thread, which may hold the
    # event's lock inside stop.wait() at that instant (Event.set there would deadlock)
    previous = {sig: signal.signal(sig, lambda *_: threading.Thread(target=stop.set).start())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    ingest.start()
    server.start()
    detection.start()
    if chain_check is not None:  # after the detection worker: the harness samples both
        chain_check.start()
    ready = {"event": "ready", "http": server.url, "db": redact_url(args.db),
             "broker": args.broker, "stations": len(registry)}
    if generated:
        ready["tokens"] = generated
    print(json.dumps(ready), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping")
        detection.stop()
        server.stop()
        if chain_check is not None:
            chain_check.stop()
        ingest.stop()
        db.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
