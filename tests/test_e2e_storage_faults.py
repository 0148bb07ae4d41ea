"""collector_disk_full and platform_db_unavailable end to end.

On a running chain (the style of test_e2e_faults.py, on SQLite and, with FORECOURT_PG_URL,
PostgreSQL): while the disk is full the devices hand the collector nothing, while the
database is locked the platform stores nothing, and afterwards every record is there once.
Then as `forecourt run` serves them in a small scenario (the smoke world over 0.6 days,
UMB25's collector disk full for two hours of the morning, then the platform's database
locked for an hour): the reference keeps every record exactly once (DAT-1..DAT-3, STB-1); a
collector that acknowledges at the devices what it could not spool loses records and is
refused (DAT-1).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_central_support import fresh_database
from waiting import wait_for

from acceptance.chain import Chain, ChainSettings
from acceptance.compare import compare_platform
from acceptance.faults import KINDS
from acceptance.schedule import Fault

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
FAULTS = [{"kind": "collector_disk_full", "station": "UMB25", "at": "+8h", "duration": "2h"},
          {"kind": "platform_db_unavailable", "at": "+11h", "duration": "1h"}]
JUDGED = ("DAT-1", "DAT-2", "DAT-3", "STB-1")
SLOW = 3000.0  # simulated s per wall s: records flow while a fault's effect is awaited
H = 3600.0
BROKEN = ["{python}", str(ROOT / "tests" / "data" / "collector_acks_unspooled.py"),
          "--station", "{station}", "--endpoints", "{endpoints}", "--broker", "{broker}",
          "--keys", "{keys}", "--spool", "{spool_dir}", "--profiles", "{profiles}",
          "--heartbeat", "1", "--mqtt-credentials", "{mqtt_credentials}",
          "--log-level", "WARNING"]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_on_a_running_chain_nothing_is_handed_over_or_stored_that_cannot_be_kept(tmp_path,
                                                                                  engine):
    db = fresh_database(engine, tmp_path)
    platform_args = ("--db", next(db)) if engine == "postgresql" else ()
    settings = ChainSettings(SMOKE, tmp_path / "run", days=1, compression=SLOW,
                             device_faults=False, platform_args=platform_args)
    with Chain(settings) as chain:
        t0 = chain.scenario.start_epoch

        def handed(sid: str) -> int:  # FIFO records the collector acknowledged
            return int((chain.device_status() or {"stations": {}})["stations"].get(
                sid, {}).get("acknowledged", 0))

        # a collector whose disk is full from its start cannot even open its spool
        wait_for(lambda: chain.api.ingest_stats("UMB25")["accepted"] > 0, 60, "UMB25 running")
        chain.wait_sim_time(t0 + 7 * H, timeout=60)
        disk = Fault("collector_disk_full", "UMB25", t0 + 7 * H, 2 * H)
        KINDS[disk.kind].start(chain, disk)  # type: ignore[misc]
        try:
            wait_for(lambda: any("spool write failed" in (d.get("error") or "") for d in
                                 chain.station_states()["UMB25"]["devices"]), 30,
                     "UMB25's devices reporting the spool failure")
            frozen, other = handed("UMB25"), handed("UMB44")
            # the other station goes on; UMB25's devices keep what was read meanwhile
            wait_for(lambda: handed("UMB44") >= other + 20, 30, "UMB44 handing over more")
            assert handed("UMB25") == frozen
        finally:
            KINDS[disk.kind].end(chain, disk)  # type: ignore[misc]
        wait_for(lambda: handed("UMB25") > frozen, 30, "UMB25 draining after the fault")

        lock = Fault("platform_db_unavailable", None, chain.sim_time() or 0.0, 2 * H)
        KINDS[lock.kind].start(chain, lock)  # type: ignore[misc]
        try:
            accepted = chain.api.ingest_stats()["accepted"]
            spooled = handed("UMB25") + handed("UMB44")
            # the collectors keep taking records into their spools; the platform stores none
            wait_for(lambda: handed("UMB25") + handed("UMB44") >= spooled + 20, 30,
                     "the collectors spooling meanwhile")
            assert chain.api.ingest_stats()["accepted"] == accepted  # reads still answer
            assert chain.platform.alive
        finally:
            KINDS[lock.kind].end(chain, lock)  # type: ignore[misc]
        report = chain.wait_drained(timeout=120)
        assert report.drained and report.reason == "drained", report
        chain.stop_field()
        comparison = compare_platform(chain.truth_dir, chain.api, chain.station_ids)
        assert comparison.ok, f"{comparison.summary()}\n" + "\n".join(comparison.problems())
        assert comparison.summary()["received_once"] > 300
    db.close()


def run(tmp_path: Path, sut: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    scenario = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    scenario["fleet"] = str(ROOT / "scenarios" / scenario["fleet"])
    scenario["faults"] = FAULTS
    if sut is not None:
        scenario["sut"] = sut
    path = tmp_path / "storage.yaml"
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "acceptance.cli", "run", str(path), "--out",
                          str(out), "--days", "0.6"], capture_output=True, text=True,
                         timeout=1200, cwd=ROOT)
    return res, out


def outcomes(out: Path) -> dict[str, str]:
    record = json.loads((out / "record.json").read_text(encoding="utf-8"))
    return {r["id"]: r["outcome"] for r in record["requirements"]}


def served(out: Path) -> dict[str, dict]:
    timeline = json.loads((out / "timeline.json").read_text(encoding="utf-8"))
    return {e["kind"]: e for e in timeline if e["kind"] in {f["kind"] for f in FAULTS}}


def test_the_reference_keeps_every_record_through_a_full_disk_and_a_locked_database(tmp_path):
    res, out = run(tmp_path)
    # exit 3, incomplete: these faults stop no device, so DAT-6 is not exercised
    assert res.returncode == 3, res.stdout + res.stderr
    got = outcomes(out)
    assert {rid for rid, o in got.items() if o != "pass"} == {"DAT-6"}
    assert {rid: got[rid] for rid in JUDGED} == dict.fromkeys(JUDGED, "pass")
    faults = served(out)
    assert set(faults) == {"collector_disk_full", "platform_db_unavailable"}
    for e in faults.values():
        assert e["detail"]["ended"] == "end" and e["detail"]["recovered"] is True, e
        assert e["wall_end"] > e["wall_start"], e
    # the full disk did bite: the collector's writes failed, and it said so once it could
    log = (out / "logs" / "collector-UMB25.log").read_text(encoding="utf-8")
    assert "spool writable again after" in log, log[-2000:]


def test_a_collector_that_acknowledges_what_it_could_not_spool_is_refused(tmp_path):
    res, out = run(tmp_path, {"collector": {"kind": "external", "command": BROKEN,
                                            "per_station": True}})
    assert res.returncode == 1, res.stdout + res.stderr
    got = outcomes(out)
    # the records it acknowledged unstored are lost: transactions (DAT-1), inventory (DAT-3)
    failed = {rid for rid, o in got.items() if o == "fail"}
    # and the regulators' figures computed from the records it lost (tax, sales, credit)
    assert {"DAT-1", "STB-1"} <= failed <= {"DAT-1", "DAT-3", "DAT-4", "STB-1",
                                            "TAX-1", "COM-1", "CRD-1"}, got
    assert served(out)["collector_disk_full"]["detail"]["ended"] == "end"
