"""Codecs: every codec and level round-trips, levels are validated, contexts are reused."""

import pytest

from novacron.encoding import (
    HEADER_SIZE,
    LZ4_MAX_LEVEL,
    ZSTD_MAX_LEVEL,
    ZSTD_MIN_LEVEL,
    MemoryGenerator,
    decode,
    encode,
    get_codec,
    parse_header,
)
from novacron.encoding.codecs import ZSTD

GEN = MemoryGenerator(seed=1)
DATA = {
    "empty": b"",
    "one byte": b"x",
    "text page": GEN.page("text"),
    "random page": GEN.page("random"),
    "mixed 64 KiB": GEN.memory(16),
}
# zstd accepts -131072..22: the ends, the negative fast range, the default and every normal level.
ZSTD_LEVELS = [ZSTD_MIN_LEVEL, -1000, -50, -5, -1, 0, *range(1, ZSTD_MAX_LEVEL + 1, 3), ZSTD_MAX_LEVEL]
ALL_LEVELS = (
    [("none", 0)] + [("lz4", lv) for lv in range(LZ4_MAX_LEVEL + 1)] + [("zstd", lv) for lv in ZSTD_LEVELS]
)


@pytest.mark.parametrize(("codec", "level"), ALL_LEVELS, ids=lambda v: str(v))
@pytest.mark.parametrize("name", list(DATA))
def test_every_codec_and_level_round_trips(codec, level, name):
    data = DATA[name]
    frame = encode(data, codec, level)
    assert decode(frame) == data


def test_compressible_data_is_compressed_by_the_codec_asked_for():
    data = DATA["mixed 64 KiB"]
    for codec in ("lz4", "zstd"):
        header = parse_header(encode(data, codec, 3))
        assert header.codec.name == codec and header.level == 3
        assert header.payload_length < len(data) / 2


def test_incompressible_data_is_stored_not_expanded():
    data = DATA["random page"]
    frame = encode(data, "zstd", 19)
    assert parse_header(frame).codec.name == "none"
    assert len(frame) == len(data) + HEADER_SIZE


@pytest.mark.parametrize(
    ("codec", "level"), [("lz4", -1), ("lz4", LZ4_MAX_LEVEL + 1), ("zstd", ZSTD_MIN_LEVEL - 1)]
)
def test_levels_outside_the_library_range_are_rejected(codec, level):
    with pytest.raises(ValueError, match=f"{codec} accepts levels"):
        encode(b"data", codec, level)


def test_zstd_23_is_rejected_like_the_library_does():
    with pytest.raises(ValueError, match="zstd accepts levels -131072..22"):
        encode(b"data", "zstd", 23)


def test_unknown_codec_is_rejected():
    with pytest.raises(ValueError, match="unknown codec 'brotli'"):
        encode(b"data", "brotli")


def test_none_ignores_the_level_as_a_config_may_give_one():
    assert parse_header(encode(b"abc", "none", 3)).level == 0


def test_zstd_contexts_are_reused_per_level():
    assert ZSTD._compressor(3) is ZSTD._compressor(3)
    assert ZSTD._compressor(3) is not ZSTD._compressor(4)
    assert ZSTD._decompressor() is ZSTD._decompressor()


def test_default_levels():
    assert parse_header(encode(DATA["text page"], "zstd")).level == 3
    assert parse_header(encode(DATA["text page"], "lz4")).level == 0
    assert get_codec("zstd").default_level == 3
