"""What travels on a NovaCron TCP connection besides protocol messages.

Every connection starts with a 4-byte *preamble*, sent in clear before any
TLS handshake, that says which kind of connection it is:

* ``NCm1`` — a **message** connection: a :class:`Hello` frame naming the
  sending node, then one frame per :class:`novacron.runtime.Message`. Message
  connections are one-way (each node sends over its own outbound
  connection), so the receiver never writes on them.
* ``NCd1`` — a **data** connection carrying one slice of a bulk transfer: a
  :class:`StreamHeader` frame (which also identifies the sender), the raw
  slice bytes, a :class:`StreamTrailer` frame with the slice's checksum, then
  one :class:`StreamStatus` frame back from the receiver once the *whole*
  transfer has been reassembled and verified.
* ``NCs1`` — a **stream** connection (``rt.open_stream``): a
  :class:`StreamHello` frame naming the sending node and the checksum it
  uses, then any number of *records*, each a :class:`RecordEnvelope` frame
  (the record's header message, encoded by :data:`novacron.runtime.codec`,
  and the length of the data) followed by exactly that many raw data bytes
  and a 5-byte :data:`RECORD_TRAILER` with their checksum and flags. Stream
  connections are one-way too: the receiver never writes on them.

The preamble lets one listening port serve every kind, and lets the data
paths take over a raw socket before asyncio ever reads from it.
Checksums travel in trailers rather than in headers (on data and stream
connections alike) so that the sender computes them piece by piece while
sending: the checksum's pass brings a piece into the core's cache and the
kernel's copy reads it from there, instead of the whole slice or record being
read from memory once for the checksum and once more for the copy.

These structs are deliberately *not* :class:`~novacron.runtime.Message`
subclasses: they have their own decoders, so protocol code can never
receive or forge them as messages, and a message frame never passes for a
hello.
"""

from __future__ import annotations

import struct
from typing import Annotated, TypeVar

import msgspec

from novacron.runtime import WireError

PROTOCOL_VERSION = 3  # 2: record checksums moved from the envelope to a trailer; 3: trailer flags
PREAMBLE_SIZE = 4
MESSAGE_PREAMBLE = b"NCm1"
DATA_PREAMBLE = b"NCd1"
STREAM_PREAMBLE = b"NCs1"

#: Frames before a peer is authenticated (hello, stream header, status) are
#: small; capping them stops an anonymous client from making us buffer 16 MiB.
CONTROL_MAX_FRAME = 64 * 1024

NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
ShortText = Annotated[str, msgspec.Meta(max_length=1024)]


class Hello(msgspec.Struct, tag="novacron/hello", forbid_unknown_fields=True, frozen=True):
    """First frame on a message connection: who is talking."""

    version: int
    node_id: NodeId


class StreamHeader(msgspec.Struct, tag="novacron/stream", forbid_unknown_fields=True, frozen=True):
    """First frame on a data connection: which slice of which transfer follows."""

    version: int
    src: NodeId
    transfer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    index: NonNegative
    streams: Positive
    offset: NonNegative
    length: NonNegative
    total: NonNegative
    tag: ShortText
    checksum: Annotated[str, msgspec.Meta(max_length=32)]


class StreamTrailer(msgspec.Struct, tag="novacron/trailer", forbid_unknown_fields=True, frozen=True):
    """Sent after a slice's bytes: the checksum of those bytes."""

    checksum: NonNegative


class StreamStatus(msgspec.Struct, tag="novacron/status", forbid_unknown_fields=True, frozen=True):
    """The receiver's verdict on the whole transfer, sent back on every stream."""

    ok: bool
    reason: ShortText = ""


class StreamHello(msgspec.Struct, tag="novacron/stream-hello", forbid_unknown_fields=True, frozen=True):
    """First frame on a stream connection: who is talking, and how records are checksummed."""

    version: int
    node_id: NodeId
    checksum: Annotated[str, msgspec.Meta(max_length=32)]


class RecordEnvelope(msgspec.Struct, tag="novacron/record", forbid_unknown_fields=True, frozen=True):
    """The frame before each record's data on a stream connection.

    ``header`` is the record's header message as the codec encodes it; it
    travels inside the envelope (rather than as a frame of its own) so that
    the length of the data arrives together with it, and so the checksum can
    cover the header bytes too. The data is followed by a
    :data:`RECORD_TRAILER`: the checksum over ``header`` then the ``length``
    data bytes, with the algorithm the :class:`StreamHello` named.
    """

    header: bytes
    length: NonNegative


#: After each record's data: its checksum (unsigned 32-bit little-endian) and flags (a byte).
RECORD_TRAILER = struct.Struct("<IB")
#: Trailer flag: the sender saw the data change while it was being sent (volatile data, see
#: ``RecordStream.send``) and sends the record again; the receiver discards this one unread.
RECORD_VOID = 0x01


T = TypeVar("T")
Frame = Hello | StreamHeader | StreamTrailer | StreamStatus | StreamHello | RecordEnvelope

_encoder = msgspec.msgpack.Encoder()
_decoders = {
    cls: msgspec.msgpack.Decoder(cls)
    for cls in (Hello, StreamHeader, StreamTrailer, StreamStatus, StreamHello, RecordEnvelope)
}


def encode(value: Frame) -> bytes:
    return _encoder.encode(value)


def decode(cls: type[T], body: bytes | memoryview) -> T:
    """Decode ``body`` as ``cls`` or raise :class:`WireError` saying why."""
    try:
        return _decoders[cls].decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"not a valid {cls.__name__} frame: {exc}") from None
