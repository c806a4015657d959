"""Simulated storage: a crash keeps exactly what was synced."""

import pytest
import simpy

from novacron.sim.kernel import Call
from novacron.sim.storage import SimStorage


@pytest.fixture
def env():
    return simpy.Environment()


def test_log_indexes_start_at_one_and_the_empty_log_has_last_below_first(env):
    s = SimStorage(env)
    assert (s.first_index, s.last_index) == (1, 0)
    assert s.append([b"a", b"b"]) == 2
    assert s.entries(1) == [b"a", b"b"]
    assert s.entries(2, 3) == [b"b"]


def test_truncate_drops_a_suffix_and_compact_drops_a_prefix(env):
    s = SimStorage(env)
    s.append([b"1", b"2", b"3", b"4"])
    s.truncate(3)
    assert s.entries(1) == [b"1", b"2"]
    s.compact(2)
    assert (s.first_index, s.last_index) == (2, 2)
    assert s.entries(2) == [b"2"]
    with pytest.raises(ValueError, match="compacted"):
        s.entries(1)


@pytest.mark.parametrize("op", ["truncate", "compact"])
def test_out_of_range_log_operations_are_rejected(env, op):
    s = SimStorage(env)
    s.append([b"x"])
    with pytest.raises(ValueError, match=op):
        getattr(s, op)(5)


def test_values_must_be_bytes(env):
    s = SimStorage(env)
    with pytest.raises(TypeError, match="bytes"):
        s.put("k", "text")
    with pytest.raises(TypeError, match="sequence of records"):
        s.append(b"single")


def test_crash_keeps_synced_writes_and_loses_the_rest(env):
    s = SimStorage(env)
    s.put("term", b"3")
    s.append([b"e1"])
    s.sync()
    s.put("term", b"4")
    s.append([b"e2"])
    s.delete("missing")
    s.crash()
    assert s.get("term") == b"3"
    assert s.entries(1) == [b"e1"]


def test_a_sync_in_flight_at_the_crash_is_lost(env):
    s = SimStorage(env, fsync_latency=0.01)
    s.put("k", b"v")
    done = s.sync()
    Call(env, 0.005, s.crash)
    env.run()
    assert not done.done()
    assert s.get("k") is None


def test_slow_syncs_complete_in_order_even_if_latency_drops(env):
    s = SimStorage(env, fsync_latency=1.0)
    s.put("k", b"old")
    first = s.sync()
    s.fsync_latency = 0.0
    s.put("k", b"new")
    second = s.sync()
    env.run()
    assert first.done() and second.done()
    s.crash()
    assert s.get("k") == b"new"
