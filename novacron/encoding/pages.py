"""Page-at-a-time encoding for live migration: zero pages, XBZRLE deltas, compressed pages.

This is the sender side of QEMU's precopy RAM path, with HDE frames: each page is either a zero
marker, an XBZRLE delta against the version cached when it was last sent (a re-dirtied page), or
the page compressed by the codec (first send, or evicted from the cache). The receiver decodes
every frame with ``decode(frame, base=its_current_copy)``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from .cache import PageCache
from .delta import encode_delta
from .frame import Kind, encode, parse_header


@dataclass
class PageStats:
    """What a :class:`PageEncoder` has sent, by frame kind."""

    pages: dict[str, int] = field(default_factory=lambda: {k.name.lower(): 0 for k in Kind})
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def ratio(self) -> float:
        """Bytes out per byte in (lower is better)."""
        return self.bytes_out / self.bytes_in if self.bytes_in else 1.0


@dataclass
class PageEncoder:
    """Encodes pages by id, keeping the versions sent in a :class:`PageCache` for later deltas."""

    cache: PageCache
    codec: str = "zstd"
    level: int | None = None
    stats: PageStats = field(default_factory=PageStats)

    def encode(self, page_id: Hashable, page: bytes | memoryview) -> bytes:
        """One frame for ``page``; records it in the cache as what the receiver now holds."""
        old = self.cache.get(page_id)
        if old is not None and len(old) == len(page):
            frame = encode_delta(old, page, "xbzrle", self.codec, self.level)
        else:
            frame = encode(page, self.codec, self.level)
        self.cache.put(page_id, page)
        self.stats.pages[parse_header(frame).kind.name.lower()] += 1
        self.stats.bytes_in += len(page)
        self.stats.bytes_out += len(frame)
        return frame
