"""Raft clusters in the simulator: virtual time, fixed seeds, injected faults.

Each test is a specification of one property of the replicated service as a
client sees it (through ClientRequest messages) or as the safety checker sees
it (Log Matching, one command per index, identical states).
"""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raft_cluster import Cluster  # noqa: E402

from novacron.consensus.api import ClientRequest  # noqa: E402
from novacron.consensus.kv import Put, decode_result, encode_op  # noqa: E402
from novacron.consensus.raft import NotLeader, RaftSettings  # noqa: E402

DC = RaftSettings.for_mode("datacenter")


@pytest.mark.parametrize("n", [3, 5])
def test_a_cluster_elects_exactly_one_leader(n):
    c = Cluster(n, seed=n)
    leader = c.wait_for_leader(timeout=3.0)
    c.run(2.0)
    assert c.leaders() == [leader]  # stable: heartbeats keep it in office
    assert all(node.leader_id == leader.node_id and node.term == leader.term for node in c.alive())
    terms = [t for _, t in c.observer.leaders]
    assert len(terms) == len(set(terms))  # at most one leader per term


def test_commands_are_applied_in_the_same_order_on_every_node():
    c = Cluster(5, seed=11)
    c.wait_for_leader()

    async def writes(client):
        for i in range(40):
            await client.put(c.ids, f"k{i % 5}", b"v%d" % i)

    c.do(writes)
    c.wait_for(c.converged, timeout=2.0)
    sequences = {tuple(sorted(applied.items())) for applied in c.observer.applied_log.values()}
    assert len(sequences) == 1 and len(next(iter(sequences))) == 40
    assert len(c.states()) == 1
    c.check_safety()


def test_a_new_leader_takes_over_within_a_few_election_timeouts_after_a_crash():
    c = Cluster(3, seed=3)
    old = c.wait_for_leader()
    c.do(lambda client: client.put(c.ids, "a", b"1"))
    c.sim.crash(old.node_id)
    took = c.wait_for(lambda: len(c.leaders()) == 1 and c.leaders()[0].term > old.term, timeout=5.0)
    assert took <= 4 * DC.election_timeout  # timeouts are drawn in [T, 2T), plus a pre-vote round
    assert c.do(lambda client: client.get(c.ids, "a")) == b"1"


def test_a_minority_cannot_commit_and_the_majority_goes_on_until_the_partition_heals():
    c = Cluster(5, seed=5)
    leader = c.wait_for_leader()
    minority = [leader.node_id, next(i for i in c.ids if i != leader.node_id)]
    majority = [i for i in c.ids if i not in minority]
    cut = c.sim.faults.partition(minority, majority + ["client"])
    # The old leader appends the proposal but cannot commit it; it loses its quorum,
    # steps down (check-quorum) and tells the proposer to go elsewhere.
    commit_before = leader.commit_index
    with pytest.raises(NotLeader):
        c.sim.run_until_complete(leader.node_id, lambda rt: leader.propose(b"lost"), timeout=2.0)
    assert leader.commit_index == commit_before and leader.role == "follower"
    c.do(lambda client: client.put(majority, "side", b"majority"))
    new = c.leaders()[0]
    assert new.node_id in majority and new.term > leader.term
    cut.heal()
    c.wait_for(lambda: c.converged() and leader.commit_index == new.commit_index, timeout=3.0)
    assert len(c.states()) == 1
    assert all(cmd.op != b"lost" for log in c.observer.applied_log.values() for cmd in log.values())
    assert c.leaders() == [new]  # the returning nodes did not depose it (pre-vote)
    c.check_safety()


def test_crash_of_every_node_loses_only_unsynced_data_never_a_committed_write():
    c = Cluster(3, seed=7)
    c.wait_for_leader()

    async def writes(client):
        for i in range(20):
            await client.put(c.ids, f"k{i}", b"%d" % i)

    c.do(writes)  # every reply came after a majority synced the entry
    for i in c.ids:
        c.sim.crash(i)  # unsynced writes (e.g. the latest commit index) are lost
    for i in c.ids:
        c.sim.restart(i)
    c.wait_for_leader()
    values = c.do(lambda client: _get_all(client, c.ids, 20))
    assert values == [b"%d" % i for i in range(20)]
    c.check_safety()


async def _get_all(client, servers, n):
    return [await client.get(servers, f"k{i}") for i in range(n)]


def test_a_restarted_node_recovers_its_log_and_state_from_storage():
    c = Cluster(3, seed=8, settings=DC.replace(snapshot_every=10, compaction_keep=2))
    c.wait_for_leader()

    async def writes(client):
        for i in range(25):
            await client.put(c.ids, f"k{i % 4}", b"%d" % i)

    c.do(writes)
    c.wait_for(c.converged, timeout=2.0)
    follower = next(n for n in c.alive() if n.role != "leader")
    state, applied = follower.state_machine.inner.snapshot(), follower.applied_index
    c.sim.crash(follower.node_id)
    c.sim.restart(follower.node_id)
    again = c.node(follower.node_id)
    assert (again.node_id, 20) in c.observer.restored_log  # restored from its own snapshot...
    c.wait_for(lambda: again.applied_index >= applied, timeout=2.0)  # ...then replayed the log
    assert again.state_machine.inner.snapshot() == state


def test_a_node_that_was_down_long_catches_up_through_a_chunked_snapshot():
    settings = DC.replace(snapshot_every=20, compaction_keep=5, snapshot_chunk_bytes=512)
    c = Cluster(3, seed=9, settings=settings)
    leader = c.wait_for_leader()
    down = next(i for i in c.ids if i != leader.node_id)
    c.sim.crash(down)

    async def writes(client):
        for i in range(120):
            await client.put(c.ids, f"key-{i % 30}", b"value-%d" % i)

    c.do(writes)
    assert c.node(leader.node_id).core.log.offset > 5  # the leader compacted its log
    c.sim.restart(down)
    c.wait_for(lambda: c.converged(), timeout=5.0)
    assert any(node == down and index >= 100 for node, index in c.observer.restored_log)
    assert len(c.states()) == 1
    c.check_safety()


def test_servers_are_added_and_removed_one_at_a_time():
    # n3 runs from the start but is not a member: it waits passively for a leader to add it.
    c = Cluster(3, seed=12, extra=1)
    leader = c.wait_for_leader()
    c.do(lambda client: client.put(c.ids, "before", b"1"))
    assert c.node("n3").term == 0 and c.node("n3").applied_index == 0

    c.sim.run_until_complete(leader.node_id, lambda rt: leader.add_member("n3"), timeout=5)
    c.do(lambda client: client.put(c.ids, "after-add", b"2"))
    c.wait_for(c.converged, timeout=2.0)
    assert c.node("n3").members == ("n0", "n1", "n2", "n3") and len(c.states()) == 1

    # Remove the leader itself: it steps down once the change is committed.
    c.sim.run_until_complete(leader.node_id, lambda rt: leader.remove_member(leader.node_id), timeout=5)
    c.wait_for(lambda: any(n.role == "leader" and n is not leader for n in c.alive()), timeout=3.0)
    assert leader.role == "follower"
    c.sim.crash(leader.node_id)  # gone for good: the three others still make progress
    c.do(lambda client: client.put([i for i in c.ids if i != leader.node_id], "after-remove", b"3"))
    new = c.leaders()[0]
    assert leader.node_id not in new.members and len(new.members) == 3
    c.check_safety()


def test_a_read_after_a_write_sees_it_through_read_index():
    c = Cluster(3, seed=13)
    c.wait_for_leader()

    async def scenario(client):
        await client.put(c.ids, "x", b"1")
        first = await client.get(c.ids, "x")
        await client.put(c.ids, "x", b"2")
        return first, await client.get(c.ids, "x")

    assert c.do(scenario) == (b"1", b"2")


def test_a_follower_redirects_the_client_to_the_leader():
    c = Cluster(3, seed=14)
    leader = c.wait_for_leader()
    follower = next(i for i in c.ids if i != leader.node_id)
    request = ClientRequest("c1", 1, encode_op(Put("k", b"v")))
    reply = c.do(lambda client: client.ask(follower, request))
    assert not reply.ok and reply.error == "not leader" and reply.leader == leader.node_id
    reply = c.do(lambda client: client.ask(leader.node_id, request))
    assert reply.ok and reply.view == leader.term and reply.replica == leader.node_id


def test_a_retried_command_is_applied_once():
    c = Cluster(3, seed=15)
    leader = c.wait_for_leader()
    request = ClientRequest("c1", 1, encode_op(Put("k", b"v")))

    async def twice(client):
        client.rt.send(leader.node_id, request)  # a retry while the first is in flight
        first = await client.ask(leader.node_id, request)
        again = await client.ask(leader.node_id, request)  # a retry after it was applied
        return first, again

    first, again = c.do(twice)
    assert first.ok and again.ok and first.result == again.result
    assert decode_result(first.result).value is None  # the first put saw no previous value
    c.wait_for(c.converged, timeout=1.0)
    assert all(n.state_machine.applied == 1 for n in c.alive())


def test_a_leader_answers_busy_beyond_its_pending_bound():
    c = Cluster(3, seed=16, settings=DC.replace(max_pending=3))
    leader = c.wait_for_leader()

    async def burst(client):
        for seq in range(1, 11):
            client.rt.send(leader.node_id, ClientRequest("c1", seq, encode_op(Put("k", b"%d" % seq))))
        await client.rt.sleep(0.5)
        return [r for r in client.replies if r.replica == leader.node_id]

    replies = c.do(burst)
    assert sum(r.ok for r in replies) >= 3 and any(r.error == "busy" for r in replies)


def test_in_process_propose_on_a_follower_raises_not_leader_with_a_hint():
    c = Cluster(3, seed=17)
    leader = c.wait_for_leader()
    follower = next(n for n in c.alive() if n is not leader)
    with pytest.raises(NotLeader) as info:
        c.sim.run_until_complete(follower.node_id, lambda rt: follower.propose(b"x"), timeout=1)
    assert info.value.leader == leader.node_id


def test_the_same_seed_replays_the_same_run():
    def run(seed):
        c = Cluster(3, seed=seed)
        c.wait_for_leader()
        c.do(lambda client: client.put(c.ids, "k", b"v"))
        c.run(1.0)
        return c.sim.trace_hash(), [(n.node_id, n.term, n.commit_index) for n in c.alive()]

    assert run(21) == run(21)


def test_settings_follow_the_network_mode_and_the_config_file():
    from novacron.config import ConsensusConfig

    dc, wan = RaftSettings.for_mode("datacenter"), RaftSettings.for_mode("internet")
    assert (dc.heartbeat_interval, dc.election_timeout) == (0.05, 0.15)
    assert wan.heartbeat_interval >= 0.5 and wan.election_timeout >= 2.5
    assert RaftSettings.for_mode("hybrid").election_timeout > dc.election_timeout
    s = RaftSettings.from_config(ConsensusConfig(heartbeat_interval=0.2, election_timeout=1.0))
    assert (s.heartbeat_interval, s.election_timeout, s.heartbeat_ticks, s.election_ticks) == (
        0.2,
        1.0,
        2,
        10,
    )
    with pytest.raises(ValueError):
        RaftSettings(heartbeat_interval=0.1, election_timeout=0.15)
    with pytest.raises(ValueError):
        RaftSettings.for_mode("moon")


def _faults(c: Cluster, seed: int, start: float, stop: float) -> int:
    """A seeded schedule of crashes (with restart), partitions and lossy/duplicating/reordering
    bursts among the Raft nodes (the client stays up: it is the observer of acknowledgements)."""
    rng = random.Random(seed)
    f = c.sim.faults
    t, count = start, 0
    while t < stop:
        t += rng.uniform(0.2, 0.8)
        d = rng.uniform(0.1, 1.0)
        kind = rng.choice(["crash", "partition", "loss", "duplicate", "reorder"])
        if kind == "crash":
            f.crash(rng.choice(c.ids), at=t, restart_after=d)
        elif kind == "partition":
            f.partition(rng.sample(c.ids, rng.randint(1, 2)), at=t, duration=d)
        elif kind == "loss":
            f.burst(loss=0.3, at=t, duration=d)
        elif kind == "duplicate":
            f.burst(duplicate=0.3, at=t, duration=d)
        else:
            f.burst(reorder=0.3, reorder_delay=0.02, at=t, duration=d)
        count += 1
    return count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_writes_survive_a_random_fault_schedule(seed):
    settings = DC.replace(snapshot_every=25, compaction_keep=5)
    c = Cluster(5, seed=seed, settings=settings)
    for i in c.ids:
        c.sim.faults.slow_disk(i, 0.002)  # syncs take time: a crash can lose unsynced writes
    c.wait_for_leader()
    stop = c.sim.now + 8.0
    assert _faults(c, seed, c.sim.now, stop) > 5
    acknowledged = {}

    async def writes(client):
        for i in range(80):
            result = await client.put(c.ids, f"k{i % 10}", b"%d" % i)
            assert result.error == ""
            acknowledged[f"k{i % 10}"] = b"%d" % i
            await client.rt.sleep(0.05)

    c.do(writes, timeout=120)
    c.sim.run(until=max(c.sim.now, stop) + 1.5)  # every fault healed, every node restarted
    c.wait_for_leader()
    c.wait_for(c.converged, timeout=10.0)
    assert len(c.states()) == 1
    values = c.do(lambda client: _get_all_keys(client, c.ids, sorted(acknowledged)))
    assert values == [acknowledged[k] for k in sorted(acknowledged)]
    assert sum(c.observer.applications.values()) >= 5 * 80  # replays after restarts included
    c.check_safety()


async def _get_all_keys(client, servers, keys):
    return [await client.get(servers, k) for k in keys]
