"""Benchmark the reference platform's HTTP API under idle and concurrent clients (issue 10).

    python benchmarks/bench_api.py                                  # SQLite
    python benchmarks/bench_api.py --postgres postgresql://user@host:port/postgres

The reference platform (`forecourt platform`) as a process, with the banner's registry and
an empty store. Two measurements:

- **idle**: `--idle` (1,000) connections that send half a request and then nothing; while
  they hang, 20 GETs of /api/v1/stations from another client, one after another: how many
  are answered and how fast;
- **concurrent**: `--concurrent` (1,000) clients released at once, each with one GET of
  /api/v1/transactions?limit=100: failures, p50 / p99 / slowest answer, wall time.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from acceptance.broker import Mosquitto, free_port, wait_listening
from acceptance.keys import make_key_file

REPO = Path(__file__).resolve().parent.parent
REGISTRY = REPO / "scenarios" / "fleets" / "urad-middle-banner.csv"


def _get(url: str, token: str, timeout: float = 60.0) -> tuple[int | None, float]:
    t0 = time.monotonic()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            status: int | None = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = None
    return status, time.monotonic() - t0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


def idle(port: int, base: str, token: str, n: int) -> dict:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /api/v1/stations HTTP/1.1\r\nHost: x")  # the headers never end
        socks.append(s)
    try:
        answers = [_get(f"{base}/api/v1/stations?limit=10", token, timeout=30) for _ in range(20)]
    finally:
        for s in socks:
            s.close()
    ok = [t for code, t in answers if code == 200]
    return {"idle_connections": n, "answered": len(ok), "of": len(answers),
            "p50_s": _pct(ok, 0.5), "slowest_s": round(max(ok), 3) if ok else None}


def concurrent(base: str, token: str, n: int) -> dict:
    results: list[tuple[int | None, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(n + 1)

    def one() -> None:
        start.wait()
        r = _get(f"{base}/api/v1/transactions?limit=100", token)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    times = [t for code, t in results if code == 200]
    return {"clients": n, "ok": len(times), "failed": n - len(times),
            "p50_s": _pct(times, 0.5), "p99_s": _pct(times, 0.99),
            "slowest_s": round(max(times), 3) if times else None,
            "mean_s": round(statistics.fmean(times), 3) if times else None,
            "wall_s": round(time.monotonic() - t0, 2)}


def _database(args: argparse.Namespace, work: Path) -> str:
    if not args.postgres:
        return f"sqlite:///{work / 'platform.db'}"
    import psycopg

    name = f"bench_api_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return args.postgres.rsplit("/", 1)[0] + "/" + name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--concurrent", type=int, default=1000)
    ap.add_argument("--postgres", help="a PostgreSQL server URL (a database is created on it)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fc-api-"))
    keys = make_key_file(["UMB01"], work / "keys.json")
    token = secrets.token_urlsafe(24)
    (work / "tokens.json").write_text(json.dumps({"tokens": [
        {"token": token, "role": "read", "name": "bench"}]}))
    port = free_port()
    with Mosquitto(workdir=work / "mosquitto") as broker:
        platform = subprocess.Popen(
            [sys.executable, "-m", "acceptance.cli", "platform", "--db", _database(args, work),
             "--broker", broker.url, "--http", f"127.0.0.1:{port}", "--keys", str(keys),
             "--registry", str(REGISTRY), "--tokens", str(work / "tokens.json"),
             "--log-level", "ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening("127.0.0.1", port, 60)
            base = f"http://127.0.0.1:{port}"
            out = {"database": "postgresql" if args.postgres else "sqlite",
                   "idle": idle(port, base, token, args.idle),
                   "concurrent": concurrent(base, token, args.concurrent)}
        finally:
            platform.terminate()
            platform.wait(60)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
