"""pymodbus 3.16's simulator device for a FieldDevice: how the devices were served before
devices.pdu, kept as the reference the harness's own servers are compared with
(tests/test_device_tcp_server.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.device import MAX_READ, READ_FCS, WRITE_FCS, FieldDevice


class DeviceSilent(NoSuchIdException):
    """Raised by a silent device's hook: a server started with `ignore_missing_devices`
    answers a NoSuchIdException with no reply at all."""


def _hook(dev: FieldDevice):
    async def action(func_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: Sequence[int] | Sequence[bool] | None,
                     ) -> ExcCodes | None:
        """Run before every reply (invalid or read-only addresses were already answered
        with exception 02 by pymodbus)."""
        mode, delay = dev.misbehaviour()
        if mode == "silent":
            raise DeviceSilent(f"{dev.where} is silent")
        if mode == "busy":
            return ExcCodes.DEVICE_BUSY
        if mode == "slow":
            await asyncio.sleep(delay)
        if set_values is not None:
            if func_code not in WRITE_FCS:
                return ExcCodes.ILLEGAL_FUNCTION
            return dev.write_ack(address, count, int(set_values[0]))
        # FC06 reads the written register back for its echo: serve it like a read.
        if func_code not in READ_FCS and func_code != 6:
            return ExcCodes.ILLEGAL_FUNCTION
        if not 1 <= count <= MAX_READ:
            return ExcCodes.ILLEGAL_VALUE
        dev.image.fill(registers, address - start_address, address, count)
        return None
    return action


def sim_device(dev: FieldDevice) -> SimDevice:
    """Every region valid, read-only except the ack registers."""
    writable = dev.image.writable()
    simdata: list[SimData] = []
    for r in dev.image.regions:
        a = r.start
        for w in sorted(x for x in writable if r.start <= x < r.end):
            if w > a:
                simdata.append(SimData(a, count=w - a, datatype=DataType.REGISTERS, readonly=True))
            simdata.append(SimData(w, count=1, datatype=DataType.REGISTERS))
            a = w + 1
        if a < r.end:
            simdata.append(SimData(a, count=r.end - a, datatype=DataType.REGISTERS, readonly=True))
    return SimDevice(id=dev.unit_id, simdata=simdata, action=_hook(dev))
