"""The same Raft code on both runtimes: the simulator and asyncio over loopback TCP.

Written once against tests/contract/harness.py; on asyncio the timeouts are
real (heartbeat 50 ms, election 300 ms), so every wait polls a condition
with a deadline rather than sleeping a fixed time.
"""

from novacron.consensus.kv import Get, KVStore, Put, decode_result, encode_op  # noqa: E402
from novacron.consensus.raft import NotLeader, RaftError, RaftNode, RaftSettings  # noqa: E402

IDS = ["n0", "n1", "n2"]
SETTINGS = RaftSettings(heartbeat_interval=0.05, election_timeout=0.3)


def app(rt):
    return RaftNode(rt, IDS, KVStore(), SETTINGS)


class Driver:
    """Finds the leader among the live nodes and talks to it in-process."""

    def __init__(self, harness):
        self.harness = harness
        self.down: set[str] = set()

    def nodes(self) -> list[RaftNode]:
        return [self.harness.runtime(i).app for i in IDS if i not in self.down]

    async def until(self, rt, predicate, timeout=4.0):
        deadline = rt.now() + timeout
        while not predicate():
            assert rt.now() < deadline, "condition not met in time"
            await rt.sleep(0.02)

    async def leader(self, rt) -> RaftNode:
        await self.until(rt, lambda: len([n for n in self.nodes() if n.is_leader]) == 1)
        return next(n for n in self.nodes() if n.is_leader)

    async def call(self, rt, op: bytes, read=False) -> bytes:
        deadline = rt.now() + 4.0
        while True:
            leader = await self.leader(rt)
            try:
                return await (leader.read(op) if read else leader.propose(op))
            except (NotLeader, RaftError):
                assert rt.now() < deadline, "no leader took the request"
                await rt.sleep(0.05)

    async def converged(self, rt):
        def same():
            nodes = self.nodes()
            top = max(n.commit_index for n in nodes)
            states = {n.state_machine.inner.snapshot() for n in nodes}
            return all(n.applied_index == top for n in nodes) and len(states) == 1

        await self.until(rt, same)


def test_a_three_node_raft_kv_cluster_elects_a_leader_and_commits(harness):
    harness.start(IDS, app)
    d = Driver(harness)

    async def scenario(rt):
        for i in range(5):
            await d.call(rt, encode_op(Put(f"k{i}", b"v%d" % i)))
        value = decode_result(await d.call(rt, encode_op(Get("k3")), read=True)).value
        await d.converged(rt)
        return value, [n.applied_index for n in d.nodes()]

    value, applied = harness.run("n0", scenario, timeout=10)
    assert value == b"v3"
    assert len(set(applied)) == 1 and applied[0] >= 6  # a no-op and five puts everywhere


def test_a_raft_cluster_survives_a_leader_crash_and_restart(harness):
    harness.start(IDS, app)
    d = Driver(harness)

    async def first(rt):
        await d.call(rt, encode_op(Put("a", b"1")))
        return (await d.leader(rt)).node_id

    old = harness.run("n0", first, timeout=10)
    harness.crash(old)
    d.down.add(old)
    other = next(i for i in IDS if i != old)

    async def without_it(rt):
        await d.call(rt, encode_op(Put("b", b"2")))
        return (await d.leader(rt)).node_id

    assert harness.run(other, without_it, timeout=10) != old
    harness.restart(old)
    d.down.discard(old)

    async def back(rt):
        await d.call(rt, encode_op(Put("c", b"3")))
        await d.converged(rt)
        restarted = harness.runtime(old).app
        return [decode_result(restarted.state_machine.query(encode_op(Get(k)))).value for k in "abc"]

    assert harness.run(other, back, timeout=10) == [b"1", b"2", b"3"]
