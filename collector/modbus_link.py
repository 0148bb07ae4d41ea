"""The Modbus link to one station: its TCP gateway (collector/modbus_tcp.py) or RTU serial
line (collector/modbus_rtu.py).

Every request is bounded by a timeout and classified: `LinkError` when the device did not
answer properly (timeout, no connection, garbled reply, an exception code other than the
ones the FIFO protocol gives meaning to) and `ModbusExceptionReply` carrying the code. The
client makes no retries of its own: the poller owns retry, back-off and off-line marking.
"""

from __future__ import annotations

import asyncio

import serial

from collector.endpoints import StationEndpoint
from collector.modbus_rtu import ModbusRtuClient
from collector.modbus_tcp import ExceptionReply, ModbusTcpClient, ReplyError

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3


class LinkError(Exception):
    """A request that got no usable answer."""


class ModbusExceptionReply(LinkError):
    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: Modbus exception {code:02d}")
        self.code = code


class ModbusLink:
    """Requests to the devices behind one endpoint. An RTU line takes one request at a time
    for all its units; a TCP gateway gets one connection per unit, each one request at a
    time, so a station's devices are read side by side (one reply lost or garbled on a
    connection never shifts the replies of another)."""

    def __init__(self, endpoint: StationEndpoint, timeout: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._lines: dict[int, tuple[ModbusTcpClient | ModbusRtuClient, asyncio.Lock]] = {}

    def _line(self, unit_id: int) -> tuple[ModbusTcpClient | ModbusRtuClient, asyncio.Lock]:
        ep = self.endpoint
        key = unit_id if ep.transport == "tcp" else 0
        line = self._lines.get(key)
        if line is None:
            client = ModbusTcpClient(ep.host, ep.port, self.timeout) if ep.transport == "tcp" \
                else ModbusRtuClient(ep.serial_port, baudrate=ep.baudrate, bytesize=ep.bytesize,
                                     parity=ep.parity, stopbits=ep.stopbits, timeout=self.timeout)
            line = self._lines[key] = (client, asyncio.Lock())
        return line

    async def _call(self, unit_id: int, what: str, request):
        client, lock = self._line(unit_id)
        async with lock:
            if not client.connected:
                try:
                    await asyncio.wait_for(client.connect(), self.timeout + 1.0)
                except (TimeoutError, OSError, serial.SerialException) as exc:
                    raise LinkError(f"cannot connect to {self.endpoint.describe()}: {exc!r}") from exc
            try:
                return await request(client)
            except ExceptionReply as exc:
                raise ModbusExceptionReply(exc.code, what) from exc
            except (TimeoutError, OSError, ReplyError) as exc:
                raise LinkError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def read(self, unit_id: int, address: int, count: int,
                   write: tuple[int, int] | None = None) -> list[int]:
        """FC03 read of `count` registers; the reply must hold exactly that many. With
        `write` (address, value): FC23, which writes that register first, then reads."""
        if write is None:
            what = f"unit {unit_id} read {address}+{count}"
            regs = await self._call(unit_id, what, lambda c: c.read(unit_id, address, count))
        else:
            what = f"unit {unit_id} write {write[0]}={write[1]} and read {address}+{count}"
            regs = await self._call(unit_id, what, lambda c: c.write_read(
                unit_id, address, count, write[0], write[1]))
        if len(regs) != count:
            # Also catches a late reply to an earlier request on a serial line.
            raise LinkError(f"{what}: reply holds {len(regs)} registers")
        return regs

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """FC06 write of one register."""
        await self._call(unit_id, f"unit {unit_id} write {address}={value}",
                         lambda c: c.write(unit_id, address, value))

    def close(self) -> None:
        for client, _ in self._lines.values():
            client.close()
