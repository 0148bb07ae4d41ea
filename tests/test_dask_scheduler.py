"""`forecourt simulate --scheduler dask|tcp://…` (issue 11): the same ground truth, byte for
byte, whatever runs the stations; clear errors; the city ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from acceptance.cli import main
from acceptance.world_config import build_world_config
from scenarios.fleet import load_fleet
from scenarios.loader import load_scenario
from sim import dask_runner
from sim.ledger import TruthWriter, manifest
from sim.runner import simulate
from tests.waiting import HANG_S, wait_for

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
CITY = ROOT / "scenarios" / "city-scale.yaml"
CITY_LEDGER = ROOT / "scenarios" / "fleets" / "bayannur-city.csv"
BANNER_LEDGER = ROOT / "scenarios" / "fleets" / "urad-middle-banner.csv"
# a few stations of every kind: city seat, rural, the banner's port, an RTU station
FEW = ["LH001", "LH040", "UMB28", "UMB39", "URB001", "HRB060"]


def _digests(manifest: dict) -> dict[str, str]:
    return {name: info["sha256"] for name, info in manifest["files"].items()}


def _simulate_cli(out: Path, *extra: str, days: str = "1") -> dict:
    assert main(["simulate", str(SMOKE), "--days", days, "--out", str(out), *extra]) == 0
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smoke_reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default runner's truth of the smoke world, one day."""
    return _simulate_cli(tmp_path_factory.mktemp("reference"))


def test_local_dask_cluster_writes_the_same_bytes(tmp_path: Path, smoke_reference: dict) -> None:
    manifest = _simulate_cli(tmp_path, "--scheduler", "dask", "--workers", "2")
    assert manifest == smoke_reference  # every file's SHA-256 is in it
    assert manifest["complete"] is True


def test_city_subset_same_bytes_one_process_or_dask_with_a_small_window(tmp_path: Path) -> None:
    config = build_world_config(load_scenario(CITY), days=1, station_ids=FEW)
    one = simulate(config, tmp_path / "one", workers=1)
    assert simulate(config, tmp_path / "wide", workers=2, scheduler="dask") == one
    # one station in flight at a time (the default window is 4 per worker thread, at least 16)
    writer = TruthWriter(tmp_path / "narrow")
    until: dict[str, float | None] = dict.fromkeys(FEW)
    calls: list[float] = []
    dask_runner.run_dask(config, FEW, writer, until, calls.append, scheduler="dask",
                         workers=2, in_flight=1)
    narrow = manifest(config, stations=FEW, complete=True, simulated_until=until,
                      files=writer.close())
    assert _digests(narrow) == _digests(one)
    assert calls == [config.end - config.start] * len(FEW)  # progress: once per station


def test_interrupted_dask_run_leaves_a_partial_manifest(tmp_path: Path) -> None:
    config = build_world_config(load_scenario(CITY), days=1, station_ids=FEW)

    def progress(done: float, total: float) -> None:
        raise KeyboardInterrupt  # "Ctrl-C" as soon as the first station is back

    with pytest.raises(KeyboardInterrupt):
        simulate(config, tmp_path, workers=2, scheduler="dask", progress=progress)
    data = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert data["complete"] is False
    until = data["simulated_until"]
    done = [sid for sid in FEW if until[sid] is not None]
    assert done == FEW[:len(done)] and len(done) < len(FEW)  # a prefix in world order
    assert not list(tmp_path.glob(".*partial"))


def test_a_failing_station_is_named(tmp_path: Path) -> None:
    config = build_world_config(load_scenario(CITY), days=0.1, station_ids=FEW[:2])
    writer = TruthWriter(tmp_path)
    with pytest.raises(RuntimeError, match=r"station NOPE failed on a dask worker"):
        dask_runner.run_dask(config, [FEW[0], "NOPE"], writer, {}, lambda dt: None,
                             scheduler="dask", workers=1)
    writer.close()


@pytest.fixture
def tcp_cluster(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1; their address."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = [open(tmp_path / f"dask-{i}.log", "wb") for i in range(3)]  # noqa: SIM115
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(file)],
            cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT))

        def address() -> str | None:
            assert procs[0].poll() is None, (tmp_path / "dask-0.log").read_text()
            try:
                return json.loads(file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = wait_for(address, timeout=HANG_S, what="dask scheduler's address file")
        for i in (1, 2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", addr, "--host", "127.0.0.1",
                 "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                cwd=ROOT, env=env, stdout=logs[i], stderr=subprocess.STDOUT))
        from distributed import Client

        with Client(addr, timeout=HANG_S, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=HANG_S)
        yield addr
    finally:
        for proc in reversed(procs):  # ours, by pid
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        for log in logs:
            log.close()


def test_a_running_cluster_at_a_tcp_address_writes_the_same_bytes(
        tmp_path: Path, smoke_reference: dict, tcp_cluster: str) -> None:
    manifest = _simulate_cli(tmp_path, "--scheduler", tcp_cluster)
    assert manifest == smoke_reference


def test_no_scheduler_at_the_address_exit_2_naming_the_option(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(dask_runner, "CONNECT_TIMEOUT_S", 1.0)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["simulate", str(SMOKE), "--days", "0.1", "--out", str(tmp_path),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--scheduler tcp://127.0.0.1:{port}: no dask scheduler answered" in err
    assert "dask scheduler" in err and "dask worker" in err  # how to start one


@pytest.mark.parametrize("bad", ["tpc://127.0.0.1:8786", "127.0.0.1:8786", "daks", ""])
def test_a_malformed_scheduler_is_refused_by_the_parser(
        bad: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(SMOKE), "--out", str(tmp_path), "--scheduler", bad])
    assert exc.value.code == 2
    assert "--scheduler" in capsys.readouterr().err
    with pytest.raises(ValueError, match="simulate: scheduler:"):
        simulate(build_world_config(load_scenario(SMOKE), days=0.1), tmp_path, scheduler=bad)


def test_without_dask_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code = main(["simulate", str(SMOKE), "--days", "0.1", "--out", str(tmp_path),
                 "--scheduler", "dask"])
    assert code == 2
    assert "forecourt-hil[dask]" in capsys.readouterr().err


def test_city_ledger_is_large_valid_generated_and_holds_the_banner() -> None:
    stations, raw, problems = load_fleet(CITY_LEDGER)
    assert problems == [] and len(stations) >= 400
    text = raw.decode("utf-8")
    assert "SYNTHETIC" in text.split("station_id,", 1)[0]  # the provenance note says so
    banner = [line for line in BANNER_LEDGER.read_text(encoding="utf-8").splitlines()
              if line.startswith("UMB")]
    assert all(line in text.splitlines() for line in banner)  # the banner's rows unchanged
    scenario = load_scenario(CITY)  # the whole scenario passes the loader's checks
    assert len(scenario.station_ids) == len(stations)
    assert main(["validate", str(CITY)]) == 0
    check = subprocess.run([sys.executable, str(CITY_LEDGER.parent / "make_city.py"), "--check"],
                           cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert check.returncode == 0, check.stdout + check.stderr  # deterministic, up to date
