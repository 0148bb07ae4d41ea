"""The platform's detection worker (central/detectors/worker.py): a real process that
evaluates the stations on the database it shares with the platform, is started again when
it exits on its own, stops when asked, and never outlives the process that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_central_support import fresh_database, ready_database
from test_detectors_platform import S, load_station
from waiting import HANG_S, gone, wait_for

from central.db import Database
from central.detectors.base import Settings
from central.detectors.runner import progress
from central.detectors.worker import DetectionProcess

M0 = 1774972800


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    for url in fresh_database(request.param, tmp_path):
        database = ready_database(url)
        yield database
        database.close()


def test_the_worker_evaluates_the_shared_database_and_is_started_again(db: Database) -> None:
    drained = M0 + 86400 + 1800
    load_station(db, drained)
    worker = DetectionProcess(db.url, Settings(), interval_s=0.05, log_level="WARNING")
    worker.start()
    try:
        first = worker.pid
        assert first is not None
        # the database URL (a PostgreSQL one may carry a password) is not on its command line
        assert db.url.encode() not in Path(f"/proc/{first}/cmdline").read_bytes()

        def evaluated() -> bool:
            with db.borrow() as conn:
                return progress(conn, S)[1] == drained
        wait_for(evaluated, HANG_S, "the worker's evaluation through the watermark")
        with db.borrow() as conn:
            kinds = [r[0] for r in conn.query("SELECT kind FROM alerts WHERE station_id = ?",
                                              (S,))]
        assert kinds.count("price_mismatch") == 1, kinds  # load_station's overcharged fill
        os.kill(first, signal.SIGKILL)  # the worker exits on its own
        wait_for(lambda: worker.restarts == 1 and worker.pid != first, HANG_S,
                 "the worker started again")
        assert gone(first) and not gone(worker.pid)  # type: ignore[arg-type]
    finally:
        worker.stop()
    last = worker.pid
    assert last is not None and gone(last) and worker.restarts == 1


def test_bad_options_are_refused_in_the_platform(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="detect budget must be in"):
        DetectionProcess(f"sqlite:///{tmp_path / 'p.db'}", Settings(), budget=0.0)


def test_the_worker_ends_with_a_platform_killed_by_sigkill(tmp_path: Path) -> None:
    """The process that started the worker dies without any clean-up (a platform crash):
    the worker must not go on writing beside the platform's successor."""
    db = ready_database(f"sqlite:///{tmp_path / 'p.db'}")
    db.close()
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import json, time
        from central.detectors.base import Settings
        from central.detectors.worker import DetectionProcess
        worker = DetectionProcess({db.url!r}, Settings(), log_level="WARNING")
        worker.start()
        print(json.dumps(worker.pid), flush=True)
        time.sleep(3600)
        """)], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = json.loads(parent.stdout.readline())
        assert not gone(child)
        parent.kill()
        parent.wait()
        wait_for(lambda: gone(child), HANG_S, "the orphaned worker's end")
    finally:
        parent.kill()
        parent.wait()


def test_a_worker_started_by_hand_without_its_configuration_says_what_it_expects() -> None:
    res = subprocess.run([sys.executable, "-m", "central.detectors.worker"], input="{bad\n",
                         capture_output=True, text=True, timeout=HANG_S)
    assert res.returncode == 2
    assert "expected the configuration from `forecourt platform` as one JSON line on stdin" \
        in res.stderr


def test_a_worker_that_keeps_failing_is_started_less_and_less_often(tmp_path: Path) -> None:
    """A worker that cannot start (here: a log level it does not know) exits at once; the
    platform starts it again after a delay that doubles each time (1 s, 2 s, … up to 60 s
    with the defaults)."""
    worker = DetectionProcess(f"sqlite:///{tmp_path / 'p.db'}", Settings(),
                              log_level="NO-SUCH-LEVEL", restart_delay_s=0.02)
    worker.start()
    try:
        wait_for(lambda: worker.restarts >= 4, HANG_S, "four restarts")
    finally:
        worker.stop()
    assert worker.delays[:4] == [0.02, 0.04, 0.08, 0.16]
