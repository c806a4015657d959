"""Bulk-transfer bookkeeping without I/O: how a payload is cut, and how it is put back.

The sender cuts a payload into ``streams`` contiguous slices
(:func:`plan_slices`); each slice travels on its own connection with a
:class:`~backends.tcp.wire.StreamHeader`. The receiver keeps one
:class:`Assembly` per transfer: it checks every header against the first one
(same size, same stream count, same tag, a slice that fits and was not seen
before), records verified slices, and says when the slices tile the whole
payload. Sockets, threads and checksums live elsewhere
(:mod:`backends.tcp.streams`); this module only decides what is consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import wire


def plan_slices(total: int, streams: int) -> list[tuple[int, int]]:
    """``streams`` contiguous ``(offset, length)`` slices covering ``total`` bytes.

    Lengths differ by at most one byte, so parallel streams finish together.
    """
    if streams < 1:
        raise ValueError(f"streams must be >= 1, got {streams}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    base, extra = divmod(total, streams)
    slices = []
    offset = 0
    for i in range(streams):
        length = base + (1 if i < extra else 0)
        slices.append((offset, length))
        offset += length
    return slices


@dataclass(frozen=True, slots=True)
class Limits:
    """What a receiver accepts from one transfer."""

    max_streams: int
    max_transfer_bytes: int
    checksums: frozenset[str]


def check_header(header: wire.StreamHeader, limits: Limits) -> str | None:
    """Why ``header`` is unacceptable on its own, or ``None``."""
    if header.version != wire.PROTOCOL_VERSION:
        return f"protocol version {header.version}, this node speaks {wire.PROTOCOL_VERSION}"
    if header.streams > limits.max_streams:
        return f"{header.streams} streams, more than the limit of {limits.max_streams}"
    if header.index >= header.streams:
        return f"stream index {header.index} out of range for {header.streams} streams"
    if header.total > limits.max_transfer_bytes:
        return f"{header.total} bytes, more than the limit of {limits.max_transfer_bytes}"
    if header.offset + header.length > header.total:
        return (
            f"slice [{header.offset}, {header.offset + header.length}) lies outside a "
            f"{header.total}-byte payload"
        )
    if header.checksum not in limits.checksums:
        return (
            f"checksum {header.checksum!r} is not available here (have {', '.join(sorted(limits.checksums))})"
        )
    return None


@dataclass
class Assembly:
    """One incoming transfer being reassembled (the buffer lives with the caller)."""

    src: str
    transfer_id: str
    tag: str
    total: int
    streams: int
    checksum: str
    slices: dict[int, tuple[int, int]] = field(default_factory=dict)
    verified: set[int] = field(default_factory=set)
    failure: str | None = None

    @classmethod
    def start(cls, header: wire.StreamHeader) -> Assembly:
        return cls(
            src=header.src,
            transfer_id=header.transfer_id,
            tag=header.tag,
            total=header.total,
            streams=header.streams,
            checksum=header.checksum,
        )

    def add(self, header: wire.StreamHeader) -> str | None:
        """Register a stream's slice; returns why it is inconsistent, or ``None``."""
        if (header.total, header.streams, header.tag, header.checksum) != (
            self.total,
            self.streams,
            self.tag,
            self.checksum,
        ):
            return "stream header disagrees with the transfer's first stream"
        if header.index in self.slices:
            return f"stream {header.index} arrived twice"
        self.slices[header.index] = (header.offset, header.length)
        return None

    def mark_verified(self, index: int) -> None:
        self.verified.add(index)

    @property
    def complete(self) -> bool:
        return self.failure is None and len(self.verified) == self.streams

    def coverage_problem(self) -> str | None:
        """Why the verified slices do not tile ``[0, total)`` exactly, or ``None``."""
        end = 0
        for offset, length in sorted(self.slices[i] for i in self.verified):
            if offset != end:
                return f"slices leave a gap or overlap at byte {min(offset, end)}"
            end = offset + length
        if end != self.total:
            return f"slices cover {end} of {self.total} bytes"
        return None
