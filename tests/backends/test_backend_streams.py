"""Record streams (``rt.open_stream`` / ``rt.on_stream``) on real sockets.

Records arrive intact and in order; a broken, stalled or crashed peer turns
into :class:`TransferError` on the sender; hostile bytes on a stream
connection are refused, counted and cost only that connection; crashing or
closing a node leaves no stream socket behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from _backend_testkit import wait_until

from novacron.backends import AsyncioRuntime, LocalCluster, RuntimeOptions, TLSConfig
from novacron.backends.tcp import streams, wire
from novacron.backends.tcp.framing import encode_frame, frame_header
from novacron.runtime import Message, Stream, TransferError, VirtualPayload, codec

MiB = 1024 * 1024


class Chunk(Message, tag="backend-test/stream-chunk"):
    stream: int
    seq: int
    digest: str


class Unheard(Message, tag="backend-test/stream-unheard"):
    """A header type no test registers a stream handler for."""

    note: str


def digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Sink:
    """A stream handler that keeps what it got (copied, as the contract asks)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Chunk, bytes]] = []
        self.views: list[memoryview] = []

    def __call__(self, src: str, header: Chunk, data: memoryview) -> None:
        assert isinstance(data, memoryview) and data.readonly
        self.views.append(data)
        self.records.append((src, header, bytes(data)))

    def count(self) -> int:
        return len(self.records)


class Pair(NamedTuple):
    """What :func:`sink_pair` sets up; tests unpack it, ``_`` for what they do not use."""

    cluster: LocalCluster
    a: AsyncioRuntime
    b: AsyncioRuntime
    sink: Sink


@asynccontextmanager
async def sink_pair(
    tmp_path: Path, *, tls: bool = False, options: RuntimeOptions | None = None
) -> AsyncIterator[Pair]:
    """The set-up of most tests here: nodes ``a`` and ``b``, ``b`` keeping its Chunk records."""
    sink = Sink()
    async with LocalCluster(tmp_path, tls=tls, options=options) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Chunk, sink)
        yield Pair(cluster, a, b, sink)


def socket_fds() -> int:
    """Sockets this process holds open (to prove nothing leaked)."""
    fds = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            fds += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            pass  # closed while we looked
    return fds


# --- records arrive, in order and intact ---------------------------------------------------------


async def test_records_round_trip_in_order_on_one_stream(tmp_path: Path) -> None:
    async with sink_pair(tmp_path) as (_, a, b, sink):
        stream = await a.open_stream("b")
        assert isinstance(stream, Stream)
        assert (stream.peer, stream.closed) == ("b", False) and stream.congestion
        sent = [os.urandom(n) for n in (0, 1, 1000, 256 * 1024, 512 * 1024 + 7)]
        for seq, data in enumerate(sent):
            await stream.send(Chunk(0, seq, digest(data)), data)
        await wait_until(lambda: sink.count() == len(sent), what="every record")
        assert [(src, h.seq, d) for src, h, d in sink.records] == [("a", i, d) for i, d in enumerate(sent)]
        assert all(h.digest == digest(d) for _, h, d in sink.records)
        with pytest.raises(ValueError, match="released"):
            bytes(sink.views[-1])  # the view is valid during the handler call only
        assert a.stats.records_sent == len(sent) and b.stats.records_received == len(sent)
        assert a.stats.record_bytes_sent == b.stats.record_bytes_received == sum(map(len, sent))
        assert (a.stats.streams_opened, b.stats.streams_accepted) == (1, 1)
        stream.close()
        assert stream.closed
        await wait_until(lambda: a.open_streams == b.open_streams == 0, what="both ends to close")
        assert a.stats.streams_failed == b.stats.streams_failed == 0


async def test_records_stay_in_order_per_stream_across_concurrent_streams(tmp_path: Path) -> None:
    sink = Sink()
    async with LocalCluster(tmp_path) as cluster:
        a, b, c = await cluster.add_nodes(["a", "b", "c"])
        b.on_stream(Chunk, sink)
        opened = [await a.open_stream("b") for _ in range(4)] + [await c.open_stream("b")]

        async def pump(index: int, stream: Stream) -> list[str]:
            digests = []
            for seq in range(12):
                data = os.urandom(32 * 1024 * (seq + 1) + index)
                digests.append(digest(data))
                await stream.send(Chunk(index, seq, digests[-1]), memoryview(data))
            return digests

        expected = await asyncio.gather(*(pump(i, s) for i, s in enumerate(opened)))
        await wait_until(lambda: sink.count() == 5 * 12, what="every record")
        for index, digests in enumerate(expected):
            got = [(h.seq, digest(d)) for _, h, d in sink.records if h.stream == index]
            assert got == list(enumerate(digests)), f"stream {index} out of order or corrupt"
        assert {src for src, h, _ in sink.records if h.stream == 4} == {"c"}
        assert b.stats.streams_accepted == 5 and sum(b.stats.rejected.values()) == 0


async def test_large_records_arrive_intact(tmp_path: Path) -> None:
    async with sink_pair(tmp_path) as (_, a, _, sink):
        stream = await a.open_stream("b")
        big = os.urandom(8 * MiB + 3)
        await stream.send(Chunk(0, 0, digest(big)), bytearray(big))
        await stream.send(Chunk(0, 1, digest(big[:100])), big[:100])  # a small one after a big one
        await wait_until(lambda: sink.count() == 2, timeout=20, what="the large record")
        assert sink.records[0][2] == big and sink.records[1][2] == big[:100]


async def test_send_rules(tmp_path: Path) -> None:
    async with sink_pair(tmp_path, options=RuntimeOptions(max_record_bytes=MiB)) as (_, a, _, _):
        stream = await a.open_stream("b")
        with pytest.raises(TypeError, match="simulator"):
            await stream.send(Chunk(0, 0, ""), VirtualPayload(10))
        with pytest.raises(TypeError, match="Message"):
            await stream.send("not a message", b"")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_record_bytes"):
            await stream.send(Chunk(0, 0, ""), bytes(MiB + 1))
        await stream.send(Chunk(0, 0, ""), bytes(MiB))  # the stream is still fine
        stream.close()
        stream.close()  # idempotent
        with pytest.raises(TransferError, match="closed"):
            await stream.send(Chunk(0, 2, ""), b"x")
        assert a.stats.streams_failed == 0, "closing is not failing"


async def test_a_record_without_a_handler_is_dropped_and_the_stream_goes_on(tmp_path: Path) -> None:
    async with sink_pair(tmp_path) as (_, a, b, sink):
        stream = await a.open_stream("b")
        await stream.send(Unheard("nobody listens"), b"lost")
        await stream.send(Chunk(0, 0, digest(b"kept")), b"kept")
        await wait_until(lambda: sink.count() == 1, what="the handled record")
        assert b.stats.records_unhandled == 1 and sum(b.stats.rejected.values()) == 0
        assert not stream.closed


async def test_a_handler_that_raises_costs_only_its_record(tmp_path: Path) -> None:
    seen: list[int] = []

    def flaky(src: str, header: Chunk, data: memoryview) -> None:
        seen.append(header.seq)
        if header.seq == 0:
            raise RuntimeError("boom")

    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Chunk, flaky)
        stream = await a.open_stream("b")
        for seq in range(3):
            await stream.send(Chunk(0, seq, ""), b"x")
        await wait_until(lambda: len(seen) == 3, what="all three records")
        assert seen == [0, 1, 2] and b.stats.handler_errors == 1


async def test_congestion_control_is_reported(tmp_path: Path) -> None:
    offered = streams.available_congestion()
    async with LocalCluster(tmp_path) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        for algorithm in sorted(offered & {"cubic", "reno", "bbr"}):
            stream = await a.open_stream("b", congestion=algorithm)
            assert stream.congestion == algorithm
            stream.close()
        fallback = await a.open_stream("b", congestion="no-such-algorithm")
        assert fallback.congestion == streams.default_congestion()
        fallback.close()


# --- failures ---------------------------------------------------------------------------------------


async def test_opening_a_stream_to_an_unknown_or_crashed_peer_fails_fast(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        with pytest.raises(TransferError, match="not a known peer"):
            await a.open_stream("nobody")
        await cluster.crash("b")
        with pytest.raises(TransferError, match="unreachable"):
            await asyncio.wait_for(a.open_stream("b"), 10)
        assert a.stats.streams_failed == 2 and a.open_streams == 0


async def test_a_receiver_crash_fails_the_stream(tmp_path: Path) -> None:
    async with sink_pair(tmp_path) as (cluster, a, _, _):
        stream = await a.open_stream("b")
        await stream.send(Chunk(0, 0, ""), bytes(MiB))
        await cluster.crash("b")
        with pytest.raises(TransferError, match=r"stream a->b #\d+ failed"):
            async with asyncio.timeout(10):
                while True:  # the first sends may still fit in the kernel's buffers
                    await stream.send(Chunk(0, 1, ""), bytes(MiB))
        assert stream.closed
        with pytest.raises(TransferError, match="failed"):
            await stream.send(Chunk(0, 2, ""), b"x")  # a failed stream stays failed
        assert a.stats.streams_failed == 1 and a.open_streams == 0


class SilentReceiver:
    """A 'node' that accepts one stream, reads its hello, then reads nothing more.

    The sender's kernel buffers fill up, so a big record stays in flight for as
    long as the test likes; :meth:`hang_up` then resets the connection.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hello: wire.StreamHello | None = None
        self._conn: socket.socket | None = None
        self._accepted = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        assert streams._recv_exactly(conn, 4, None, 0) == wire.STREAM_PREAMBLE
        self.hello = wire.decode(wire.StreamHello, streams.read_frame(conn))
        self._conn = conn
        self._accepted.set()

    def hang_up(self) -> None:
        assert self._accepted.wait(10)
        assert self._conn is not None
        self._conn.close()  # with unread data: the kernel answers with a reset

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.listener.close()
        self._thread.join(10)


@pytest.fixture
def silent() -> Iterator[SilentReceiver]:
    receiver = SilentReceiver()
    yield receiver
    receiver.close()


@asynccontextmanager
async def stream_to_silent(
    tmp_path: Path, silent: SilentReceiver, *, options: RuntimeOptions | None = None
) -> AsyncIterator[tuple[LocalCluster, AsyncioRuntime, Stream]]:
    """Node ``a`` of a cluster, with a stream open to the silent receiver."""
    async with LocalCluster(tmp_path, options=options) as cluster:
        a = await cluster.add_node("a")
        cluster.directory.register("silent", "127.0.0.1", silent.port)
        yield cluster, a, await a.open_stream("silent")


async def stuck_send(stream: Stream, settle: float = 0.1) -> asyncio.Future[None]:
    """Start sending a record far bigger than the silent receiver's socket buffers; return the
    send, which after ``settle`` seconds is in flight and stays so."""
    sending = asyncio.ensure_future(stream.send(Chunk(0, 0, ""), bytes(32 * MiB)))
    await asyncio.sleep(settle)
    return sending


async def test_an_in_flight_send_fails_when_the_connection_breaks(
    tmp_path: Path, silent: SilentReceiver
) -> None:
    async with stream_to_silent(tmp_path, silent) as (_, a, stream):
        sending = await stuck_send(stream, settle=0.2)
        assert not sending.done(), "32 MiB cannot fit in the socket buffers of a receiver that reads nothing"
        assert silent.hello is not None and silent.hello.node_id == "a"
        with pytest.raises(RuntimeError, match="one send at a time"):
            await stream.send(Chunk(0, 1, ""), b"x")
        await asyncio.to_thread(silent.hang_up)
        with pytest.raises(TransferError, match="connection lost|closed the stream"):
            await asyncio.wait_for(sending, 10)
        assert stream.closed and a.open_streams == 0


async def test_closing_a_stream_fails_its_in_flight_send(tmp_path: Path, silent: SilentReceiver) -> None:
    async with stream_to_silent(tmp_path, silent) as (_, a, stream):
        sending = await stuck_send(stream)
        stream.close()
        with pytest.raises(TransferError, match=r"stream a->silent #\d+ is closed"):
            await asyncio.wait_for(sending, 10)
        assert a.stats.streams_failed == 0 and a.open_streams == 0


async def test_a_stream_without_progress_fails_after_the_stream_timeout(
    tmp_path: Path, silent: SilentReceiver
) -> None:
    options = RuntimeOptions(stream_timeout=0.3)
    async with stream_to_silent(tmp_path, silent, options=options) as (_, a, stream):
        with pytest.raises(TransferError, match=r"no progress for 0.3s"):
            await asyncio.wait_for(stream.send(Chunk(0, 0, ""), bytes(32 * MiB)), 10)
        assert stream.closed and a.stats.streams_failed == 1


async def test_cancelling_a_send_mid_record_fails_the_stream(tmp_path: Path, silent: SilentReceiver) -> None:
    async with stream_to_silent(tmp_path, silent) as (_, _, stream):
        sending = await stuck_send(stream)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        assert stream.closed, "half a record went out: the stream cannot carry another one"
        with pytest.raises(TransferError, match="cancelled mid-record"):
            await stream.send(Chunk(0, 1, ""), b"x")


async def test_crashing_the_sender_fails_its_in_flight_send(tmp_path: Path, silent: SilentReceiver) -> None:
    async with stream_to_silent(tmp_path, silent) as (cluster, a, stream):
        sending = await stuck_send(stream)
        await cluster.crash("a")
        with pytest.raises(TransferError, match="a crashed"):
            await asyncio.wait_for(sending, 10)
        assert a.open_streams == 0


async def test_crash_and_close_leave_no_stream_connection_open(tmp_path: Path) -> None:
    baseline = socket_fds()
    sinks = {"a": Sink(), "b": Sink(), "c": Sink()}
    cluster = LocalCluster(tmp_path)
    try:
        a, b, c = await cluster.add_nodes(["a", "b", "c"], lambda rt: rt.on_stream(Chunk, sinks[rt.node_id]))
        a_to_b = [await a.open_stream("b") for _ in range(3)]
        b_to_a = await b.open_stream("a")
        c_to_a = await c.open_stream("a")
        for stream in (*a_to_b, b_to_a, c_to_a):
            await stream.send(Chunk(0, 0, ""), b"hello")
        await wait_until(lambda: a.open_streams == 3 + 2 and b.open_streams == 3 + 1, what="all streams")

        await cluster.crash("a")
        assert a.open_streams == 0 and all(s.closed for s in a_to_b)
        # Its peers notice at once: the inbound ends see EOF, the outbound ends the hang-up.
        await wait_until(lambda: b.open_streams == 0 and c.open_streams == 0, what="peers to notice")
        assert b_to_a.closed and c_to_a.closed
        with pytest.raises(TransferError):
            await b_to_a.send(Chunk(0, 1, ""), b"x")

        restarted = await cluster.restart("a")
        again = await c.open_stream("a")
        await again.send(Chunk(0, 2, ""), b"after restart")
        await wait_until(
            lambda: b"after restart" in [d for _, _, d in sinks["a"].records], what="the restarted node"
        )
        assert restarted.open_streams == 1
    finally:
        await cluster.close()
    for node in ("a", "b", "c"):
        assert cluster.runtime(node).open_streams == 0
    await wait_until(lambda: socket_fds() <= baseline, what="every socket to be closed")


# --- hostile or broken senders, played by raw sockets --------------------------------------------


def _hello(node_id: str = "a", checksum: str = streams.PREFERRED_CHECKSUM) -> bytes:
    hello = wire.StreamHello(version=wire.PROTOCOL_VERSION, node_id=node_id, checksum=checksum)
    return encode_frame(wire.encode(hello))


def _record(
    header: bytes, data: bytes, *, checksum: int | None = None, length: int | None = None, flags: int = 0
) -> bytes:
    crc = streams.CHECKSUMS[streams.PREFERRED_CHECKSUM]
    envelope = wire.RecordEnvelope(header=header, length=len(data) if length is None else length)
    trailer = wire.RECORD_TRAILER.pack(crc(data, crc(header, 0)) if checksum is None else checksum, flags)
    return encode_frame(wire.encode(envelope)) + data + trailer


_GOOD = codec.encode(Chunk(0, 0, digest(b"payload")))

ATTACKS = {
    "checksum_mismatch": ("checksum_mismatch", _record(_GOOD, b"payload", checksum=12345)),
    "unknown_trailer_flags": ("malformed", _record(_GOOD, b"payload", flags=0x80)),
    "oversize_record": ("oversize", _record(_GOOD, b"", length=64 * MiB + 1)),
    "oversize_envelope": ("oversize", frame_header(2**32 - 1)),
    "garbage_envelope": ("malformed", encode_frame(os.urandom(40))),
    "unknown_header_type": ("malformed", _record(b"\x81\xa4type\xa7nothing", b"payload")),
    "truncated_record": ("truncated", _record(_GOOD, b"payload")[:-3]),
    "stranger_hello": ("hello_rejected", b""),
    "unknown_checksum": ("bad_stream", b""),
    "garbage_hello": ("bad_stream", b""),
}


def _attack(port: int, name: str, blob: bytes) -> None:
    """Speak the stream preamble, say hello (or not), send ``blob``, wait for the hang-up."""
    hello = {
        "stranger_hello": _hello("stranger"),
        "unknown_checksum": _hello(checksum="md5"),
        "garbage_hello": encode_frame(b"\x00" * 16),
    }.get(name, _hello())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(wire.STREAM_PREAMBLE + hello + blob)
            sock.shutdown(socket.SHUT_WR)  # (a truncated record ends here)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # reset by the node: fine


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_bad_records_are_refused_counted_and_cost_only_their_connection(
    tmp_path: Path, name: str
) -> None:
    reason, blob = ATTACKS[name]
    async with sink_pair(tmp_path) as (_, a, b, sink):
        healthy = await a.open_stream("b")
        await asyncio.to_thread(_attack, b.address[1], name, blob)
        await wait_until(lambda: b.stats.rejected[reason] == 1, what=f"a {reason} rejection")
        assert sink.records == [], "nothing of a refused record reaches a handler"
        await wait_until(lambda: b.open_streams == 1, what="the bad connection to be closed")
        # The node keeps serving: the stream opened before and a new one both work.
        fresh = await a.open_stream("b")
        await healthy.send(Chunk(0, 1, digest(b"before")), b"before")
        await fresh.send(Chunk(1, 0, digest(b"after")), b"after")
        await wait_until(lambda: sink.count() == 2, what="the real records")
        assert sorted(data for _, _, data in sink.records) == [b"after", b"before"]


async def test_a_connection_that_never_says_hello_is_dropped(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path, options=RuntimeOptions(handshake_timeout=0.3)) as cluster:
        b = await cluster.add_node("b")

        def mute() -> None:
            with socket.create_connection(("127.0.0.1", b.address[1]), timeout=10) as sock:
                sock.sendall(wire.STREAM_PREAMBLE)
                assert sock.recv(1) == b"", "the node hangs up"

        await asyncio.to_thread(mute)
        await wait_until(lambda: b.stats.rejected["handshake_timeout"] == 1, what="the timeout")
        assert b.open_streams == 0


async def test_a_sender_stalling_mid_record_is_cut_off(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path, options=RuntimeOptions(stream_timeout=0.3)) as cluster:
        _, b = await cluster.add_nodes(["a", "b"])

        def stall() -> None:
            with socket.create_connection(("127.0.0.1", b.address[1]), timeout=10) as sock:
                sock.sendall(wire.STREAM_PREAMBLE + _hello() + _record(_GOOD, b"payload")[:-3])
                assert sock.recv(1) == b"", "the node hangs up on a stalled record"

        await asyncio.to_thread(stall)
        assert b.stats.streams_failed == 1 and b.open_streams == 0


# --- TLS -------------------------------------------------------------------------------------------


async def test_streams_work_between_mutual_tls_nodes(tmp_path: Path) -> None:
    async with sink_pair(tmp_path, tls=True) as (_, a, b, sink):
        stream = await a.open_stream("b")
        sent = [os.urandom(n) for n in (0, 100, 512 * 1024, 4 * MiB + 1)]
        for seq, data in enumerate(sent):
            await stream.send(Chunk(0, seq, digest(data)), data)
        await wait_until(lambda: sink.count() == len(sent), timeout=20, what="every record over TLS")
        assert [d for _, _, d in sink.records] == sent
        assert sum(b.stats.rejected.values()) == 0
        stream.close()
        await wait_until(lambda: b.open_streams == 0, what="the receiver to see the close")
        assert b.stats.streams_failed == 0, "a TLS stream closed by its sender ends cleanly"


async def test_a_tls_stream_closed_right_after_a_burst_loses_nothing(tmp_path: Path) -> None:
    async with sink_pair(tmp_path, tls=True) as (_, a, b, sink):
        for round_ in range(5):
            stream = await a.open_stream("b")
            for seq in range(8):
                await stream.send(Chunk(round_, seq, ""), bytes(256 * 1024))
            stream.close()
        await wait_until(lambda: sink.count() == 5 * 8, what="every record of every burst")
        assert b.stats.streams_failed == 0


async def test_a_tls_stream_cannot_claim_another_nodes_identity(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path / "cluster", tls=True) as cluster:
        _, b, _ = await cluster.add_nodes(["a", "b", "c"])
        pki = tmp_path / "cluster" / "pki"
        c_cert = TLSConfig(pki / "c.pem", pki / "c.key", pki / "ca.pem")
        context = c_cert.client_context()

        def impersonate() -> None:  # c's genuine certificate, claiming to be "a"
            with socket.create_connection(("127.0.0.1", b.address[1]), timeout=10) as raw:
                raw.sendall(wire.STREAM_PREAMBLE)
                with context.wrap_socket(raw) as tls:
                    tls.sendall(_hello("a") + _record(_GOOD, b"payload"))
                    try:
                        while tls.recv(4096):
                            pass
                    except (ssl.SSLError, OSError):
                        pass

        await asyncio.to_thread(impersonate)
        await wait_until(lambda: b.stats.rejected["hello_rejected"] == 1, what="the impostor")
        assert b.stats.records_received == 0


# --- the event loop production uses ------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_streams_on_uvloop(tmp_path: Path, tls: bool) -> None:
    """The loop-driven socket code relies on add_reader/add_writer, which uvloop implements itself."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async with sink_pair(tmp_path, tls=tls) as (cluster, a, b, sink):
            opened = [await a.open_stream("b") for _ in range(3)]
            sent = [os.urandom(300 * 1024 + i) for i in range(9)]
            await asyncio.gather(
                *(
                    opened[i % 3].send(Chunk(i % 3, i // 3, digest(data)), data)
                    for i, data in enumerate(sent)
                    if i < 3  # one concurrent send per stream...
                )
            )
            for i, data in enumerate(sent[3:], start=3):  # ...then the rest in turn
                await opened[i % 3].send(Chunk(i % 3, i // 3, digest(data)), data)
            await wait_until(lambda: sink.count() == len(sent), what="every record")
            assert sorted(d for _, _, d in sink.records) == sorted(sent)
            await cluster.crash("b")
            with pytest.raises(TransferError):
                async with asyncio.timeout(10):
                    while True:
                        await opened[0].send(Chunk(0, 99, ""), bytes(MiB))

    uvloop.run(scenario())


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


async def test_loop_socket_waits_for_the_rest_of_a_read_but_never_for_more() -> None:
    """A reader that must wait asks the kernel (``SO_RCVLOWAT``) to wake it once the rest
    of what it reads is there, never for more than that: short reads and an end of
    stream mid-read still come through."""
    from novacron.backends.tcp.loopsocket import IncompleteRead, LoopSocket

    writer, reader = _tcp_pair()
    io = LoopSocket(asyncio.get_running_loop(), reader)

    def lowat() -> int:
        return reader.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)

    try:
        buf = bytearray(10)
        reading = asyncio.ensure_future(io.read_exactly(memoryview(buf), 5.0))
        writer.sendall(b"abc")
        await wait_until(lambda: lowat() == 7, what="the reader to wait for the 7 bytes it misses")
        assert not reading.done()
        writer.sendall(b"defghij")
        assert await reading and bytes(buf) == b"abcdefghij"
        big = bytearray(1 << 20)
        reading = asyncio.ensure_future(io.read_exactly(memoryview(big), 5.0))
        writer.sendall(b"x" * 100)
        await wait_until(lambda: lowat() > 100, what="the reader to wait for more than it has")
        writer.close()  # the end of stream wakes it although fewer bytes than asked are there
        with pytest.raises(IncompleteRead, match="after 100 of"):
            await reading
    finally:
        writer.close()
        io.close()
