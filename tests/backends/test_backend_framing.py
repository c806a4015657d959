"""Frames and the inbound-session rules, tested without sockets (sans-I/O)."""

from __future__ import annotations

import pytest
from _backend_testkit import Ping

from novacron.backends.tcp import wire
from novacron.backends.tcp.assembly import Assembly, Limits, check_header, plan_slices
from novacron.backends.tcp.framing import (
    FrameDecoder,
    FrameTooLarge,
    TruncatedFrame,
    encode_frame,
    frame_header,
)
from novacron.backends.tcp.session import (
    Authenticated,
    Close,
    Deliver,
    InboundSession,
    Reject,
)
from novacron.runtime import codec


def test_frames_round_trip_whatever_the_read_sizes() -> None:
    bodies = [b"", b"a", b"hello world", bytes(range(256)) * 100]
    stream = b"".join(encode_frame(b) for b in bodies)
    for step in (1, 3, 7, 4096, len(stream)):
        decoder = FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            decoder.feed(stream[i : i + step])
            got.extend(decoder.frames())
        decoder.close()
        assert got == bodies, f"read size {step}"
        assert decoder.buffered == 0


def test_length_prefix_is_four_bytes_big_endian() -> None:
    assert encode_frame(b"xyz") == b"\x00\x00\x00\x03xyz"
    assert frame_header(0x01020304) == b"\x01\x02\x03\x04"


def test_oversized_length_prefix_breaks_the_decoder_after_earlier_frames() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    decoder.feed(encode_frame(b"ok") + frame_header(11) + b"x" * 11)
    frames = decoder.frames()
    assert next(frames) == b"ok"
    with pytest.raises(FrameTooLarge, match="11 bytes"):
        next(frames)
    # The stream cannot be resynchronised: the decoder stays broken.
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(b"later"))


def test_encoder_refuses_what_the_decoder_would_refuse() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(b"x" * 11, max_frame_size=10)


def test_truncated_frame_at_end_of_stream() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"complete") + encode_frame(b"cut short")[:-3])
    assert list(decoder.frames()) == [b"complete"]
    with pytest.raises(TruncatedFrame, match="incomplete frame"):
        decoder.close()


def test_clean_end_of_stream_is_not_an_error() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"x"))
    assert list(decoder.frames()) == [b"x"]
    decoder.close()


# --- the inbound session ----------------------------------------------------------------------


def _session(known: set[str] | None = None, max_frame_size: int = 1 << 20) -> InboundSession:
    known = {"peer"} if known is None else known
    return InboundSession(
        lambda node_id: None if node_id in known else "not a known peer",
        codec.decode,
        max_frame_size=max_frame_size,
    )


def _hello(node_id: str = "peer", version: int = wire.PROTOCOL_VERSION) -> bytes:
    return encode_frame(wire.encode(wire.Hello(version=version, node_id=node_id)))


def _msg(message) -> bytes:  # noqa: ANN001
    return encode_frame(codec.encode(message))


def test_session_delivers_messages_after_a_valid_hello() -> None:
    session = _session()
    events = session.data_received(_hello() + _msg(Ping(1)) + _msg(Ping(2)))
    assert events == [Authenticated("peer"), Deliver(Ping(1)), Deliver(Ping(2))]
    assert session.peer == "peer"


def test_frames_before_hello_are_unauthenticated_and_dropped() -> None:
    session = _session()
    events = session.data_received(_msg(Ping(1)) + _hello() + _msg(Ping(2)))
    assert isinstance(events[0], Reject) and events[0].reason == "unauthenticated"
    assert events[1:] == [Authenticated("peer"), Deliver(Ping(2))]


def test_persistent_unauthenticated_traffic_closes_the_connection() -> None:
    session = _session()
    events = session.data_received(_msg(Ping(1)) * 20)
    assert isinstance(events[-1], Close) and events[-1].reason == "unauthenticated"
    assert session.data_received(_hello()) == []  # nothing after a close


def test_hello_from_an_unknown_node_closes_the_connection() -> None:
    events = _session().data_received(_hello("stranger") + _msg(Ping(1)))
    assert len(events) == 1
    assert isinstance(events[0], Close) and events[0].reason == "hello_rejected"
    assert "stranger" in events[0].detail


def test_hello_with_another_protocol_version_is_rejected() -> None:
    (event,) = _session().data_received(_hello(version=99))
    assert isinstance(event, Close) and "version 99" in event.detail


def test_malformed_body_is_dropped_and_the_connection_goes_on() -> None:
    session = _session()
    not_msgpack = encode_frame(b"\xc1 never valid msgpack")
    unknown_type = encode_frame(b"\x81\xa4type\xa3???")  # {"type": "???"}
    events = session.data_received(_hello() + not_msgpack + unknown_type + _msg(Ping(3)))
    assert [type(e) for e in events] == [Authenticated, Reject, Reject, Deliver]
    assert {e.reason for e in events if isinstance(e, Reject)} == {"malformed"}
    assert events[-1] == Deliver(Ping(3))


def test_wrong_field_types_are_malformed() -> None:
    import msgspec

    bad = msgspec.msgpack.encode({"type": "backend-test/ping", "n": "not an int"})
    (_, event) = _session().data_received(_hello() + encode_frame(bad))
    assert isinstance(event, Reject) and event.reason == "malformed"


def test_before_hello_frames_are_capped_small() -> None:
    session = _session()
    (event,) = session.data_received(frame_header(wire.CONTROL_MAX_FRAME + 1))
    assert isinstance(event, Close) and event.reason == "oversize"


def test_after_hello_the_message_limit_applies() -> None:
    session = _session(max_frame_size=1000)
    events = session.data_received(_hello() + frame_header(1001))
    assert isinstance(events[-1], Close) and events[-1].reason == "oversize"


def test_end_of_stream_mid_frame_is_truncated() -> None:
    session = _session()
    session.data_received(_hello() + _msg(Ping(1))[:-1])
    (event,) = session.eof_received()
    assert isinstance(event, Close) and event.reason == "truncated"


# --- slicing and reassembly bookkeeping ----------------------------------------------------


@pytest.mark.parametrize(("total", "streams"), [(0, 1), (10, 3), (7, 8), (1 << 20, 8), (5, 1)])
def test_slices_tile_the_payload(total: int, streams: int) -> None:
    slices = plan_slices(total, streams)
    assert len(slices) == streams
    assert sum(length for _, length in slices) == total
    end = 0
    for offset, length in slices:
        assert offset == end
        end += length
    lengths = [length for _, length in slices]
    assert max(lengths) - min(lengths) <= 1


def _header(**changes) -> wire.StreamHeader:  # noqa: ANN003
    fields = dict(
        version=wire.PROTOCOL_VERSION,
        src="a",
        transfer_id="t1",
        index=0,
        streams=2,
        offset=0,
        length=5,
        total=10,
        tag="x",
        checksum="crc32",
    )
    fields.update(changes)
    return wire.StreamHeader(**fields)


LIMITS = Limits(max_streams=8, max_transfer_bytes=100, checksums=frozenset({"crc32"}))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"streams": 9}, "more than the limit"),
        ({"index": 2}, "out of range"),
        ({"total": 101, "offset": 0}, "more than the limit"),
        ({"offset": 6}, "outside"),
        ({"checksum": "md5"}, "not available"),
        ({"version": wire.PROTOCOL_VERSION + 1}, "version"),
    ],
)
def test_bad_stream_headers_are_refused(changes: dict, problem: str) -> None:
    assert problem in (check_header(_header(**changes), LIMITS) or "")


def test_assembly_needs_every_slice_and_checks_consistency() -> None:
    first = _header()
    assembly = Assembly.start(first)
    assert assembly.add(first) is None
    assert "twice" in (assembly.add(first) or "")
    assert "disagrees" in (assembly.add(_header(index=1, offset=5, total=11)) or "")
    assert assembly.add(_header(index=1, offset=5)) is None
    assembly.mark_verified(0)
    assert not assembly.complete
    assembly.mark_verified(1)
    assert assembly.complete and assembly.coverage_problem() is None


def test_assembly_detects_slices_that_do_not_tile() -> None:
    assembly = Assembly.start(_header())
    assembly.add(_header(length=4))
    assembly.add(_header(index=1, offset=5))
    assembly.mark_verified(0)
    assembly.mark_verified(1)
    assert "gap" in (assembly.coverage_problem() or "")


def test_invalid_utf8_in_a_string_field_is_malformed_not_a_crash() -> None:
    import msgspec

    tag = b"backend-test/orphan"
    body = b"\x82\xa4type" + bytes([0xA0 | len(tag)]) + tag + b"\xa4note\xa2\xe3\x28"
    with pytest.raises(ValueError):  # what the decoder itself does with it
        msgspec.msgpack.decode(body)
    (_, event) = _session().data_received(_hello() + encode_frame(body))
    assert isinstance(event, Reject) and event.reason == "malformed"
