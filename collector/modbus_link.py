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
    """Requests to the devices behind one endpoint, one at a time (serial lines demand it)."""

    def __init__(self, endpoint: StationEndpoint, timeout: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.client: ModbusTcpClient | ModbusRtuClient = (
            ModbusTcpClient(endpoint.host, endpoint.port, timeout)
            if endpoint.transport == "tcp" else ModbusRtuClient(
                endpoint.serial_port, baudrate=endpoint.baudrate, bytesize=endpoint.bytesize,
                parity=endpoint.parity, stopbits=endpoint.stopbits, timeout=timeout))
        self._lock = asyncio.Lock()

    async def _ensure_connected(self) -> None:
        if self.client.connected:
            return
        try:
            ok = await asyncio.wait_for(self.client.connect(), self.timeout + 1.0)
        except (TimeoutError, OSError, serial.SerialException) as exc:
            raise LinkError(f"cannot connect to {self.endpoint.describe()}: {exc!r}") from exc
        if not ok:
            raise LinkError(f"cannot connect to {self.endpoint.describe()}")

    async def _call(self, what: str, coro_factory):
        async with self._lock:
            await self._ensure_connected()
            try:
                return await coro_factory()
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
            regs = await self._call(what, lambda: self.client.read(unit_id, address, count))
        else:
            what = f"unit {unit_id} write {write[0]}={write[1]} and read {address}+{count}"
            regs = await self._call(what, lambda: self.client.write_read(
                unit_id, address, count, write[0], write[1]))
        if len(regs) != count:
            # Also catches a late reply to an earlier request on a serial line.
            raise LinkError(f"{what}: reply holds {len(regs)} registers")
        return regs

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """FC06 write of one register."""
        await self._call(f"unit {unit_id} write {address}={value}",
                         lambda: self.client.write(unit_id, address, value))

    def close(self) -> None:
        self.client.close()
