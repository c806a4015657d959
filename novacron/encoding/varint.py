"""ULEB128 integers, the length encoding of QEMU's XBZRLE format (and of our delta ops).

Small numbers (run lengths below 128) take one byte, which matters for page deltas that are
mostly short runs. Hand-written: a dozen lines, and no maintained library offers it for bytes.
"""

from __future__ import annotations

from .errors import EncodingError

#: Longest encoding we accept: 10 bytes covers 64-bit values; more is corrupt input.
MAX_VARINT_BYTES = 10


def put_uleb128(out: bytearray, value: int) -> None:
    """Append ``value`` (>= 0) to ``out`` as ULEB128: 7 bits per byte, high bit = more bytes."""
    if value < 0:
        raise ValueError(f"ULEB128 encodes non-negative integers, got {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def get_uleb128(data: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """Read one ULEB128 integer at ``pos``; return ``(value, next_pos)``.

    ``what`` names the field in the error raised for truncated or over-long encodings.
    """
    value = 0
    shift = 0
    end = min(len(data), pos + MAX_VARINT_BYTES)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    if pos >= len(data):
        raise EncodingError(f"truncated delta: {what} runs past the end of the data")
    raise EncodingError(f"corrupt delta: {what} is longer than {MAX_VARINT_BYTES} bytes")
