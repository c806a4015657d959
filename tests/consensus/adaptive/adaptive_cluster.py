"""Helpers for the adaptive-consensus tests: a simulated cluster of AdaptiveConsensus members,
a KV workload recorded for the linearizability checker, and the cross-epoch checks."""

from __future__ import annotations

from novacron.config import ConsensusConfig
from novacron.consensus import History
from novacron.consensus.adaptive import RESERVED_CLIENT, AdaptiveConsensus
from novacron.consensus.kv import KVStore
from novacron.consensus.pbft import Keyring, PBFTSettings
from novacron.consensus.raft import RaftSettings
from novacron.consensus.sessions import STALE
from novacron.sim import Simulation, topologies
from novacron.sim.dst import checks
from novacron.sim.dst.recorder import Recorder
from novacron.sim.dst.workload import Workload, run_client

RAFT = RaftSettings.for_mode("datacenter")
PBFT = PBFTSettings.for_mode("datacenter", checkpoint_interval=4, watermark_window=16)


class StaleRecorder(Recorder):
    """The campaign's recorder, also noting commands answered STALE (they changed nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.stale: set[tuple[str, int]] = set()

    def applied(self, node, index, command, result) -> None:
        if result == STALE:
            self.stale.add((command.client, command.seq))
        super().applied(node, index, command, result)


class AdaptiveCluster:
    """``n`` members ``n0..`` running :class:`AdaptiveConsensus`, and ``clients`` client nodes."""

    def __init__(
        self, n: int = 4, *, seed: int = 0, clients: int = 2, protocol: str = "raft", **host_options
    ):
        topo = topologies.datacenter(n)
        self.client_ids = [f"c{i}" for i in range(clients)]
        for cid in self.client_ids:
            topo.add_node(cid, "dc1")
        self.sim = Simulation(topo, seed=seed)
        self.ids = [f"n{i}" for i in range(n)]
        self.keyring = Keyring.generate(self.ids, seed=seed)
        self.config = ConsensusConfig(protocol=protocol)
        self.recorder = StaleRecorder()
        self.history = History()
        self.host_options = host_options
        self.sim.start(self._app, nodes=self.ids)

    def _app(self, rt) -> AdaptiveConsensus:
        options = {"raft_settings": RAFT, "pbft_settings": PBFT, **self.host_options}
        return AdaptiveConsensus(
            rt,
            self.ids,
            KVStore(),
            config=self.config,
            keyring=self.keyring,
            observer=self.recorder,
            **options,
        )

    # -- access ---------------------------------------------------------------
    def host(self, node_id: str) -> AdaptiveConsensus:
        return self.sim.runtime(node_id).app

    def alive(self) -> list[AdaptiveConsensus]:
        return [self.host(i) for i in self.ids if self.sim.runtime(i).alive]

    def leader(self) -> AdaptiveConsensus | None:
        leaders = [h for h in self.alive() if h.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    @property
    def now(self) -> float:
        return self.sim.now

    def run(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)

    def wait_for(self, predicate, timeout: float = 20.0, step: float = 0.05) -> None:
        start = self.sim.now
        while not predicate():
            if self.sim.now - start > timeout:
                raise AssertionError(f"condition not met within {timeout} simulated s: {self.describe()}")
            self.run(step)

    def describe(self) -> str:
        return ", ".join(
            f"{h.rt.node_id}:e{h.epoch}/{h.protocol}{'' if h.running else '(starting)'}" for h in self.alive()
        )

    # -- driving --------------------------------------------------------------
    def start_clients(self, until: float, workload: Workload | None = None, nodes=None) -> list:
        nodes = nodes or self.client_ids
        workload = workload or Workload(clients=len(nodes), keys=3, think=0.02, op_timeout=3.0)
        tasks = []
        for cid in nodes:
            rt = self.sim.runtime(cid)
            tasks.append(rt.spawn(run_client(rt, self.ids, 1, workload, self.history, until)))
        return tasks

    def switch_at(self, at: float, protocol: str, via: str | None = None) -> list:
        """Call ``switch_to(protocol)`` at time ``at`` on ``via`` (default: the leader then, else
        the first live member). Returns a list that receives the epoch it reached."""
        return self.switches([(at, protocol)], via=via)

    def switches(self, plan: list[tuple[float, str]], *, via: str | None = None) -> list:
        """Drive switches in order, each from time ``at`` and once the previous one is done,
        as an operator would: ask the leader (``via`` if given), and if that node crashes or
        cannot get the switch ordered within 3 s, ask another live member."""
        reached: list = []
        state: dict = {"task": None, "rt": None, "tried": 0}

        def poll() -> None:
            if len(reached) == len(plan):
                return
            self.sim.call_at(self.now + 0.05, poll)
            at, protocol = plan[len(reached)]
            task, rt = state["task"], state["rt"]
            if task is not None and task.done():
                if task.exception() is None:
                    reached.append(task.result())
                    state["task"] = None
                    return
                task = None  # timed out: ask someone else
            if self.now < at or (task is not None and rt.alive):
                return
            leader = self.leader()
            live = [h for h in self.alive()]
            if via is not None and self.sim.runtime(via).alive and state["tried"] == 0:
                host = self.host(via)
            elif leader is not None and state["tried"] % 2 == 0:
                host = leader
            else:
                host = live[state["tried"] % len(live)]
            state["tried"] += 1
            state["rt"] = host.rt
            state["task"] = host.rt.spawn(host.switch_to(protocol, timeout=3.0))

        self.sim.call_at(plan[0][0], poll)
        return reached

    # -- checks ---------------------------------------------------------------
    def converged(self) -> bool:
        hosts = self.alive()
        if len(hosts) != len(self.ids) or not all(h.running for h in hosts):
            return False
        if len({h.epoch for h in hosts}) != 1:
            return False
        return len({h.state_machine.snapshot() for h in hosts}) == 1

    def check(self) -> None:
        """Linearizable history, one command per index, each command applied once, one state."""
        violations = checks.linearizable(self.history.operations)
        violations += checks.state_machine_safety(self.recorder)
        violations += checks.election_safety(self.recorder)
        assert not violations, "\n".join(map(str, violations))
        assert not self.recorder.misbehaviours, self.recorder.misbehaviours
        # every distinct user command that took effect, once; the Sessions counter (carried over
        # every switch) counts applications, so a command applied in two epochs would show here
        effective = set()
        for by_digest in self.recorder.by_index.values():
            for digest in by_digest:
                command = self.recorder.commands[digest]
                assert not command.client.startswith(RESERVED_CLIENT), "a switch command was reported"
                effective.add((command.client, command.seq))
        stale = self.stale_commands()
        applied = {h.state_machine.applied for h in self.alive()}
        assert applied == {len(effective - stale)}, (applied, len(effective), len(stale))

    def stale_commands(self) -> set[tuple[str, int]]:
        """Commands a replica answered STALE (a late copy of an abandoned request): not applied."""
        return self.recorder.stale

    def operations_ok(self) -> int:
        return sum(1 for op in self.history.operations if op.status == "ok")
