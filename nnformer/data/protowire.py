"""A minimal protobuf wire-format codec: enough to read and write flat messages without the protobuf package.

A message is a sequence of fields, each ``key = field_number << 3 | wire_type`` (a varint) followed by the value:
wire type 0 a varint, 1 eight little-endian bytes (``double``, ``fixed64``), 2 a varint length then that many bytes
(``string``, ``bytes``, an embedded message), 5 four little-endian bytes (``float``, ``fixed32``). Groups (types 3
and 4) are obsolete and rejected. Decoding errors raise :class:`ValueError`; callers turn them into a
:class:`DataError` that names the record they were reading.
"""

from __future__ import annotations

import struct
from typing import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10  # 64 bits in 7-bit groups


def encode_varint(value: int) -> bytes:
    """Varint of a non-negative int (a negative int is written as its 64-bit two's complement, as protobuf does)."""
    if value < 0:
        value += 1 << 64
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """``(value, next position)`` of the varint at ``buf[pos]``."""
    value = shift = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise ValueError(f"truncated varint at byte {pos}")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise ValueError(f"varint at byte {pos} overflows 64 bits")
            return value, pos + i + 1
        shift += 7
    raise ValueError(f"varint at byte {pos} is longer than {_MAX_VARINT_BYTES} bytes")


def to_signed64(value: int) -> int:
    """Reinterpret a decoded varint as a signed ``int32``/``int64`` (negative values use 64-bit two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)``: an int for varints, raw bytes for the other wire types."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = decode_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError(f"field number 0 at byte {pos}")
        if wire == VARINT:
            value, pos = decode_varint(buf, pos)
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if pos + width > n:
                raise ValueError(f"field {field} is truncated ({width} bytes needed at byte {pos})")
            value, pos = buf[pos:pos + width], pos + width
        elif wire == LEN:
            size, pos = decode_varint(buf, pos)
            if pos + size > n:
                raise ValueError(f"field {field} is truncated ({size} bytes needed at byte {pos})")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"field {field} has unsupported wire type {wire}")
        yield field, wire, value


def as_double(value: int | bytes) -> float:
    """The ``double`` held by an I64 field value."""
    return struct.unpack("<d", value)[0]


def encode_field(field: int, wire: int, value: int | float | bytes | str) -> bytes:
    """One encoded field: ints for VARINT, floats for I64 (double) / I32 (float), bytes or str for LEN."""
    key = encode_varint(field << 3 | wire)
    if wire == VARINT:
        return key + encode_varint(int(value))
    if wire == I64:
        return key + struct.pack("<d", float(value))
    if wire == I32:
        return key + struct.pack("<f", float(value))
    if wire == LEN:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return key + encode_varint(len(data)) + data
    raise ValueError(f"unsupported wire type {wire}")
