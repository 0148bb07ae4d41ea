"""`forecourt` command line.

The harness commands (validate, simulate, devices, broker, keys) live here; `collector`,
`collectors` and `platform` hand their arguments to the reference SUT packages, imported
only when asked for, so the harness itself never depends on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _load(path: str):
    from scenarios.loader import ScenarioError, load_scenario

    try:
        return load_scenario(Path(path))
    except ScenarioError as exc:
        print(f"scenario rejected: {path}", file=sys.stderr)
        for msg in exc.messages:
            print(f"  - {msg}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from scenarios.loader import validate_file

    errors = validate_file(Path(args.scenario))
    if errors:
        print(f"{args.scenario}: {len(errors)} error(s)", file=sys.stderr)
        for msg in errors:
            print(f"  - {msg}", file=sys.stderr)
        return EXIT_ERROR
    scenario = _load(args.scenario)
    from acceptance.criteria import CriteriaError, resolve_criteria
    from acceptance.sut import SutError, parse_sut

    try:  # what `forecourt run` checks before it starts anything
        resolve_criteria(scenario.data.get("criteria"), run_days=scenario.data["days"],
                         source=f"{args.scenario}: criteria")
        parse_sut(scenario.data.get("sut"), base_dir=scenario.path.parent)
    except (CriteriaError, SutError) as exc:  # their messages name the file and field
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.scenario}: valid ({scenario.name}, {len(scenario.fleet)} stations in the fleet, "
          f"digest {scenario.digest[:12]})")
    return EXIT_OK


def _world_config(args: argparse.Namespace):
    from acceptance.world_config import build_world_config

    scenario = _load(args.scenario)
    return scenario, build_world_config(scenario, days=args.days, seed=args.seed)


def cmd_simulate(args: argparse.Namespace) -> int:
    from acceptance.progress import ProgressBar
    from sim.runner import simulate

    scenario, config = _world_config(args)
    out = Path(args.out)
    workers = args.workers
    if workers is None:  # the default runner's 2 workers; a local dask cluster: every core
        workers = 2 if args.scheduler == "processes" else os.cpu_count() or 1
    bar = ProgressBar("simulate", config.days * 86400.0)
    try:
        manifest = simulate(config, out, workers=workers, progress=bar,
                            scenario_name=scenario.name, scenario_digest=scenario.digest,
                            scheduler=args.scheduler)
    except RuntimeError as exc:
        from sim.dask_runner import SchedulerError

        if not isinstance(exc, SchedulerError):
            raise
        print(f"forecourt simulate: --scheduler {args.scheduler}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # the files hold what was written; the manifest says incomplete
        print("forecourt simulate: interrupted; the manifest says \"complete\": false",
              file=sys.stderr)
        return EXIT_FAIL
    finally:
        bar.close()
    (out / "scenario.yaml").write_bytes(Path(args.scenario).read_bytes())
    counts = manifest.get("counts", {})
    print(json.dumps({"out": str(out), "complete": manifest.get("complete", True),
                      "counts": counts}, ensure_ascii=False))
    return EXIT_OK if manifest.get("complete", True) else EXIT_FAIL


def _compression(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--compression: expected a number > 0 or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--compression: expected a number > 0 or 'max', got {text!r}")
    return value


def _seconds(text: str) -> float:
    """A duration in wall seconds: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds, a number > 0, got {text!r}")
    return value


def _scheduler(text: str) -> str:
    from sim.dask_runner import check_scheduler

    try:
        return check_scheduler(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _public_key(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError(f"--public-key: expected 64 hex digits (a raw Ed25519 "
                                         f"public key), got {text[:80]!r}")
    return text.lower()


def _fleet_processes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number 1..64, found {text!r}")
    return n


def _pace(text: str):
    from devices.pace import PaceWindow

    try:
        return PaceWindow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_devices(args: argparse.Namespace) -> int:
    import signal
    import threading

    from acceptance.progress import ProgressBar
    from acceptance.schedule import scenario_faults
    from devices.runner import serve
    from devices.silence import DEFAULT_RATE, Silence
    from sim.world import World

    scenario, config = _world_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_bytes(Path(args.scenario).read_bytes())
    rtu = args.rtu_station if args.rtu_station is not None else [
        s.station_id for s in config.stations if s.transport == "rtu"]
    # the scenario's Modbus faults are carried out by the devices themselves
    modes = {"device_silent": "silent", "modbus_busy": "busy", "modbus_slow": "slow",
             "rtu_line_noise": "noise", "modbus_garbled": "garbled"}
    # a wire fault's `rate`, from the scenario's entry (the chain's Fault does not carry it)
    rates = {(f["kind"], f.get("station"), f.get("device"), scenario.instant(f["at"])):
             f.get("rate", DEFAULT_RATE) for f in scenario.data.get("faults") or []}
    silences = [] if args.no_faults else [
        Silence(f.station or "", f.device, f.at, f.end, modes[f.kind], f.delay_s,
                rates[f.kind, f.station, f.device, f.at] if modes[f.kind] in ("noise", "garbled")
                else 0.0, config.seed)
        for f in scenario_faults(scenario) if f.kind in modes]
    # SIGTERM (how a harness stops us) ends the run like Ctrl-C: ground truth closed
    stop = threading.Event()
    # set from another thread: the handler runs in the main thread, which may hold the
    # event's lock inside stop.wait() at that instant (Event.set there would deadlock)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop.set).start())
    bar = ProgressBar("devices", config.days * 86400.0)
    world = World(config)
    try:
        serve(world, compression=args.compression, port_base=args.port_base, out_dir=out,
              rtu_station_ids=rtu, fifo_depth=scenario.fifo_depth,
              timezone=config.timezone, scenario_name=scenario.name, linger=args.linger,
              progress=bar, silences=silences, stop_event=stop, pace=args.pace,
              max_compression=args.max_compression, controlled=args.controlled)
    finally:
        bar.close()
    return EXIT_OK


def cmd_broker(args: argparse.Namespace) -> int:
    from acceptance.broker import serve_embedded

    serve_embedded(args.listen)
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    from acceptance.keys import make_key_file

    if args.tls is not None:
        return _tls_keys(args)
    if args.host:
        print("forecourt keys: --host: only with --tls DIR (names in the broker certificate)",
              file=sys.stderr)
        return EXIT_ERROR
    if args.out is None:
        print("forecourt keys: --out FILE is required with --endpoints/--scenario",
              file=sys.stderr)
        return EXIT_ERROR
    if args.endpoints:
        stations = list(json.loads(Path(args.endpoints).read_text())["stations"])
    else:
        stations = [row["station_id"] for row in _load(args.scenario).fleet]
    path = make_key_file(stations, Path(args.out))
    print(f"wrote keys for {len(stations)} stations to {path}")
    return EXIT_OK


def _tls_keys(args: argparse.Namespace) -> int:
    """`forecourt keys --tls DIR`: a throw-away CA and broker certificate (acceptance/tls.py)."""
    from acceptance.tls import VALID_DAYS, make_tls

    if args.out is not None:
        print("forecourt keys: --out: not used with --tls DIR (the files go to DIR)",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        files = make_tls(Path(args.tls), args.host)
    except ValueError as exc:
        print(f"forecourt keys: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"forecourt keys: --tls {args.tls}: cannot write: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote a throw-away CA ({files.ca}) and a broker certificate ({files.cert}, key "
          f"{files.key}) valid {VALID_DAYS} days for 127.0.0.1, localhost"
          + "".join(f", {h}" for h in args.host))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if args.fleet_processes > 1 and args.collectors != "fleet":
        print("forecourt run: --fleet-processes needs --collectors fleet", file=sys.stderr)
        return 2
    from acceptance.run import RunOptions, run

    return run(RunOptions(scenario=Path(args.scenario), out=Path(args.out), broker=args.broker,
                          mutant=args.sut_mutant, platform_mutant=args.platform_mutant,
                          days=args.days, seed=args.seed,
                          compression=args.compression, lang=args.lang, pdf=args.pdf,
                          drain_timeout_s=args.drain_timeout, collectors=args.collectors,
                          stall_timeout_s=args.stall_timeout,
                          fleet_processes=args.fleet_processes,
                          mqtt_tls=args.mqtt_tls,
                          detection_timeout_s=args.detection_timeout,
                          fault_wall_s=args.fault_wall, change_wall_s=args.change_wall))


def cmd_faults(args: argparse.Namespace) -> int:
    from acceptance.faults import KINDS, markdown

    if args.markdown:
        print(markdown())
        return EXIT_OK
    for k in KINDS.values():
        print(f"{k.name:<18} {k.layer:<10} served by {k.served_by:<8} names a {k.scope}")
        print(f"    {k.summary}")
        print(f"    expected: {k.expected}")
        print(f"    shows: {k.shows}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from acceptance.check import main

    return main([str(args.run)])


def cmd_report(args: argparse.Namespace) -> int:
    from acceptance.record import RunRecord
    from reports.render import render_reports

    path = Path(args.run) / "record.json"
    if not path.exists():
        print(f"forecourt report: {path} does not exist; run `forecourt check {args.run}` first",
              file=sys.stderr)
        return EXIT_ERROR
    for p in render_reports(RunRecord.read(path), Path(args.run), lang=args.lang, pdf=args.pdf):
        print(p)
    from acceptance.manifest import seal

    seal(Path(args.run), "forecourt report")  # the reports changed: sign anew
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from acceptance.manifest import ManifestError, verify_manifest

    try:
        problems, signer = verify_manifest(Path(args.run), args.public_key)
    except ManifestError as exc:
        print(f"forecourt verify: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for p in problems:
        print(p)
    if problems:
        print(f"{args.run}: NOT intact ({len(problems)} problem(s))")
        return EXIT_FAIL
    pinned = "the pinned key" if args.public_key else (
        "a key taken from the manifest itself: pin the issuer's key with --public-key")
    print(f"{args.run}: intact; every file matches manifest.json, signed by {signer} "
          f"({pinned})")
    return EXIT_OK


def cmd_manifest_key(args: argparse.Namespace) -> int:
    from acceptance.manifest import ManifestError, key_path, load_or_create_key, public_key_hex

    try:
        print(public_key_hex(load_or_create_key(key_path())))
    except (ManifestError, OSError) as exc:
        print(f"forecourt manifest-key: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _delegate(module: str, func: str, argv: list[str]) -> int:
    import importlib

    return int(getattr(importlib.import_module(module), func)(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    from mutants.collector import MUTANTS
    from mutants.platform import MUTANTS as PLATFORM_MUTANTS

    p = argparse.ArgumentParser(prog="forecourt", description=__doc__.splitlines()[0])
    p.add_argument("--log-level", default="WARNING")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate", help="check a scenario file and its fleet ledger")
    s.add_argument("scenario")
    s.set_defaults(func=cmd_validate)

    for name, helptext in (("simulate", "run the world without devices, as fast as possible"),
                           ("devices", "serve every station's devices over Modbus")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("scenario")
        s.add_argument("--days", type=float, help="override the scenario's duration")
        s.add_argument("--seed", type=int, help="override the scenario's seed")
        if name == "simulate":
            s.add_argument("--out", required=True, help="ground-truth directory")
            s.add_argument("--workers", type=_workers,
                           help="worker processes (default: 2; with --scheduler dask, every "
                                "core); unused with a scheduler address")
            s.add_argument("--scheduler", type=_scheduler, default="processes",
                           metavar="processes|dask|tcp://HOST:PORT",
                           help="processes (default: this machine's worker processes), dask "
                                "(a local dask.distributed cluster) or the address of a "
                                "running dask scheduler (needs the [dask] extra; "
                                "docs/scenarios.md)")
            s.set_defaults(func=cmd_simulate)
        else:
            s.add_argument("--out", default="runs/devices")
            s.add_argument("--compression", type=_compression, default=60.0,
                           help="simulated seconds per wall second, or 'max' (default 60)")
            s.add_argument("--port-base", type=int, default=15020)
            s.add_argument("--rtu-station", action="append",
                           help="serve this station as Modbus RTU over a pty (repeatable); "
                                "default: the fleet ledger's transport column")
            s.add_argument("--linger", action="store_true",
                           help="keep serving after the simulated period ends, until Ctrl-C "
                                "or SIGTERM")
            s.add_argument("--pace", action="append", type=_pace, default=[],
                           metavar="START:END:COMPRESSION[:latency][:exempt=ID,…]",
                           help="serve simulated [START, END) (epoch s) at this compression at "
                                "most (FIFOs at high water still hold the world, except the "
                                "exempt stations', '*': all); ':latency' logs when records "
                                "appear (repeatable)")
            s.add_argument("--max-compression", type=float,
                           help="ceiling of the compression outside pace windows at 'max'")
            s.add_argument("--controlled", action="store_true",
                           help="hold the world at its start until a harness advances it over "
                                "the control channel (devices/control.py; port in "
                                "endpoints.json)")
            s.add_argument("--no-faults", action="store_true",
                           help="ignore the scenario's Modbus faults (device_silent, modbus_busy, "
                                "modbus_slow, rtu_line_noise, modbus_garbled)")
            s.set_defaults(func=cmd_devices)

    s = sub.add_parser("run", help="acceptance run: scenario → verdict, evidence and reports")
    s.add_argument("scenario")
    s.add_argument("--out", required=True, help="run directory (new or empty)")
    s.add_argument("--days", type=float, help="override the scenario's duration")
    s.add_argument("--seed", type=int, help="override the scenario's seed")
    s.add_argument("--broker", default="auto",
                   help="auto (default: mosquitto if installed, else embedded), embedded, "
                        "mosquitto (a managed Mosquitto with per-run accounts and ACL) or "
                        "mqtt://host:port")
    s.add_argument("--mqtt-tls", action="store_true",
                   help="the managed Mosquitto listens with TLS only (mqtts://), with a "
                        "throw-away CA made in the run directory that collectors and platform "
                        "get as --mqtt-ca / {mqtt_ca} (docs/uplink.md §1)")
    s.add_argument("--compression", type=_compression, default=None,
                   help="simulated seconds per wall second, or 'max' (default: max)")
    s.add_argument("--sut-mutant", choices=MUTANTS,
                   help="QA: a deliberately broken reference collector (docs/sut.md)")
    s.add_argument("--platform-mutant", choices=PLATFORM_MUTANTS,
                   help="QA: a deliberately broken reference platform: blind (detectors off), "
                        "jumpy (statistical limits 20x too tight), no-tax (declarations never "
                        "compared), trusting (signatures not checked), … (docs/sut.md)")
    s.add_argument("--lang", default="zh-CN", choices=("zh-CN", "en"))
    s.add_argument("--pdf", action="store_true", help="also write PDF reports (needs WeasyPrint)")
    s.add_argument("--collectors", default="per-station", choices=("per-station", "fleet"),
                   help="reference collectors: one process per station (default) or one for "
                        "the whole fleet (large fleets)")
    s.add_argument("--fleet-processes", type=_fleet_processes, default=1, metavar="N",
                   help="with --collectors fleet: deal the stations over N processes (default 1; "
                        "each process is one event loop, docs/performance.md)")
    s.add_argument("--drain-timeout", type=_seconds, default=300.0,
                   help="wall seconds to wait for the data to drain after the schedule, "
                        "counted from the world's last simulated progress (default 300)")
    s.add_argument("--stall-timeout", type=_seconds, default=300.0,
                   help="before the schedule's end: wall seconds the world may be held at a "
                        "FIFO's high-water mark without progress, with no fault in force, "
                        "before the run ends with that station's collector as the finding "
                        "(STB-1; default 300)")
    s.add_argument("--detection-timeout", type=_seconds, default=120.0,
                   help="after draining, the run waits for the platform's detectors to evaluate "
                        "through its end (GET /api/v1/detection/status); it gives up after "
                        "this many wall seconds without progress (default 120)")
    s.add_argument("--fault-wall", type=_seconds, default=6.0, metavar="S",
                   help="wall seconds each scheduled fault lasts, so that the SUT feels it "
                        "(default 6; a device fault at least 1.5 x the criteria's "
                        "device_offline_shown_s; docs/run-record.md, pacing)")
    s.add_argument("--change-wall", type=_seconds, default=10.0, metavar="S",
                   help="wall seconds of the 6 simulated hours after a cheat that changes only "
                        "a device's header: at least twice the collector's header read "
                        "interval (default 10, the reference collector reads every 5 s)")
    s.set_defaults(func=cmd_run)

    from acceptance.observing.command import add_arguments, cmd_observe

    s = sub.add_parser("observe", help="watch a live platform through its API for days to "
                                       "months (STB-1, resumable; docs/observe.md)")
    add_arguments(s)
    s.set_defaults(func=cmd_observe)

    s = sub.add_parser("check", help="re-run the checkers on a run directory (offline)")
    s.add_argument("run")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("report", help="re-render the reports of a run directory")
    s.add_argument("run")
    s.add_argument("--lang", default="zh-CN", choices=("zh-CN", "en"))
    s.add_argument("--pdf", action="store_true")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("verify", help="check a run directory against its signed manifest.json "
                                      "(every file's SHA-256 and the signature)")
    s.add_argument("run")
    s.add_argument("--public-key", type=_public_key,
                   help="the signer's Ed25519 public key (64 hex digits), obtained out of band; "
                        "without it the signature only proves the manifest is self-consistent")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("manifest-key", help="print this harness's manifest signing public key "
                                            "(hex; created on first use)")
    s.set_defaults(func=cmd_manifest_key)

    s = sub.add_parser("faults", help="list the fault kinds a scenario can name (docs/faults.md)")
    s.add_argument("--markdown", action="store_true", help="the catalogue as a Markdown table")
    s.set_defaults(func=cmd_faults)

    s = sub.add_parser("broker", help="run the embedded MQTT broker")
    s.add_argument("--listen", default="mqtt://127.0.0.1:1883")
    s.set_defaults(func=cmd_broker)

    s = sub.add_parser("keys", help="generate per-station uplink HMAC keys, or with --tls DIR "
                                     "a throw-away CA and broker certificate")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--endpoints")
    g.add_argument("--scenario")
    g.add_argument("--tls", metavar="DIR",
                   help="write DIR/ca.pem, DIR/broker.pem and DIR/broker.key (0600): a fresh CA "
                        "and a broker certificate for 127.0.0.1 and localhost, valid 30 days "
                        "(docs/uplink.md §1)")
    s.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="with --tls: another DNS name or IP address of the broker (repeatable)")
    s.add_argument("--out", help="the key file (with --endpoints or --scenario)")
    s.set_defaults(func=cmd_keys)

    for name, module, func, helptext in (
        ("collector", "collector.cli", "main_collector", "run the reference collector for one station"),
        ("collectors", "collector.cli", "main_collectors", "run reference collectors for all stations"),
        ("platform", "central.cli", "main", "run the reference central platform"),
        ("campaign", "acceptance.campaign.runner", "main",
         "detection campaign: PD by day, false alerts, noise (docs/campaigns.md)"),
        ("fuzz", "acceptance.fuzz", "main",
         "generative fault campaign: random fault schedules, shrunk to a minimal failing one"),
    ):
        s = sub.add_parser(name, help=helptext, add_help=False)
        s.set_defaults(delegate=(module, func))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "delegate", None):
        module, func = args.delegate
        return _delegate(module, func, rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except KeyboardInterrupt:  # not exit 1: for run, verify and check that is a finding
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
