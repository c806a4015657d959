"""The min-RTT filter behind ``AMST.round_trip``: the smallest recent sample, forgotten in time."""

import pytest

from novacron.transport.round_trip import MinFilter


def test_nothing_is_known_before_the_first_sample():
    assert MinFilter().value(0.0) is None


def test_the_estimate_is_the_smallest_sample_of_the_memory():
    f = MinFilter(memory=10.0)
    for t, rtt in [(0.0, 0.30), (1.0, 0.12), (2.0, 0.50), (3.0, 0.20)]:
        f.add(t, rtt)
    assert f.value(3.0) == 0.12  # queueing delay (0.50) does not raise it


def test_a_sample_leaves_the_minimum_once_older_than_the_memory():
    """A path whose round trip grew (a re-route) is noticed within ``memory`` seconds."""
    f = MinFilter(memory=10.0)
    f.add(0.0, 0.05)
    f.add(5.0, 0.20)
    f.add(8.0, 0.25)
    assert f.value(9.0) == 0.05
    assert f.value(10.5) == 0.20
    assert f.value(15.5) == 0.25


def test_when_every_sample_is_old_the_latest_is_kept():
    """A round trip measured a while ago is a better guess than none (a sender idle for a minute)."""
    f = MinFilter(memory=10.0)
    f.add(0.0, 0.05)
    f.add(1.0, 0.08)
    assert f.value(100.0) == 0.08


@pytest.mark.parametrize("memory", [0.0, -1.0, float("nan")])
def test_the_memory_must_be_positive(memory):
    with pytest.raises(ValueError, match="memory must be > 0"):
        MinFilter(memory)
