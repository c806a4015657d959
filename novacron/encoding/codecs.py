"""The three HDE codecs behind one interface: ``none``, ``lz4`` (lz4.frame) and ``zstd`` (zstandard).

Each codec compresses a buffer at a level and decompresses a payload into *exactly* a known
number of bytes. Knowing the size up front is what makes decoding safe against decompression
bombs: the frame header declares the original length, and a payload that would expand past it is
rejected instead of allocated (see :func:`novacron.encoding.frame.decode`).

Why the compressor objects are cached: creating a ``zstandard.ZstdCompressor`` allocates and
initialises a compression context, which costs more than compressing a 4 KiB page. HDE keeps one
compressor per (codec, level) and reuses it, so its throughput stays within a few percent of the
raw library on the same buffers. The cache is per thread, because a zstandard context must not be
used by two threads at once and the real backend may encode off the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import lz4.frame
import zstandard

from .errors import EncodingError

#: Levels that ``zstandard.ZstdCompressor`` accepts: libzstd's ``ZSTD_minCLevel()`` is
#: ``-ZSTD_TARGETLENGTH_MAX`` (the "fast" negative levels) and the top is 22 (``--ultra``).
ZSTD_MIN_LEVEL = -zstandard.TARGETLENGTH_MAX
ZSTD_MAX_LEVEL = zstandard.MAX_COMPRESSION_LEVEL
#: lz4.frame levels: 0-2 are the fast compressor, 3-16 LZ4-HC.
LZ4_MIN_LEVEL = lz4.frame.COMPRESSIONLEVEL_MIN
LZ4_MAX_LEVEL = lz4.frame.COMPRESSIONLEVEL_MAX

_local = threading.local()


def _per_thread_cache() -> dict[tuple[str, int], object]:
    cache = getattr(_local, "objects", None)
    if cache is None:
        cache = _local.objects = {}
    return cache


@dataclass(frozen=True)
class Codec:
    """A compressor identified on the wire by ``codec_id``; subclasses do the work."""

    name: str
    codec_id: int
    min_level: int
    max_level: int
    default_level: int

    def check_level(self, level: int) -> int:
        """Return ``level`` if this codec accepts it; raise ``ValueError`` naming the range otherwise."""
        if not isinstance(level, int) or not self.min_level <= level <= self.max_level:
            raise ValueError(f"{self.name} accepts levels {self.min_level}..{self.max_level}, got {level!r}")
        return level

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        raise NotImplementedError

    def decompress(self, payload: bytes | memoryview, size: int) -> bytes:
        """Decompress ``payload`` into exactly ``size`` bytes or raise :class:`EncodingError`."""
        raise NotImplementedError

    def _fail(self, why: str) -> EncodingError:
        return EncodingError(f"corrupt {self.name} payload: {why}")


class NoneCodec(Codec):
    """Stores the bytes as they are: the right choice when the link is faster than any compressor."""

    def check_level(self, level: int) -> int:
        """Any integer: there is nothing to tune (a config may say ``algorithm: none, level: 3``)."""
        if not isinstance(level, int):
            raise ValueError(f"level must be an integer, got {level!r}")
        return 0

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return bytes(data)

    def decompress(self, payload: bytes | memoryview, size: int) -> bytes:
        if len(payload) != size:
            raise self._fail(f"{len(payload)} bytes stored, {size} declared")
        return bytes(payload)


class Lz4Codec(Codec):
    """lz4.frame with the content size stored, so the decoder can check it before expanding."""

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return lz4.frame.compress(data, compression_level=level, store_size=True)

    def decompress(self, payload: bytes | memoryview, size: int) -> bytes:
        # decompress_chunk, not LZ4FrameDecompressor: the latter copies a memoryview input first.
        context = lz4.frame.create_decompression_context()
        try:
            out, consumed, ended = lz4.frame.decompress_chunk(context, payload, max_length=size)
        except RuntimeError as exc:  # python-lz4 reports every LZ4F error as RuntimeError
            raise self._fail(str(exc)) from None
        if not ended:
            raise self._fail(f"the frame does not end within the declared {size} bytes")
        if consumed != len(payload):
            raise self._fail(f"{len(payload) - consumed} bytes follow the end of the lz4 frame")
        if len(out) != size:
            raise self._fail(f"expands to {len(out)} bytes, {size} declared")
        return out


class ZstdCodec(Codec):
    """zstandard, including the negative "fast" levels, with one reused context per level."""

    def _compressor(self, level: int) -> zstandard.ZstdCompressor:
        cache = _per_thread_cache()
        compressor = cache.get(("zstd", level))
        if compressor is None:
            compressor = cache[("zstd", level)] = zstandard.ZstdCompressor(level=level)
        return compressor  # type: ignore[return-value]

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        cache = _per_thread_cache()
        decompressor = cache.get(("zstd-d", 0))
        if decompressor is None:
            decompressor = cache[("zstd-d", 0)] = zstandard.ZstdDecompressor()
        return decompressor  # type: ignore[return-value]

    def compress(self, data: bytes | memoryview, level: int) -> bytes:
        return self._compressor(level).compress(data)

    def decompress(self, payload: bytes | memoryview, size: int) -> bytes:
        try:
            # Our zstd frames always carry their content size; zstandard allocates that much, so
            # it must equal the declared size *before* we let it allocate anything.
            stored = zstandard.frame_content_size(payload)
            if stored != size:
                raise self._fail(f"the zstd frame says {stored} bytes, {size} declared")
            out = self._decompressor().decompress(payload, max_output_size=size, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise self._fail(str(exc)) from None
        if len(out) != size:
            raise self._fail(f"expands to {len(out)} bytes, {size} declared")
        return out


NONE = NoneCodec("none", 0, 0, 0, 0)
LZ4 = Lz4Codec("lz4", 1, LZ4_MIN_LEVEL, LZ4_MAX_LEVEL, 0)
ZSTD = ZstdCodec("zstd", 2, ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL, 3)

CODECS: dict[str, Codec] = {c.name: c for c in (NONE, LZ4, ZSTD)}
_BY_ID: dict[int, Codec] = {c.codec_id: c for c in CODECS.values()}


def get_codec(name: str) -> Codec:
    """The codec called ``name`` (``"none"``, ``"lz4"`` or ``"zstd"``)."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; known: {sorted(CODECS)}") from None


def codec_by_id(codec_id: int) -> Codec:
    """The codec with wire id ``codec_id``; :class:`EncodingError` for an id no codec has."""
    try:
        return _BY_ID[codec_id]
    except KeyError:
        raise EncodingError(f"unknown codec id {codec_id} (known: {sorted(_BY_ID)})") from None
