"""The HDE frame: a self-describing, checked container for one encoded buffer.

Layout (little-endian, 36-byte header, then the payload)::

    magic     4s  b"NCHD"
    version   u8  2 (written by default) or 1 (still read, and written on request)
    kind      u8  PLAIN | ZERO | XBZRLE | RSYNC       (what the payload is)
    codec     u8  none=0 | lz4=1 | zstd=2             (how the payload is compressed)
    flags     u8  reserved, 0
    level     i32 compression level used (informational: decoders do not need it)
    original  u32 length of the decoded result
    inner     u32 length of the payload after decompression (== original for PLAIN;
                  the delta op stream for XBZRLE/RSYNC)
    payload   u32 length of the payload as stored
    checksum  u32 version 2: XXH3-64 of the payload *as stored*, low 32 bits
                  version 1: CRC-32 of the decoded result (zlib.crc32's function)
    base      u32 the same function of the base a delta applies to (0 otherwise)
    header    u32 CRC-32 of the 32 bytes above (both versions)

Why each field: the lengths bound every allocation the decoder makes (a payload that would expand
past ``inner``, or a delta past ``original``, is rejected, so a forged frame cannot become a
decompression bomb); the base checksum turns "delta applied to the wrong previous version" into an
error instead of silent corruption; the header checksum makes any flipped header bit an error
rather than a misread level or kind. CRC-32 suits the header: it is short and fixed, and CRC-32
detects every burst of up to 32 flipped bits in it. One frame holds at most 4 GiB - 1 bytes: AMST
moves data in 512 KiB chunks, and larger buffers should be chunked.

Why version 2 checks the stored payload with XXH3: the check is on every decoded byte's path, so
its speed bounds decoding. Version 1's CRC-32 over the decoded result runs at 9-11 GB/s on CPUs
without AVX-512 (ISA-L), about a fifth of lz4's decoding time on mixed data; XXH3 runs at ~45 GB/s,
and the compressed payload is smaller than the result. Verifying *before* decompressing also means
corrupt bytes never reach the decompressor. Decoding stays exact: an intact payload decompresses
deterministically into what was encoded, the decoded length is still checked against the header,
and a delta is still applied only to a base with the recorded checksum. What version 2 gives up is
a check on the decompressor itself: a bug in a codec library would no longer be caught here.
Truncating XXH3 to 32 bits keeps the header at 36 bytes, as zstd's own frame does with XXH64.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from xxhash import xxh3_64_intdigest

from . import rsync, xbzrle
from .codecs import Codec, codec_by_id, get_codec
from .errors import EncodingError

try:  # ISA-L computes the very same CRC-32 as zlib, ~5x faster (carry-less multiply instructions)
    from isal.isal_zlib import crc32

    CRC32_IMPLEMENTATION = "isal"
except ImportError:  # pragma: no cover - depends on the environment
    from zlib import crc32

    CRC32_IMPLEMENTATION = "zlib"

MAGIC = b"NCHD"
#: The version :func:`encode` writes; :data:`VERSIONS` are the ones :func:`decode` reads.
VERSION = 2
_BODY = struct.Struct("<4sBBBBiIIIII")
_CRC = struct.Struct("<I")
HEADER_SIZE = _BODY.size + _CRC.size
MAX_FRAME_BYTES = 0xFFFF_FFFF
#: Default bound on the decoded size :func:`decode` accepts; pass ``max_size`` to raise it.
DEFAULT_MAX_SIZE = 1 << 30
_ZERO_SCAN_CHUNK = 1 << 16


class Kind(IntEnum):
    """What a frame's payload is."""

    PLAIN = 0  # the data, compressed by the frame's codec
    ZERO = 1  # an all-zero buffer: no payload, only its length (zero-page elimination)
    XBZRLE = 2  # an XBZRLE delta against a same-sized base (fixed pages)
    RSYNC = 3  # rsync-style COPY/LITERAL ops against a base (shifted content)


_APPLY = {Kind.XBZRLE: xbzrle.apply, Kind.RSYNC: rsync.apply}


def checksum(data: bytes | memoryview) -> int:
    """The checksum of version 2 frames: the low 32 bits of XXH3-64."""
    return xxh3_64_intdigest(data) & 0xFFFF_FFFF


def crc32_checksum(data: bytes | memoryview) -> int:
    """The checksum of version 1 frames: CRC-32, as ``zlib.crc32`` computes it (ISA-L's when installed)."""
    return crc32(data)


#: Per version: the checksum function, and whether it covers the stored payload (else the result).
_CHECKS: dict[int, tuple[Callable[[bytes | memoryview], int], bool]] = {
    1: (crc32_checksum, False),
    2: (checksum, True),
}
VERSIONS = tuple(_CHECKS)


@dataclass(frozen=True)
class FrameHeader:
    """The decoded header of a frame (see the module docstring for each field's purpose)."""

    kind: Kind
    codec: Codec
    level: int
    original_length: int
    inner_length: int
    payload_length: int
    checksum: int
    base_checksum: int = 0
    version: int = VERSION

    @property
    def frame_length(self) -> int:
        return HEADER_SIZE + self.payload_length

    @property
    def check(self) -> Callable[[bytes | memoryview], int]:
        """This frame's checksum function (its version's)."""
        return _CHECKS[self.version][0]

    @property
    def checks_payload(self) -> bool:
        """True when :attr:`checksum` covers the payload as stored (version 2), not the result."""
        return _CHECKS[self.version][1]

    def pack(self) -> bytes:
        body = _BODY.pack(
            MAGIC,
            self.version,
            self.kind,
            self.codec.codec_id,
            0,
            self.level,
            self.original_length,
            self.inner_length,
            self.payload_length,
            self.checksum,
            self.base_checksum,
        )
        return body + _CRC.pack(crc32(body))


def is_zero(data: bytes | memoryview) -> bool:
    """True when ``data`` is non-empty and every byte is zero (a zero page).

    The first and last bytes settle almost every non-zero buffer at once; the rest is scanned
    in chunks so a large buffer with data early on is not read to the end.
    """
    if len(data) == 0 or data[0] or data[-1]:
        return False
    view = np.frombuffer(data, dtype=np.uint8)
    return not any(view[i : i + _ZERO_SCAN_CHUNK].any() for i in range(0, len(view), _ZERO_SCAN_CHUNK))


def _check_size(n: int) -> None:
    if n > MAX_FRAME_BYTES:
        raise ValueError(f"{n} bytes is more than one frame holds ({MAX_FRAME_BYTES}); encode it in chunks")


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ValueError(f"cannot write HDE frame version {version}; versions are {VERSIONS}")


def build_frame(
    kind: Kind,
    inner: bytes | memoryview,
    *,
    result: bytes | memoryview,
    base: bytes | memoryview | None = None,
    codec: str = "none",
    level: int | None = None,
    version: int = VERSION,
) -> bytes:
    """Frame ``inner`` (the data, or a delta op stream), compressing it with ``codec`` if that helps.

    ``result`` is what decoding must give back (``inner`` itself for a PLAIN frame) and ``base``
    what a delta applies to. A payload the codec does not shrink is stored uncompressed (codec
    ``none``), so a frame is never more than ``HEADER_SIZE`` bytes larger than ``inner``.
    """
    _check_version(version)
    _check_size(len(result))
    _check_size(len(inner))
    chosen = get_codec(codec)
    level = chosen.default_level if level is None else chosen.check_level(level)
    payload = chosen.compress(inner, level)
    if chosen.codec_id and len(payload) >= len(inner):
        chosen, level, payload = get_codec("none"), 0, bytes(inner)
    check, of_payload = _CHECKS[version]
    header = FrameHeader(
        kind,
        chosen,
        level,
        len(result),
        len(inner),
        len(payload),
        check(payload if of_payload else result),
        0 if base is None else check(base),
        version,
    )
    return header.pack() + payload


def encode(
    data: bytes | memoryview,
    codec: str = "zstd",
    level: int | None = None,
    *,
    eliminate_zero: bool = True,
    version: int = VERSION,
) -> bytes:
    """Encode ``data`` into one frame with ``codec`` at ``level`` (the codec's default when None).

    An all-zero buffer becomes a ZERO frame (header only) unless ``eliminate_zero`` is False.
    ``version=1`` writes frames that NovaCron releases before version 2 frames can read.
    """
    _check_size(len(data))
    if eliminate_zero and is_zero(data):
        return build_frame(Kind.ZERO, b"", result=data, version=version)
    return build_frame(Kind.PLAIN, data, result=data, codec=codec, level=level, version=version)


def parse_header(frame: bytes | memoryview, *, max_size: int = DEFAULT_MAX_SIZE) -> FrameHeader:
    """Read and validate a frame's header against the frame's actual length.

    Raises :class:`EncodingError` naming the first thing wrong: too short for a header, wrong
    magic, unsupported version, header checksum mismatch, reserved flags set, unknown kind or
    codec, truncated or over-long payload, or lengths that exceed ``max_size`` or contradict the
    frame kind.
    """
    if len(frame) < HEADER_SIZE:
        raise EncodingError(
            f"truncated frame: {len(frame)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    fields = _BODY.unpack_from(frame)
    magic, version, kind, codec_id, flags, level, original, inner, payload, crc, base_crc = fields
    if magic != MAGIC:
        raise EncodingError(f"not an HDE frame: magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version not in VERSIONS:
        raise EncodingError(
            f"unsupported HDE frame version {version} (this decoder reads versions {VERSIONS})"
        )
    (stored_crc,) = _CRC.unpack_from(frame, _BODY.size)
    if crc32(memoryview(frame)[: _BODY.size]) != stored_crc:
        raise EncodingError("corrupt frame header: header checksum mismatch")
    if flags:
        raise EncodingError(f"unsupported frame flags {flags:#04x}")
    try:
        kind = Kind(kind)
    except ValueError:
        raise EncodingError(f"unknown frame kind {kind}") from None
    header = FrameHeader(kind, codec_by_id(codec_id), level, original, inner, payload, crc, base_crc, version)
    actual = len(frame) - HEADER_SIZE
    if actual < payload:
        raise EncodingError(f"truncated frame: header declares {payload} payload bytes, {actual} present")
    if actual > payload:
        raise EncodingError(f"{actual - payload} unexpected bytes after the {payload}-byte payload")
    if max(original, inner) > max_size:
        raise EncodingError(
            f"frame declares {max(original, inner)} bytes, over the decoder's limit of {max_size} (max_size)"
        )
    if kind == Kind.PLAIN and inner != original:
        raise EncodingError(f"corrupt frame header: plain frame with inner length {inner} != {original}")
    if kind == Kind.ZERO and (inner or payload or codec_id):
        raise EncodingError("corrupt frame header: a zero-page frame carries no payload")
    return header


_MISMATCH = "checksum mismatch: the {} bytes are not the ones that were encoded"


def decode(
    frame: bytes | memoryview, base: bytes | memoryview | None = None, *, max_size: int = DEFAULT_MAX_SIZE
) -> bytes:
    """Decode one frame back into exactly the bytes that were encoded.

    ``base`` is the previous version a delta frame (XBZRLE or RSYNC) was encoded against; it is
    ignored for other frames. Nothing larger than ``max_size`` is ever allocated. Raises
    :class:`EncodingError` for any frame that does not decode, checksum-verified, into the
    original: corrupt, truncated, foreign or future-version input, or the wrong base.
    """
    header = parse_header(frame, max_size=max_size)
    payload = memoryview(frame)[HEADER_SIZE:]
    if header.checks_payload and header.check(payload) != header.checksum:
        raise EncodingError(_MISMATCH.format("stored"))
    if header.kind == Kind.ZERO:
        result = bytes(header.original_length)
    else:
        inner = header.codec.decompress(payload, header.inner_length)
        if header.kind == Kind.PLAIN:
            result = inner
        else:
            result = _apply_delta(header, inner, base)
    if len(result) != header.original_length:
        raise EncodingError(f"decoded {len(result)} bytes, header declares {header.original_length}")
    if not header.checks_payload and header.check(result) != header.checksum:
        raise EncodingError(_MISMATCH.format("decoded"))
    return result


def _apply_delta(header: FrameHeader, ops: bytes, base: bytes | memoryview | None) -> bytes:
    name = header.kind.name.lower()
    if base is None:
        raise EncodingError(f"{name} delta frame needs the base it was encoded against (base=None)")
    if header.check(base) != header.base_checksum:
        raise EncodingError(f"wrong base: the {name} delta was encoded against different bytes")
    return _APPLY[header.kind](base, ops, header.original_length)
