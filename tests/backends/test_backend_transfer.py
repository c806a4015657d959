"""Bulk transfers: N parallel TCP streams, checked end to end, failing loudly."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _backend_testkit import wait_until

from novacron.backends import LocalCluster, RuntimeOptions
from novacron.backends.tcp import streams, wire
from novacron.backends.tcp.framing import encode_frame
from novacron.runtime import TransferError, VirtualPayload

MiB = 1024 * 1024


@pytest.fixture
def payload() -> bytes:
    return os.urandom(3 * MiB + 12345)  # not a multiple of anything


class Inbox:
    """Collects what a node's transfer handler receives."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, type]] = []

    def __call__(self, src: str, data: memoryview) -> None:
        self.items.append((src, bytes(data), type(data)))


@pytest.mark.parametrize("n_streams", [1, 8])
async def test_transfer_arrives_intact_and_reports_it(tmp_path: Path, payload: bytes, n_streams: int) -> None:
    inbox = Inbox()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("vm-image", inbox)
        before = a.now()
        report = await a.transfer("b", payload, streams=n_streams, tag="vm-image")
        assert inbox.items == [("a", payload, memoryview)], "delivered before the report"
        assert (report.src, report.dst, report.tag) == ("a", "b", "vm-image")
        assert report.nbytes == len(payload) and report.streams == n_streams
        assert before <= report.started <= report.finished <= a.now()
        assert report.duration > 0 and report.goodput_bps > 0
        assert report.congestion  # whatever the kernel used, named
        assert b.stats.transfers_received == 1 and b.stats.bytes_received == len(payload)
        assert a.stats.transfers_sent == 1 and a.stats.bytes_sent == len(payload)
        assert a.active_streams == 0, "the sender's streams are closed when it returns"
        await wait_until(lambda: b.active_streams == 0, what="the receiver to close its streams")


async def test_payload_types_and_edge_sizes(tmp_path: Path) -> None:
    inbox = Inbox()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("", inbox)
        await a.transfer("b", b"")
        await a.transfer("b", bytearray(b"xy"), streams=5)  # more streams than bytes
        await a.transfer("b", memoryview(b"0123456789")[2:8], streams=2)
        assert [data for _, data, _ in inbox.items] == [b"", b"xy", b"234567"]
        with pytest.raises(TypeError, match="simulator"):
            await a.transfer("b", VirtualPayload(1 << 30))
        with pytest.raises(TypeError, match="bytes"):
            await a.transfer("b", "text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="streams"):
            await a.transfer("b", b"x", streams=0)


async def test_concurrent_transfers_to_one_node_do_not_mix(tmp_path: Path) -> None:
    inbox = Inbox()
    one, two = os.urandom(2 * MiB), os.urandom(2 * MiB)
    async with LocalCluster(tmp_path) as cluster:
        a, b, c = await cluster.add_nodes(["a", "b", "c"])
        b.on_transfer("t", inbox)
        await asyncio.gather(
            a.transfer("b", one, streams=4, tag="t"),
            c.transfer("b", two, streams=3, tag="t"),
            a.transfer("b", two, streams=2, tag="t"),
        )
        assert sorted(inbox.items) == sorted(
            [("a", one, memoryview), ("c", two, memoryview), ("a", two, memoryview)]
        )


async def test_transfer_without_a_handler_is_acknowledged_and_counted(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        await a.transfer("b", b"data", tag="nobody-listens")
        assert b.stats.transfers_unhandled == 1


def test_congestion_control_is_set_or_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    offered = streams.available_congestion()
    if not offered:
        pytest.skip("this platform cannot choose a socket's congestion control")

    async def run(tmp: Path) -> None:
        async with LocalCluster(tmp) as cluster:
            a, b = await cluster.add_nodes(["a", "b"])
            b.on_transfer("", lambda src, data: None)
            for algorithm in sorted(offered & {"cubic", "reno", "bbr"}):
                report = await a.transfer("b", b"x" * 1000, streams=2, congestion=algorithm)
                assert report.congestion == algorithm
            report = await a.transfer("b", b"x", congestion="no-such-algorithm")
            assert report.congestion == streams.default_congestion()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp, caplog.at_level(logging.INFO):
        asyncio.run(run(Path(tmp)))
    assert "'no-such-algorithm' unavailable" in caplog.text


async def test_transfer_to_an_unknown_or_crashed_peer_fails_fast(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a, _ = await cluster.add_nodes(["a", "b"])
        with pytest.raises(TransferError, match="not a known peer"):
            await a.transfer("nobody", b"x")
        await cluster.crash("b")
        started = time.monotonic()
        with pytest.raises(TransferError, match="unreachable"):
            await asyncio.wait_for(a.transfer("b", b"x" * MiB, streams=4), 10)
        assert time.monotonic() - started < 5
        assert a.stats.transfers_failed == 1
        assert a.active_streams == 0


async def test_receiver_crash_mid_transfer_fails_the_transfer(tmp_path: Path) -> None:
    # Paced streams make "mid-transfer" a certainty rather than a race:
    # 16 MiB over 2 streams at 2 MiB/s each takes about 4 s.
    options = RuntimeOptions(stream_rate_limit=2 * MiB)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        delivered = Inbox()
        b.on_transfer("", delivered)
        sending = asyncio.ensure_future(a.transfer("b", os.urandom(16 * MiB), streams=2))
        await wait_until(lambda: b.active_streams == 2, what="both streams at the receiver")
        await cluster.crash("b")
        with pytest.raises(TransferError, match="mid-transfer|aborted|closed|reset"):
            await asyncio.wait_for(sending, 10)
        assert delivered.items == []
        assert a.active_streams == 0


# --- misbehaving peers, played by raw sockets -------------------------------------------------


class FakeReceiver:
    """A 'node' that reads a stream header and part of the data, then hangs up."""

    def __init__(self, read_bytes: int) -> None:
        self.read_bytes = read_bytes
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.header: wire.StreamHeader | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            assert streams._recv_exactly(conn, 4, None, 0) == wire.DATA_PREAMBLE
            self.header = wire.decode(wire.StreamHeader, streams.read_frame(conn))
            streams._recv_exactly(conn, self.read_bytes, None, 0)
            # Hang up with unread data: the kernel answers the sender with a reset.

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def fake_receiver() -> Iterator[FakeReceiver]:
    fake = FakeReceiver(read_bytes=256 * 1024)
    yield fake
    fake.close()


async def test_stream_killed_mid_transfer_raises(tmp_path: Path, fake_receiver: FakeReceiver) -> None:
    async with LocalCluster(tmp_path) as cluster:
        a = await cluster.add_node("a")
        cluster.directory.register("fake", "127.0.0.1", fake_receiver.port)
        with pytest.raises(TransferError, match="stream 0/1 to fake failed mid-transfer"):
            await asyncio.wait_for(a.transfer("fake", os.urandom(32 * MiB), tag="t"), 20)
        header = fake_receiver.header
        assert header is not None and (header.src, header.tag, header.total) == ("a", "t", 32 * MiB)


def _raw_stream(
    port: int, header: wire.StreamHeader, data: bytes, checksum: int | None, hang_up: bool = False
) -> wire.StreamStatus | None:
    """Play a sending node by hand; returns the receiver's verdict (None if it hung up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire.DATA_PREAMBLE + encode_frame(wire.encode(header)) + data)
        if hang_up:
            return None
        crc = zlib.crc32(data) if checksum is None else checksum
        sock.sendall(encode_frame(wire.encode(wire.StreamTrailer(checksum=crc))))
        return wire.decode(wire.StreamStatus, streams.read_frame(sock))


def _header(total: int, **changes: object) -> wire.StreamHeader:
    fields: dict = dict(
        version=wire.PROTOCOL_VERSION,
        src="a",
        transfer_id="raw-1",
        index=0,
        streams=1,
        offset=0,
        length=total,
        total=total,
        tag="t",
        checksum="crc32",
    )
    fields.update(changes)
    return wire.StreamHeader(**fields)


async def test_receiver_refuses_a_slice_with_a_bad_checksum(tmp_path: Path) -> None:
    inbox = Inbox()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("t", inbox)
        data = os.urandom(100_000)
        status = await asyncio.to_thread(
            _raw_stream, b.address[1], _header(len(data)), data, zlib.crc32(data) ^ 1
        )
        assert status == wire.StreamStatus(ok=False, reason="checksum mismatch on stream 0")
        assert inbox.items == [] and b.stats.rejected["checksum_mismatch"] == 1
        good = await asyncio.to_thread(
            _raw_stream, b.address[1], _header(len(data), transfer_id="raw-2"), data, None
        )
        assert good == wire.StreamStatus(ok=True)
        await a.transfer("b", data, tag="t")
        assert [d for _, d, _ in inbox.items] == [data, data]


async def test_receiver_survives_a_sender_that_dies_mid_slice(tmp_path: Path) -> None:
    inbox = Inbox()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("t", inbox)
        header = _header(2 * MiB, streams=2, length=MiB)
        await asyncio.to_thread(_raw_stream, b.address[1], header, b"x" * 1000, None, True)
        await wait_until(lambda: b.stats.transfers_failed == 1, what="the receiver to give up")
        await wait_until(lambda: b.active_streams == 0, what="the receiver to close the stream")
        assert inbox.items == []
        await a.transfer("b", b"still serving", tag="t")
        assert inbox.items[-1][1] == b"still serving"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (_header(10, src="stranger"), "hello_rejected"),
        (_header(10, index=3), "bad_stream"),
        (_header(10, checksum="md5"), "bad_stream"),
        (_header(1 << 40), "bad_stream"),
    ],
)
async def test_receiver_refuses_bad_stream_headers(
    tmp_path: Path, header: wire.StreamHeader, reason: str
) -> None:
    async with LocalCluster(tmp_path) as cluster:
        _, b = await cluster.add_nodes(["a", "b"])

        def attempt() -> None:
            with socket.create_connection(("127.0.0.1", b.address[1]), timeout=10) as sock:
                sock.sendall(wire.DATA_PREAMBLE + encode_frame(wire.encode(header)))
                try:  # refused with a verdict, or simply hung up on
                    while sock.recv(4096):
                        pass
                except ConnectionResetError:
                    pass

        await asyncio.to_thread(attempt)
        await wait_until(lambda: b.stats.rejected[reason] == 1, what=reason)
        await wait_until(lambda: b.active_streams == 0, what="the receiver to close the stream")


class Keeper:
    """A handler that holds a buffer export of the payload (against the contract's advice)."""

    def __init__(self) -> None:
        self.kept: list[pickle.PickleBuffer] = []

    def __call__(self, src: str, data: memoryview) -> None:
        self.kept.append(pickle.PickleBuffer(data))  # holds a Py_buffer export until released


async def test_receive_buffers_are_reused_and_never_shared_with_a_kept_payload(tmp_path: Path) -> None:
    """Buffers go back to the pool after the handler (the contract: valid during the call
    only), except one whose payload the handler still exports, which is left to it."""
    first, second, third = (os.urandom(2 * MiB) for _ in range(3))
    inbox, keeper = Inbox(), Keeper()
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("copy", inbox)
        b.on_transfer("keep", keeper)
        pool = b._transfers._buffers
        await a.transfer("b", first, streams=2, tag="copy")
        await a.transfer("b", second, streams=3, tag="copy")
        assert [data for _, data, _ in inbox.items] == [first, second]
        assert (pool.allocated, pool.reused) == (1, 1)
        await a.transfer("b", third, tag="keep")  # takes the pooled buffer, then keeps it
        await a.transfer("b", first, tag="copy")  # so this one needs a new buffer
        assert bytes(keeper.kept[0].raw()) == third, "a kept payload is not overwritten"
        assert (pool.allocated, pool.reused) == (2, 2)


async def test_transfer_buffer_pool_can_be_disabled(tmp_path: Path) -> None:
    inbox = Inbox()
    options = RuntimeOptions(transfer_buffer_pool=0)
    async with LocalCluster(tmp_path, options=options) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_transfer("", inbox)
        payloads = [os.urandom(2 * MiB) for _ in range(2)]
        for data in payloads:
            await a.transfer("b", data)
        assert [data for _, data, _ in inbox.items] == payloads
        assert b._transfers._buffers.reused == 0 and b._transfers._buffers.kept_bytes == 0
    with pytest.raises(ValueError, match="transfer_buffer_pool"):
        RuntimeOptions(transfer_buffer_pool=-1)
