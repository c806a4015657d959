"""AMST's chunk sizes for large payloads, the endgame's bound on duplicates, and
its checksum table."""

import zlib

import pytest
import xxhash

from novacron.runtime import VirtualPayload, payload_size
from novacron.sim import Simulation, topologies
from novacron.transport import AMST, DEFAULT_CHUNK, ChunkScheduler, checksum
from novacron.transport import amst as amst_module

MiB = 1 << 20


class _Hooks:
    """Just enough of a runtime for AMST's constructor."""

    node_id = "x"

    def on_stream(self, *args, **kwargs) -> None:
        pass

    def on_message(self, *args, **kwargs) -> None:
        pass


def test_small_payloads_keep_the_base_chunk_size() -> None:
    amst = AMST(_Hooks())
    assert amst.chunk_for(0, 4) == amst.chunk_for(MiB, 4) == amst.chunk_for(16 * MiB, 8) == DEFAULT_CHUNK


def test_large_payloads_get_larger_chunks_but_every_stream_still_gets_many() -> None:
    amst = AMST(_Hooks())
    per_stream = amst_module.CHUNKS_PER_STREAM
    assert amst.chunk_for(1 << 30, 1) == amst_module.MAX_CHUNK
    assert amst.chunk_for(1 << 30, 8) == amst_module.MAX_CHUNK
    for size, streams in [(64 * MiB, 2), (100 * MiB + 3, 3), (1 << 30, 64), (5 << 30, 16)]:
        chunk = amst.chunk_for(size, streams)
        assert chunk % DEFAULT_CHUNK == 0 and DEFAULT_CHUNK <= chunk <= amst_module.MAX_CHUNK
        assert chunk == DEFAULT_CHUNK or size // chunk >= streams * per_stream


def test_one_chunk_size_for_all_when_asked() -> None:
    amst = AMST(_Hooks(), chunk_size=256 * 1024, max_chunk_size=256 * 1024)
    assert amst.chunk_for(1 << 30, 1) == 256 * 1024
    assert AMST(_Hooks(), chunk_size=8 * MiB).chunk_for(1 << 30, 1) == 8 * MiB  # max grows to fit


def test_a_large_payload_travels_in_larger_chunks_in_the_simulator() -> None:
    topo = topologies.pair(rtt=0.01, bandwidth=10e9)
    sim = Simulation(topo, seed=1)
    received = []

    def app(rt):
        amst = AMST(rt)
        amst.on_receive("blob", lambda src, p: received.append(p))
        return amst

    sim.start(app)

    async def go(rt):
        return await rt.app.send("y", VirtualPayload(512 * MiB), streams=4, tag="blob")

    report = sim.run_until_complete("x", go, timeout=600)
    assert report.chunks == 512 * MiB // amst_module.MAX_CHUNK
    assert len(received) == 1 and payload_size(received[0]) == 512 * MiB


def test_the_endgame_waits_until_a_stream_has_delivered_its_own_chunks() -> None:
    s = ChunkScheduler([10] * 4)
    assert [s.next_for(0, 0.0), s.next_for(0, 0.0), s.next_for(1, 0.0), s.next_for(1, 0.0)] == [0, 1, 2, 3]
    assert s.next_for(1, 9.0) is None, "stream 1 still has chunks in flight: a copy would queue behind them"
    s.acked_chunk(2, 1.0)
    assert s.next_for(1, 9.0) is None
    s.acked_chunk(3, 1.0)
    assert s.next_for(1, 9.0) == 0, "now idle, it helps with the oldest late chunk in flight elsewhere"
    assert s.next_for(1, 9.0) is None, "one copy at a time: it waits for that one's fate"
    s.acked_chunk(0, 9.5)
    assert s.next_for(1, 9.5) == 1
    assert sum(p.duplicates_sent for p in s.streams.values()) == 2


def test_chunks_are_checksummed_with_xxh3_64_by_default() -> None:
    data = bytes(range(256)) * 4099
    assert checksum.PREFERRED == checksum.XXH3
    assert checksum.compute(checksum.XXH3, data) == xxhash.xxh3_64_intdigest(data)


@pytest.mark.parametrize("size", [0, 1, 4096, 3 * MiB + 7])
def test_crc32_is_zlibs_whichever_library_computes_it(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert checksum.compute(checksum.CRC32, data) == zlib.crc32(data)
    assert checksum.compute(checksum.CRC32, memoryview(data)[1:]) == zlib.crc32(data[1:])
    with pytest.raises(ValueError, match="not available"):
        checksum.compute(99, data)
