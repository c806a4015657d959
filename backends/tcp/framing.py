"""Length-prefixed frames: the byte-level format of every NovaCron TCP connection.

A frame is a 4-byte big-endian length followed by that many bytes of body.
This module is *sans-I/O* (in the style of h11): :class:`FrameDecoder` is fed
whatever bytes the socket produced and hands back complete frame bodies, so
the same code serves the asyncio protocol, the blocking bulk-data threads and
the unit tests, and none of them re-implements partial-read bookkeeping.

Two stream-level faults cannot be recovered from, because after them the
decoder no longer knows where the next frame starts:

* a length prefix above the decoder's limit (:class:`FrameTooLarge`): either
  garbage or a peer trying to make us buffer gigabytes;
* end of stream inside a frame (:class:`TruncatedFrame`).

Callers close the connection on either; body-level faults (a frame that does
not decode to a valid message) are the caller's business and do not affect
framing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

#: The length prefix: unsigned 32-bit, network byte order.
LENGTH_PREFIX = struct.Struct(">I")
PREFIX_SIZE = LENGTH_PREFIX.size

#: Default upper bound on one frame's body (messages, not bulk data).
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

_MAX_ENCODABLE = 2**32 - 1


class FrameError(Exception):
    """A fault in the byte stream itself; the connection cannot continue.

    ``reason`` is a short, stable name used as a counter key.
    """

    reason = "framing"


class FrameTooLarge(FrameError):
    """A length prefix above the allowed maximum."""

    reason = "oversize"


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame."""

    reason = "truncated"


def frame_header(length: int) -> bytes:
    """The 4-byte prefix announcing a body of ``length`` bytes."""
    if not 0 <= length <= _MAX_ENCODABLE:
        raise FrameTooLarge(f"frame body of {length} bytes cannot be length-prefixed")
    return LENGTH_PREFIX.pack(length)


def encode_frame(body: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """``body`` with its length prefix; refuses bodies the receiver would reject."""
    if len(body) > max_frame_size:
        raise FrameTooLarge(
            f"frame body of {len(body)} bytes exceeds the maximum frame size of {max_frame_size} bytes"
        )
    return frame_header(len(body)) + body


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes, iterate :meth:`frames`.

    ``max_frame_size`` may be changed between calls (a connection allows only
    small frames until its peer has said hello). Once a :class:`FrameError`
    has been raised the decoder is *broken*: every later call raises it again,
    so a caller cannot accidentally keep reading a desynchronised stream.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 0:
            raise ValueError(f"max_frame_size must be >= 0, got {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes in _buf
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the stream."""
        if self._error is not None:
            raise self._error
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > 65536 and self._pos > len(self._buf) // 2:
            # Compact now and then so a long-lived connection's buffer does not grow.
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame body buffered so far.

        Raises :class:`FrameTooLarge` when it reaches a length prefix above
        :attr:`max_frame_size` (frames before it have been yielded).
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        while len(buf) - self._pos >= PREFIX_SIZE:
            (length,) = LENGTH_PREFIX.unpack_from(buf, self._pos)
            if length > self.max_frame_size:
                self._error = FrameTooLarge(
                    f"length prefix announces {length} bytes, above the limit of {self.max_frame_size} bytes"
                )
                raise self._error
            end = self._pos + PREFIX_SIZE + length
            if end > len(buf):
                return
            body = bytes(buf[self._pos + PREFIX_SIZE : end])
            self._pos = end
            yield body

    def close(self) -> None:
        """Declare end of stream; raises :class:`TruncatedFrame` if a frame was cut short."""
        if self._error is not None:
            raise self._error
        if self.buffered:
            self._error = TruncatedFrame(
                f"stream ended inside a frame ({self.buffered} bytes of an incomplete frame)"
            )
            raise self._error
