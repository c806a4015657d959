"""The page cache (LRU by bytes) and page-by-page encoding for migration."""

import pytest

from novacron.encoding import Kind, MemoryGenerator, PageCache, PageEncoder, decode, parse_header

GEN = MemoryGenerator(seed=5)


def page(tag: int, size: int = 100) -> bytes:
    return bytes([tag]) * size


def test_cache_keeps_pages_within_its_byte_capacity_evicting_least_recently_used():
    cache = PageCache(capacity_bytes=300)
    for i in range(3):
        cache.put(i, page(i))
    assert cache.size_bytes == 300 and len(cache) == 3
    cache.get(0)  # 0 is now the most recently used; 1 is the oldest
    cache.put(3, page(3))
    assert 1 not in cache and {0, 2, 3} <= set(cache._pages)
    assert cache.evictions == 1 and cache.size_bytes == 300


def test_eviction_counts_bytes_not_entries():
    cache = PageCache(capacity_bytes=1000)
    for i in range(10):
        cache.put(i, page(i, 100))
    cache.put("big", page(9, 450))  # needs the space of five small pages
    assert len(cache) == 6 and cache.size_bytes == 950 and cache.evictions == 5
    assert all(i not in cache for i in range(5))


def test_replacing_a_page_updates_the_size():
    cache = PageCache(capacity_bytes=1000)
    cache.put("a", page(1, 100))
    cache.put("a", page(2, 300))
    assert cache.size_bytes == 300 and cache.get("a") == page(2, 300)


def test_a_page_larger_than_the_cache_is_not_cached_and_drops_its_old_version():
    cache = PageCache(capacity_bytes=100)
    cache.put("a", page(1, 50))
    cache.put("a", page(2, 101))
    assert "a" not in cache and cache.size_bytes == 0


def test_hits_and_misses_are_counted():
    cache = PageCache(capacity_bytes=100)
    cache.put(1, page(1, 10))
    assert cache.get(1) == page(1, 10) and cache.get(2) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_negative_capacity_is_rejected():
    with pytest.raises(ValueError):
        PageCache(-1)


def test_migration_rounds_send_zero_markers_then_full_pages_then_deltas():
    """Three precopy rounds over 32 pages; the receiver decodes against the pages it holds."""
    sender = PageEncoder(PageCache(capacity_bytes=1 << 20))
    pages = {i: p for i, (_, p) in enumerate(GEN.pages(32))}
    received: dict[int, bytes] = {}
    kinds = []
    for round_ in range(3):
        if round_:
            pages = {i: GEN.resend(p, 0.05) if i % 2 else p for i, p in pages.items()}
        for i, p in pages.items():
            frame = sender.encode(i, p)
            kinds.append(parse_header(frame).kind)
            received[i] = decode(frame, received.get(i))
        assert received == pages
    first, later = kinds[:32], kinds[32:]
    assert Kind.ZERO in first and Kind.XBZRLE not in first
    assert set(later) <= {Kind.XBZRLE, Kind.ZERO}  # every page is cached: each resend is a delta
    assert sender.stats.pages["xbzrle"] >= 32 and sender.stats.ratio < 0.5


def test_a_page_evicted_from_the_cache_is_sent_in_full_again():
    sender = PageEncoder(PageCache(capacity_bytes=4096))
    a, b = GEN.page("text"), GEN.page("text")
    sender.encode("a", a)
    sender.encode("b", b)  # evicts a
    assert parse_header(sender.encode("a", GEN.resend(a, 0.01))).kind == Kind.PLAIN
    assert parse_header(sender.encode("a", GEN.resend(a, 0.01))).kind == Kind.XBZRLE
