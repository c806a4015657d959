"""Switching protocol at run time, with clients running throughout, in the simulator.

Each test runs a Raft -> PBFT -> Raft sequence (or part of it) while a KV
workload runs, then checks what a client and the safety checker can see:
the history is linearizable (so every acknowledged write survived), no two
replicas applied different commands at one (global) index, every command
that took effect was applied exactly once (the Sessions counter, carried
across every switch, equals the number of distinct effective commands), and
all members end in the same epoch with the same state.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptive_cluster import AdaptiveCluster  # noqa: E402

from novacron.consensus.adaptive import TERM_STRIDE, EpochEnvelope  # noqa: E402
from novacron.consensus.client import KVClient  # noqa: E402
from novacron.consensus.raft import RaftNode  # noqa: E402
from novacron.consensus.raft.messages import RequestVote  # noqa: E402
from novacron.runtime import codec  # noqa: E402


def raft_pbft_raft(c: AdaptiveCluster, *, first=3.0, second=6.5, until=10.0, settle=40.0):
    c.start_clients(until=until)
    reached = c.switches([(first, "pbft"), (second, "raft")])
    c.run(until + 1.0)
    c.wait_for(lambda: reached == [1, 2] and c.converged(), timeout=settle)
    assert {h.epoch for h in c.alive()} == {2}
    c.check()


@pytest.mark.parametrize("seed", [1, 2])
def test_raft_to_pbft_to_raft_under_load_loses_and_repeats_nothing(seed):
    c = AdaptiveCluster(4, seed=seed)
    raft_pbft_raft(c)
    assert c.operations_ok() > 200
    # the workload kept going in every epoch: operations completed in each of them
    done = sorted(op.complete for op in c.history.operations if op.status == "ok")
    assert any(t < 3.0 for t in done) and any(3.5 < t < 6.5 for t in done) and any(t > 7.0 for t in done)
    # the Raft epoch after the switch reports terms of its own epoch
    assert any(term >= 2 * TERM_STRIDE for term in c.recorder.leaders)


@pytest.mark.parametrize("seed", [3, 4])
def test_a_member_crashed_during_the_switch_restarts_and_catches_up(seed):
    c = AdaptiveCluster(4, seed=seed)
    c.sim.faults.crash("n3", at=2.9, restart_after=2.0)  # down across the switch to PBFT
    raft_pbft_raft(c)
    assert c.host("n3").jumps >= 1  # it fetched the start of a newer epoch


def test_the_leader_crashing_as_it_switches_leaves_the_others_to_finish_it():
    c = AdaptiveCluster(4, seed=5)
    c.start_clients(until=10.0)
    leaders = []
    c.sim.call_at(2.999, lambda: leaders.append(c.leader()))
    reached = c.switches([(3.0, "pbft"), (6.5, "raft")])

    def crash_leader():
        assert leaders[0] is not None
        c.sim.faults.crash(leaders[0].rt.node_id, restart_after=1.5)

    c.sim.call_at(3.0003, crash_leader)  # the switch is proposed, maybe committed, maybe applied
    c.run(11.0)
    c.wait_for(lambda: reached == [1, 2] and c.converged(), timeout=40.0)
    c.check()


@pytest.mark.parametrize("seed", [6, 7])
def test_a_partition_during_the_switch_heals_into_the_new_epoch(seed):
    c = AdaptiveCluster(4, seed=seed)
    c.sim.faults.isolate("n2", at=2.5, duration=3.0)  # misses the switch to PBFT entirely
    raft_pbft_raft(c)


def test_message_loss_and_duplication_around_both_switches():
    c = AdaptiveCluster(4, seed=8)
    c.sim.faults.burst(loss=0.1, duplicate=0.05, reorder=0.05, at=2.0, duration=6.0)
    raft_pbft_raft(c, settle=60.0)


def test_a_new_pbft_primary_never_reuses_a_number_its_new_view_claimed():
    # Seed 38 once made a correct new primary sign two pre-prepares for one number: installing
    # the new view stabilised a checkpoint, which proposed before the O set claimed its numbers.
    c = AdaptiveCluster(4, seed=38)
    c.sim.faults.burst(loss=0.15, duplicate=0.05, reorder=0.05, at=2.0, duration=6.0)
    raft_pbft_raft(c, settle=60.0)
    assert c.recorder.misbehaviours == []


def test_a_retry_that_straddles_the_switch_applies_once():
    c = AdaptiveCluster(4, seed=9)
    c.wait_for(lambda: c.leader() is not None)
    rt = c.sim.runtime("c0")
    kv = KVClient(rt, c.ids, history=c.history, quorum=1, timeout=20.0, retry_interval=0.2, client_id="c0")
    # the replies of members to the client are cut: its write is applied in the Raft epoch,
    # but it keeps retrying the same seq until the PBFT epoch answers it from the carried table
    start = c.now
    c.sim.faults.partition(c.ids, ["c0"], one_way=True, at=start, duration=1.5)
    c.switch_at(start + 0.5, "pbft")

    async def write(_rt):
        await kv.put("k", b"v1")

    c.sim.run_until_complete("c0", write, timeout=30.0)
    assert c.now >= start + 1.5 and {h.protocol for h in c.alive()} == {"pbft"}
    # a second straddling write, sent as the cluster switches back (it may be ordered behind
    # the switch in the PBFT epoch, never applied there, and applied by Raft on a retry)
    c.switch_at(c.now + 0.001, "raft")

    async def write2(_rt):
        await kv.put("k", b"v2")
        return await kv.get("k")

    assert c.sim.run_until_complete("c0", write2, timeout=30.0) == b"v2"
    c.wait_for(lambda: c.converged() and all(h.protocol == "raft" for h in c.alive()))
    c.check()
    writes = [
        (index, cmd)
        for index, by_digest in c.recorder.by_index.items()
        for d in by_digest
        if (cmd := c.recorder.commands[d]).client == kv.client_id
    ]
    assert {cmd.seq for _, cmd in writes} == {1, 2, 3}
    assert {h.state_machine.applied for h in c.alive()} == {3}  # three commands, each applied once


def test_old_epoch_messages_arriving_late_are_ignored_by_the_new_epoch():
    c = AdaptiveCluster(4, seed=10, clients=1)
    raft_pbft_raft(c, until=8.0)
    target = c.host("n0")
    instance = target.instance
    assert isinstance(instance, RaftNode)
    term, leader = instance.term, instance.leader_id
    # an epoch-0 Raft vote request with a huge term: in epoch 0 it would depose the leader
    stale = RequestVote(term=10**6, candidate="n1", last_index=10**6, last_term=10**6)
    c.sim.runtime("n1").send("n0", EpochEnvelope(0, codec.encode(stale)))
    c.sim.runtime("n1").send("n0", EpochEnvelope(1, codec.encode(stale)))
    c.run(1.0)
    assert target.instance is instance and target.epoch == 2
    assert instance.term == term and instance.leader_id == leader
    c.check()


def test_the_mode_decides_and_only_the_leader_switches():
    c = AdaptiveCluster(4, seed=11, protocol="auto")
    c.start_clients(until=8.0)
    c.run(2.0)
    for h in c.alive():
        h.on_mode("internet")  # every member's detector agrees: one switch, not four
    c.run(2.5)
    assert {(h.epoch, h.protocol) for h in c.alive()} == {(1, "pbft")}
    for h in c.alive():
        h.on_mode("datacenter")
    c.run(4.5)
    c.wait_for(c.converged)
    assert {(h.epoch, h.protocol) for h in c.alive()} == {(2, "raft")}
    c.check()


def test_a_whole_cluster_restart_resumes_in_the_last_epoch_with_its_state():
    c = AdaptiveCluster(4, seed=12, clients=2)
    c.start_clients(until=5.0, nodes=["c0"])
    c.switch_at(2.0, "pbft")
    c.run(6.0)
    c.wait_for(c.converged)
    applied = c.host("n0").state_machine.applied
    for node in c.ids:
        c.sim.crash(node)
    for node in c.ids:
        c.sim.restart(node)
    # back in the PBFT epoch, from its start record and PBFT's own durable state (whatever PBFT
    # committed after its last stable checkpoint it re-executes once it orders again)
    assert {(h.epoch, h.protocol) for h in c.alive()} == {(1, "pbft")}
    rt = c.sim.runtime("c1")
    kv = KVClient(rt, c.ids, history=c.history, quorum=1, timeout=10.0, client_id="c1")

    async def read_all(_rt):
        return [await kv.get(f"k{i}") for i in range(3)]

    c.sim.run_until_complete("c1", read_all, timeout=30.0)  # sees every acknowledged write
    c.wait_for(c.converged)
    c.check()
    assert c.host("n0").state_machine.applied >= applied
