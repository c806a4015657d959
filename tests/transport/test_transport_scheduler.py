"""The chunk scheduler, fed events directly: work stealing, endgame, failures."""

import pytest

from novacron.transport import ChunkScheduler


def drain(s: ChunkScheduler, stream: int) -> list[int]:
    got = []
    while (c := s.next_for(stream)) is not None:
        got.append(c)
    return got


def test_streams_pull_chunks_in_order_from_one_queue():
    s = ChunkScheduler([10] * 4, endgame=False)
    assert [s.next_for(0), s.next_for(1), s.next_for(0), s.next_for(1)] == [0, 1, 2, 3]
    assert s.next_for(0) is None


def test_a_fast_stream_takes_more_chunks_work_stealing():
    s = ChunkScheduler([10] * 10, endgame=False)
    slow = s.next_for(1)
    fast = []
    while (c := s.next_for(0)) is not None:
        fast.append(c)
        s.acked_chunk(c)
    assert slow == 0 and fast == list(range(1, 10))
    assert s.streams[0].bytes_sent == 90 and s.streams[1].bytes_sent == 10


def test_endgame_duplicates_a_straggling_chunk_once():
    s = ChunkScheduler([10] * 2)
    assert s.next_for(0, now=0.0) == 0
    assert s.next_for(1, now=0.0) == 1
    s.acked_chunk(1, now=1.0)  # the slowest delivery so far: 1 s
    assert s.next_for(1, now=1.5) is None, "chunk 0 is not late yet (in flight 1.5 s < 2 x 1 s)"
    assert s.endgame_at(1) == 2.0
    assert s.next_for(1, now=2.0) == 0  # stream 1 helps with chunk 0
    assert s.next_for(2, now=9.0) is None  # already duplicated once
    assert s.streams[1].duplicates_sent == 1
    assert s.acked_chunk(0, now=9.5) and not s.acked_chunk(0)  # the second copy's ack is a no-op
    assert s.done


def test_a_chunk_is_late_only_against_the_slowest_delivery_so_far():
    s = ChunkScheduler([10] * 4, straggler_factor=2.0)
    assert [s.next_for(0, now=0.0), s.next_for(1, now=0.0)] == [0, 1]
    assert [s.next_for(0, now=0.1), s.next_for(1, now=0.1)] == [2, 3]
    assert s.endgame_at(1) is None, "stream 1 still has chunks in flight"
    s.acked_chunk(1, now=0.3)
    s.acked_chunk(3, now=0.5)  # sent at 0.1: 0.4 s, the slowest so far
    assert s.slowest_delivery == 0.4
    assert s.next_for(1, now=0.7) is None, "chunk 0 (sent at 0) is late only after 0.8 s"
    assert s.endgame_at(1) == 0.8, "the oldest chunk turns late first"
    assert s.next_for(1, now=0.8) == 0
    assert s.endgame_at(1) is None, "its own copy is in flight again"


def test_no_chunk_is_late_before_any_delivery_and_a_duplicate_sets_no_pace():
    s = ChunkScheduler([10] * 2)
    assert [s.next_for(0, now=0.0), s.next_for(1, now=0.0)] == [0, 1]
    s.stream_failed(1)
    assert s.next_for(1, now=5.0) == 1, "a failed stream's chunk is requeued, not late"
    assert s.endgame_at(2) is None, "nothing delivered yet: no pace to call a chunk late by"
    assert s.next_for(2, now=100.0) is None
    s.acked_chunk(1, now=5.1)
    assert s.slowest_delivery is not None and abs(s.slowest_delivery - 0.1) < 1e-9
    assert s.next_for(2, now=100.0) == 0  # chunk 0 has been in flight 100 s
    s.acked_chunk(0, now=101.0)  # a duplicated chunk: its 101 s is not a delivery time
    assert abs(s.slowest_delivery - 0.1) < 1e-9


def test_deliveries_faster_than_the_clock_ticks_still_set_a_pace():
    # a millisecond clock (uvloop's) measures a sub-millisecond delivery as 0
    s = ChunkScheduler([10] * 2, min_delivery=0.001)
    assert [s.next_for(0, now=0.0), s.next_for(1, now=0.0)] == [0, 1]
    s.acked_chunk(1, now=0.0)
    assert s.slowest_delivery == 0.0
    assert s.next_for(1, now=0.001) is None, "not late one clock tick later"
    assert s.endgame_at(1) == 0.002
    assert s.next_for(1, now=0.002) == 0


def test_a_straggler_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="straggler_factor"):
        ChunkScheduler([10], straggler_factor=0.5)


def test_a_failed_stream_requeues_its_unacknowledged_chunks_first():
    s = ChunkScheduler([10] * 5, endgame=False)
    a, b = s.next_for(0), s.next_for(0)
    s.acked_chunk(a)
    c = s.next_for(1)
    assert s.stream_failed(0) == [b]
    assert s.next_for(1) == b  # requeued at the front
    assert sorted([a, b, c, *drain(s, 1)]) == [0, 1, 2, 3, 4]


def test_a_chunk_duplicated_on_a_stream_that_fails_stays_with_the_other_carrier():
    s = ChunkScheduler([10] * 2)
    assert s.next_for(0, now=0.0) == 0
    assert s.next_for(1, now=0.0) == 1
    s.acked_chunk(1, now=1.0)
    assert s.next_for(1, now=3.0) == 0  # endgame duplicate
    assert s.stream_failed(1) == [0]
    assert s.next_for(2, now=3.0) == 0  # free to be duplicated again, since stream 1 is gone
    s.acked_chunk(0)
    assert s.done


def test_receiver_restart_sends_everything_again():
    s = ChunkScheduler([10] * 3, endgame=False)
    for c in drain(s, 0):
        s.acked_chunk(c)
    assert s.done
    s.restart()
    assert not s.done and drain(s, 0) == [0, 1, 2]


def test_bogus_and_repeated_acks_are_ignored():
    s = ChunkScheduler([10] * 2)
    assert not s.acked_chunk(7)
    assert s.acked_chunk(0)
    assert not s.acked_chunk(0)
    assert s.missing() == [1]
