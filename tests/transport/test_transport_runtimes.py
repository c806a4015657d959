"""AMST and the data plane on both runtimes: intact data, and a stream failure mid-transfer."""

import hashlib

import numpy as np
import pytest

from novacron.config import DWCPConfig  # noqa: E402
from novacron.runtime import TransferError  # noqa: E402
from novacron.transport import AMST, DataPlane, TransferRefused  # noqa: E402

MiB = 1 << 20


def receiver(digests):
    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024, query_interval=0.2)
        amst.on_receive("blob", lambda src, p: digests.append(hashlib.sha256(p).hexdigest()))
        return amst

    return app


def test_amst_moves_a_payload_intact_over_many_streams(harness):
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def scenario(rt):
        payload = rt.random.randbytes(16 * MiB)
        report = await rt.app.send("n1", payload, streams=8, tag="blob")
        return report, hashlib.sha256(payload).hexdigest()

    report, expected = harness.run("n0", scenario, timeout=60)
    assert digests == [expected]
    assert report.streams == 8 and report.chunks == 64 and report.nbytes == 16 * MiB


def test_a_sender_that_restarted_is_not_taken_for_its_previous_incarnation(harness):
    """Transfer ids are numbered from 1 again after a restart, while the receiver remembers the
    ones it finished: without the node's boot id in them, the first new transfer was acknowledged
    as a duplicate of the old one, reported complete, and never delivered."""
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def send(rt, fill):
        payload = bytes([fill]) * MiB
        await rt.app.send("n1", payload, streams=1, tag="blob")
        return hashlib.sha256(payload).hexdigest()

    first = harness.run("n0", lambda rt: send(rt, 1))
    before = harness.runtime("n0").boot_id
    harness.crash("n0")
    harness.restart("n0")
    assert harness.runtime("n0").boot_id != before
    second = harness.run("n0", lambda rt: send(rt, 2))
    assert digests == [first, second]


def test_amst_resends_the_chunks_of_a_stream_that_fails_mid_transfer(harness):
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def scenario(rt):
        payload = rt.random.randbytes(64 * MiB)
        if harness.kind == "sim":
            # Virtual time is deterministic: kill a stream at the first acknowledgement,
            # when most of the transfer is still to go.
            sent = rt.spawn(rt.app.send("n1", payload, streams=4, tag="blob"))
            outgoing = rt.app._outgoing
            while not outgoing or next(iter(outgoing.values())).scheduler.acked < 1:
                await rt.sleep(0.001)
            harness.sim.faults.kill_streams("n0", "n1", count=1)
        else:
            # Real time is not: the receiver resets the stream that delivers its 8th
            # chunk (of 256), a point fixed in the data rather than in time.
            harness.runtime("n1").reset_streams(1, after_records=8)
            sent = rt.spawn(rt.app.send("n1", payload, streams=4, tag="blob"))
        return await sent, hashlib.sha256(payload).hexdigest()

    report, expected = harness.run("n0", scenario, timeout=120)
    assert digests == [expected]
    assert report.streams_failed >= 1
    assert report.resent >= 1  # the broken stream's unacknowledged chunks went out again


def test_the_data_plane_compresses_and_delivers_on_both_runtimes(harness):
    got = []

    def app(rt):
        plane = DataPlane(rt, DWCPConfig(forced_mode="internet"))
        plane.on_receive("doc", lambda src, p: got.append(bytes(p)))
        return plane

    harness.start(["n0", "n1"], app)
    text = b"the quick brown fox jumps over the lazy dog; " * 40000

    async def scenario(rt):
        return await rt.app.transfer("n1", text, tag="doc")

    result = harness.run("n0", scenario, timeout=60)
    assert got == [text]
    assert result.codec.startswith(("zstd", "lz4")) and result.ratio < 0.1


def test_chunks_are_received_in_place_without_a_copy(harness):
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def scenario(rt):
        payload = rt.random.randbytes(8 * MiB)
        await rt.app.send("n1", payload, streams=2, tag="blob")
        return hashlib.sha256(payload).hexdigest()

    expected = harness.run("n0", scenario, timeout=60)
    assert digests == [expected]
    amst = harness.runtime("n1").app
    assert amst.buffers.allocated == 1
    assert amst.chunks_placed == 32  # every 256 KiB chunk landed in place, none was copied


def test_a_volatile_payload_written_during_the_transfer_arrives_chunk_by_chunk_as_one_version(harness):
    received = []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024, query_interval=0.2)
        amst.on_receive("live", lambda src, p: received.append(bytes(p)))
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        memory = bytearray(rt.random.randbytes(8 * MiB))
        original = bytes(memory)
        words = np.frombuffer(memory, np.uint8)
        sending = rt.spawn(rt.app.send("n1", memory, streams=4, tag="live", volatile=True))
        flips = 0
        while not sending.done():  # a guest rewriting all of its memory as often as it can run
            words ^= 0xFF
            flips += 1
            await rt.sleep(0.0005)
        await sending
        return original, flips

    original, flips = harness.run("n0", scenario, timeout=60)
    (data,) = received
    assert flips > 1 and len(data) == len(original)
    chunks = np.frombuffer(data, np.uint8).reshape(-1, 256 * 1024)
    before = np.frombuffer(original, np.uint8).reshape(-1, 256 * 1024)
    as_sent = (chunks == before).all(axis=1) | (chunks == before ^ 0xFF).all(axis=1)
    assert as_sent.all(), "each chunk is one version of the memory, never a mix"
    if harness.kind == "asyncio":  # and no record was taken for corrupt on the way
        assert sum(harness.runtime("n1").stats.rejected.values()) == 0


def test_verify_chunks_refuses_a_volatile_payload(harness):
    harness.start(["n0", "n1"], receiver([]))

    async def scenario(rt):
        checking = AMST(rt, verify_chunks=True)
        with pytest.raises(ValueError, match="volatile"):
            await checking.send("n1", b"x" * 1024, tag="blob", volatile=True)

    harness.run("n0", scenario, timeout=60)


def test_streams_outlive_a_transfer_and_the_next_one_reuses_them(harness):
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def scenario(rt):
        payloads = [rt.random.randbytes(4 * MiB) for _ in range(3)]
        for payload in payloads:
            await rt.app.send("n1", payload, streams=4, tag="blob")
        return [hashlib.sha256(p).hexdigest() for p in payloads]

    expected = harness.run("n0", scenario, timeout=60)
    assert digests == expected
    amst = harness.runtime("n0").app
    assert amst.streams_opened == 4, "the second and third transfers opened no stream"
    assert amst.idle_streams == 4
    amst.close()
    assert amst.idle_streams == 0


def test_a_broken_idle_stream_is_not_reused(harness):
    digests = []
    harness.start(["n0", "n1"], receiver(digests))

    async def scenario(rt):
        await rt.app.send("n1", rt.random.randbytes(MiB), streams=2, tag="blob")
        (_, broken), _ = rt.app._idle[("n1", None)]
        broken.close()  # as if it had failed while idle
        payload = rt.random.randbytes(MiB)
        report = await rt.app.send("n1", payload, streams=2, tag="blob")
        return report, hashlib.sha256(payload).hexdigest()

    report, expected = harness.run("n0", scenario, timeout=60)
    assert digests[-1] == expected
    assert report.streams_failed == 0 and harness.runtime("n0").app.streams_opened == 3


def test_idle_streams_are_closed_after_the_idle_timeout(harness):
    digests = []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024, idle_timeout=0.2)
        amst.on_receive("blob", lambda src, p: digests.append(len(p)))
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        await rt.app.send("n1", b"x" * MiB, streams=2, tag="blob")
        kept = rt.app.idle_streams
        await rt.sleep(0.3)
        await rt.app.send("n1", b"y" * MiB, streams=2, tag="blob")
        return kept

    assert harness.run("n0", scenario, timeout=60) == 2
    assert digests == [MiB, MiB]
    assert harness.runtime("n0").app.streams_opened == 4, "the stale streams were replaced"


def test_an_awaitable_handler_keeps_the_payload_until_it_is_done(harness):
    seen = []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024)

        async def slow(src, payload):
            await rt.sleep(0.2)  # e.g. rt.offload of work on the payload
            seen.append(hashlib.sha256(payload).hexdigest())

        amst.on_receive("blob", slow)
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        payload = rt.random.randbytes(2 * MiB)
        started = rt.now()
        await rt.app.send("n1", payload, streams=2, tag="blob")
        return rt.now() - started, hashlib.sha256(payload).hexdigest()

    elapsed, expected = harness.run("n0", scenario, timeout=60)
    assert seen == [expected], "the payload was intact after the handler's await"
    assert elapsed >= 0.2, "the sender heard of the transfer only once the handler was done"


def test_an_awaitable_handler_that_fails_fails_the_transfer_with_its_reason(harness):
    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024)

        async def broken(src, payload):
            raise ValueError("no room for these pages")

        amst.on_receive("blob", broken)
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        with pytest.raises(TransferError, match="no room for these pages"):
            await rt.app.send("n1", b"z" * MiB, streams=2, tag="blob")
        return True

    assert harness.run("n0", scenario, timeout=60)


def test_a_placed_transfer_lands_in_the_receivers_own_memory(harness):
    memory = bytearray(8 * MiB)
    got = []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024)

        def place(src, size, meta):
            offset = int.from_bytes(meta, "little")
            return memoryview(memory)[offset : offset + size]

        amst.on_placed("run", place, lambda src, meta, p: got.append((meta, hashlib.sha256(p).hexdigest())))
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        payload = rt.random.randbytes(4 * MiB)
        meta = (2 * MiB).to_bytes(4, "little")
        await rt.app.send("n1", payload, streams=4, tag="run", meta=meta)
        return payload, meta

    payload, meta = harness.run("n0", scenario, timeout=60)
    assert got == [(meta, hashlib.sha256(payload).hexdigest())]
    amst = harness.runtime("n1").app
    if harness.kind == "asyncio":  # (the simulator moves no real bytes into place)
        assert bytes(memory[2 * MiB : 6 * MiB]) == payload and not any(memory[: 2 * MiB])
        assert amst.chunks_placed == 16, "every chunk was received in place"
    assert amst.buffers.allocated == 0, "no buffer of AMST's own was needed"


def test_a_placement_that_declines_or_does_not_fit_falls_back_to_a_buffer(harness):
    got = []
    answers = iter([None, memoryview(bytearray(10))])  # declines, then the wrong size

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024)
        amst.on_placed(
            "run", lambda src, size, meta: next(answers), lambda src, meta, p: got.append(bytes(p))
        )
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        payloads = [rt.random.randbytes(MiB) for _ in range(2)]
        for payload in payloads:
            await rt.app.send("n1", payload, streams=2, tag="run")
        return payloads

    assert got == harness.run("n0", scenario, timeout=60)
    assert harness.runtime("n1").app.buffers.allocated == 1


def test_a_placement_can_refuse_a_transfer_at_its_first_chunk(harness):
    """A receiver that knows from a transfer's meta that it will not take it says so at once: the
    sender's send fails with the reason without pushing the whole payload, nothing is handed to
    the handler, and the next transfer of the tag goes through."""
    got, asked = [], []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024, query_interval=0.2)

        def place(src, size, meta):
            asked.append(meta)
            if meta == b"no":
                raise TransferRefused("not this one")
            return None

        amst.on_placed("run", place, lambda src, meta, p: got.append(bytes(meta)))
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        acked = []
        with pytest.raises(TransferError, match="refused: not this one"):
            await rt.app.send(
                "n1", rt.random.randbytes(64 * MiB), streams=2, tag="run", meta=b"no", progress=acked.append
            )
        await rt.app.send("n1", rt.random.randbytes(MiB), streams=2, tag="run", meta=b"yes")
        return sum(acked)

    acked = harness.run("n0", scenario, timeout=60)
    assert got == [b"yes"] and asked == [b"no", b"yes"]
    assert acked == 0, "no chunk of a refused transfer is acknowledged"
    receiver = harness.runtime("n1").app
    assert receiver.buffers.allocated == 1  # the second transfer's; the refused one took none


def test_a_receive_handler_can_refuse_a_payload_and_the_sender_hears_why(harness):
    """(A destination refusing the batches of a migration it has given up: the source stops at
    its next batch instead of sending the rest of its rounds into the void.)"""
    got = []

    def app(rt):
        amst = AMST(rt, chunk_size=256 * 1024)

        def handler(src, meta, payload):
            if meta == b"no":
                raise TransferRefused("that job is over here")
            got.append(bytes(meta))

        amst.on_receive_meta("job", handler)
        return amst

    harness.start(["n0", "n1"], app)

    async def scenario(rt):
        with pytest.raises(TransferError, match="refused by n1: that job is over here"):
            await rt.app.send("n1", rt.random.randbytes(MiB), streams=2, tag="job", meta=b"no")
        await rt.app.send("n1", rt.random.randbytes(MiB), streams=2, tag="job", meta=b"yes")

    harness.run("n0", scenario, timeout=60)
    assert got == [b"yes"]
    assert harness.runtime("n1").app.buffers.allocated == 1  # the refused payload's buffer came back


def test_amst_measures_the_round_trip_to_a_peer(harness):
    """A probe echoed by the peer's AMST; the estimate is unknown before the first echo."""
    harness.start(["n0", "n1"], receiver([]))

    async def scenario(rt):
        before = rt.app.round_trip("n1")
        for _ in range(3):
            rt.app.probe_round_trip("n1")
            await rt.sleep(0.05)
        return before, rt.app.round_trip("n1")

    before, measured = harness.run("n0", scenario, timeout=30)
    assert before is None
    assert measured is not None and 0 <= measured < 0.05
