"""`forecourt observe` (issue 11 item 3): observe mode over a live platform's API.

Unit tests of the aggregation (sequence and totalizer chains, runs of days, idempotent
store); the command against a fake platform broken in the way each check guards against
(sequence gap, totalizer break, station off line, transient errors, bad input); resuming
after SIGKILL (inside a poll's transaction, and from outside) loses and double-counts
nothing; and a reference chain observed, killed and resumed, whose counts equal the
platform's own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from observe_fake import TOKEN, FakePlatform, fill, inventory, station
from waiting import HANG_S, wait_for

from acceptance.chain import Chain, ChainSettings
from acceptance.cli import main
from acceptance.observing.aggregate import (
    DayVerdict,
    day_bounds,
    judge_day,
    longest_run,
    order_chain,
    sequence_figures,
    split_span,
    totalizer_figures,
)
from acceptance.observing.store import PollData, Store
from acceptance.observing.verdict import observation_days
from scenarios.variant import write_scenario_variant

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
MIDNIGHT = day_bounds("2026-04-01", TZ)[0]
TINY = "0.00001"  # --required-days for observations of seconds (a shortened check)
SMOKE = REPO / "scenarios" / "smoke.yaml"


# ---- aggregation -----------------------------------------------------------------------

def test_sequence_chain_counts_gaps_repeats_and_wraps():
    assert sequence_figures([(1, 5), (2, 6), (3, 7)], 4).missing == 0
    f = sequence_figures([(1, 5), (2, 9), (3, 9), (4, 8)], None)
    assert (f.records, f.gaps, f.missing, f.repeats, f.out_of_order) == (4, 1, 3, 1, 1)
    # the chain continues across the wrap, and from the day before
    assert sequence_figures([(1, 65535), (2, 0), (3, 1)], 65534).missing == 0
    assert sequence_figures([(1, 3)], 65534).missing == 4  # 65535, 0, 1, 2
    # records of one instant are ordered relative to the record before them
    assert order_chain([(5, 0), (5, 65535)], 65534) == [(5, 65535), (5, 0)]


def test_totalizer_chain_finds_unexplained_volume_and_resets():
    ok = totalizer_figures([(10, 1, 1000, 6000), (20, 2, 500, 6500)], 5000)
    assert (ok.fills, ok.volume_ml, ok.breaks, ok.unexplained_ml) == (2, 1500, 0, 0)
    gap = totalizer_figures([(10, 1, 1000, 6000), (20, 2, 500, 9000)], None)
    assert (gap.breaks, gap.unexplained_ml, gap.resets) == (1, 2500, 0)
    reset = totalizer_figures([(10, 1, 1000, 100)], 5000)
    assert (reset.breaks, reset.unexplained_ml, reset.resets) == (1, 0, 1)


def test_runs_of_days_weigh_partial_days_and_break_on_a_missing_day():
    def d(day: str, w: float, ok: bool, seen: bool = True) -> DayVerdict:
        return DayVerdict(day, w, seen, ok, ())
    days = [d("2026-04-01", 0.5, True), d("2026-04-02", 1, True), d("2026-04-03", 1, False),
            d("2026-04-04", 1, True), d("2026-04-06", 1, True), d("2026-04-07", 0.25, True)]
    assert longest_run(days) == 1.5
    assert longest_run(days, of="observed") == 3.5
    assert longest_run([]) == 0.0


def test_observation_days_and_day_judgement():
    start = MIDNIGHT - 6 * 3600  # 2026-03-31 18:00 Shanghai
    days = observation_days(start, start + 36 * 3600, TZ)
    assert days == [("2026-03-31", 0.25), ("2026-04-01", 1.0), ("2026-04-02", 0.25)]
    assert sum(s for _, s in split_span(start, start + 36 * 3600, TZ)) == 36 * 3600
    good = judge_day("2026-04-01", 1, 0.95, 0.99, 1.0, 0, min_coverage=0.9, min_online=0.98,
                     min_completeness=1.0)
    assert good.compliant and good.observed and not good.reasons
    bad = judge_day("2026-04-01", 1, 0.5, 0.5, None, 2, min_coverage=0.9, min_online=0.98,
                    min_completeness=1.0)
    assert not bad.compliant and not bad.observed and len(bad.reasons) == 4


def _poll(store: Store, at: float, records: list[dict[str, Any]]) -> int:
    data = PollData(at=at, ok=True, stations=[{
        "station_id": "S1", "name": None, "town": None, "ownership": None, "active": 1,
        "dispensers": 1, "nozzles": 1, "tanks": 1}], samples={"S1": (True, True, [])},
        records={"inventory": [r for r in records if "tank" in r],
                 "transactions": [r for r in records if "nozzle" in r]})
    return store.poll(data, gap_limit=180.0)


def test_store_is_idempotent_and_a_late_record_closes_a_gap(tmp_path):
    store = Store(tmp_path)
    t0 = int(MIDNIGHT)
    recs = [inventory("S1", i, t0 + 60 * i) for i in range(10) if i != 4]
    _poll(store, t0 + 1000.0, recs)
    _poll(store, t0 + 1060.0, recs)  # the same records again: nothing changes
    c = store.conn
    assert c.execute("SELECT COUNT(*) FROM records").fetchone() == (9,)
    assert c.execute("SELECT records, missing FROM sequence_daily").fetchall() == [(9, 1)]
    _poll(store, t0 + 1120.0, [inventory("S1", 4, t0 + 240)])  # stored late (store-and-forward)
    assert c.execute("SELECT records, missing FROM sequence_daily").fetchall() == [(10, 0)]
    assert c.execute("SELECT samples, online FROM availability_daily").fetchall() == [(3, 3)]
    # a late record on the previous day changes the chain of the next day too
    _poll(store, t0 + 1180.0, [inventory("S1", 20, t0 + 86400 + 5),
                                inventory("S1", 18, t0 + 86400 - 5)])
    assert dict(c.execute("SELECT day, missing FROM sequence_daily").fetchall()) == {
        "2026-04-01": 8, "2026-04-02": 1}
    _poll(store, t0 + 1240.0, [inventory("S1", 19, t0 + 86400 - 1)])
    assert dict(c.execute("SELECT day, missing FROM sequence_daily").fetchall()) == {
        "2026-04-01": 8, "2026-04-02": 0}
    store.close()


# ---- the command against a fake platform -----------------------------------------------

def observe(fp: FakePlatform, out: Path, *extra: str, until: str = "1.5s") -> int:
    return main(["observe", "--api", fp.url, "--token", TOKEN, "--out", str(out),
                 "--interval", "0.1", "--until", until, *extra])


def record(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "record.json").read_text(encoding="utf-8")))


def measured(rec: dict[str, Any], name: str, sid: str | None = None) -> dict[str, Any]:
    return next(m for m in rec["measurements"]
                if m["name"] == name and m["station_id"] == sid)


def outcome(rec: dict[str, Any], rid: str) -> str:
    return str(next(r["outcome"] for r in rec["requirements"] if r["id"] == rid))


def healthy(fp: FakePlatform, now: int, stations: tuple[str, ...] = ("S1", "S2")) -> None:
    fp.stations = [station(s, drained=now) for s in stations]
    for s in stations:
        fp.records["inventory"] += [inventory(s, i, now - 3000 + 60 * i) for i in range(50)]
        fp.records["transactions"] += [fill(s, 0, now - 200, 1000, 6000),
                                       fill(s, 1, now - 100, 500, 6500)]
    fp.alerts = [{"id": "a1", "station_id": "S1", "kind": "tank_loss", "status": "closed",
                  "confirmed_at": now - 50, "raised_at": now - 90},
                 {"id": "a2", "station_id": "S2", "kind": "idle_loss", "status": "open",
                  "raised_at": now - 80}]


def test_healthy_platform_passes_a_shortened_check_and_renders_the_report(tmp_path):
    with FakePlatform() as fp:
        healthy(fp, int(time.time()))
        assert observe(fp, tmp_path / "o", "--required-days", TINY) == 3
    rec = record(tmp_path / "o")
    assert outcome(rec, "STB-1") == "pass" and outcome(rec, "DAT-5") == "pass"
    # what needs ground truth or inputs is not checked, never passed: at best incomplete
    assert rec["verdict"] == "incomplete"
    assert {outcome(rec, r) for r in ("DAT-1", "DAT-2", "COV-1", "ALM-FP", "SEC-1")} == {
        "not_checked"}
    assert measured(rec, "stability.sequence_missing", "S1")["value"] == 0
    latency = measured(rec, "latency.p95")  # inventory 2 s after its device time, fills 3 s
    assert latency["value"] == 2.0 and latency["evidence"]["max_s"] == 3.0
    assert any("shortened stability check" in n for n in rec["notes"])
    alerts = {a["station_id"]: a for a in rec["tables"]["observe_alerts"]}
    assert alerts["S1"]["rectified"] == 1 and alerts["S2"]["open"] == 1
    html = (tmp_path / "o" / "report-stability.html").read_text(encoding="utf-8")
    assert "连续稳定运行监测报告" in html and 'id="shortened-observe"' in html
    assert 'id="stb-1" data-outcome="pass"' in html and "observe-cumulative" in html
    assert (tmp_path / "o" / "junit.xml").exists()


def test_fewer_days_than_required_is_incomplete_never_accepted(tmp_path):
    with FakePlatform() as fp:
        healthy(fp, int(time.time()))
        assert observe(fp, tmp_path / "o") == 3  # default: the plan's 180 days
    rec = record(tmp_path / "o")
    assert outcome(rec, "STB-1") == "incomplete" and rec["verdict"] == "incomplete"
    days = measured(rec, "stability.run_days")
    assert days["limit"] == 180 and days["scope"] and not days["passed"]
    html = (tmp_path / "o" / "report-stability.html").read_text(encoding="utf-8")
    assert 'id="shortened-observe"' not in html


@pytest.mark.parametrize("broken", ["sequence_gap", "totalizer_gap", "off_line"])
def test_each_check_fails_the_platform_broken_its_way(tmp_path, broken):
    now = int(time.time())
    with FakePlatform() as fp:
        healthy(fp, now)
        if broken == "sequence_gap":
            fp.records["inventory"] = [r for r in fp.records["inventory"]
                                       if (r["station_id"], r["seq"]) != ("S2", 17)]
        elif broken == "totalizer_gap":
            fp.records["transactions"].append(fill("S2", 2, now - 50, 700, 8000))
        else:
            fp.stations[1] = station("S2", online=False, drained=now)
        assert observe(fp, tmp_path / "o", "--required-days", TINY) == 1
    rec = record(tmp_path / "o")
    assert outcome(rec, "STB-1") == "fail" and rec["verdict"] == "not_accepted"
    name = {"sequence_gap": "stability.sequence_missing",
            "totalizer_gap": "stability.totalizer_unexplained",
            "off_line": "stability.longest_compliant_run"}[broken]
    bad = measured(rec, name, "S2")
    assert not bad["passed"], bad
    assert bad["value"] == {"sequence_gap": 1, "totalizer_gap": 800, "off_line": 0.0}[broken]
    assert measured(rec, name, "S1")["passed"]  # the healthy station is not blamed
    day = next(r for r in rec["tables"]["observe_daily"] if r["station_id"] == "S2")
    assert not day["compliant"] and day["reasons"]
    if broken == "off_line":
        assert day["online_ratio"] == 0.0


def test_transient_api_errors_are_unavailability_samples_not_a_crash(tmp_path):
    with FakePlatform() as fp:
        healthy(fp, int(time.time()))

        def flap() -> None:
            wait_for(lambda: fp.requests > 20, HANG_S, "first polls")
            fp.mode = "500"
            seen = fp.requests
            wait_for(lambda: fp.requests > seen + 3, HANG_S, "polls of the broken platform")
            fp.mode = "ok"
        threading.Thread(target=flap, daemon=True).start()
        assert observe(fp, tmp_path / "o", "--required-days", TINY, until="3s") == 1
    rec = record(tmp_path / "o")
    answered = measured(rec, "stability.platform_answered")
    assert 0 < answered["value"] < 1 and answered["evidence"]["polls"] > \
        answered["evidence"]["answered"]
    day = rec["tables"]["observe_daily"][0]
    assert 0 < day["online_ratio"] < 1  # the unanswered polls count every station off line
    c = sqlite3.connect(tmp_path / "o" / "observe.db")
    errors = [e for (e,) in c.execute("SELECT error FROM polls WHERE ok = 0")]
    assert errors and all("HTTP 500" in e for e in errors)


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    with FakePlatform() as fp:
        healthy(fp, int(time.time()))
        url = fp.url
        assert main(["observe", "--api", url, "--token", "wrong-token-0000000000",
                     "--out", str(tmp_path / "a"), "--until", "1s"]) == 2
        assert "HTTP 401" in capsys.readouterr().err
        fp.mode = "garbage"
        assert observe(fp, tmp_path / "b") == 2
        err = capsys.readouterr().err
        assert "/api/v1/stations" in err and "not JSON" in err
        fp.mode = "ok"
        assert observe(fp, tmp_path / "c", until="tomorrow") == 2
        assert "--until 'tomorrow'" in capsys.readouterr().err
        (tmp_path / "t").write_text("", encoding="utf-8")
        assert main(["observe", "--api", url, "--token-file", str(tmp_path / "t"),
                     "--out", str(tmp_path / "d")]) == 2
        assert "--token-file" in capsys.readouterr().err
    # the platform is gone: nothing answers at its URL
    assert main(["observe", "--api", url, "--token", TOKEN, "--out", str(tmp_path / "e"),
                 "--until", "1s"]) == 2
    err = capsys.readouterr().err
    assert url in err and "no answer" in err


# ---- resuming after a kill -------------------------------------------------------------

def spawn(api: str, out: Path, *extra: str, env: dict[str, str] | None = None,
          token: str = TOKEN, interval: str = "0.1") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "acceptance.cli", "observe", "--api", api, "--token", token,
         "--out", str(out), "--interval", interval, *extra],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def polls(out: Path) -> int:
    try:
        c = sqlite3.connect(f"file:{out / 'observe.db'}?mode=ro", uri=True)
        try:
            return int(c.execute("SELECT COUNT(*) FROM polls").fetchone()[0])
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def assert_consistent(out: Path) -> dict[str, Any]:
    """No sample lost or counted twice: polls numbered without a hole, one sample per
    station and poll, the daily counters equal to the samples and records stored."""
    c = sqlite3.connect(out / "observe.db")
    stations = c.execute("SELECT COUNT(*) FROM stations").fetchone()[0]
    n = c.execute("SELECT COUNT(*), MAX(poll) FROM polls").fetchone()
    assert n[0] == n[1], n
    assert c.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == n[0] * stations
    assert c.execute("SELECT SUM(samples), SUM(online) FROM availability_daily").fetchone() == \
        c.execute("SELECT COUNT(*), SUM(online) FROM samples").fetchone()
    assert c.execute("SELECT SUM(polls) FROM observed_daily").fetchone()[0] == n[0]
    assert c.execute("SELECT SUM(records) FROM sequence_daily").fetchone() == \
        c.execute("SELECT COUNT(*) FROM records").fetchone()
    counts = dict(c.execute("SELECT stream, COUNT(*) FROM records GROUP BY stream"))
    seq = c.execute("SELECT station_id, device, stream, day, records, missing FROM "
                    "sequence_daily ORDER BY 1, 2, 3, 4").fetchall()
    tot = c.execute("SELECT * FROM totalizer_daily ORDER BY 1, 2, 3, 4").fetchall()
    c.close()
    return {"counts": counts, "sequence": seq, "totalizer": tot}


def test_sigkill_inside_a_poll_and_resume_lose_and_double_count_nothing(tmp_path):
    now = int(time.time())
    with FakePlatform() as fp:
        healthy(fp, now)
        fp.records["inventory"] = [r for r in fp.records["inventory"]
                                   if (r["station_id"], r["seq"]) != ("S1", 30)]
        killed = spawn(fp.url, tmp_path / "k", "--until", "1h", "--required-days", TINY,
                       env={"FORECOURT_OBSERVE_KILL_IN_POLL": "1"})
        assert killed.wait(HANG_S) == -signal.SIGKILL  # killed inside poll 1's transaction
        assert polls(tmp_path / "k") == 0  # nothing of it was committed
        again = spawn(fp.url, tmp_path / "k", env={"FORECOURT_OBSERVE_KILL_IN_POLL": "4"})
        assert again.wait(HANG_S) == -signal.SIGKILL
        assert polls(tmp_path / "k") == 3
        # and killed from outside, at whatever point it is
        outside = spawn(fp.url, tmp_path / "k")
        wait_for(lambda: polls(tmp_path / "k") >= 8, HANG_S, "polls after the restart")
        outside.send_signal(signal.SIGKILL)
        outside.wait(HANG_S)
        # late data: one more record arrives while the observer is down
        fp.records["inventory"].append(inventory("S2", 50, now - 3000 + 60 * 50))
        final = spawn(fp.url, tmp_path / "k", "--until", "1s")
        assert final.wait(HANG_S) == 1, final.stderr.read() if final.stderr else ""
        plain = spawn(fp.url, tmp_path / "p", "--until", "1s", "--required-days", TINY)
        assert plain.wait(HANG_S) == 1
    resumed, uninterrupted = assert_consistent(tmp_path / "k"), assert_consistent(tmp_path / "p")
    assert resumed == uninterrupted
    assert resumed["counts"] == {"inventory": 100, "transactions": 4}  # the fake's own totals
    rec = record(tmp_path / "k")
    assert measured(rec, "stability.sequence_missing", "S1")["value"] == 1
    assert any("restarted 3 time(s)" in n for n in rec["notes"])


def test_sigterm_ends_cleanly_with_the_record_saying_so(tmp_path):
    with FakePlatform() as fp:
        healthy(fp, int(time.time()))
        proc = spawn(fp.url, tmp_path / "o", "--until", "1h", "--required-days", TINY)
        wait_for(lambda: polls(tmp_path / "o") >= 3, HANG_S, "three polls")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_S) == 3  # stopped before --until: not complete
    rec = record(tmp_path / "o")
    assert rec["complete"] is False and rec["verdict"] == "incomplete"
    assert any("ended by SIGTERM before --until" in n for n in rec["notes"])
    assert json.loads((tmp_path / "o" / "observe.json").read_text())["ended"] == "SIGTERM"


# ---- a reference chain -----------------------------------------------------------------

def stored(out: Path) -> dict[str, int]:
    try:
        c = sqlite3.connect(f"file:{out / 'observe.db'}?mode=ro", uri=True)
        try:
            return dict(c.execute("SELECT stream, COUNT(*) FROM records GROUP BY stream"))
        finally:
            c.close()
    except sqlite3.Error:  # not created yet
        return {}


@pytest.mark.e2e
def test_reference_chain_observed_killed_and_resumed_counts_what_the_platform_holds(tmp_path):
    """The smoke fleet on the reference chain, its devices' clocks starting now (observe mode
    judges the days of the wall calendar): one observer runs throughout, another is killed
    with SIGKILL twice and resumed; once the data has drained both hold exactly the records
    the platform holds, and both write the stability report."""
    start = dt.datetime.now(TZ).replace(second=0, microsecond=0).isoformat()
    scenario = write_scenario_variant(SMOKE, tmp_path / "smoke-now.yaml", start=start)
    chain = Chain(ChainSettings(scenario, tmp_path / "run", days=0.2, compression=600.0,
                                device_faults=False))
    procs: list[subprocess.Popen] = []
    with chain:
        try:
            api, token = chain.api.base_url, chain.read_token
            plain, killed = tmp_path / "plain", tmp_path / "killed"
            procs.append(spawn(api, plain, "--required-days", TINY, token=token,
                               interval="0.3"))
            procs.append(spawn(api, killed, "--required-days", TINY, token=token,
                               interval="0.3"))
            for least in (50, 100):
                wait_for(lambda n=least: sum(stored(killed).values()) > n, HANG_S,
                         "records observed")
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait(HANG_S)
                procs.append(spawn(api, killed, token=token, interval="0.3"))
            report = chain.wait_drained(timeout=HANG_S)
            assert report.drained, report
            platform = {s: len(list(chain.api.items(s)))
                        for s in ("transactions", "inventory", "deliveries", "events")}
            platform = {s: n for s, n in platform.items() if n}
            assert platform["transactions"] > 0 and platform["inventory"] > 0
            for out in (plain, killed):  # a poll after the drain has read everything
                wait_for(lambda o=out: stored(o) == platform, HANG_S, f"{out.name} caught up")
            for p in (procs[0], procs[-1]):
                p.send_signal(signal.SIGTERM)
                assert p.wait(HANG_S) in (1, 3), p.stderr.read() if p.stderr else ""
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(HANG_S)
    assert assert_consistent(plain)["counts"] == platform
    assert assert_consistent(killed)["counts"] == platform
    for out in (plain, killed):
        rec = record(out)
        # the platform's registry is the whole ledger; the chain runs two of its stations
        assert set(chain.station_ids) <= {s["station_id"] for s in rec["stations"]}
        for sid in chain.station_ids:
            for name in ("stability.sequence_missing", "stability.totalizer_unexplained"):
                assert measured(rec, name, sid)["value"] == 0, measured(rec, name, sid)
        assert (out / "report-stability.html").stat().st_size > 0
    assert any("restarted 2 time(s)" in n for n in record(killed)["notes"])


class _Answers:
    """A platform client answering from lists (poll_once reads only url() and items())."""

    def __init__(self, stations: list[Any], records: dict[str, list[Any]]) -> None:
        self.stations, self.records = stations, records

    def url(self, path: str, params: Any = None) -> str:
        return f"http://platform{path}"

    def items(self, resource: str, **filters: Any) -> Any:
        if resource == "stations":
            return iter(self.stations)
        if resource == "alerts":
            return iter([])
        return iter(r for r in self.records.get(resource, [])
                    if r["station_id"] == filters["station_id"])


@pytest.mark.parametrize("field,value", [
    ("end_time", 1_775_001_600_000),  # milliseconds
    ("nozzle", "A"), ("seq", 2**70), ("seq", 70_000), ("volume_ml", "12 L"),
    ("received_at", [1]),
])
def test_a_malformed_record_is_noted_and_the_poll_goes_on(tmp_path, field, value):
    """A record the platform serves with a field the store could not keep (a device time in
    milliseconds, a nozzle that is no number, a seq beyond 16 bits) fails that station's
    stream for this poll, noted in the poll, and never the observer (it crashed, exit 1, and
    again at every resume)."""
    from acceptance.observing.poll import PollSettings, poll_once

    t0 = int(MIDNIGHT)
    good = [fill("S1", i, t0 + 60 * i, 1000, 1000 * (i + 1)) for i in range(3)]
    bad = dict(fill("S1", 3, t0 + 240, 1000, 4000), **{field: value})
    client = _Answers([station("S1")], {"transactions": [*good, bad],
                                        "inventory": [inventory("S1", 1, t0)]})
    data = poll_once(client, {}, PollSettings(since=t0 - 86400), t0 + 1000.0)
    assert data.ok and data.records["transactions"] == [] and len(data.records["inventory"]) == 1
    assert any("transactions S1" in e and field in e for e in data.errors), data.errors
    Store(tmp_path).poll(data, gap_limit=180.0)  # stored without the failed stream


def test_a_station_list_the_store_could_not_read_is_an_unavailable_sample(tmp_path):
    from acceptance.observing.poll import PollSettings, poll_once

    client = _Answers([dict(station("S1"), collector="up")], {})
    data = poll_once(client, {}, PollSettings(since=0.0), float(MIDNIGHT))
    assert not data.ok and "collector" in data.error
    Store(tmp_path).poll(data, gap_limit=180.0)
