"""The collector's Modbus TCP client (collector/modbus_tcp.py) against a scripted gateway: what
it takes as a reply, what it drops, what fails the request."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest

from collector.modbus_tcp import ExceptionReply, ModbusTcpClient, ReplyError

Reply = Callable[[bytes], list[bytes]]  # request frame → frames (or pieces) to send back


def frame(tid: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, unit) + pdu


def registers(request: bytes, values: list[int]) -> bytes:
    """The proper FC03/FC23 reply to `request` with `values`."""
    tid, unit, fc = struct.unpack_from(">H", request)[0], request[6], request[7]
    return frame(tid, unit, bytes([fc, 2 * len(values)]) + struct.pack(f">{len(values)}H",
                                                                      *values))


async def gateway(script: list[Reply]) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server answering its n-th request with script[n]; records the requests."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readexactly(6)
            except asyncio.IncompleteReadError:
                break
            request = head + await reader.readexactly(struct.unpack(">H", head[4:])[0])
            seen.append(request)
            pieces = script[len(seen) - 1](request)
            if pieces is None:
                writer.close()
                break
            for piece in pieces:
                writer.write(piece)
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def run(script: list[Reply], calls: Callable[[ModbusTcpClient], object]) -> tuple[object,
                                                                                  list[bytes]]:
    async def main():
        server, port, seen = await gateway(script)
        client = ModbusTcpClient("127.0.0.1", port, timeout=0.3)
        try:
            await client.connect()
            return await calls(client), seen
        finally:
            client.close()
            server.close()
    return asyncio.run(asyncio.wait_for(main(), 30))


def test_requests_are_framed_as_the_standard_says():
    async def calls(c: ModbusTcpClient):
        return [await c.read(11, 1000, 3), await c.write_read(11, 1000, 2, 1099, 65535),
                await c.write(12, 1099, 7)]

    def echo(request: bytes) -> list[bytes]:  # FC06 answers with the request itself
        return [request]

    got, seen = run([lambda r: [registers(r, [1, 2, 65535])], lambda r: [registers(r, [4, 5])],
                     echo], calls)
    assert got == [[1, 2, 65535], [4, 5], None]
    assert seen == [frame(1, 11, bytes.fromhex("0303e80003")),
                    frame(2, 11, bytes.fromhex("1703e80002044b0001" "02ffff")),
                    frame(3, 12, bytes.fromhex("06044b0007"))]


def test_a_late_reply_to_an_earlier_request_is_dropped_and_its_own_taken():
    def late_then_own(r: bytes) -> list[bytes]:
        stale = frame(struct.unpack_from(">H", r)[0] - 1 or 65535, r[6], bytes([3, 2, 0, 9]))
        own = registers(r, [42])
        return [stale + own[:5], own[5:]]  # and the own reply split across two segments

    got, _ = run([late_then_own], lambda c: c.read(1, 0, 1))
    assert got == [42]


@pytest.mark.parametrize(("reply", "error"), [
    (lambda r: [frame(1, r[6], bytes([3, 2, 0, 1]), protocol=7)], "not a Modbus TCP frame"),
    (lambda r: [frame(1, r[6] + 1, bytes([3, 2, 0, 1]))], "reply from unit"),
    (lambda r: [frame(1, r[6], bytes([3, 4, 0, 1]))], "byte count"),  # PDU cut, length fits
    (lambda r: [frame(1, r[6], bytes([4, 2, 0, 1]))], "function code"),
    (lambda r: None, "connection"),  # the gateway hangs up
])
def test_a_garbled_reply_fails_the_request_at_once(reply, error):
    with pytest.raises(ReplyError, match=error):
        run([reply], lambda c: c.read(1, 0, 1))


def test_a_reply_cut_short_times_out_and_does_not_shift_the_next():
    async def calls(c: ModbusTcpClient):
        with pytest.raises(TimeoutError):
            await c.read(1, 0, 1)
        return await c.read(1, 0, 1)

    got, _ = run([lambda r: [registers(r, [5])[:9]], lambda r: [registers(r, [6])]], calls)
    assert got == [6]


def test_an_exception_reply_carries_its_code_and_a_wrong_echo_fails():
    with pytest.raises(ExceptionReply) as exc:
        run([lambda r: [frame(1, r[6], bytes([0x97, 0x01]))]],
            lambda c: c.write_read(1, 0, 1, 99, 1))
    assert exc.value.code == 1
    with pytest.raises(ReplyError, match="echo"):
        run([lambda r: [frame(1, r[6], bytes.fromhex("0600630002"))]], lambda c: c.write(1, 99, 1))
