"""Benchmark: reads/s of 100-register blocks from concurrent async clients against one
station's Modbus TCP server (target >= 5,000/s with 8 clients).

The server runs in its own process exactly as `forecourt devices` runs it (devices.runner:
world stepping at the given compression, register images rendered from live state); the
clients run in this process, each reading FIFO regions of the gauge and both dispensers in
turn (100 registers per request), sequentially (one request in flight per client).

    python benchmarks/bench_modbus.py [--clients 8] [--seconds 10] [--compression 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

START = 1774972800.0  # 2026-04-01T00:00:00+08:00
# (unit id, address) of 100-register reads inside FIFO regions (status + window)
TARGETS = [(1, 1000), (11, 1000), (12, 1000), (1, 2000), (11, 1010)]


def _world(days: float):
    from sim.config import DispenserConfig, PriceChange, StationConfig, TankConfig, WorldConfig
    from sim.world import World

    station = StationConfig(
        station_id="B01", name="bench", town="Haliut", ownership="private", dialect="int_be",
        transport="tcp", tanks=(TankConfig(1, "92", 30), TankConfig(2, "95", 20),
                                TankConfig(3, "0", 50)),
        dispensers=(DispenserConfig(1, (1, 2, 3, 3)), DispenserConfig(2, (1, 2, 3, 3))),
        throughput_l_per_day={"92": 8000.0, "95": 3000.0, "0": 9000.0})
    prices = tuple(PriceChange(START - 86400, g, p) for g, p in (("92", 703), ("95", 752), ("0", 671)))
    return World(WorldConfig(seed=1, start=START, days=days, timezone="Asia/Shanghai",
                             stations=(station,), prices=prices))


def _serve(out_dir: str, compression: float, stop) -> None:
    from devices.runner import serve

    serve(_world(days=30.0), compression=compression, out_dir=out_dir, ledger=None,
          stop_event=stop, linger=True, echo=False)


async def _client(port: int, deadline: float, counts: list[int], errors: list[str], k: int) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    if not await client.connect():
        errors.append(f"client {k}: cannot connect")
        return
    i = k
    try:
        while time.perf_counter() < deadline:
            unit, address = TARGETS[i % len(TARGETS)]
            r = await client.read_holding_registers(address, count=100, device_id=unit)
            if r.isError() or len(r.registers) != 100:
                errors.append(f"client {k}: {r}")
                return
            counts[k] += 1
            i += 1
    finally:
        client.close()


async def _bench(port: int, clients: int, seconds: float) -> tuple[int, float, list[str]]:
    counts = [0] * clients
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, t0 + seconds, counts, errors, k) for k in range(clients)))
    return sum(counts), time.perf_counter() - t0, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--compression", type=float, default=600.0)
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        stop = ctx.Event()
        proc = ctx.Process(target=_serve, args=(tmp, args.compression, stop), daemon=True)
        proc.start()
        try:
            endpoints = Path(tmp) / "endpoints.json"
            deadline = time.monotonic() + 60
            while not endpoints.exists():
                if not proc.is_alive() or time.monotonic() > deadline:
                    print("server did not start", file=sys.stderr)
                    return 2
                time.sleep(0.05)
            port = json.loads(endpoints.read_text())["stations"]["B01"]["port"]
            reads, wall, errors = asyncio.run(_bench(port, args.clients, args.seconds))
        finally:
            stop.set()
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    rate = reads / wall
    print(json.dumps({"clients": args.clients, "registers_per_read": 100, "reads": reads,
                      "seconds": round(wall, 2), "reads_per_s": round(rate),
                      "compression": args.compression, "errors": errors[:5]}))
    print(f"{rate:,.0f} reads/s of 100 registers from {args.clients} clients "
          f"({'meets' if rate >= 5000 else 'BELOW'} the 5,000/s target)")
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
