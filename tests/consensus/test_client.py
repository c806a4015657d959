"""The client: redirects to the leader, gathers f + 1 matching replies, and records
an unknown outcome as ``info`` rather than a failure."""

import pytest

from novacron.consensus import ClientReply, ClientRequest, History, Sessions
from novacron.consensus.api import Command
from novacron.consensus.client import ConsensusClient, KVClient, OutcomeUnknown
from novacron.consensus.kv import KVStore, Put, encode_op
from novacron.sim import Simulation, Topology

REPLICAS = ["r0", "r1", "r2", "r3"]


def simulation(app_for):
    topo = Topology("client-test")
    topo.add_site("dc", "local")
    for node in [*REPLICAS, "c"]:
        topo.add_node(node, "dc")
    sim = Simulation(topo, seed=1)
    sim.start({node: app_for(node) for node in REPLICAS})
    return sim


class FakeReplica:
    """A stand-in replica: executes on its own store when it is the leader (or, with
    ``leader=None``, always, as PBFT replicas do), redirects otherwise."""

    def __init__(self, rt, *, leader="r0", lie=False, silent=False, lose_first_reply=False):
        self.rt, self.leader, self.lie, self.silent = rt, leader, lie, silent
        self.lose_next_reply = lose_first_reply
        self.sm = Sessions(KVStore())
        self.received: list[tuple[str, int]] = []
        rt.on_message(ClientRequest, self.on_request)

    def on_request(self, src, req: ClientRequest):
        self.received.append((req.client, req.seq))
        if self.silent:
            return
        me = self.rt.node_id
        if self.leader is not None and me != self.leader:
            reply = ClientReply(req.client, req.seq, me, ok=False, error="not leader", leader=self.leader)
            self.rt.send(src, reply)
            return
        result = b"lie" if self.lie else self.sm.apply(Command(req.client, req.seq, req.op))
        if self.lose_next_reply:
            self.lose_next_reply = False
            return
        reply = ClientReply(req.client, req.seq, me, ok=True, result=result, leader=self.leader or "")
        self.rt.send(src, reply)


def replica(**options):
    return lambda rt: FakeReplica(rt, **options)


def test_a_follower_redirects_the_client_to_the_leader():
    sim = simulation(lambda node: replica(leader="r2"))

    async def scenario(rt):
        kv = KVClient(rt, REPLICAS, timeout=2.0)
        kv.client.leader = "r0"
        await kv.put("k", b"v")
        return kv.client.leader, await kv.get("k")

    leader, value = sim.run_until_complete("c", scenario, timeout=10)
    assert (leader, value) == ("r2", b"v")


def test_a_silent_replica_is_skipped_after_the_retry_interval():
    sim = simulation(lambda node: replica(leader="r1", silent=node == "r0"))

    async def scenario(rt):
        client = KVClient(rt, REPLICAS, timeout=5.0, retry_interval=0.2)
        client.client.leader = "r0"
        await client.put("k", b"v")
        return rt.now()

    took = sim.run_until_complete("c", scenario, timeout=10)
    assert 0.2 <= took < 1.0


def test_pbft_style_clients_need_f_plus_one_matching_replies():
    # Every replica executes (leader=None); r3 lies. With f = 1 the client needs 2 that agree.
    sim = simulation(lambda node: replica(leader=None, lie=node == "r3"))

    async def scenario(rt):
        kv = KVClient(rt, REPLICAS, quorum=2, timeout=5.0, retry_interval=0.2)
        kv.client.leader = "r3"  # start at the liar: its single answer must not be accepted
        await kv.put("k", b"v")
        return await kv.get("k")

    assert sim.run_until_complete("c", scenario, timeout=10) == b"v"


def test_no_answer_is_an_unknown_outcome_recorded_as_info():
    sim = simulation(lambda node: replica(silent=True))
    history = History()

    async def scenario(rt):
        kv = KVClient(rt, REPLICAS, history=history, timeout=1.0, retry_interval=0.3)
        with pytest.raises(OutcomeUnknown):
            await kv.put("k", b"v")
        return rt.now()

    assert sim.run_until_complete("c", scenario, timeout=10) == pytest.approx(1.0, abs=0.01)
    [op] = history.operations
    assert op.status == "info" and op.complete is None


def test_a_retry_reuses_the_sequence_number_so_the_command_applies_once():
    sim = simulation(lambda node: replica(lose_first_reply=True))

    async def scenario(rt):
        client = ConsensusClient(rt, ["r0"], timeout=3.0, retry_interval=0.2)
        await client.call(encode_op(Put("k", b"v")))
        return client.client_id

    client_id = sim.run_until_complete("c", scenario, timeout=10)
    r0 = sim.runtime("r0").app
    assert r0.received == [(client_id, 1), (client_id, 1)]  # the request arrived twice...
    assert r0.sm.applied == 1  # ...and was applied once


def test_bad_arguments_are_refused_with_the_reason():
    sim = simulation(lambda node: replica())
    rt = sim.runtime("c")
    with pytest.raises(ValueError, match="at least one member"):
        ConsensusClient(rt, [])
    with pytest.raises(ValueError, match="quorum"):
        ConsensusClient(rt, REPLICAS, quorum=5)


def test_many_clients_share_one_node_and_each_gets_its_own_replies():
    sim = simulation(lambda node: replica(leader="r0"))

    async def scenario(rt):
        clients = [KVClient(rt, REPLICAS, client_id=f"c/{i}", timeout=2.0) for i in range(5)]
        for c in clients:
            c.client.leader = "r0"
        tasks = [rt.spawn(c.put(f"k{i}", b"v")) for i, c in enumerate(clients)]
        for task in tasks:
            await task
        return [await c.get(f"k{i}") for i, c in enumerate(clients)]

    assert sim.run_until_complete("c", scenario, timeout=10) == [b"v"] * 5


def test_two_clients_cannot_share_an_id_on_one_node():
    sim = simulation(lambda node: replica())
    rt = sim.runtime("c")
    first = ConsensusClient(rt, REPLICAS, client_id="c/same")
    with pytest.raises(ValueError, match="already in use"):
        ConsensusClient(rt, REPLICAS, client_id="c/same")
    assert first.client_id == "c/same"


def test_a_client_id_names_the_node_it_lives_on():
    sim = simulation(lambda node: replica())
    with pytest.raises(ValueError, match="must be 'c' or start with 'c/'"):
        ConsensusClient(sim.runtime("c"), REPLICAS, client_id="elsewhere/1")


def test_generated_client_ids_are_numbered_per_node_incarnation():
    """Not per process: a simulation's ids (and so its message sizes and timings) must not
    depend on what ran before it in the same process; and a restarted node's clients are new
    clients to the replicas, whose sessions still hold the old ones' sequence numbers."""

    def ids():
        sim = simulation(lambda node: replica())
        first = [ConsensusClient(sim.runtime("c"), REPLICAS).client_id for _ in range(2)]
        sim.faults.crash("c", at=1.0, restart_after=0.5)
        sim.run(until=2.0)
        return first, ConsensusClient(sim.runtime("c"), REPLICAS).client_id

    assert ids() == ids() == (["c/c1", "c/c2"], "c/c1@2")
