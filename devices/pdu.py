"""What a station's devices answer to one request PDU, whatever carries it (Modbus TCP:
devices.tcp_server, RTU: devices.rtu_server): docs/register-map.md §1, §2 and §8.

Function codes 03, 04, 06, 16, 23, every other one answers 01; a read of 0 registers 03, one
not wholly inside a region (so also of more than 125) 02; a write anywhere but a FIFO ack
register 02, an ack of a sequence that is not pending 03; a PDU whose length does not fit its
function 03 (ILLEGAL DATA VALUE, as the Modbus application protocol orders it); an FC23 whose
read is refused writes nothing.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from devices.codec import CodecError
from devices.device import MAX_READ, READ_FCS, WRITE_FCS, FieldDevice

log = logging.getLogger(__name__)

ADDRESS_COUNT = struct.Struct(">HH")
READ_WRITE = struct.Struct(">HHHHB")  # FC23: read address/count, write address/count, bytes
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE, DEVICE_BUSY = 1, 2, 3, 4, 6
MAX_WRITE = 123  # FC16 registers per request (Modbus limit)
MAX_RW_WRITE = 121  # FC23 write registers per request (Modbus limit)
SERVED_FCS = READ_FCS | WRITE_FCS  # as on RTU; every other function code answers 01

# (frame about to be sent) -> the frame as it goes out (devices.server garbles it in a window)
WireHook = Callable[[bytes], bytes]


def exception(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


def read_refusal(dev: FieldDevice, address: int, count: int) -> int | None:
    """Why a read is refused: 03 for 0 registers, 02 unless every register lies in a region
    (so also for more than 125, docs/register-map.md §8); None when it is served."""
    if count == 0:
        return ILLEGAL_VALUE
    if not dev.image.covers(address, count) or count > MAX_READ:
        return ILLEGAL_ADDRESS
    return None


def read_reply(dev: FieldDevice, fc: int, address: int, count: int) -> bytes:
    if (err := read_refusal(dev, address, count)) is not None:
        return exception(fc, err)
    registers = [0] * count
    dev.image.fill(registers, 0, address, count)
    return struct.pack(f">BB{count}H", fc, 2 * count, *registers)


def serve(dev: FieldDevice, pdu: bytes) -> bytes:
    """The reply PDU to one request PDU of a device that answers as usual."""
    fc = pdu[0]
    n = len(pdu)
    if fc not in SERVED_FCS:
        return exception(fc, ILLEGAL_FUNCTION)
    try:
        if fc in (3, 4):
            if n != 5:
                return exception(fc, ILLEGAL_VALUE)
            return read_reply(dev, fc, *ADDRESS_COUNT.unpack_from(pdu, 1))
        if fc == 6:
            if n != 5:
                return exception(fc, ILLEGAL_VALUE)
            address, value = ADDRESS_COUNT.unpack_from(pdu, 1)
            if (err := dev.write_ack(address, 1, value)) is not None:
                return exception(fc, err)
            # the echo reads the register back: the ack register shows the sequence acked
            return pdu[:3] + dev.image.read(address, 1)[0].to_bytes(2, "big")
        if fc == 16:
            if n < 6:
                return exception(fc, ILLEGAL_VALUE)
            address, count = ADDRESS_COUNT.unpack_from(pdu, 1)
            if not 1 <= count <= MAX_WRITE or pdu[5] != 2 * count or n != 6 + 2 * count:
                return exception(fc, ILLEGAL_VALUE)
            if (err := dev.write_ack(address, count, int.from_bytes(pdu[6:8], "big"))) is not None:
                return exception(fc, err)
            return pdu[:5]
        # FC23
        if n < 10:
            return exception(fc, ILLEGAL_VALUE)
        r_address, r_count, w_address, w_count, nbytes = READ_WRITE.unpack_from(pdu, 1)
        if not 1 <= w_count <= MAX_RW_WRITE or nbytes != 2 * w_count or n != 10 + nbytes:
            return exception(fc, ILLEGAL_VALUE)
        if (refused := read_refusal(dev, r_address, r_count)) is not None:
            return exception(fc, refused)  # before anything is written
        value = int.from_bytes(pdu[10:12], "big")
        if (err := dev.write_ack(w_address, w_count, value)) is not None:
            return exception(fc, err)
        return read_reply(dev, fc, r_address, r_count)
    except CodecError as exc:  # a value the device cannot encode (docs/register-map.md §8)
        log.error("%s: function %d: %s", dev.where, fc, exc)
        return exception(fc, DEVICE_FAILURE)
