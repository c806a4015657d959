"""Helpers for the simulated Raft tests: a cluster, a message-speaking client, checks."""

from __future__ import annotations

from collections import defaultdict

from novacron.consensus.api import ClientReply, ClientRequest, Command
from novacron.consensus.kv import Get, KVStore, Put, decode_result, encode_op
from novacron.consensus.raft import LEADER, RaftNode, RaftSettings
from novacron.sim import Simulation, topologies

CLIENT = "client"


class Recorder:
    """An Observer that keeps everything (it lives outside the nodes, so it survives crashes)."""

    def __init__(self) -> None:
        self.applied_log: dict[str, dict[int, Command]] = defaultdict(dict)
        self.applications: dict[str, int] = defaultdict(int)
        self.leaders: list[tuple[str, int]] = []
        self.restored_log: list[tuple[str, int]] = []

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        previous = self.applied_log[node].get(index)
        assert previous is None or previous == command, f"{node} applied two commands at {index}"
        self.applied_log[node][index] = command
        self.applications[node] += 1

    def leader(self, node: str, term: int) -> None:
        self.leaders.append((node, term))

    def restored(self, node: str, index: int) -> None:
        self.restored_log.append((node, index))

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        raise AssertionError(f"{node} reports {culprit}: {what}")


class Client:
    """A client node speaking ClientRequest/ClientReply, retrying with the same seq."""

    def __init__(self, rt, name="c1"):
        self.rt = rt
        self.name = name
        self.seq = 0
        self.waiting = {}
        self.replies: list[ClientReply] = []
        rt.on_message(ClientReply, self._on_reply)

    def _on_reply(self, src, msg: ClientReply):
        self.replies.append(msg)
        fut = self.waiting.pop((msg.client, msg.seq, src), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def ask(self, dst: str, req: ClientRequest, timeout: float = 0.5) -> ClientReply | None:
        fut = self.rt.create_future()
        self.waiting[(req.client, req.seq, dst)] = fut
        self.rt.send(dst, req)
        timer = self.rt.call_later(timeout, lambda: fut.done() or fut.set_result(None))
        reply = await fut
        timer.cancel()
        return reply

    async def execute(self, servers, op: bytes, *, read=False, seq=None, attempts=100) -> ClientReply:
        """Send to a server, follow leader hints, retry the same seq until ok."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        req = ClientRequest(self.name, seq, op, read)
        target = servers[0]
        for _attempt in range(attempts):
            reply = await self.ask(target, req)
            if reply is not None and reply.ok:
                return reply
            if reply is not None and reply.leader and reply.leader != target:
                target = reply.leader
            else:
                target = servers[(servers.index(target) + 1) % len(servers)]
                await self.rt.sleep(0.05)
        raise AssertionError(f"request {seq} failed after {attempts} attempts")

    async def put(self, servers, key: str, value: bytes):
        reply = await self.execute(servers, encode_op(Put(key, value)))
        return decode_result(reply.result)

    async def get(self, servers, key: str) -> bytes | None:
        reply = await self.execute(servers, encode_op(Get(key)), read=True)
        return decode_result(reply.result).value


class Cluster:
    """``n`` Raft nodes ``n0..`` plus a ``client`` node, in one simulated datacenter."""

    def __init__(self, n=3, *, seed=0, settings=None, members=None, extra=0):
        topo = topologies.datacenter(n + extra)
        topo.add_node(CLIENT, "dc1")
        self.sim = Simulation(topo, seed=seed)
        self.ids = [f"n{i}" for i in range(n + extra)]
        self.members = list(members or self.ids[:n])
        self.settings = settings or RaftSettings()
        self.observer = Recorder()
        self.sim.start(self._app, nodes=self.ids)
        self.sim.start(lambda rt: Client(rt), nodes=[CLIENT])

    def _app(self, rt):
        return RaftNode(rt, self.members, KVStore(), self.settings, observer=self.observer)

    @property
    def client(self) -> Client:
        return self.sim.runtime(CLIENT).app

    def node(self, node_id) -> RaftNode:
        return self.sim.runtime(node_id).app

    def alive(self) -> list[RaftNode]:
        return [self.node(i) for i in self.ids if self.sim.runtime(i).alive]

    def leaders(self) -> list[RaftNode]:
        return [n for n in self.alive() if n.role == LEADER]

    def run(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)

    def wait_for(self, predicate, timeout=10.0, step=0.01) -> float:
        """Run until ``predicate()``; returns the simulated time it took."""
        start = self.sim.now
        while not predicate():
            if self.sim.now - start > timeout:
                raise AssertionError(f"condition not met within {timeout} simulated s")
            self.run(step)
        return self.sim.now - start

    def wait_for_leader(self, timeout=10.0) -> RaftNode:
        def one_leader():
            leaders = self.leaders()
            if len(leaders) != 1:
                return False
            top = max(n.term for n in self.alive())
            return leaders[0].term == top and leaders[0].commit_index > 0

        self.wait_for(one_leader, timeout)
        return self.leaders()[0]

    def do(self, coro_fn, timeout=30.0):
        """Run ``coro_fn(client)`` on the client node."""
        return self.sim.run_until_complete(CLIENT, lambda rt: coro_fn(rt.app), timeout=timeout)

    def converged(self, nodes=None) -> bool:
        nodes = nodes or self.alive()
        top = max(n.commit_index for n in nodes)
        return all(n.applied_index == top for n in nodes)

    def check_safety(self) -> None:
        """Log Matching across live nodes and one applied command per index everywhere."""
        nodes = self.alive()
        logs = [dict(n.log_terms()) for n in nodes]
        for a in range(len(logs)):
            for b in range(a + 1, len(logs)):
                common = sorted(set(logs[a]) & set(logs[b]))
                same = [i for i in common if logs[a][i] == logs[b][i]]
                if same:
                    top = same[-1]
                    assert all(logs[a][i] == logs[b][i] for i in common if i <= top), "Log Matching broken"
        merged: dict[int, Command] = {}
        for applied in self.observer.applied_log.values():
            for index, command in applied.items():
                assert merged.setdefault(index, command) == command, f"two commands applied at {index}"

    def states(self, nodes=None) -> set[bytes]:
        return {n.state_machine.inner.snapshot() for n in (nodes or self.alive())}
