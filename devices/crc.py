"""CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF, no final xor).

FIFO records carry this CRC over their registers, each taken big-endian (high byte
first, as on the wire). Known vector: bytes 01 03 00 00 00 0A -> 0xCDC5 (an RTU frame
sends it low byte first: C5 CD; the record's crc register holds the number 0xCDC5).
"""

from __future__ import annotations

from collections.abc import Iterable


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_modbus(data: bytes | bytearray | Iterable[int]) -> int:
    crc = 0xFFFF
    table = _TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def crc_registers(registers: Iterable[int]) -> int:
    """CRC-16/MODBUS over registers, each as two bytes high byte first."""
    crc = 0xFFFF
    table = _TABLE
    for reg in registers:
        crc = (crc >> 8) ^ table[(crc ^ (reg >> 8)) & 0xFF]
        crc = (crc >> 8) ^ table[(crc ^ reg) & 0xFF]
    return crc
