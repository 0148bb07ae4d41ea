"""Benchmark: the collector's per-record register work, in this process — decoding a FIFO
record's fields and checking its CRC — the old way and the way the collector does it now.

    python benchmarks/bench_codec.py [--repeat 20000]

Per FIFO record layout of both profiles and both dialects, microseconds per record:
- `field by field`: decode_field for each field (a slice, a pack and an unpack each), as
  the collector decoded until 2026-12-07;
- `compiled layout`: decode_fields, one pack and one unpack per record (collector/codec.py);
- the record CRC over its registers: two table steps per byte (crc16_modbus of the packed
  bytes, the collector's old way) against one look-up per register (crc16_registers); the
  devices' crc_registers (devices/crc.py, also one look-up per register now) beside them.
The registers are all 0x4000: finite in every float type, so nothing raises.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.codec import (  # noqa: E402
    crc16_modbus,
    crc16_registers,
    decode_field,
    decode_fields,
    registers_to_bytes,
)
from collector.profile import Dialect, Field, load_profiles  # noqa: E402
from devices.crc import crc_registers  # noqa: E402


def per_call_us(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=repeat, repeat=3)) / repeat * 1e6


def record_times(fields: dict[str, Field], dialect: Dialect, registers: list[int],
                 repeat: int) -> list[float]:
    """µs per record: field by field, compiled, byte CRC, register CRC, the devices' CRC."""
    body = registers[: fields["crc"].offset]
    one_by_one = {n: decode_field(registers, 0, f, dialect) for n, f in fields.items()}
    if decode_fields(registers, 0, fields, dialect) != one_by_one:
        raise SystemExit("the two decodings differ")
    return [per_call_us(lambda: {n: decode_field(registers, 0, f, dialect)
                                 for n, f in fields.items()}, repeat),
            per_call_us(lambda: decode_fields(registers, 0, fields, dialect), repeat),
            per_call_us(lambda: crc16_modbus(registers_to_bytes(body)), repeat),
            per_call_us(lambda: crc16_registers(body), repeat),
            per_call_us(lambda: crc_registers(body), repeat)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20000)
    args = p.parse_args(argv)
    print(f"{'record layout':<36} {'field by field':>14} {'compiled':>9} "
          f"{'CRC bytes':>10} {'CRC regs':>9} {'devices CRC':>12}   (µs per record)")
    for pname, prof in load_profiles().items():
        for dname, dialect in prof.dialects.items():
            for fifo in prof.fifos.values():
                t = record_times(fifo.record, dialect, [0x4000] * fifo.record_size,
                                 args.repeat)
                print(f"{pname + ' ' + fifo.name + ' (' + dname + ')':<36} {t[0]:14.2f} "
                      f"{t[1]:9.2f} {t[2]:10.2f} {t[3]:9.2f} {t[4]:12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
