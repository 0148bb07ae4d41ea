"""Ground-truth ledger and `simulate`: determinism, worker independence, partial truth."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from waiting import HANG_S

from sim import ledger as ledger_module
from sim.config import (
    CheatConfig,
    DispenserConfig,
    PriceChange,
    StationConfig,
    TankConfig,
    WorldConfig,
)
from sim.ledger import TABLES, Ledger, file_digest, read_truth, recover, schema
from sim.runner import simulate
from sim.world import World

TZ = "Asia/Shanghai"
START = datetime(2026, 7, 1, tzinfo=ZoneInfo(TZ)).timestamp()
DAY = 86400.0


def _station(sid: str, diesel: float) -> StationConfig:
    return StationConfig(
        station_id=sid, name=sid, town="t", ownership="state", dialect="f32_le", transport="tcp",
        tanks=(TankConfig(1, "92", 20, initial_fill=0.4), TankConfig(2, "0", 30, initial_fill=0.4)),
        dispensers=(DispenserConfig(1, (1, 2)), DispenserConfig(2, (1, 2))),
        throughput_l_per_day={"92": 4000.0, "0": diesel}, truck_share=0.4)


def _config(seed: int = 11, days: float = 1.5) -> WorldConfig:
    return WorldConfig(
        seed=seed, start=START, days=days, timezone=TZ,
        stations=(_station("A", 6000.0), _station("B", 9000.0), _station("C", 2000.0)),
        prices=(PriceChange(START - DAY, "92", 712), PriceChange(START - DAY, "0", 701),
                PriceChange(START + 0.5 * DAY, "0", 690)),
        cheats=(CheatConfig("pulse_factor", "B", 2, 1, START + 0.3 * DAY,
                            params={"factor": 1.02}),))


def _digests(manifest: dict) -> dict[str, str]:
    return {name: info["sha256"] for name, info in manifest["files"].items()}


def test_same_seed_same_bytes_any_worker_count_different_seed_differs(tmp_path: Path) -> None:
    cfg = _config()
    one = simulate(cfg, tmp_path / "one", workers=1, scenario_name="t", scenario_digest="abc")
    again = simulate(cfg, tmp_path / "again", workers=1, scenario_name="t",
                     scenario_digest="abc")
    two = simulate(cfg, tmp_path / "two", workers=2, scenario_name="t", scenario_digest="abc")
    other = simulate(_config(seed=12), tmp_path / "other", workers=1)
    assert one == again == two  # the manifest holds every file's SHA-256
    for name in one["files"]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "manifest.json").read_bytes() == \
        (tmp_path / "two" / "manifest.json").read_bytes()
    assert _digests(other)["transactions.parquet"] != _digests(one)["transactions.parquet"]
    assert one["complete"] is True and one["scenario"] == {"name": "t", "digest": "abc"}
    assert one["stations"] == ["A", "B", "C"] and one["seed"] == 11
    assert set(one["files"]) == {f"{t}.parquet" for t in TABLES}


def test_files_hold_every_record_with_the_explicit_schema(tmp_path: Path) -> None:
    cfg = _config()
    data = simulate(cfg, tmp_path, workers=1)
    world = World(cfg)
    counts = {"transactions": 0, "deliveries": 0, "events": 0}
    world.add_listener(lambda sid, dev, stream, rec: counts.__setitem__(
        stream, counts.get(stream, 0) + 1))
    world.run_until(world.end)
    for table in TABLES:
        read = pq.read_table(tmp_path / f"{table}.parquet")
        assert read.schema.equals(schema(table)), table
        assert read.num_rows == data["counts"][table]
    assert data["counts"]["transactions"] == counts["transactions"] > 100
    assert data["counts"]["deliveries"] == counts["deliveries"] > 0
    assert data["counts"]["events"] == counts["events"]
    tx = pq.read_table(tmp_path / "transactions.parquet").to_pandas()
    assert list(dict.fromkeys(tx["station_id"])) == ["A", "B", "C"]  # station order...
    for _, group in tx.groupby("station_id"):
        assert group["end_time"].is_monotonic_increasing  # ...then time
    states = pq.read_table(tmp_path / "tank_states.parquet").to_pandas()
    assert set(states["kind"]) == {"interval", "pre_delivery", "post_delivery"}
    assert states.loc[states["kind"] != "interval", "inventory_seq"].isna().all()
    assert states.loc[states["kind"] == "interval", "inventory_seq"].notna().all()
    cheats = pq.read_table(tmp_path / "cheats.parquet").to_pylist()
    assert [(c["station_id"], c["action"], c["value_new"]) for c in cheats] == [
        ("B", "start", 1.02)]


def test_ledger_on_a_stepped_world_matches_simulate(tmp_path: Path) -> None:
    cfg = _config()
    reference = simulate(cfg, tmp_path / "sim", workers=1)
    world = World(cfg)
    ledger = Ledger(tmp_path / "live", cfg).attach(world)
    t = world.start
    steps = 0
    while not world.finished:
        t += 611.0
        world.run_until(t)
        steps += 1
        for sid in world.stations:  # what device servers do between steps
            for tank in world.gauge(sid).tanks:
                tank.live_reading()
        if steps % 40 == 0:
            ledger.flush()
    final = ledger.close()
    assert final["complete"] is True and final["layout"] == "tables"
    assert _digests(final) == _digests(reference)
    assert not (tmp_path / "live" / "segments").exists()


def test_flush_mid_run_leaves_consistent_readable_files(tmp_path: Path) -> None:
    cfg = _config(days=1.0)
    world = World(cfg)
    ledger = Ledger(tmp_path, cfg, scenario_name="partial").attach(world)
    cut = world.start + 0.4 * DAY
    flushes = []
    for t in (world.start + 0.2 * DAY, world.start + 0.3 * DAY, cut):
        world.run_until(t)
        flushes.append(ledger.flush())
    first = flushes[-1]
    assert first["complete"] is False and first["layout"] == "segments"
    assert first["simulated_until"] == dict.fromkeys(["A", "B", "C"], cut)
    assert json.loads((tmp_path / "manifest.json").read_text()) == first
    for name, info in first["files"].items():  # every listed file is complete and digested
        assert file_digest(tmp_path / name)["sha256"] == info["sha256"]
        assert pq.read_metadata(tmp_path / name).num_rows == info["rows"]
    tx = read_truth(tmp_path, "transactions").to_pandas()
    assert len(tx) == first["counts"]["transactions"] > flushes[0]["counts"]["transactions"] > 0
    assert tx["end_time"].max() <= cut
    assert list(dict.fromkeys(tx["station_id"])) == ["A", "B", "C"]
    # Totalizer chains are unbroken in the partial truth.
    for _, g in tx.groupby(["station_id", "dispenser", "nozzle"]):
        assert (g["volume_total_before_ml"].iloc[1:].to_numpy()
                == g["volume_total_after_ml"].iloc[:-1].to_numpy()).all()
    # A process dying now leaves the segments; recover() gives the standard layout, the same
    # as a world simply run to the cut.
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path, crashed, ignore=shutil.ignore_patterns("crashed"))
    recovered = recover(crashed, cfg)
    assert recovered["layout"] == "tables" and recovered["complete"] is False
    assert recovered["counts"] == first["counts"]
    assert not (crashed / "segments").exists()
    reference = World(cfg)
    ref_ledger = Ledger(tmp_path / "ref", cfg).attach(reference)
    reference.run_until(cut)
    assert _digests(ref_ledger.close()) == _digests(recovered)
    # The ledger itself can still carry on and finish.
    world.run_until(world.end)
    final = ledger.close()
    assert final["complete"] is True
    assert final["counts"]["transactions"] > first["counts"]["transactions"]
    assert read_truth(tmp_path, "transactions").num_rows == final["counts"]["transactions"]
    with pytest.raises(RuntimeError, match="already closed"):
        ledger.flush()


def test_a_background_flush_takes_the_rows_at_once_and_writes_them_beside_the_world(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config()
    reference = simulate(cfg, tmp_path / "sim", workers=1)
    world = World(cfg)
    ledger = Ledger(tmp_path / "live", cfg).attach(world)
    release, writers = threading.Event(), []
    real = ledger_module.write_segment

    def held(*args):  # the write waits until the world has moved on
        assert release.wait(HANG_S)
        writers.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(ledger_module, "write_segment", held)
    cut = world.start + 0.5 * DAY
    world.run_until(cut)
    ledger.flush_in_background()  # returns with its write still held
    world.run_until(world.start + 0.9 * DAY)
    release.set()
    second = ledger.flush()  # waits for the first
    assert writers[0] is not threading.main_thread() and writers[1] is threading.main_thread()
    first_segment = pq.read_table(tmp_path / "live" / "segments" / "transactions-00001.parquet")
    assert first_segment.num_rows > 0 and max(first_segment["end_time"].to_pylist()) <= cut
    assert second["simulated_until"]["A"] == world.start + 0.9 * DAY
    assert {seg["file"][-13:] for seg in second["segments"]} == {"00001.parquet",
                                                                 "00002.parquet"}
    world.run_until(world.end)
    ledger.flush_in_background()
    assert _digests(ledger.close()) == _digests(reference)


def test_a_background_flush_error_is_raised_by_the_next_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(days=0.3)
    world = World(cfg)
    ledger = Ledger(tmp_path, cfg).attach(world)
    world.run_until(world.end)

    def full(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(ledger_module, "write_segment", full)
    ledger.flush_in_background()
    with pytest.raises(OSError, match="No space left"):
        ledger.flush()


def test_extra_table_is_written_and_digested(tmp_path: Path) -> None:
    import pyarrow as pa

    cfg = _config(days=0.2)
    world = World(cfg)
    ledger = Ledger(tmp_path, cfg).attach(world)
    ledger.set_extra_table("fifo_drops", pa.table({"seq": pa.array([1, 2], pa.uint16())}))
    data = ledger.close()
    assert data["counts"]["fifo_drops"] == 2 and "fifo_drops.parquet" in data["files"]
    assert data["complete"] is False  # the world was never run to its end
    with pytest.raises(ValueError, match="taken"):
        ledger.set_extra_table("transactions", pa.table({}))


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_simulate_leaves_a_manifested_partial_truth(tmp_path: Path,
                                                                workers: int) -> None:
    cfg = _config()
    seen: list[float] = []

    def progress(done: float, total: float) -> None:
        seen.append(done)
        assert total == cfg.days * DAY
        if done >= cfg.days * DAY / 3:  # the first station is through: "press Ctrl-C"
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(cfg, tmp_path, workers=workers, progress=progress)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] is False
    until = manifest["simulated_until"]
    assert until["C"] is None
    done = [sid for sid, t in until.items() if t is not None]
    assert done in ([], ["A"], ["A", "B"]) and all(until[s] == cfg.end for s in done)
    tx = pq.read_table(tmp_path / "transactions.parquet")
    assert tx.num_rows == manifest["counts"]["transactions"]
    assert set(tx.column("station_id").to_pylist()) == set(done)
    assert seen == sorted(seen)
    assert not list(tmp_path.glob(".*partial"))


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    cfg = _config(days=2.5)
    calls: list[tuple[float, float]] = []
    simulate(cfg, tmp_path, workers=1, station_ids=["B"], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (2.5 * DAY, 2.5 * DAY) and len(calls) == 3


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        simulate(_config(), tmp_path, workers=0)
    with pytest.raises(ValueError, match="unknown station ids"):
        simulate(_config(), tmp_path, station_ids=["Z"])
    world = World(_config(), ["A"])
    with pytest.raises(ValueError, match="differ"):
        Ledger(tmp_path, _config()).attach(world)
