"""Frames: layout, zero pages, and a clear EncodingError for every kind of bad input."""

import struct
import zlib

import lz4.frame
import pytest
import zstandard

from novacron.encoding import (
    HEADER_SIZE,
    EncodingError,
    Kind,
    MemoryGenerator,
    decode,
    encode,
    is_zero,
    parse_header,
)
from novacron.encoding.frame import _BODY, MAGIC, checksum

PAGE = MemoryGenerator(seed=2).page("text")


def forge(
    payload: bytes,
    *,
    magic=MAGIC,
    version=1,
    kind=Kind.PLAIN,
    codec=0,
    flags=0,
    level=0,
    original=None,
    inner=None,
    payload_length=None,
    crc=None,
    base_crc=0,
    result=PAGE,
) -> bytes:
    """A frame with a valid header checksum over whatever fields the test chooses."""
    original = len(result) if original is None else original
    body = _BODY.pack(
        magic,
        version,
        kind,
        codec,
        flags,
        level,
        original,
        original if inner is None else inner,
        len(payload) if payload_length is None else payload_length,
        zlib.crc32(result) if crc is None else crc,
        base_crc,
    )
    return body + struct.pack("<I", zlib.crc32(body)) + payload


def test_header_is_36_bytes_and_describes_the_payload():
    frame = encode(PAGE, "zstd", 5)
    header = parse_header(frame)
    assert HEADER_SIZE == 36 and frame[:4] == b"NCHD"
    assert (header.kind, header.codec.name, header.level) == (Kind.PLAIN, "zstd", 5)
    assert header.original_length == header.inner_length == len(PAGE)
    assert header.payload_length == len(frame) - HEADER_SIZE
    assert header.checksum == zlib.crc32(PAGE)


def test_a_forged_frame_matching_the_encoder_decodes():
    assert decode(forge(PAGE)) == PAGE


def test_zero_page_is_a_header_only_marker():
    frame = encode(bytes(4096))
    assert len(frame) == HEADER_SIZE
    assert parse_header(frame).kind == Kind.ZERO
    assert decode(frame) == bytes(4096)


def test_zero_elimination_can_be_turned_off():
    frame = encode(bytes(4096), "zstd", 3, eliminate_zero=False)
    assert parse_header(frame).kind == Kind.PLAIN and decode(frame) == bytes(4096)


def test_is_zero():
    assert is_zero(bytes(1 << 20)) and not is_zero(b"")
    assert not is_zero(bytes(100_000) + b"\x01" + bytes(100_000))
    assert not is_zero(b"\x01" + bytes(10))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "truncated frame: 0 bytes"),
        (encode(PAGE)[:20], "shorter than the 36-byte header"),
        (b"GARBAGE!" * 10, "not an HDE frame: magic"),
        (forge(PAGE, magic=b"\x28\xb5\x2f\xfd"), "not an HDE frame"),
        (forge(PAGE, version=2), "unsupported HDE frame version 2"),
        (forge(PAGE, codec=9), "unknown codec id 9"),
        (forge(PAGE, kind=7), "unknown frame kind 7"),
        (forge(PAGE, flags=1), "unsupported frame flags"),
        (forge(PAGE)[:-1], "truncated frame: header declares 4096 payload bytes, 4095 present"),
        (forge(PAGE) + b"\0", "1 unexpected bytes after the 4096-byte payload"),
        (forge(PAGE, inner=100), "plain frame with inner length 100"),
        (forge(PAGE, crc=1), "checksum mismatch"),
        (forge(PAGE[:-1] + b"?"), "checksum mismatch"),
        (forge(PAGE, original=4000), "corrupt none payload: 4096 bytes stored, 4000 declared"),
        (forge(b"", kind=Kind.ZERO, original=10, inner=0, codec=1, result=bytes(10)), "carries no payload"),
        (forge(b"", kind=Kind.XBZRLE, inner=0, base_crc=zlib.crc32(PAGE)), "needs the base"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_raises_an_encoding_error_naming_the_problem(frame, message):
    with pytest.raises(EncodingError, match=message):
        decode(frame)


def test_a_flipped_header_bit_is_caught_by_the_header_checksum():
    frame = bytearray(encode(PAGE, "zstd", 3))
    frame[8] ^= 0x01  # the level field: harmless to decoding, but no longer what was encoded
    with pytest.raises(EncodingError, match="header checksum mismatch"):
        decode(bytes(frame))


def test_the_checksum_is_zlibs_crc32_whichever_implementation_computes_it():
    data = MemoryGenerator(seed=3).memory(40)
    for piece in (b"", b"a", data, memoryview(data)[3:100_001]):
        assert checksum(piece) == zlib.crc32(piece)


def test_frames_interoperate_between_zlib_and_isal_crc32(monkeypatch):
    from novacron.encoding import frame as frame_module

    with_default = encode(PAGE, "zstd", 3)
    monkeypatch.setattr(frame_module, "crc32", zlib.crc32)
    assert decode(with_default) == PAGE
    assert encode(PAGE, "zstd", 3) == with_default


def test_encoding_error_is_a_value_error():
    assert issubclass(EncodingError, ValueError)


# -- decompression bombs: nothing is allocated beyond the declared length -----------------------------


def test_declared_length_over_the_limit_is_refused_before_decompressing():
    frame = forge(
        zstandard.ZstdCompressor().compress(bytes(1 << 20)), codec=2, original=1 << 20, result=bytes(1 << 20)
    )
    assert decode(frame, max_size=1 << 20) == bytes(1 << 20)
    with pytest.raises(EncodingError, match="over the decoder's limit of 65536"):
        decode(frame, max_size=1 << 16)


def test_zstd_payload_expanding_past_the_declared_length_is_refused():
    bomb = zstandard.ZstdCompressor().compress(bytes(1 << 24))  # 16 MiB of zeros in a few hundred bytes
    with pytest.raises(EncodingError, match="the zstd frame says 16777216 bytes, 4096 declared"):
        decode(forge(bomb, codec=2, original=4096, result=bytes(4096)))


def test_zstd_bomb_without_a_content_size_is_refused():
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1 << 24))
    with pytest.raises(EncodingError, match="corrupt zstd payload"):
        decode(forge(bomb, codec=2, original=4096, result=bytes(4096)))


def test_lz4_payload_expanding_past_the_declared_length_is_refused():
    bomb = lz4.frame.compress(bytes(1 << 24), store_size=False)
    with pytest.raises(EncodingError, match="does not end within the declared 4096 bytes"):
        decode(forge(bomb, codec=1, original=4096, result=bytes(4096)))


def test_lz4_payload_shorter_than_declared_is_refused():
    short = lz4.frame.compress(PAGE[:100])
    with pytest.raises(EncodingError, match="expands to 100 bytes, 4096 declared"):
        decode(forge(short, codec=1))


def test_trailing_data_after_a_codec_frame_is_refused():
    for codec, payload in ((1, lz4.frame.compress(PAGE)), (2, zstandard.ZstdCompressor().compress(PAGE))):
        with pytest.raises(EncodingError, match="corrupt"):
            decode(forge(payload + payload, codec=codec))


def test_frames_over_4_gib_are_refused_with_advice():
    class Huge(bytes):
        def __len__(self):
            return 1 << 32

    with pytest.raises(ValueError, match="encode it in chunks"):
        encode(Huge(b"x"))
