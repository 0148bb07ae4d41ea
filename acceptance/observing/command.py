"""`forecourt observe`: watch a live platform until --until (or SIGTERM / Ctrl-C), resumably.

    forecourt observe --api URL --token-file F --out DIR [--interval 60] [--until 180d]
                      [--required-days N]

Each interval one poll (acceptance/observing/poll.py) is committed to DIR/observe.db in one
transaction; every --record-every seconds and at the end the run record (record.json),
junit.xml and the stability report (report-stability.html) are written. Restarting with
the same --out resumes. Exit codes: the verdict's (0 accepted, 1 not accepted,
3 incomplete); 2 bad input (unreachable or refusing API on a fresh start, a 401, an
answer that is not the API's, a bad option) — the message names where and what.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acceptance.observe import ApiError, PlatformClient
from acceptance.observing.poll import PollSettings, poll_once
from acceptance.observing.store import Store, StoreError
from acceptance.observing.verdict import build_record
from acceptance.record import write_json

EXIT_ERROR = 2
STATE_FORMAT = "forecourt-observe/1"
INFO_FILE = "observe.json"
REPORT_FILE = "report-stability.html"
PLAN_DAYS = 180.0
KILL_ENV = "FORECOURT_OBSERVE_KILL_IN_POLL"  # tests: SIGKILL inside poll N's transaction
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ObserveError(Exception):
    """Bad input: the message names the option, file or URL and what is wrong."""


def parse_until(text: str, now: float, tz: ZoneInfo) -> float:
    """`--until`: a duration from now (90s, 30m, 12h, 180d) or an ISO 8601 time (without an
    offset: the platform zone)."""
    m = _DURATION.match(text.strip())
    if m:
        return now + float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ObserveError(f"--until {text!r}: expected a duration (90s, 30m, 12h, 180d) or "
                           "an ISO 8601 time (2026-10-01T00:00:00+08:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()


def read_token(token: str | None, token_file: str | None) -> str:
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ObserveError(f"--token-file {token_file}: cannot read: {exc}") from None
        if not text:
            raise ObserveError(f"--token-file {token_file}: the file is empty; expected the "
                               "platform API token")
        return text
    if not token:
        raise ObserveError("--token or --token-file: a platform API token is required")
    return token


def preflight(client: PlatformClient, *, fresh: bool) -> str | None:
    """Check that the API answers as the API: on a fresh start every failure is bad input;
    on a resume only a refused token is (an unavailable platform is a sample). Returns the
    reason the platform is unavailable now, if it is."""
    where = client.url("/api/v1/stations", {"limit": 1})
    try:
        page = client.get("/api/v1/stations", {"limit": 1})
    except ApiError as exc:
        if fresh or exc.status in (401, 403):
            hint = (" — check --token / --token-file (a token of role read or admin)"
                    if exc.status in (401, 403) else "")
            raise ObserveError(f"cannot observe: {exc}{hint}") from None
        return str(exc)
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise ObserveError(f"cannot observe: {where}: the answer is JSON but not a list page "
                           "({\"items\": [...], \"next_cursor\": ...}, docs/platform-api.md §4)")
    return None


def _harness() -> dict[str, Any]:
    from acceptance.run import git_commit, harness_version

    return {"version": harness_version(), "git_commit": git_commit()}


class Observer:
    def __init__(self, args: argparse.Namespace) -> None:
        try:
            self.tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ObserveError(f"--timezone {args.timezone!r}: not a known time zone") from None
        if not args.interval > 0:
            raise ObserveError(f"--interval {args.interval}: expected seconds > 0")
        if args.required_days is not None and not args.required_days > 0:
            raise ObserveError(f"--required-days {args.required_days}: expected days > 0")
        self.out = Path(args.out)
        if self.out.exists() and not self.out.is_dir():
            raise ObserveError(f"--out {self.out}: exists and is not a directory")
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            self.client = PlatformClient(args.api, read_token(args.token, args.token_file),
                                         timeout=args.http_timeout)
        except ValueError as exc:
            raise ObserveError(f"--api: {exc}") from None
        try:
            self.store = Store(self.out, args.timezone)
        except StoreError as exc:
            raise ObserveError(f"--out {self.out}: {exc}") from None
        self.args = args
        self.stop = threading.Event()
        self.stopped_by: str | None = None

    def meta(self, now: float) -> dict[str, str]:
        meta, args = self.store.meta(), self.args
        fresh = not meta
        if not fresh:
            if meta.get("format") != STATE_FORMAT:
                raise ObserveError(f"--out {self.out}: {self.store.path} is not an observe "
                                   f"state of {STATE_FORMAT}")
            if meta["api"] != self.client.base_url:
                raise ObserveError(f"--api {self.client.base_url}: {self.out} observes "
                                   f"{meta['api']}; use another --out for another platform")
            if (args.required_days is not None
                    and float(meta["required_days"]) != args.required_days):
                raise ObserveError(f"--required-days {args.required_days:g}: this observation "
                                   f"was started with {float(meta['required_days']):g}; it "
                                   "cannot change on resume")
            if meta.get("timezone") != args.timezone:
                raise ObserveError(f"--timezone {args.timezone}: this observation uses "
                                   f"{meta.get('timezone')}")
        unavailable = preflight(self.client, fresh=fresh)
        if fresh:
            meta = {"format": STATE_FORMAT, "run_id": f"observe-{uuid.uuid4().hex[:12]}",
                    "api": self.client.base_url, "started_at": repr(now),
                    "since": repr(now - args.since_days * 86400.0),
                    "required_days": repr(args.required_days or PLAN_DAYS),
                    "timezone": args.timezone}
            self.store.set_meta(meta)
        self.store.set_meta({"restarts": str(int(meta.get("restarts", "-1")) + 1),
                             "interval_s": repr(args.interval)})
        if unavailable:
            print(f"forecourt observe: resuming; the platform is unavailable now "
                  f"({unavailable}): counted as a sample", file=sys.stderr)
        return self.store.meta()

    def _signal(self, signum: int, _frame: Any) -> None:
        self.stopped_by = signal.Signals(signum).name
        # set from another thread: the handler may run while this one holds the Event's
        # lock inside stop.wait(), and setting it here would then wait for ever
        threading.Thread(target=self.stop.set).start()

    def run(self) -> int:
        now = time.time()
        until = None if self.args.until is None else parse_until(self.args.until, now, self.tz)
        meta = self.meta(now)
        settings = PollSettings(since=float(meta["since"]))
        gap_limit = max(3.0 * self.args.interval, 180.0)
        kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
        hook = (lambda n: os.kill(os.getpid(), signal.SIGKILL) if n == kill_at else None
                ) if kill_at else None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signal)
        print(f"forecourt observe: {meta['api']} → {self.out} (poll every "
              f"{self.args.interval:g} s" + ("" if until is None else ", until "
              + dt.datetime.fromtimestamp(until, self.tz).isoformat()) + ")", file=sys.stderr)
        last_record = time.monotonic()
        reached = False
        while not self.stop.is_set():
            start = time.time()
            if until is not None and start >= until:
                reached = True
                break
            data = poll_once(self.client, self.store.settled(), settings, start)
            self.store.poll(data, gap_limit, hook)
            if time.monotonic() - last_record >= self.args.record_every:
                self.write_outputs(meta, complete=True, ended=None)
                last_record = time.monotonic()
            wait = self.args.interval - (time.time() - start)
            if until is not None:
                wait = min(wait, until - time.time())
            self.stop.wait(max(0.0, wait))
        if until is not None and not reached and time.time() >= until:
            reached = True
        ended = "until" if reached else (self.stopped_by or "stopped")
        complete = reached or until is None
        record = self.write_outputs(meta, complete=complete, ended=ended)
        stb = next(r.outcome for r in record.requirements if r.id == "STB-1")
        print(f"forecourt observe: STB-1 {stb}; {record.verdict_line()}", file=sys.stderr)
        self.store.close()
        return record.exit_code

    def write_outputs(self, meta: dict[str, str], *, complete: bool, ended: str | None) -> Any:
        from reports.junit import write_junit
        from reports.stability import render_stability

        notes = self.notes(meta, ended)
        record = build_record(self.store, meta, complete=complete, notes=notes,
                              harness=_harness())
        record.write(self.out / "record.json")
        write_junit(record, self.out / "junit.xml")
        render_stability(record, self.out / REPORT_FILE, lang=self.args.lang)
        polls, ok, errs = self.store.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0), COUNT(errors) FROM polls").fetchone()
        write_json(self.out / INFO_FILE, {
            "format": STATE_FORMAT, "run_id": meta["run_id"], "api": meta["api"],
            "started_at": float(meta["started_at"]), "restarts": int(meta.get("restarts", 0)),
            "interval_s": float(meta["interval_s"]), "required_days": float(meta["required_days"]),
            "timezone": meta["timezone"], "polls": polls, "answered": ok,
            "polls_with_resource_errors": errs, "ended": ended, "complete": complete,
            "written_at": time.time()})
        return record

    def notes(self, meta: dict[str, str], ended: str | None) -> list[str]:
        out = ["observe mode: a live platform watched through its API, without ground truth; "
               "requirements that need ground truth or the harness's inputs are not checked"]
        days = float(meta["required_days"])
        if days < PLAN_DAYS:
            out.append(f"shortened stability check: --required-days {days:g} (the plan asks "
                       f"for {PLAN_DAYS:g} days)")
        restarts = int(meta.get("restarts", 0))
        if restarts:
            out.append(f"the observer was restarted {restarts} time(s) and resumed from its "
                       "state; the time it was down counts as not observed")
        if ended == "until":
            out.append("ended at --until")
        elif ended is None:
            out.append("interim record: the observation is still running")
        else:
            out.append(f"ended by {ended}"
                       + (" before --until: the observation is not complete"
                          if self.args.until is not None else ""))
        return out


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--api", required=True, help="the platform's base URL (http://host:port)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--token", help="API bearer token (role read or admin)")
    g.add_argument("--token-file", help="a file holding the API bearer token")
    s.add_argument("--out", required=True,
                   help="observe directory: state (observe.db), record.json, reports; "
                        "the same directory resumes")
    s.add_argument("--interval", type=float, default=60.0,
                   help="seconds between polls (default 60)")
    s.add_argument("--until", help="end: a duration from now (90s, 30m, 12h, 180d) or an ISO "
                                   "8601 time; without it, until SIGTERM or Ctrl-C")
    s.add_argument("--required-days", type=float, default=None,
                   help="STB-1's period in days (default 180, the plan's); lower only for a "
                        "shortened stability check, which the record and report say it is")
    s.add_argument("--timezone", default="Asia/Shanghai",
                   help="the platform's zone: civil days (default Asia/Shanghai)")
    s.add_argument("--since-days", type=float, default=1.0,
                   help="on a fresh start, read records from this many days before it "
                        "(default 1): the sequence chains need a predecessor")
    s.add_argument("--record-every", type=float, default=3600.0,
                   help="seconds between interim records and reports (default 3600)")
    s.add_argument("--http-timeout", type=float, default=10.0,
                   help="seconds per API request (default 10)")
    s.add_argument("--lang", default="zh-CN", choices=("zh-CN", "en"))


def cmd_observe(args: argparse.Namespace) -> int:
    try:
        return Observer(args).run()
    except ObserveError as exc:
        print(f"forecourt observe: {exc}", file=sys.stderr)
        return EXIT_ERROR
