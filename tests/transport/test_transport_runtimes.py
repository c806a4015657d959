"""AMST and the data plane on both runtimes: intact data, and a stream failure mid-transfer."""

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from harness import AsyncioHarness, SimHarness  # noqa: E402

from novacron.config import DWCPConfig  # noqa: E402
from novacron.transport import AMST, DataPlane  # noqa: E402

MiB = 1 << 20


@pytest.fixture(params=["sim", "asyncio"])
def harness(request, tmp_path):
    h = (SimHarness if request.param == "sim" else AsyncioHarness)(tmp_path)
    yield h
    h.close()


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
