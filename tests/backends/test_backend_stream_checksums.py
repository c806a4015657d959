"""Checksums on record streams: XXH3 in 1 MiB blocks by default, ISA-L's CRC-32, checksums
computed off the event loop while other streams are busy, and peers that checksum differently."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import xxhash
from _backend_testkit import wait_until

from novacron.backends import LocalCluster
from novacron.backends.tcp import records, streams, wire
from novacron.backends.tcp.framing import encode_frame
from novacron.runtime import Message, TransferError, codec

MiB = 1024 * 1024


class Piece(Message, tag="backend-test/checksum-piece"):
    seq: int
    digest: str


def digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[Piece, bytes]] = []

    def __call__(self, src: str, header: Piece, data: memoryview) -> None:
        self.records.append((header, bytes(data)))


@pytest.fixture
def offloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What record streams hand to a worker thread: "checksum", or moving a record's bytes (with
    moving big records off the loop turned on: it is off by default, see ``records.BIG_RECORD``)."""
    monkeypatch.setattr(records, "BIG_RECORD", 1 << 20)
    seen: list[str] = []
    run_in_thread = streams.run_in_thread

    def spy(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if fn in streams.CHECKSUMS.values():
            seen.append("checksum")
        elif getattr(fn, "__name__", "") in ("_send_blocking", "_read_blocking"):
            seen.append(fn.__name__)
        return run_in_thread(fn, *args, **kwargs)

    monkeypatch.setattr(streams, "run_in_thread", spy)
    monkeypatch.setattr(records.st, "run_in_thread", spy)
    return seen


def test_the_crc32_streams_use_is_zlibs_crc32_whatever_computes_it() -> None:
    data = os.urandom(3 * MiB + 5)
    crc = streams.CHECKSUMS["crc32"]
    assert crc(data, 0) == zlib.crc32(data)
    assert crc(memoryview(data)[7:], 12345) == zlib.crc32(data[7:], 12345)


def xxh3_1m_by_hand(data: bytes, value: int = 0) -> int:
    """The ``xxh3-1m`` definition, straight from xxhash."""
    for pos in range(0, len(data), MiB):
        value = xxhash.xxh3_64_intdigest(data[pos : pos + MiB], seed=value) & 0xFFFF_FFFF
    return value


def test_streams_checksum_with_xxh3_in_1_mib_blocks_by_default() -> None:
    data = os.urandom(3 * MiB + 5)
    assert streams.PREFERRED_CHECKSUM == "xxh3-1m"
    xxh3 = streams.CHECKSUMS["xxh3-1m"]
    assert xxh3(data, 0) == xxh3_1m_by_hand(data)
    assert xxh3(memoryview(data)[7:], 12345) == xxh3_1m_by_hand(data[7:], 12345)
    assert xxh3(b"", 99) == 99  # like a CRC: nothing checksummed, value unchanged


@pytest.mark.parametrize("name", sorted(streams.CHECKSUMS))
def test_every_checksum_splits_at_whole_blocks_without_changing_its_value(name: str) -> None:
    checksum, data = streams.CHECKSUMS[name], memoryview(os.urandom(5 * MiB + 333))
    whole = checksum(data, 0)
    value = 0
    for start, end in [(0, MiB), (MiB, 3 * MiB), (3 * MiB, len(data))]:
        value = checksum(data[start:end], value)
    assert value == whole


@pytest.mark.parametrize("name", sorted(streams.CHECKSUMS))
@pytest.mark.parametrize("io_piece", [1, 65_539, MiB, 3 * MiB - 1, 8 * MiB])
def test_checksums_kept_through_io_pieces_of_any_size_match_one_call(name: str, io_piece: int) -> None:
    checksum, data = streams.CHECKSUMS[name], memoryview(os.urandom(3 * MiB + 17))
    value = done = 0
    pieces = list(range(io_piece, len(data), io_piece)) + [len(data)] if io_piece > 1 else [5, 6, len(data)]
    for end in pieces:
        value, done = streams.checksum_through(checksum, data, value, done, end)
    assert done == len(data) and value == checksum(data, 0)


def test_a_slice_sent_and_received_in_different_chunk_sizes_checks_out() -> None:
    """Each node sets its own ``chunk_size``; the checksum does not depend on it."""
    data = os.urandom(3 * MiB + 17)
    into = memoryview(bytearray(len(data)))
    checksum = streams.CHECKSUMS[streams.PREFERRED_CHECKSUM]
    left, right = socket.socketpair()
    with left, right:

        def send() -> None:
            crc = streams.send_slice(
                left, memoryview(data), checksum, streams.Progress(), streams.SocketSlot(), chunk=65_539
            )
            streams.write_frame(left, wire.encode(wire.StreamTrailer(checksum=crc)))

        sender = threading.Thread(target=send)
        sender.start()
        computed, announced = streams.receive_slice(
            right, into, checksum, streams.Progress(), 10.0, chunk=3 * MiB - 1
        )
        sender.join()
    assert computed == announced == xxh3_1m_by_hand(data)
    assert bytes(into) == data


class _Busy:
    """As if another stream of each node were mid-record (sending at one, receiving at the other)."""

    def __init__(self, sender, receiver) -> None:  # type: ignore[no-untyped-def]
        self.sending, self.receiving = sender._streams.activity, receiver._streams.activity

    def __enter__(self) -> None:
        self.sending.sending += 1
        self.receiving.receiving += 1

    def __exit__(self, *exc: object) -> None:
        self.sending.sending -= 1
        self.receiving.receiving -= 1


async def test_big_records_among_busy_streams_are_moved_by_worker_threads(
    tmp_path: Path, offloads: list[str]
) -> None:
    sink = Sink()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, sink)
        stream = await a.open_stream("b")
        small, big = os.urandom(64 * 1024), os.urandom(2 * MiB + 3)
        await stream.send(Piece(0, digest(big)), big)
        await wait_until(lambda: len(sink.records) == 1, what="the first record")
        assert offloads == [], "a lone stream moves its records on the event loop"
        with _Busy(a, b):
            await stream.send(Piece(1, digest(small)), small)  # small: on the loop all the same
            await stream.send(Piece(2, digest(big)), memoryview(big))
            await stream.send(Piece(3, digest(small)), small)
            await wait_until(lambda: len(sink.records) == 4, what="every record")
        assert sorted(offloads) == ["_read_blocking", "_send_blocking"], "one hop at each end"
        assert [(h.seq, d) for h, d in sink.records] == list(enumerate([big, small, big, small]))
        assert all(h.digest == digest(d) for h, d in sink.records)
        assert sum(b.stats.rejected.values()) == 0
        assert a.stats.record_bytes_sent == b.stats.record_bytes_received == 2 * (len(small) + len(big))
        stream.close()
        await wait_until(lambda: a.open_streams == b.open_streams == 0, what="both ends to close")
        assert a.stats.streams_failed == b.stats.streams_failed == 0


class _Deaf:
    """A peer that accepts a stream connection and never reads from it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conns.append(conn)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(10)
        for conn in self.conns:
            conn.close()


@pytest.fixture
def deaf() -> Iterator[_Deaf]:
    peer = _Deaf()
    yield peer
    peer.close()


@pytest.mark.parametrize("how", ["close", "cancel", "crash"])
async def test_a_big_send_in_a_worker_thread_can_be_stopped(
    tmp_path: Path, offloads: list[str], deaf: _Deaf, how: str
) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a = await cluster.add_node("a")
        cluster.directory.register("deaf", "127.0.0.1", deaf.port)
        stream = await a.open_stream("deaf")
        a._streams.activity.sending += 1  # as if another stream were busy: this one uses a thread
        sending = asyncio.ensure_future(stream.send(Piece(0, ""), bytes(32 * MiB)))
        await wait_until(lambda: offloads == ["_send_blocking"], what="the worker to take the record")
        assert not sending.done(), "32 MiB cannot fit in the buffers of a peer that reads nothing"
        if how == "close":
            stream.close()
            with pytest.raises(TransferError, match=r"is closed"):
                await asyncio.wait_for(sending, 10)
        elif how == "cancel":
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            with pytest.raises(TransferError, match="cancelled mid-record"):
                await stream.send(Piece(1, ""), b"x")
        else:
            await cluster.crash("a")
            with pytest.raises(TransferError, match="a crashed"):
                await asyncio.wait_for(sending, 10)
        assert stream.closed
        await wait_until(lambda: a.open_streams == 0, what="the stream to be gone")


async def test_a_receiving_worker_thread_stops_when_its_node_crashes(
    tmp_path: Path, offloads: list[str]
) -> None:
    async with LocalCluster(tmp_path) as cluster:
        _, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, Sink())
        b._streams.activity.receiving += 1  # as if another stream were busy: this one uses a thread
        header = codec.encode(Piece(0, ""))
        # A sender that announces 8 MiB, sends 1 MiB and waits for the hang-up.
        hello = wire.StreamHello(version=wire.PROTOCOL_VERSION, node_id="a", checksum="crc32")
        envelope = wire.RecordEnvelope(header=header, length=8 * MiB)
        sock = socket.create_connection(("127.0.0.1", b.address[1]), timeout=10)
        try:
            sock.sendall(wire.STREAM_PREAMBLE + encode_frame(wire.encode(hello)))
            sock.sendall(encode_frame(wire.encode(envelope)) + bytes(MiB))
            await wait_until(lambda: offloads == ["_read_blocking"], what="the worker to take the record")
            await cluster.crash("b")
            assert await asyncio.to_thread(sock.recv, 1) == b"", "the node hung up"
        finally:
            sock.close()
        assert b.stats.rejected["truncated"] == 0, "a crash is not the sender's fault"


async def test_over_tls_a_receiver_checksums_big_records_off_the_loop_while_other_streams_are_busy(
    tmp_path: Path, offloads: list[str]
) -> None:
    sink = Sink()
    async with LocalCluster(tmp_path, tls=True) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, sink)
        stream = await a.open_stream("b")
        big = os.urandom(2 * MiB + 3)
        await stream.send(Piece(0, digest(big)), big)  # alone: checksummed on the loop
        await wait_until(lambda: len(sink.records) == 1, what="the first record", timeout=20)
        assert offloads == []
        # As if another stream were mid-record at each end.
        a._streams.activity.sending += 1
        b._streams.activity.receiving += 1
        try:
            await stream.send(Piece(1, digest(big)), memoryview(big))
            await wait_until(lambda: len(sink.records) == 2, what="every record", timeout=20)
        finally:
            a._streams.activity.sending -= 1
            b._streams.activity.receiving -= 1
        # The sender checksums each piece on the loop just before sending it (cache-hot).
        assert offloads == ["checksum"], "the receiver used a worker"
        assert [d for _, d in sink.records] == [big, big]
        assert sum(b.stats.rejected.values()) == 0


async def test_many_streams_of_big_records_arrive_intact(tmp_path: Path) -> None:
    sink = Sink()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, sink)
        opened = [await a.open_stream("b") for _ in range(4)]

        async def pump(index: int) -> None:
            for seq in range(3):
                data = os.urandom(MiB + 4096 * index + seq)
                await opened[index].send(Piece(index * 10 + seq, digest(data)), data)

        await asyncio.gather(*(pump(i) for i in range(4)))
        await wait_until(lambda: len(sink.records) == 12, what="every record")
        assert all(h.digest == digest(d) for h, d in sink.records)
        for index in range(4):
            seqs = [h.seq for h, _ in sink.records if h.seq // 10 == index]
            assert seqs == [index * 10 + s for s in range(3)], "in order per stream"
        assert sum(b.stats.rejected.values()) == 0


def _send_raw(port: int, checksum_name: str, header: bytes, data: bytes, checksum: int) -> None:
    hello = wire.StreamHello(version=wire.PROTOCOL_VERSION, node_id="a", checksum=checksum_name)
    envelope = wire.RecordEnvelope(header=header, length=len(data))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(wire.STREAM_PREAMBLE + encode_frame(wire.encode(hello)))
            sock.sendall(encode_frame(wire.encode(envelope)) + data + wire.RECORD_TRAILER.pack(checksum, 0))
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # reset by the node


async def test_a_corrupt_big_record_checked_in_a_worker_is_refused(
    tmp_path: Path, offloads: list[str]
) -> None:
    sink = Sink()
    async with LocalCluster(tmp_path) as cluster:
        _, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, sink)
        data = bytearray(os.urandom(2 * MiB))
        header = codec.encode(Piece(0, digest(data)))
        crc = streams.CHECKSUMS["crc32"]
        good = crc(data, crc(header, 0))
        data[MiB] ^= 0x01  # one bit flipped after the sender's checksum
        b._streams.activity.receiving += 1  # as if another stream were busy: this one uses a thread
        await asyncio.to_thread(_send_raw, b.address[1], "crc32", header, bytes(data), good)
        await wait_until(lambda: b.stats.rejected["checksum_mismatch"] == 1, what="the rejection")
        assert offloads == ["_read_blocking"]
        assert sink.records == []
        await wait_until(lambda: b.open_streams == 0, what="the bad connection to close")


def _by_hand(name: str):  # type: ignore[no-untyped-def]
    """The algorithm ``name`` as its own library computes it, not as the node does."""
    if name == "crc32c":
        return pytest.importorskip("crc32c").crc32c
    return {"crc32": zlib.crc32, "xxh3-1m": xxh3_1m_by_hand}[name]


@pytest.mark.parametrize("name", ["crc32", "crc32c", "xxh3-1m"])
async def test_a_peer_that_checksums_by_hand_with_any_known_algorithm_is_understood(
    tmp_path: Path, name: str
) -> None:
    by_hand = _by_hand(name)
    sink = Sink()
    async with LocalCluster(tmp_path) as cluster:
        _, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Piece, sink)
        data = os.urandom(3 * MiB + 17)
        header = codec.encode(Piece(7, digest(data)))
        checksum = by_hand(data, by_hand(header, 0))
        await asyncio.to_thread(_send_raw, b.address[1], name, header, data, checksum)
        await wait_until(lambda: len(sink.records) == 1, what="the record")
        assert sink.records[0][0].seq == 7 and sink.records[0][1] == data
        assert sum(b.stats.rejected.values()) == 0


async def test_a_transfer_checksummed_with_another_algorithm_is_verified_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[bytes] = []
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("blob", lambda src, payload: received.append(bytes(payload)))
        for name in sorted(streams.CHECKSUMS):  # what an older or differently built sender picks
            monkeypatch.setattr(streams, "PREFERRED_CHECKSUM", name)
            payload = os.urandom(3 * MiB + 1)
            await a.transfer("b", payload, streams=2, tag="blob")
            assert received[-1] == payload
        assert len(received) == len(streams.CHECKSUMS)
        assert sum(b.stats.rejected.values()) == 0


async def test_a_reader_waiting_for_a_big_read_is_not_cut_off_by_a_slow_trickle() -> None:
    """The low-water mark makes the kernel wake a reader only once much of a read is
    there; a peer trickling bytes below it is still progress, not a stall."""
    from novacron.backends.tcp.loopsocket import LoopSocket

    with socket.create_server(("127.0.0.1", 0)) as server:
        writer = socket.create_connection(server.getsockname())
        reader, _ = server.accept()
    io = LoopSocket(asyncio.get_running_loop(), reader)
    try:
        buf = bytearray(MiB)
        reading = asyncio.ensure_future(io.read_exactly(memoryview(buf), 0.5))

        def trickle() -> None:
            for i in range(30):  # 100 bytes every 50 ms: far below the mark, for 3 stall timeouts
                writer.sendall(bytes([i]) * 100)
                time.sleep(0.05)
            writer.sendall(b"z" * (MiB - 3000))

        await asyncio.to_thread(trickle)
        assert await reading
        assert bytes(buf[:3000]) == b"".join(bytes([i]) * 100 for i in range(30))
    finally:
        writer.close()
        io.close()
