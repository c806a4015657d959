"""Tunables of the asyncio runtime, with the reasons for their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from novacron.runtime import MAX_RECORD_BYTES

from .tcp.framing import DEFAULT_MAX_FRAME_SIZE
from .tcp.streams import DEFAULT_CHUNK

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How much a node buffers, how long it waits, how hard it retries."""

    #: Messages queued per peer while its connection is down or slow; beyond
    #: this, new messages to that peer are dropped (and counted), so a dead
    #: peer costs bounded memory.
    queue_max_frames: int = 10_000
    #: The same bound in bytes (whichever is hit first).
    queue_max_bytes: int = 64 * MiB
    #: Largest message frame accepted or sent.
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    #: TCP connect (and TLS handshake) budget for outbound connections.
    connect_timeout: float = 5.0
    #: An inbound connection must send its preamble, finish TLS and say hello
    #: (or send its stream header) within this, or it is closed.
    handshake_timeout: float = 5.0
    #: Reconnect backoff: first delay, doubling up to the cap, with full jitter.
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    #: Inbound connections (message and data) open at once; more are refused.
    max_connections: int = 10_000
    #: A bulk transfer whose streams all move no byte for this long fails, and
    #: so does a stream (``open_stream``) stuck mid-record for this long, on
    #: either end. An idle stream (between records) never times out.
    stream_timeout: float = 30.0
    #: Upper bounds on what a peer may ask this node to receive.
    max_streams: int = 256
    max_transfer_bytes: int = 8 * GiB
    #: Total bytes of transfers being reassembled at once (their buffers are
    #: committed memory).
    max_incoming_bytes: int = 8 * GiB
    #: Receive buffers of completed transfers kept for reuse, in bytes (0:
    #: none). Fresh memory costs a page fault per 4 KiB while receiving,
    #: which on loopback cost two thirds of a stream's goodput.
    transfer_buffer_pool: int = 1 * GiB
    #: Largest data part of one stream record, sent or accepted: a receiver
    #: buffers a whole record before its handler sees it.
    max_record_bytes: int = MAX_RECORD_BYTES
    #: Bytes per send/recv/checksum call on data streams.
    chunk_size: int = DEFAULT_CHUNK
    #: Optional pacing of each data stream, in bytes per second.
    stream_rate_limit: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "queue_max_frames",
            "queue_max_bytes",
            "max_frame_size",
            "max_connections",
            "max_streams",
            "max_transfer_bytes",
            "max_incoming_bytes",
            "max_record_bytes",
            "chunk_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RuntimeOptions.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "connect_timeout",
            "handshake_timeout",
            "backoff_initial",
            "backoff_max",
            "stream_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"RuntimeOptions.{name} must be > 0, got {getattr(self, name)}")
        if self.transfer_buffer_pool < 0:
            raise ValueError(
                f"RuntimeOptions.transfer_buffer_pool must be >= 0, got {self.transfer_buffer_pool}"
            )
        if self.stream_rate_limit is not None and not self.stream_rate_limit > 0:
            raise ValueError(
                f"RuntimeOptions.stream_rate_limit must be > 0 or None, got {self.stream_rate_limit}"
            )
