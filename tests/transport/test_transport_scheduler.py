"""The chunk scheduler, fed events directly: work stealing, endgame, failures."""

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
    assert s.next_for(0) == 0
    assert s.next_for(1) == 1
    s.acked_chunk(1)
    assert s.next_for(1) == 0  # stream 1 helps with chunk 0
    assert s.next_for(2) is None  # already duplicated once
    assert s.streams[1].duplicates_sent == 1
    assert s.acked_chunk(0) and not s.acked_chunk(0)  # the second copy's ack is a no-op
    assert s.done


def test_a_failed_stream_requeues_its_unacknowledged_chunks_first():
    s = ChunkScheduler([10] * 5, endgame=False)
    a, b = s.next_for(0), s.next_for(0)
    s.acked_chunk(a)
    c = s.next_for(1)
    assert s.stream_failed(0) == [b]
    assert s.next_for(1) == b  # requeued at the front
    assert sorted([a, b, c, *drain(s, 1)]) == [0, 1, 2, 3, 4]


def test_a_chunk_duplicated_on_a_stream_that_fails_stays_with_the_other_carrier():
    s = ChunkScheduler([10])
    assert s.next_for(0) == 0
    assert s.next_for(1) == 0  # endgame duplicate
    assert s.stream_failed(1) == [0]
    assert s.next_for(2) == 0  # free to be duplicated again, since stream 1 is gone
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
