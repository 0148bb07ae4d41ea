"""The Modbus link to one station: its TCP gateway (collector/modbus_tcp.py) or RTU serial
line (pymodbus 3.16 async).

Every request is bounded by a timeout and classified: `LinkError` when the device did not
answer properly (timeout, no connection, garbled reply, an exception code other than the
ones the FIFO protocol gives meaning to) and `ModbusExceptionReply` carrying the code. The
client makes no retries of its own: the poller owns retry, back-off and off-line marking.
"""

from __future__ import annotations

import asyncio

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from collector.endpoints import StationEndpoint
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
        self.client: ModbusTcpClient | _SerialClient = (
            ModbusTcpClient(endpoint.host, endpoint.port, timeout)
            if endpoint.transport == "tcp" else _SerialClient(endpoint, timeout))
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


class _SerialClient:
    """pymodbus's RTU client behind the requests of ModbusTcpClient (same names, same errors)."""

    def __init__(self, endpoint: StationEndpoint, timeout: float) -> None:
        self._client = AsyncModbusSerialClient(
            endpoint.serial_port, framer=FramerType.RTU, baudrate=endpoint.baudrate,
            bytesize=endpoint.bytesize, parity=endpoint.parity, stopbits=endpoint.stopbits,
            timeout=timeout, retries=0, reconnect_delay=0)
        self.timeout = timeout
        # One silent unit must not make pymodbus drop the line the other units share;
        # the poller decides when a device is off line.
        self._client.set_max_no_responses(1 << 30)

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def connect(self) -> bool:
        return await self._client.connect()

    def close(self) -> None:
        self._client.close()

    async def _reply(self, request):
        try:
            # pymodbus has its own timeout; this bound is for a request it never ends
            reply = await asyncio.wait_for(request, self.timeout * 2 + 1.0)
        except ModbusException as exc:
            raise ReplyError(f"{type(exc).__name__}: {exc}") from exc
        if reply is None:
            raise ReplyError("no reply")
        if reply.isError():
            raise ExceptionReply(getattr(reply, "exception_code", -1))
        return reply

    async def read(self, unit: int, address: int, count: int) -> list[int]:
        reply = await self._reply(self._client.read_holding_registers(
            address, count=count, device_id=unit))
        return list(reply.registers)

    async def write_read(self, unit: int, address: int, count: int,
                         write_address: int, value: int) -> list[int]:
        reply = await self._reply(self._client.readwrite_registers(
            read_address=address, read_count=count, write_address=write_address,
            values=[value], device_id=unit))
        return list(reply.registers)

    async def write(self, unit: int, address: int, value: int) -> None:
        await self._reply(self._client.write_register(address, value, device_id=unit))
