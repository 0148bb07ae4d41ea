"""collector/mqtt_loop.py on uvloop: a connection reset that paho's one read leaves unseen.

uvloop closes an fd's poll handle when the poll reports an error (POLLERR after a TCP reset),
runs the callbacks once, and keeps the closed handle registered. Banner run 28 (2026-12-07)
hung on it: one station's uplink died with "RuntimeError: unable to perform operation on
<UVPoll closed=True>" when it published after a network cut, and the world waited for that
station for ever. Here a real TCP connection is reset on loopback, and a stand-in for paho
reads nothing, as paho does when it reads its few packets and stops before the error.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
import uvloop

from collector.mqtt_loop import LoopDriver

TIMEOUT_S = 30.0  # generous: the conditions below are waited on, not the time


class ClientStandIn:
    """The paho calls LoopDriver makes; a read that does not reach the pending reset."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0
        self.out = False

    def socket(self) -> socket.socket:
        return self.sock

    def want_write(self) -> bool:
        return self.out

    def loop_read(self) -> int:
        self.reads += 1
        return 0

    def loop_write(self) -> int:
        self.out = False
        return 0

    def loop_misc(self) -> int:
        return 0


def _reset_connection() -> socket.socket:
    """A client socket whose peer closed with RST (SO_LINGER 0): its poll reports POLLERR."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    client.setblocking(False)
    return client


async def _until(condition, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {TIMEOUT_S} s: {what}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("then", ["publish", "wait"])
def test_a_reset_left_unread_is_read_again(then):
    """After the poll error: a publish neither raises nor is lost (the writer is registered
    anew), and without any publish the socket is read again within the misc interval."""

    async def main() -> None:
        sock = _reset_connection()
        client = ClientStandIn(sock)
        driver = LoopDriver(client, asyncio.get_running_loop())  # type: ignore[arg-type]
        try:
            driver._opened(client, None, sock)
            await _until(lambda: client.reads >= 1, "the reset polled and read once")
            await asyncio.sleep(0)  # (uvloop closes the handle after that read)
            if then == "publish":
                client.out = True
                driver._want_write(client, None, sock)  # raised RuntimeError before the fix
                assert driver._writing
            first = client.reads
            await _until(lambda: client.reads > first, "the socket read again")
        finally:
            driver.detach()
            sock.close()

    uvloop.run(main())
