"""The sender's cache of page versions already sent, so a re-sent page can go as a delta.

QEMU keeps such a cache for XBZRLE (``migration/page_cache.c``, sized by
``xbzrle-cache-size``): a page that is dirtied again is encoded against its cached copy, and a
page not in the cache goes in full. QEMU's cache is a direct-mapped table that replaces on
collision; this one is LRU bounded by bytes, which keeps the hottest pages (the ones re-dirtied
every round) and makes the memory bound exact. The receiver needs no cache: its base is the page
it currently holds, which is the version the sender cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class PageCache:
    """LRU map from page id to the last version sent, holding at most ``capacity_bytes`` of pages."""

    capacity_bytes: int
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    size_bytes: int = 0
    _pages: OrderedDict[Hashable, bytes] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {self.capacity_bytes}")

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: Hashable) -> bool:
        return page_id in self._pages

    def get(self, page_id: Hashable) -> bytes | None:
        """The cached version of ``page_id`` (now the most recently used), or None."""
        page = self._pages.get(page_id)
        if page is None:
            self.misses += 1
            return None
        self.hits += 1
        self._pages.move_to_end(page_id)
        return page

    def put(self, page_id: Hashable, page: bytes | memoryview) -> None:
        """Remember ``page`` as the version of ``page_id`` the receiver now holds.

        Least recently used pages are evicted until the cache fits its capacity; a page larger
        than the whole capacity is not cached (and any older version of it is dropped).
        """
        self.discard(page_id)
        if len(page) > self.capacity_bytes:
            return
        self._pages[page_id] = bytes(page)
        self.size_bytes += len(page)
        while self.size_bytes > self.capacity_bytes:
            _, evicted = self._pages.popitem(last=False)
            self.size_bytes -= len(evicted)
            self.evictions += 1

    def discard(self, page_id: Hashable) -> None:
        """Forget ``page_id`` (e.g. when the receiver's copy is no longer known)."""
        old = self._pages.pop(page_id, None)
        if old is not None:
            self.size_bytes -= len(old)
