"""An epoch's storage namespace: the contract's log semantics on top of the key-value area.

Raft in a later epoch uses this log as it would the real one, so it must
behave alike (the bounds of tests/contract/test_contract_storage.py), keep
epochs apart, lose exactly what was not synced in a crash, and ignore writes
once the epoch has ended.
"""

import pytest

from novacron.consensus.adaptive import EpochStorage
from novacron.consensus.adaptive.epoch_runtime import drop_epoch, epoch_prefix
from novacron.runtime import Storage
from novacron.sim import Simulation, topologies


def storages(*epochs):
    sim = Simulation(topologies.datacenter(1), seed=0)
    real = sim.storage("n0")
    return sim, real, [EpochStorage(real, epoch_prefix(e)) for e in epochs]


def test_the_log_behaves_as_the_contract_says():
    _, _, (s,) = storages(1)
    assert isinstance(s, Storage)
    assert (s.first_index, s.last_index) == (1, 0)
    assert s.append([b"a", b"b", b"c"]) == 3
    assert s.entries(2) == [b"b", b"c"] and s.entries(1, 2) == [b"a"] and s.entries(4) == []
    s.truncate(3)
    assert s.entries(1) == [b"a", b"b"]
    s.compact(2)
    assert (s.first_index, s.last_index) == (2, 2) and s.entries(2) == [b"b"]
    s.reset(10)
    assert (s.first_index, s.last_index) == (10, 9)
    assert s.append([b"x"]) == 10 and s.entries(10) == [b"x"]
    for call in (
        lambda: s.entries(9),
        lambda: s.entries(10, 12),
        lambda: s.truncate(12),
        lambda: s.compact(12),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        s.reset(0)


def test_epochs_do_not_see_each_other_and_an_ended_one_is_dropped_whole():
    _, real, (a, b) = storages(1, 2)
    a.put("raft/hard", b"1")
    a.append([b"e1"])
    b.put("raft/hard", b"2")
    assert a.get("raft/hard") == b"1" and b.get("raft/hard") == b"2"
    assert b.last_index == 0 and a.keys() == ["raft/hard"]
    drop_epoch(real, 1)
    assert real.keys(epoch_prefix(1)) == [] and b.get("raft/hard") == b"2"


def test_a_crash_keeps_exactly_what_was_synced():
    sim, real, (s,) = storages(3)

    async def write(_rt):
        s.append([b"a", b"b"])
        await s.sync()
        s.append([b"c"])
        s.truncate(2)

    sim.run_until_complete("n0", write)
    real.crash()
    again = EpochStorage(real, epoch_prefix(3))
    assert (again.first_index, again.last_index) == (1, 2) and again.entries(1) == [b"a", b"b"]


def test_a_closed_epoch_ignores_writes():
    _, _, (s,) = storages(1)
    s.put("k", b"v")
    s.closed = True
    s.put("k", b"w")
    s.delete("k")
    assert s.get("k") == b"v"
