"""Client sessions: a command retried with the same sequence number applies once."""

import pytest

from novacron.consensus import Command, Sessions
from novacron.consensus.kv import CompareAndSet, KVStore, Put, decode_result, encode_op
from novacron.consensus.sessions import STALE


def cmd(client, seq, op):
    return Command(client, seq, encode_op(op))


def test_a_retry_returns_the_first_result_without_applying_again():
    sm = Sessions(KVStore())
    first = sm.apply(cmd("c1", 1, CompareAndSet("k", None, b"v")))
    again = sm.apply(cmd("c1", 1, CompareAndSet("k", None, b"v")))
    assert again == first and decode_result(again).swapped
    assert sm.applied == 1


def test_an_older_command_than_the_last_applied_is_stale_and_ignored():
    sm = Sessions(KVStore())
    sm.apply(cmd("c1", 2, Put("k", b"new")))
    assert sm.apply(cmd("c1", 1, Put("k", b"old"))) == STALE
    assert sm.inner.data == {"k": b"new"}


def test_duplicate_reports_applied_commands_only():
    sm = Sessions(KVStore())
    assert sm.duplicate(cmd("c1", 1, Put("k", b"v"))) is None
    result = sm.apply(cmd("c1", 1, Put("k", b"v")))
    assert sm.duplicate(cmd("c1", 1, Put("k", b"v"))) == result
    assert sm.duplicate(cmd("c1", 2, Put("k", b"w"))) is None


def test_sessions_survive_a_snapshot():
    sm = Sessions(KVStore())
    sm.apply(cmd("c1", 1, Put("k", b"v")))
    restored = Sessions(KVStore())
    restored.restore(sm.snapshot())
    assert restored.inner.data == {"k": b"v"}
    assert restored.duplicate(cmd("c1", 1, Put("k", b"v"))) is not None
    assert restored.snapshot() == sm.snapshot()


def test_the_table_is_bounded_and_forgets_the_least_recently_used_client():
    sm = Sessions(KVStore(), max_sessions=2)
    sm.apply(cmd("a", 1, Put("x", b"1")))
    sm.apply(cmd("b", 1, Put("x", b"2")))
    sm.apply(cmd("a", 2, Put("x", b"3")))  # a is now more recent than b
    sm.apply(cmd("c", 1, Put("x", b"4")))  # evicts b
    assert sm.duplicate(cmd("b", 1, Put("x", b"2"))) is None
    assert sm.duplicate(cmd("a", 2, Put("x", b"3"))) is not None


def test_a_zero_bound_is_refused():
    with pytest.raises(ValueError, match="max_sessions"):
        Sessions(KVStore(), max_sessions=0)
