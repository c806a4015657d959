"""The VM-memory-like data generator: seeded, realistic classes, clustered re-dirtying."""

import numpy as np
import pytest
import zstandard

from novacron.encoding import PAGE_SIZE, MemoryGenerator
from novacron.encoding.testdata import TEXT_STYLES


def zstd_ratio(data: bytes) -> float:
    return len(zstandard.ZstdCompressor(level=3).compress(data)) / len(data)


def test_the_same_seed_gives_the_same_bytes():
    a, b = MemoryGenerator(seed=9), MemoryGenerator(seed=9)
    assert a.memory(20) == b.memory(20)
    assert a.resend(a.page("text"), 0.05) == b.resend(b.page("text"), 0.05)
    assert MemoryGenerator(seed=10).memory(20) != MemoryGenerator(seed=9).memory(20)


def test_a_numpy_generator_can_be_passed_in():
    assert MemoryGenerator(np.random.default_rng(3)).memory(4) == MemoryGenerator(3).memory(4)


@pytest.mark.parametrize("style", TEXT_STYLES)
def test_text_pages_are_compressible_but_not_trivially(style):
    gen = MemoryGenerator(seed=1)
    pages = [gen.page("text", style) for _ in range(8)]
    assert all(len(p) == PAGE_SIZE for p in pages)
    assert 0.2 < zstd_ratio(b"".join(pages)) < 0.6
    assert len(set(pages)) == 8


def test_prose_and_code_are_printable_text():
    gen = MemoryGenerator(seed=1)
    for style in ("prose", "code"):
        assert all(32 <= c < 127 or c == 10 for c in gen.page("text", style))


def test_zero_and_random_pages():
    gen = MemoryGenerator(seed=1)
    assert gen.page("zero") == bytes(PAGE_SIZE)
    assert zstd_ratio(gen.page("random")) > 1.0


def test_pages_follow_the_mix():
    kinds = [k for k, _ in MemoryGenerator(seed=2).pages(2000, {"zero": 0.5, "random": 0.5})]
    assert set(kinds) == {"zero", "random"} and 900 < kinds.count("zero") < 1100


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.10])
@pytest.mark.parametrize("kind", ["zero", "text", "random"])
def test_resend_changes_that_share_of_bytes_in_a_few_clusters(fraction, kind):
    gen = MemoryGenerator(seed=3)
    old = gen.page(kind)
    new = gen.resend(old, fraction, kind)
    changed = np.flatnonzero(np.frombuffer(old, np.uint8) != np.frombuffer(new, np.uint8))
    assert len(changed) == round(fraction * PAGE_SIZE)
    runs = 1 + np.count_nonzero(np.diff(changed) > 8)
    assert runs < len(changed) / 4  # clustered writes, not scattered bytes


def test_resend_checks_its_arguments():
    gen = MemoryGenerator(seed=3)
    with pytest.raises(ValueError, match="fraction"):
        gen.resend(gen.page("text"), 1.5)
    with pytest.raises(ValueError, match="4096-byte page"):
        gen.resend(b"short", 0.1)
    with pytest.raises(ValueError, match="unknown page class"):
        gen.page("video")
    with pytest.raises(ValueError, match="unknown text style"):
        gen.page("text", "poetry")
