"""Volatile records (``Stream.send(..., volatile=True)``): data the caller goes on writing
during the send, as a running guest writes the memory a live migration sends.

The race they exist for is injected deterministically: a "guest" rewrites every byte of the
data when the stream hands a piece to the socket, i.e. after the piece was checksummed and
before the kernel copies it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from _backend_testkit import wait_until

from novacron.backends import LocalCluster
from novacron.backends.tcp import records, streams, wire
from novacron.backends.tcp.framing import encode_frame
from novacron.runtime import Message, codec

PIECE = records.CHECKSUM_PIECE


class Memory(Message, tag="backend-test/volatile-memory"):
    seq: int


async def send_while_the_guest_writes(tmp_path: Path, *, volatile: bool, writes: int):
    """Send 3.5 pieces of memory whose every byte flips as each of the first ``writes`` sends
    reaches the socket; returns (what the receiver got, the memory's versions, sender, receiver)."""
    got: list[bytes] = []
    memory = bytearray(os.urandom(3 * PIECE + PIECE // 2))
    versions = [bytes(memory)]
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Memory, lambda src, header, data: got.append(bytes(data)))
        stream = await a.open_stream("b")
        send_all = stream._io.send_all

        async def guest_writes_then_send(buffers, stall):  # type: ignore[no-untyped-def]
            if len(versions) <= writes:
                flipped = np.frombuffer(memory, np.uint8)
                flipped ^= 0xFF
                versions.append(bytes(memory))
            await send_all(buffers, stall)

        stream._io.send_all = guest_writes_then_send
        await stream.send(Memory(1), memory, volatile=volatile)
        await wait_until(lambda: got or b.stats.rejected, what="the record or its rejection")
        stream.close()
        return got, versions, a, b


async def test_a_volatile_record_that_changed_is_voided_and_sent_again_from_a_copy(tmp_path: Path) -> None:
    # the guest writes during the whole first attempt (5 sends: 4 pieces and the trailer) and
    # into the second one's first piece
    got, versions, sender, receiver = await send_while_the_guest_writes(tmp_path, volatile=True, writes=6)
    assert sum(receiver.stats.rejected.values()) == 0
    assert sender.stats.records_voided == receiver.stats.records_voided == 1
    (data,) = got
    # the second attempt copies each piece before its checksum: what arrives is each piece as
    # it was when copied (piece 0 before the guest's last write, the others after it)
    assert data[:PIECE] == versions[5][:PIECE]
    assert data[PIECE:] == versions[6][PIECE:]
    assert sender.stats.records_sent == receiver.stats.records_received == 1


async def test_a_volatile_record_that_did_not_change_goes_once_straight_from_memory(tmp_path: Path) -> None:
    got, versions, sender, receiver = await send_while_the_guest_writes(tmp_path, volatile=True, writes=0)
    assert got == [versions[0]]
    assert sender.stats.records_voided == receiver.stats.records_voided == 0
    assert sender.stats.record_bytes_sent == len(versions[0])


async def test_the_same_race_without_volatile_is_caught_as_a_corrupt_record(tmp_path: Path) -> None:
    got, _, _, receiver = await send_while_the_guest_writes(tmp_path, volatile=False, writes=1)
    assert got == [], "bytes that changed after their checksum are never delivered"
    assert receiver.stats.rejected["checksum_mismatch"] == 1


@pytest.mark.parametrize("volatile", [False, True])
async def test_data_that_does_not_change_arrives_the_same_either_way(tmp_path: Path, volatile: bool) -> None:
    got: list[bytes] = []
    data = os.urandom(2 * PIECE + 123)
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Memory, lambda src, header, payload: got.append(bytes(payload)))
        stream = await a.open_stream("b")
        for seq in range(3):
            await stream.send(Memory(seq), memoryview(data)[seq:], volatile=volatile)
        await stream.send(Memory(3), b"", volatile=volatile)
        await wait_until(lambda: len(got) == 4, what="four records")
        stream.close()
    assert got == [data[seq:] for seq in range(3)] + [b""]


async def test_a_void_record_is_discarded_unread_and_the_stream_goes_on(tmp_path: Path) -> None:
    """As a peer sees it: a record whose trailer says void is skipped, whatever its checksum."""
    got: list[int] = []
    async with LocalCluster(tmp_path) as cluster:
        b = await cluster.add_node("b")
        b.on_stream(Memory, lambda src, header, data: got.append(header.seq))
        cluster.directory.register("a", "127.0.0.1", 1)  # known, so its hello is accepted
        crc = streams.CHECKSUMS[streams.PREFERRED_CHECKSUM]

        def record(seq: int, data: bytes, flags: int, checksum: int | None = None) -> bytes:
            header = codec.encode(Memory(seq))
            envelope = wire.RecordEnvelope(header=header, length=len(data))
            value = crc(data, crc(header, 0)) if checksum is None else checksum
            return encode_frame(wire.encode(envelope)) + data + wire.RECORD_TRAILER.pack(value, flags)

        hello = wire.StreamHello(
            version=wire.PROTOCOL_VERSION, node_id="a", checksum=streams.PREFERRED_CHECKSUM
        )
        blob = (
            wire.STREAM_PREAMBLE
            + encode_frame(wire.encode(hello))
            + record(1, os.urandom(1000), wire.RECORD_VOID, checksum=12345)
            + record(2, os.urandom(1000), 0)
        )
        with socket.create_connection(b.address, timeout=10) as sock:
            sock.sendall(blob)
            await wait_until(lambda: got == [2], what="the valid record")
        assert b.stats.records_voided == 1 and sum(b.stats.rejected.values()) == 0


class Log:
    """A writer's log (``novacron.runtime.WriteLog``) with one version for all the data."""

    def __init__(self) -> None:
        self.current = 0

    def version(self, start: int, stop: int) -> int | None:
        return self.current


async def checksum_passes(
    tmp_path: Path, volatile, data: bytes, change=None
) -> tuple[int, list[bytes], object]:
    """Send ``data`` as one record; returns (data checksum passes at the sender, what arrived, receiver)."""
    got: list[bytes] = []
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Memory, lambda src, header, payload: got.append(bytes(payload)))
        stream = await a.open_stream("b")
        passes = 0
        checksum = stream.checksum

        def counting(piece, crc):  # type: ignore[no-untyped-def]
            nonlocal passes
            passes += len(piece) == PIECE  # (not the header's)
            return checksum(piece, crc)

        stream.checksum = counting
        if change is not None:
            send_all = stream._io.send_all

            async def write_then_send(buffers, stall):  # type: ignore[no-untyped-def]
                change()
                await send_all(buffers, stall)

            stream._io.send_all = write_then_send
        await stream.send(Memory(1), data, volatile=volatile)
        await wait_until(lambda: got or b.stats.rejected, what="the record or its rejection")
        stream.close()
        return passes, got, b


async def test_a_write_log_that_saw_no_write_spares_the_second_checksum(tmp_path: Path) -> None:
    data = os.urandom(3 * PIECE)
    passes, got, _ = await checksum_passes(tmp_path, True, data)
    assert passes == 6 and got == [data], "without a log: every piece checksummed twice"
    passes, got, _ = await checksum_passes(tmp_path, Log(), data)
    assert passes == 3 and got == [data], "the log says nobody wrote: once"


async def test_a_write_log_that_saw_a_write_gets_the_piece_checked_and_the_record_voided(
    tmp_path: Path,
) -> None:
    memory = bytearray(os.urandom(3 * PIECE))
    log = Log()

    def guest_write() -> None:  # the guest writes, and its log says so
        np.frombuffer(memory, np.uint8)[:] ^= 0xFF
        log.current += 2

    writes = iter([guest_write] + [lambda: None] * 100)
    passes, got, receiver = await checksum_passes(tmp_path, log, memory, change=lambda: next(writes)())
    assert receiver.stats.records_voided == 1 and got == [bytes(memory)]


async def test_a_write_log_that_lies_makes_a_corrupt_record_never_wrong_data(tmp_path: Path) -> None:
    memory = bytearray(os.urandom(2 * PIECE))

    def unlogged_write() -> None:
        np.frombuffer(memory, np.uint8)[:] ^= 0xFF

    passes, got, receiver = await checksum_passes(tmp_path, Log(), memory, change=unlogged_write)
    assert got == [] and receiver.stats.rejected["checksum_mismatch"] == 1


async def test_a_volatile_record_moved_by_a_worker_thread_is_voided_and_resent_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "BIG_RECORD", PIECE)  # big records among busy streams: a thread sends
    got: list[bytes] = []
    memory = bytearray(os.urandom(2 * PIECE))
    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"])
        b.on_stream(Memory, lambda src, header, data: got.append(bytes(data)))
        stream = await a.open_stream("b")
        blocking_send = stream._io.blocking_send
        writes = [1]

        def guest_writes_then_send(buffers, stall):  # type: ignore[no-untyped-def]
            if writes:  # once, as the first piece goes
                writes.pop()
                np.frombuffer(memory, np.uint8)[:] ^= 0xFF
            blocking_send(buffers, stall)

        stream._io.blocking_send = guest_writes_then_send
        a._streams.activity.sending += 1  # as if another stream were busy
        try:
            await stream.send(Memory(1), memory, volatile=True)
        finally:
            a._streams.activity.sending -= 1
        await wait_until(lambda: got, what="the record")
        stream.close()
    assert got == [bytes(memory)] and a.stats.records_voided == b.stats.records_voided == 1
