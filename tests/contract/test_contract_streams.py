"""Streams (``rt.open_stream``): the primitive AMST builds on, alike on both runtimes."""

import hashlib

import pytest

from novacron.runtime import Message, Stream, TransferError


class Chunk(Message, tag="test-chunk"):
    index: int
    digest: str


class Done(Message, tag="test-done"):
    count: int
    digests: list[str]


def collector_app(rt):
    """Receive chunks on any stream; report what arrived when told to."""
    seen: list[tuple[int, str]] = []

    def on_chunk(src, header, data):
        assert hashlib.blake2b(data).hexdigest() == header.digest, "corrupt record"
        seen.append((header.index, hashlib.blake2b(data).hexdigest()))

    rt.on_stream(Chunk, on_chunk)
    rt.on_message(Done, lambda src, m: rt.send(src, Done(len(seen), [d for _, d in sorted(seen)])))


def test_records_arrive_in_order_on_a_stream_and_across_several(harness):
    harness.start(["n0", "n1"], collector_app)

    async def scenario(rt):
        streams = [await rt.open_stream("n1") for _ in range(3)]
        assert all(isinstance(s, Stream) and s.peer == "n1" for s in streams)
        sent = []
        for i in range(12):
            data = rt.random.randbytes(256 * 1024 + i)
            sent.append(hashlib.blake2b(data).hexdigest())
            await streams[i % 3].send(Chunk(i, sent[-1]), data)
        replies = []
        rt.on_message(Done, lambda src, m: replies.append(m))
        for _ in range(500):  # the last records may still be in flight: ask until all arrived
            rt.send("n1", Done(0, []))
            await rt.sleep(0.02)
            if replies and replies[-1].count == len(sent):
                break
        for s in streams:
            s.close()
        return replies[-1].digests, sent, all(s.closed for s in streams)

    got, sent, closed = harness.run("n0", scenario, timeout=60.0)
    assert got == sent
    assert closed


def test_an_open_cancelled_while_connecting_leaves_the_node_working(harness):
    """A caller may give up on ``open_stream`` (a cancelled task): the connection that completes
    afterwards must not break the runtime, and the next stream works."""
    harness.start(["n0", "n1"], collector_app)

    async def scenario(rt):
        opening = rt.spawn(rt.open_stream("n1"))
        await rt.sleep(0)  # the connection is under way
        opening.cancel()
        await rt.sleep(0.2)  # ... and completes, or not, after the cancel
        stream = await rt.open_stream("n1")
        data = b"after"
        await stream.send(Chunk(0, hashlib.blake2b(data).hexdigest()), data)
        stream.close()
        return opening.cancelled()

    assert harness.run("n0", scenario, timeout=30.0)


def test_opening_a_stream_to_a_crashed_peer_fails(harness):
    harness.start(["n0", "n1"])
    harness.crash("n1")

    async def scenario(rt):
        with pytest.raises(TransferError):
            await rt.open_stream("n1")
        return True

    assert harness.run("n0", scenario, timeout=120.0)


def test_sending_on_a_closed_stream_fails(harness):
    harness.start(["n0", "n1"], collector_app)

    async def scenario(rt):
        stream = await rt.open_stream("n1")
        stream.close()
        with pytest.raises(TransferError):
            await stream.send(Chunk(0, ""), b"x")
        return True

    assert harness.run("n0", scenario)
