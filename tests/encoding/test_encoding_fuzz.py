"""Fuzzing the decoder: garbage, bit flips and truncations raise EncodingError; nothing else comes back.

Every frame checksums its header and its payload (version 2; version 1 its decoded result), so a
single flipped bit anywhere is detected: these tests demand an EncodingError, not merely "no wrong
bytes". Frames of both versions are fuzzed: decoders keep reading version 1.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novacron.encoding import EncodingError, MemoryGenerator, decode, encode, encode_delta
from novacron.encoding.frame import MAGIC

FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
GEN = MemoryGenerator(seed=3)
OLD = GEN.page("text")
NEW = GEN.resend(OLD, 0.05)
SHIFTED = OLD[:300] + b"inserted!" + OLD[300:]
DATA = GEN.memory(4)


def frames(v: int) -> dict[str, tuple[bytes, bytes | None, bytes]]:
    """Version ``v`` frames of every kind and codec: (frame, base, what it decodes to)."""
    return {
        f"v{v}-none": (encode(DATA, "none", version=v), None, DATA),
        f"v{v}-lz4": (encode(DATA, "lz4", 0, version=v), None, DATA),
        f"v{v}-lz4-hc": (encode(DATA, "lz4", 9, version=v), None, DATA),
        f"v{v}-zstd": (encode(DATA, "zstd", 3, version=v), None, DATA),
        f"v{v}-zstd-fast": (encode(DATA, "zstd", -5, version=v), None, DATA),
        f"v{v}-zero": (encode(bytes(4096), version=v), None, bytes(4096)),
        f"v{v}-xbzrle": (encode_delta(OLD, NEW, "xbzrle", "none", version=v), OLD, NEW),
        f"v{v}-xbzrle+zstd": (encode_delta(OLD, NEW, "xbzrle", "zstd", version=v), OLD, NEW),
        f"v{v}-rsync": (encode_delta(OLD, SHIFTED, "rsync", "none", version=v), OLD, SHIFTED),
        f"v{v}-rsync+lz4": (encode_delta(OLD, SHIFTED, "rsync", "lz4", version=v), OLD, SHIFTED),
    }


FRAMES = frames(1) | frames(2)


def test_the_fuzzed_frames_decode_when_intact():
    for frame, base, original in FRAMES.values():
        assert decode(frame, base) == original


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_raise(data):
    with pytest.raises(EncodingError):
        decode(data, OLD)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from([b"\x01", b"\x02"]))
def test_random_bytes_behind_a_valid_magic_and_version_raise(data, version):
    with pytest.raises(EncodingError):
        decode(MAGIC + version + data, OLD)


@FUZZ
@given(
    name=st.sampled_from(sorted(FRAMES)), position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7)
)
def test_any_single_bit_flip_raises(name, position, bit):
    frame, base, _ = FRAMES[name]
    flipped = bytearray(frame)
    flipped[int(position * len(frame))] ^= 1 << bit
    with pytest.raises(EncodingError):
        decode(bytes(flipped), base)


@FUZZ
@given(name=st.sampled_from(sorted(FRAMES)), data=st.data())
def test_several_random_byte_changes_never_return_wrong_bytes(name, data):
    frame, base, original = FRAMES[name]
    corrupted = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 8))):
        corrupted[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    try:
        assert decode(bytes(corrupted), base) == original  # only possible if nothing actually changed
    except EncodingError:
        pass


@FUZZ
@given(name=st.sampled_from(sorted(FRAMES)), cut=st.floats(0, 1, exclude_max=True))
def test_truncations_raise(name, cut):
    frame, base, _ = FRAMES[name]
    with pytest.raises(EncodingError):
        decode(frame[: int(cut * len(frame))], base)


@FUZZ
@given(
    data=st.binary(max_size=5000),
    codec=st.sampled_from([("none", 0), ("lz4", 0), ("lz4", 12), ("zstd", -20), ("zstd", 1), ("zstd", 15)]),
)
def test_any_data_round_trips(data, codec):
    assert decode(encode(data, *codec)) == data


@FUZZ
@given(old=st.binary(min_size=1, max_size=600), new=st.binary(max_size=600), block=st.integers(1, 64))
def test_rsync_deltas_of_arbitrary_data_round_trip(old, new, block):
    from novacron.encoding.delta import encode_delta as delta

    assert decode(delta(old, new, "rsync", block_size=block), old) == new


@FUZZ
@given(
    old=st.binary(min_size=64, max_size=64), changes=st.dictionaries(st.integers(0, 63), st.integers(0, 255))
)
def test_xbzrle_deltas_of_arbitrary_changes_round_trip(old, changes):
    new = bytearray(old)
    for i, value in changes.items():
        new[i] = value
    assert decode(encode_delta(old, bytes(new), "xbzrle"), old) == bytes(new)
