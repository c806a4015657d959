"""Deltas: XBZRLE for pages written in place, rsync-style matching for shifted content."""

import numpy as np
import pytest

from novacron.encoding import (
    EncodingError,
    Kind,
    MemoryGenerator,
    decode,
    encode,
    encode_delta,
    parse_header,
    rsync,
    xbzrle,
)

GEN = MemoryGenerator(seed=4)
TEXT = GEN.page("text")
RANDOM = GEN.page("random")


def kind(frame: bytes) -> Kind:
    return parse_header(frame).kind


# -- XBZRLE ------------------------------------------------------------------------------------------


def test_xbzrle_uses_qemus_format_zero_run_then_changed_run_with_new_bytes():
    old = bytes(16)
    new = bytes(2) + b"abc" + bytes(11)
    # zrun=2, nzrun=3, "abc"; the trailing unchanged run is implied
    assert xbzrle.encode(old, new) == b"\x02\x03abc"


def test_xbzrle_run_lengths_are_uleb128():
    old = bytes(1000)
    new = bytes(300) + b"\x01" * 200 + bytes(500)
    assert xbzrle.encode(old, new) == b"\xac\x02" + b"\xc8\x01" + b"\x01" * 200  # 300, 200


def test_xbzrle_merges_gaps_of_two_unchanged_bytes_but_not_three():
    old = bytes(20)
    assert xbzrle.changed_runs(old, b"\1\0\0\1" + bytes(16)) == [(0, 4)]
    assert xbzrle.changed_runs(old, b"\1\0\0\0\1" + bytes(15)) == [(0, 1), (4, 5)]


def test_unchanged_page_encodes_to_nothing():
    assert xbzrle.encode(TEXT, TEXT) == b""
    frame = encode_delta(TEXT, TEXT)
    assert kind(frame) == Kind.XBZRLE and decode(frame, TEXT) == TEXT


@pytest.mark.parametrize("page", [TEXT, RANDOM], ids=["text", "random"])
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.10])
def test_xbzrle_round_trips_clustered_writes(page, fraction):
    new = GEN.resend(page, fraction, "random" if page is RANDOM else "text")
    frame = encode_delta(page, new, "xbzrle")
    assert kind(frame) == Kind.XBZRLE
    assert decode(frame, page) == new
    assert 2 * len(frame) < len(encode(new, "zstd", 3))


def test_xbzrle_round_trips_scattered_single_byte_changes():
    rng = np.random.default_rng(5)
    new = bytearray(TEXT)
    for i in rng.choice(len(TEXT), size=60, replace=False):
        new[i] ^= 0xFF
    frame = encode_delta(TEXT, bytes(new), "xbzrle")
    assert kind(frame) == Kind.XBZRLE and decode(frame, TEXT) == bytes(new)


def test_xbzrle_changes_at_both_ends_of_the_page():
    new = b"\xff" + TEXT[1:-1] + b"\xff"
    assert decode(encode_delta(TEXT, new, "xbzrle"), TEXT) == new


def test_rsync_ops_need_only_the_old_versions_signature():
    new = BIG[:500] + BIG[600:]
    assert rsync.ops(rsync.signature(BIG), new) == rsync.ops(BIG, new)


def test_a_page_whose_delta_is_not_smaller_goes_raw_as_in_qemu():
    assert xbzrle.encode(TEXT, RANDOM) is None
    frame = encode_delta(TEXT, RANDOM, "xbzrle")
    assert kind(frame) == Kind.PLAIN and decode(frame, TEXT) == RANDOM


def test_xbzrle_needs_pages_of_one_size():
    with pytest.raises(ValueError, match="same-sized pages"):
        encode_delta(TEXT, TEXT + b"x", "xbzrle")


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (b"\x02", "truncated delta: changed-run length"),
        (b"\x02\x00", "empty changed run"),
        (b"\x02\x05ab", "runs past the end of the data"),
        (b"\x80\x20\x01a", "ends at byte 4097"),
        (b"\x80" * 11, "longer than 10 bytes"),
    ],
)
def test_corrupt_xbzrle_deltas_raise(delta, message):
    with pytest.raises(EncodingError, match=message):
        xbzrle.apply(bytes(4096), delta, 4096)


# -- rsync-style -------------------------------------------------------------------------------------


def naive_weak(window: bytes) -> int:
    """rsync's weak checksum straight from the paper's definition."""
    length = len(window)
    a = sum(window) % 65536
    b = sum((length - i) * x for i, x in enumerate(window)) % 65536
    return a + 65536 * b


def test_vectorised_weak_checksum_matches_the_rsync_definition_at_every_offset():
    data = GEN.page("random")[:300]
    got = rsync.weak_checksums(data, 32)
    assert len(got) == 300 - 32 + 1
    assert [int(v) for v in got] == [naive_weak(data[k : k + 32]) for k in range(269)]


BIG = GEN.memory(16, {"text": 0.7, "random": 0.3})  # 64 KiB
EDITS = {
    "insert near start": BIG[:100] + b"NEW BYTES" + BIG[100:],
    "delete in middle": BIG[:30_000] + BIG[30_500:],
    "prepend": b"header v2\n" + BIG,
    "append": BIG + b"trailer",
    "swap halves": BIG[32_768:] + BIG[:32_768],
    "truncate": BIG[:40_000],
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_rsync_round_trips_shifted_content_in_a_fraction_of_the_size(edit):
    new = EDITS[edit]
    frame = encode_delta(BIG, new, "rsync")
    assert kind(frame) == Kind.RSYNC
    assert decode(frame, BIG) == new
    assert len(frame) < 0.05 * len(encode(new, "zstd", 3))


def test_an_insertion_becomes_copy_literal_copy():
    ops = rsync.ops(BIG, BIG[:1024] + b"inserted" + BIG[1024:], block_size=256)
    assert ops[0] == rsync.Copy(0, 1024)
    assert ops[1] == rsync.Literal(b"inserted")
    assert ops[2] == rsync.Copy(1024, len(BIG) - 1024)
    assert len(ops) == 3


def test_xbzrle_cannot_follow_a_shift_but_rsync_can():
    prose = GEN.page("text", "prose")
    shifted = b"!" + prose[:-1]
    assert kind(encode_delta(prose, shifted, "xbzrle")) == Kind.PLAIN  # every byte "changed"
    rsync_frame = encode_delta(prose, shifted, "rsync")
    assert kind(rsync_frame) == Kind.RSYNC and len(rsync_frame) < len(encode(shifted)) / 10


def test_rsync_with_nothing_in_common_falls_back_to_plain():
    frame = encode_delta(TEXT, RANDOM, "rsync")
    assert kind(frame) == Kind.PLAIN and decode(frame, TEXT) == RANDOM


def test_default_block_size_follows_sqrt_of_the_length():
    assert rsync.default_block_size(4096) == 64
    assert rsync.default_block_size(1 << 20) == 1024
    assert rsync.default_block_size(10) == rsync.MIN_BLOCK
    assert rsync.default_block_size(1 << 40) == rsync.MAX_BLOCK


def test_rsync_pack_round_trips_ops():
    ops = [rsync.Copy(0, 5), rsync.Literal(b"xy"), rsync.Copy(300, 70000)]
    base = bytes(range(256)) * 300
    out = rsync.apply(base, rsync.pack(ops), 70007)
    assert out == base[:5] + b"xy" + base[300:70300]


@pytest.mark.parametrize(
    ("delta", "size", "message"),
    [
        (b"\x01\x00\x20", 100, "copy of 0\\+32 from a 16-byte base"),
        (b"\x00\x05ab", 100, "a literal runs past the end"),
        (b"\x07", 100, "unknown op tag 7"),
        (b"\x01\x00\x10\x01\x00\x10", 20, "output grows past the declared 20 bytes"),
        (b"\x01\x00", 100, "truncated delta: copy length"),
    ],
)
def test_corrupt_rsync_deltas_raise(delta, size, message):
    with pytest.raises(EncodingError, match=message):
        rsync.apply(bytes(16), delta, size)


# -- both --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "new"), [("xbzrle", GEN.resend(TEXT, 0.02)), ("rsync", b"xx" + TEXT)])
def test_decoding_against_the_wrong_base_is_detected(method, new):
    frame = encode_delta(TEXT, new, method)
    wrong = GEN.resend(TEXT, 0.01)
    with pytest.raises(EncodingError, match=f"wrong base: the {method} delta"):
        decode(frame, wrong)
    with pytest.raises(EncodingError, match="needs the base"):
        decode(frame)


def test_a_new_version_that_is_all_zero_is_a_zero_frame():
    frame = encode_delta(TEXT, bytes(4096))
    assert kind(frame) == Kind.ZERO and decode(frame, TEXT) == bytes(4096)


def test_delta_ops_are_compressed_by_the_codec_when_that_helps():
    new = GEN.resend(TEXT, 0.10, "text")
    plain_ops, zstd_ops = (
        encode_delta(TEXT, new, "xbzrle", "none"),
        encode_delta(TEXT, new, "xbzrle", "zstd", 19),
    )
    assert parse_header(plain_ops).codec.name == "none"
    assert parse_header(zstd_ops).codec.name == "zstd" and len(zstd_ops) < len(plain_ops)
    assert decode(zstd_ops, TEXT) == new


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown delta method 'bsdiff'"):
        encode_delta(TEXT, TEXT, "bsdiff")
