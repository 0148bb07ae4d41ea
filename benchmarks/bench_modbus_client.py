"""Benchmark: CPU per request of a Modbus TCP client reading 125 registers, sequentially,
from a minimal responder in another process (so only the client's side is measured).

Compares pymodbus 3.16's AsyncModbusTcpClient with the collector's own client
(collector/modbus_tcp.py) alone and through the collector's ModbusLink, on the event loop
the collectors use (uvloop where installed).

    python benchmarks/bench_modbus_client.py [--requests 5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial

from collector.aio import run as run_loop
from collector.endpoints import StationEndpoint
from collector.modbus_link import ModbusLink
from collector.modbus_tcp import ModbusTcpClient

COUNT = 125


def _responder(ports: mp.Queue) -> None:
    """Answers every FC03 request with `count` zero registers."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readexactly(6)
            except asyncio.IncompleteReadError:
                return
            request = head + await reader.readexactly(struct.unpack(">H", head[4:])[0])
            count = struct.unpack_from(">H", request, 10)[0]
            pdu = bytes([request[7], 2 * count]) + bytes(2 * count)
            writer.write(request[:4] + struct.pack(">HB", len(pdu) + 1, request[6]) + pdu)

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _measure(port: int, kind: str, requests: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per request."""
    read: Callable[[], Awaitable[object]]
    if kind == "pymodbus":
        from pymodbus.client import AsyncModbusTcpClient

        pm = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
        await pm.connect()
        read = partial(pm.read_holding_registers, 1000, count=COUNT, device_id=1)
        close = pm.close
    elif kind == "collector client":
        lean = ModbusTcpClient("127.0.0.1", port, 1.0)
        await lean.connect()
        read = partial(lean.read, 1, 1000, COUNT)
        close = lean.close
    else:
        link = ModbusLink(StationEndpoint("B01", "tcp", "int_be", (), host="127.0.0.1",
                                          port=port), 1.0)
        read = partial(link.read, 1, 1000, COUNT)
        close = link.close
    for _ in range(200):  # warm up
        await read()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(requests):
        await read()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    close()
    return cpu / requests * 1e6, wall / requests * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2, help="alternated rounds of every client")
    args = p.parse_args()
    ports: mp.Queue = mp.Queue()
    responder = mp.Process(target=_responder, args=(ports,), daemon=True)
    responder.start()
    port = ports.get(timeout=30)
    try:
        for _ in range(args.rounds):
            for kind in ("pymodbus", "collector client", "collector ModbusLink"):
                cpu, wall = run_loop(_measure(port, kind, args.requests))
                print(f"{kind:22s} {cpu:6.1f} µs CPU per request, {wall:6.1f} µs wall")
    finally:
        responder.kill()


if __name__ == "__main__":
    main()
