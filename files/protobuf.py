"""The protobuf wire format, just enough to read and write SentencePiece `.model` files.

A protobuf message is a flat list of fields; each field starts with a varint key
`(field_number << 3) | wire_type`. We need three wire types:
  0 varint (ints, bools, enums), 2 length-delimited (strings, bytes, sub-messages), 5 fixed32 (float).
Wire types 1 (fixed64) are skipped when reading so unknown fields never break a load.
"""
import struct

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """Raised when bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf: bytes):
    """Yield (field_number, wire_type, value) for each field; LEN values are bytes, FIXED32 raw 4 bytes.

    >>> list(iter_fields(bytes([0x08, 0x96, 0x01])))
    [(1, 0, 150)]
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == LEN:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise ProtobufError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise ProtobufError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == FIXED64:
            if pos + 8 > end:
                raise ProtobufError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield number, wire, value


def write_varint(value: int) -> bytes:
    """Encode a non-negative int (negative int32 as its 64-bit two's complement) as a varint."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """Encode field `number` as a varint field (ints, bools, enums)."""
    return write_varint(number << 3 | VARINT) + write_varint(int(value))


def field_bytes(number: int, value: bytes) -> bytes:
    """Encode field `number` as a length-delimited field (strings, bytes, messages)."""
    return write_varint(number << 3 | LEN) + write_varint(len(value)) + value


def field_float(number: int, value: float) -> bytes:
    """Encode field `number` as a 32-bit little-endian float."""
    return write_varint(number << 3 | FIXED32) + struct.pack("<f", value)


def to_signed32(value: int) -> int:
    """Read a varint-decoded int32 back as signed (protobuf writes -1 as a 10-byte varint)."""
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return value


def to_float(raw: bytes) -> float:
    """Decode a fixed32 field as a float32 (returned as an exact Python float)."""
    return struct.unpack("<f", raw)[0]
