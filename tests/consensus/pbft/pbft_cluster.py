"""Test scaffolding: a PBFT cluster in the simulator, a minimal BFT client, and a recording observer.

The client here is deliberately small (the project's client is
novacron/consensus/client.py): it sends to the replica it believes is the
primary, resends to every replica after ``retry`` seconds, and accepts a
result once f + 1 replicas returned the same one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from novacron.consensus.api import ClientReply, ClientRequest, Command
from novacron.consensus.kv import Get, KVStore, Put, decode_result, encode_op
from novacron.consensus.pbft import Byzantine, Keyring, PBFTReplica, PBFTSettings
from novacron.runtime import Runtime
from novacron.sim import Simulation, topologies

SETTINGS = PBFTSettings.for_mode("datacenter", checkpoint_interval=4, watermark_window=16)


@dataclass
class Recorder:
    """What the replicas reported, per node (kept outside the replicas, so it survives crashes)."""

    applied: dict[str, dict[int, tuple[Command, bytes]]] = field(default_factory=lambda: defaultdict(dict))
    leaders: list[tuple[str, int]] = field(default_factory=list)
    restored: list[tuple[str, int]] = field(default_factory=list)
    misbehaviour: list[tuple[str, str, str]] = field(default_factory=list)


class RecordingObserver:
    """An :class:`~novacron.consensus.api.Observer` writing into a :class:`Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        previous = self.r.applied[node].get(index)
        assert previous is None or previous[0] == command, f"{node} applied two commands at {index}"
        self.r.applied[node][index] = (command, result)

    def leader(self, node: str, term: int) -> None:
        self.r.leaders.append((node, term))

    def restored(self, node: str, index: int) -> None:
        self.r.restored.append((node, index))

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        self.r.misbehaviour.append((node, culprit, what))


class TestClient:
    """f + 1 matching replies; primary first, everyone on retry."""

    __test__ = False

    def __init__(self, rt: Runtime, members: list[str], *, retry: float = 0.5) -> None:
        self.rt = rt
        self.members = members
        self.f = (len(members) - 1) // 3
        self.retry = retry
        self.primary = members[0]
        self.seq = 0
        self._replies: dict[int, dict[str, bytes]] = {}
        self._waiting: dict[int, object] = {}
        rt.on_message(ClientReply, self._on_reply)

    def _on_reply(self, src: str, reply: ClientReply) -> None:
        if src != reply.replica or src not in self.members or reply.seq not in self._waiting:
            return
        votes = self._replies.setdefault(reply.seq, {})
        votes[src] = reply.result
        if reply.leader in self.members:
            self.primary = reply.leader
        results = list(votes.values())
        for result in set(results):
            if results.count(result) >= self.f + 1:
                future = self._waiting.pop(reply.seq)
                if not future.done():
                    future.set_result(result)
                return

    async def call(self, op: bytes, *, timeout: float = 60.0) -> bytes:
        self.seq += 1
        seq = self.seq
        request = ClientRequest(self.rt.node_id, seq, op)
        future = self.rt.create_future()
        self._waiting[seq] = future
        self.rt.send(self.primary, request)
        deadline = self.rt.now() + timeout
        while not future.done():
            waiter = self.rt.create_future()
            timer = self.rt.call_later(self.retry, lambda w=waiter: w.done() or w.set_result(None))
            future.add_done_callback(lambda _f, w=waiter: w.done() or w.set_result(None))
            await waiter
            timer.cancel()
            if future.done():
                break
            if self.rt.now() > deadline:
                raise TimeoutError(f"request {seq} got no f + 1 matching replies")
            for member in self.members:
                self.rt.send(member, request)
        return future.result()

    async def put(self, key: str, value: bytes) -> bytes:
        return await self.call(encode_op(Put(key, value)))

    async def get(self, key: str) -> bytes | None:
        return decode_result(await self.call(encode_op(Get(key)))).value


class Cluster:
    """n replicas (``n0``..) and one client node (``c0``) in a simulated datacenter."""

    def __init__(
        self,
        n: int = 4,
        *,
        seed: int = 1,
        settings: PBFTSettings = SETTINGS,
        byzantine: dict[str, Byzantine | str] | None = None,
    ) -> None:
        topo = topologies.datacenter(n)
        topo.add_node("c0", "dc1")
        self.sim = Simulation(topo, seed=seed)
        self.members = [f"n{i}" for i in range(n)]
        self.keyring = Keyring.generate(self.members, seed=seed)
        self.recorder = Recorder()
        self.observer = RecordingObserver(self.recorder)
        self.byzantine = byzantine or {}
        self.settings = settings
        self.sim.start(self._app, nodes=self.members)
        self.sim.start(lambda rt: TestClient(rt, self.members), nodes=["c0"])

    def _app(self, rt: Runtime) -> PBFTReplica:
        return PBFTReplica(
            rt,
            members=self.members,
            state_machine=KVStore(),
            settings=self.settings,
            keyring=self.keyring,
            observer=self.observer,
            byzantine=self.byzantine.get(rt.node_id),
        )

    def replica(self, node: str) -> PBFTReplica:
        return self.sim.runtime(node).app

    @property
    def correct(self) -> list[str]:
        return [m for m in self.members if m not in self.byzantine]

    def run_client(self, fn, timeout: float = 120.0):
        return self.sim.run_until_complete("c0", lambda rt: fn(rt.app), timeout=timeout)

    def put_many(self, count: int, prefix: str = "k", start: int = 0) -> list[bytes]:
        async def work(client: TestClient) -> list[bytes]:
            return [await client.put(f"{prefix}{i}", f"v{i}".encode()) for i in range(start, start + count)]

        return self.run_client(work)

    def put_concurrently(self, count: int, clients_prefix: str = "k") -> None:
        """Many requests in flight at once (so the primary batches)."""

        async def work(client: TestClient) -> None:
            tasks = [
                client.rt.spawn(client.put(f"{clients_prefix}{i}", f"v{i}".encode())) for i in range(count)
            ]
            for task in tasks:
                await task

        self.run_client(work)

    def settle(self, seconds: float = 2.0) -> None:
        self.sim.run(until=self.sim.now + seconds)

    def check_agreement(self, nodes: list[str] | None = None) -> int:
        """All (given) correct replicas applied the same command at every index they share."""
        nodes = nodes or self.correct
        applied = self.recorder.applied
        indexes = set().union(*(applied[n].keys() for n in nodes))
        for index in indexes:
            commands = {applied[n][index][0] for n in nodes if index in applied[n]}
            assert len(commands) == 1, f"index {index}: replicas applied different commands {commands}"
        return len(indexes)

    def snapshots_equal(self, nodes: list[str] | None = None) -> None:
        nodes = nodes or self.correct
        snaps = {n: self.replica(n).state_machine.inner.snapshot() for n in nodes}
        assert len(set(snaps.values())) == 1, {n: self.replica(n).last_executed for n in nodes}
