"""The Modbus link to one station: its TCP gateway or RTU serial line (pymodbus 3.16 async).

Every request is bounded by a timeout and classified: `LinkError` when the device did not
answer properly (timeout, no connection, garbled reply, an exception code other than the
ones the FIFO protocol gives meaning to) and `ModbusExceptionReply` carrying the code. The
client makes no retries of its own: the poller owns retry, back-off and off-line marking.
"""

from __future__ import annotations

import asyncio

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collector.endpoints import StationEndpoint

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
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if endpoint.transport == "tcp":
            self.client = AsyncModbusTcpClient(endpoint.host, port=endpoint.port, timeout=timeout,
                                               retries=0, reconnect_delay=0)
        else:
            self.client = AsyncModbusSerialClient(
                endpoint.serial_port, framer=FramerType.RTU, baudrate=endpoint.baudrate,
                bytesize=endpoint.bytesize, parity=endpoint.parity, stopbits=endpoint.stopbits,
                timeout=timeout, retries=0, reconnect_delay=0)
        # One silent unit must not make pymodbus drop the link the other units share;
        # the poller decides when a device is off line.
        self.client.set_max_no_responses(1 << 30)
        self._lock = asyncio.Lock()

    async def _ensure_connected(self) -> None:
        if self.client.connected:
            return
        try:
            ok = await asyncio.wait_for(self.client.connect(), self.timeout + 1.0)
        except (TimeoutError, OSError, ModbusException) as exc:
            raise LinkError(f"cannot connect to {self.endpoint.describe()}: {exc!r}") from exc
        if not ok:
            raise LinkError(f"cannot connect to {self.endpoint.describe()}")

    async def _call(self, what: str, coro_factory):
        async with self._lock:
            await self._ensure_connected()
            try:
                reply = await asyncio.wait_for(coro_factory(), self.timeout * 2 + 1.0)
            except (TimeoutError, OSError, ModbusException) as exc:
                raise LinkError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if reply is None:
            raise LinkError(f"{what}: no reply")
        if reply.isError():
            raise ModbusExceptionReply(getattr(reply, "exception_code", -1), what)
        return reply

    async def read(self, unit_id: int, address: int, count: int,
                   write: tuple[int, int] | None = None) -> list[int]:
        """FC03 read of `count` registers; the reply must hold exactly that many. With
        `write` (address, value): FC23, which writes that register first, then reads."""
        if write is None:
            what = f"unit {unit_id} read {address}+{count}"
            reply = await self._call(what, lambda: self.client.read_holding_registers(
                address, count=count, device_id=unit_id))
        else:
            what = f"unit {unit_id} write {write[0]}={write[1]} and read {address}+{count}"
            reply = await self._call(what, lambda: self.client.readwrite_registers(
                read_address=address, read_count=count, write_address=write[0],
                values=[write[1]], device_id=unit_id))
        regs = list(reply.registers)
        if len(regs) != count:
            # Also catches a late reply to an earlier request on a serial line.
            raise LinkError(f"{what}: reply holds {len(regs)} registers")
        return regs

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """FC06 write of one register."""
        await self._call(f"unit {unit_id} write {address}={value}",
                         lambda: self.client.write_register(address, value, device_id=unit_id))

    def close(self) -> None:
        self.client.close()
