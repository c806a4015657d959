"""Frames: layout, both versions, zero pages, and a clear EncodingError for every kind of bad input."""

import struct
import zlib

import lz4.frame
import pytest
import xxhash
import zstandard

from novacron.encoding import (
    HEADER_SIZE,
    EncodingError,
    Kind,
    MemoryGenerator,
    decode,
    encode,
    encode_delta,
    is_zero,
    parse_header,
)
from novacron.encoding import frame as frame_module
from novacron.encoding.frame import _BODY, MAGIC, VERSION, checksum, crc32_checksum

PAGE = MemoryGenerator(seed=2).page("text")
BOTH = pytest.mark.parametrize("version", [1, 2])


def xxh3_32(data: bytes) -> int:
    return xxhash.xxh3_64_intdigest(data) & 0xFFFF_FFFF


def forge(
    payload: bytes,
    *,
    magic=MAGIC,
    version=2,
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
    """A frame with a valid header checksum over whatever fields the test chooses.

    Unless ``crc`` is given, the checksum is right for ``version``: XXH3 of the payload (2) or
    CRC-32 of ``result`` (1).
    """
    original = len(result) if original is None else original
    if crc is None:
        crc = zlib.crc32(result) if version == 1 else xxh3_32(payload)
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
        crc,
        base_crc,
    )
    return body + struct.pack("<I", zlib.crc32(body)) + payload


def test_header_is_36_bytes_and_describes_the_payload():
    frame = encode(PAGE, "zstd", 5)
    header = parse_header(frame)
    assert HEADER_SIZE == 36 and frame[:4] == b"NCHD"
    assert (header.kind, header.codec.name, header.level, header.version) == (Kind.PLAIN, "zstd", 5, 2)
    assert header.original_length == header.inner_length == len(PAGE)
    assert header.payload_length == len(frame) - HEADER_SIZE


def test_version_2_checks_the_stored_payload_with_xxh3():
    frame = encode(PAGE, "zstd", 5)
    assert VERSION == 2
    assert parse_header(frame).checksum == xxh3_32(frame[HEADER_SIZE:]) == checksum(frame[HEADER_SIZE:])


def test_version_1_checks_the_decoded_result_with_crc32():
    frame = encode(PAGE, "zstd", 5, version=1)
    header = parse_header(frame)
    assert (header.version, header.checksum) == (1, zlib.crc32(PAGE))
    assert decode(frame) == PAGE


@pytest.mark.parametrize("version", [0, 3])
def test_writing_an_unknown_version_is_refused(version):
    with pytest.raises(ValueError, match=f"cannot write HDE frame version {version}"):
        encode(PAGE, version=version)


# Frames written by the version 1 encoder (NovaCron before version 2 frames), kept byte for byte:
# a decoder must keep reading what older nodes send.
V1_TEXT = b"NovaCron HDE frame, version 1: kept readable. " * 4
V1_OLD = bytes(range(256)) * 4
V1_NEW = V1_OLD[:100] + b"0123456789" + V1_OLD[110:]
V1_FRAMES = {
    "zstd": (
        "4e4348440100020003000000b8000000b800000040000000477ffd8700000000ac87bae628b52ffd20b8bd0100e4024e"
        "6f766143726f6e20484445206672616d652c2076657273696f6e20313a206b657074207265616461626c652e2001003e"
        "444a9501",
        None,
        V1_TEXT,
    ),
    "lz4": (
        "4e4348440100010000000000b8000000b800000050000000477ffd8700000000802eeb4004224d186840b80000000000"
        "00000b39000000ff1f4e6f766143726f6e20484445206672616d652c2076657273696f6e20313a206b65707420726561"
        "6461626c652e202e007250626c652e2000000000",
        None,
        V1_TEXT,
    ),
    "zero": ("4e434844010100000000000040000000000000000000000036638d7500000000ec5a4deb", None, bytes(64)),
    "xbzrle": (
        "4e4348440102000000000000000400000c0000000c0000008004d72a264c0bb7f0e19725640a30313233343536373839",
        V1_OLD,
        V1_NEW,
    ),
}


@pytest.mark.parametrize("name", sorted(V1_FRAMES))
def test_version_1_frames_from_older_releases_still_decode(name):
    frame, base, original = V1_FRAMES[name]
    assert parse_header(bytes.fromhex(frame)).version == 1
    assert decode(bytes.fromhex(frame), base) == original


@pytest.mark.parametrize("name", sorted(V1_FRAMES))
def test_the_version_1_encoder_still_writes_those_frames(name):
    frame, base, original = V1_FRAMES[name]
    if base is None:
        codec, level = {"zstd": ("zstd", 3), "lz4": ("lz4", 0), "zero": ("none", 0)}[name]
        assert encode(original, codec, level, version=1).hex() == frame
    else:
        assert encode_delta(base, original, "xbzrle", "none", version=1).hex() == frame


@BOTH
def test_a_forged_frame_matching_the_encoder_decodes(version):
    assert forge(PAGE, version=version) == encode(PAGE, "none", version=version)
    assert decode(forge(PAGE, version=version)) == PAGE


def test_a_corrupt_payload_never_reaches_the_decompressor(monkeypatch):
    frame = bytearray(encode(PAGE, "zstd", 3))
    frame[-5] ^= 0x10
    codec = parse_header(bytes(frame)).codec
    calls = []
    monkeypatch.setattr(type(codec), "decompress", lambda *args: calls.append(args))
    with pytest.raises(EncodingError, match="checksum mismatch: the stored bytes"):
        decode(bytes(frame))
    assert calls == []


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


def flip_last_byte(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def _bad_frames(v: int) -> list[tuple[bytes, str]]:
    """Bad input for version ``v`` frames, each with the words its error must contain."""
    # version 1 checks the result after decoding; version 2 the payload before
    wrong = "checksum mismatch: the decoded bytes" if v == 1 else "checksum mismatch: the stored bytes"
    return [
        (b"", "truncated frame: 0 bytes"),
        (encode(PAGE, version=v)[:20], "shorter than the 36-byte header"),
        (b"GARBAGE!" * 10, "not an HDE frame: magic"),
        (forge(PAGE, version=v, magic=b"\x28\xb5\x2f\xfd"), "not an HDE frame"),
        (forge(PAGE, version=3), r"unsupported HDE frame version 3 \(this decoder reads versions \(1, 2\)\)"),
        (forge(PAGE, version=0), "unsupported HDE frame version 0"),
        (forge(PAGE, version=v, codec=9), "unknown codec id 9"),
        (forge(PAGE, version=v, kind=7), "unknown frame kind 7"),
        (forge(PAGE, version=v, flags=1), "unsupported frame flags"),
        (forge(PAGE, version=v)[:-1], "truncated frame: header declares 4096 payload bytes, 4095 present"),
        (forge(PAGE, version=v) + b"\0", "1 unexpected bytes after the 4096-byte payload"),
        (forge(PAGE, version=v, inner=100), "plain frame with inner length 100"),
        (forge(PAGE, version=v, crc=1), wrong),
        (flip_last_byte(forge(PAGE, version=v)), wrong),
        (forge(PAGE, version=v, original=4000), "corrupt none payload: 4096 bytes stored, 4000 declared"),
        (
            forge(b"", version=v, kind=Kind.ZERO, original=10, inner=0, codec=1, result=bytes(10)),
            "carries no payload",
        ),
        (forge(b"", version=v, kind=Kind.XBZRLE, inner=0, base_crc=checksum(PAGE)), "needs the base"),
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    _bad_frames(1) + _bad_frames(2),
    ids=[f"v{v}-{message}" for v in (1, 2) for _, message in _bad_frames(v)],
)
def test_bad_input_raises_an_encoding_error_naming_the_problem(frame, message):
    with pytest.raises(EncodingError, match=message):
        decode(frame)


def test_a_flipped_header_bit_is_caught_by_the_header_checksum():
    frame = bytearray(encode(PAGE, "zstd", 3))
    frame[8] ^= 0x01  # the level field: harmless to decoding, but no longer what was encoded
    with pytest.raises(EncodingError, match="header checksum mismatch"):
        decode(bytes(frame))


def test_the_checksums_are_xxh3_and_zlibs_crc32_on_any_buffer():
    data = MemoryGenerator(seed=3).memory(40)
    for piece in (b"", b"a", data, memoryview(data)[3:100_001]):
        assert checksum(piece) == xxh3_32(bytes(piece))
        assert crc32_checksum(piece) == zlib.crc32(piece)


@BOTH
def test_frames_interoperate_between_zlib_and_isal_crc32(monkeypatch, version):
    with_default = encode(PAGE, "zstd", 3, version=version)
    monkeypatch.setattr(frame_module, "crc32", zlib.crc32)
    assert decode(with_default) == PAGE
    assert encode(PAGE, "zstd", 3, version=version) == with_default


def test_encoding_error_is_a_value_error():
    assert issubclass(EncodingError, ValueError)


# -- decompression bombs: nothing is allocated beyond the declared length -----------------------------


@BOTH
def test_declared_length_over_the_limit_is_refused_before_decompressing(version):
    payload = zstandard.ZstdCompressor().compress(bytes(1 << 20))
    frame = forge(payload, version=version, codec=2, original=1 << 20, result=bytes(1 << 20))
    assert decode(frame, max_size=1 << 20) == bytes(1 << 20)
    with pytest.raises(EncodingError, match="over the decoder's limit of 65536"):
        decode(frame, max_size=1 << 16)


@BOTH
def test_zstd_payload_expanding_past_the_declared_length_is_refused(version):
    bomb = zstandard.ZstdCompressor().compress(bytes(1 << 24))  # 16 MiB of zeros in a few hundred bytes
    with pytest.raises(EncodingError, match="the zstd frame says 16777216 bytes, 4096 declared"):
        decode(forge(bomb, version=version, codec=2, original=4096, result=bytes(4096)))


@BOTH
def test_zstd_bomb_without_a_content_size_is_refused(version):
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1 << 24))
    with pytest.raises(EncodingError, match="corrupt zstd payload"):
        decode(forge(bomb, version=version, codec=2, original=4096, result=bytes(4096)))


@BOTH
def test_lz4_payload_expanding_past_the_declared_length_is_refused(version):
    bomb = lz4.frame.compress(bytes(1 << 24), store_size=False)
    with pytest.raises(EncodingError, match="does not end within the declared 4096 bytes"):
        decode(forge(bomb, version=version, codec=1, original=4096, result=bytes(4096)))


@BOTH
def test_lz4_payload_shorter_than_declared_is_refused(version):
    short = lz4.frame.compress(PAGE[:100])
    with pytest.raises(EncodingError, match="expands to 100 bytes, 4096 declared"):
        decode(forge(short, version=version, codec=1))


@BOTH
def test_trailing_data_after_a_codec_frame_is_refused(version):
    for codec, payload in ((1, lz4.frame.compress(PAGE)), (2, zstandard.ZstdCompressor().compress(PAGE))):
        with pytest.raises(EncodingError, match="corrupt"):
            decode(forge(payload + payload, version=version, codec=codec))


def test_frames_over_4_gib_are_refused_with_advice():
    class Huge(bytes):
        def __len__(self):
            return 1 << 32

    with pytest.raises(ValueError, match="encode it in chunks"):
        encode(Huge(b"x"))
