"""AMST's wire vocabulary: chunk records on streams, acknowledgements as messages."""

from __future__ import annotations

from novacron.runtime import Message


class Chunk(Message, tag="amst-chunk"):
    """Header of one chunk record. Every chunk carries the transfer's shape, so
    whichever arrives first (streams race) lets the receiver set up."""

    transfer: str
    index: int
    offset: int
    length: int
    checksum: int  # of the chunk's bytes at the source
    algorithm: int  # novacron.transport.checksum: NONE (simulated payload), CRC32, CRC32C, XXH3
    chunks: int
    size: int
    tag: str
    meta: bytes = b""  # the sender's note on the whole transfer (see AMST.on_placed)


class ChunkAck(Message, tag="amst-ack"):
    """Chunks the receiver now holds (coalesced: all that arrived in one instant)."""

    transfer: str
    indexes: list[int]


class TransferDone(Message, tag="amst-done"):
    """The receiver holds (and has delivered) the whole payload, or gave up on it."""

    transfer: str
    ok: bool
    reason: str = ""


class TransferQuery(Message, tag="amst-query"):
    """Sent by a sender that has nothing left to send and heard no TransferDone."""

    transfer: str


class TransferStatus(Message, tag="amst-status"):
    """The chunks a receiver still misses; ``unknown`` when it has no record of the
    transfer at all (it never saw a chunk, or it restarted and lost them)."""

    transfer: str
    missing: list[int]
    unknown: bool = False


class RoundTripProbe(Message, tag="amst-probe"):
    """Asks the peer's AMST to echo ``sent_at`` (the prober's clock: the round trip is measured on
    one clock, so skew between the nodes never enters it)."""

    sent_at: float


class RoundTripEcho(Message, tag="amst-echo"):
    """The answer to a :class:`RoundTripProbe`."""

    sent_at: float
