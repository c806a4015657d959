"""How a campaign builds and inspects each protocol: one small adapter per protocol.

Everything else in a campaign (topology, nemesis, workload, checks) is
shared; a target says which replicas to start, how many matching replies a
client needs, which of its replicas may be Byzantine, and what to read from
the replicas at the end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from novacron.consensus import Observer
from novacron.consensus.kv import KVStore
from novacron.runtime import App, Runtime

BYZANTINE_KINDS = ("equivocate", "tamper", "silent", "replay")


@dataclass
class RaftTarget:
    """Raft with datacenter-mode timeouts; ``broken=True`` is the Figure 8 bug
    (a leader commits entries of earlier terms by counting), which the
    campaign must catch."""

    nodes: int = 5
    broken: bool = False
    name: str = "raft"
    byzantine: dict[str, str] = field(default_factory=dict)

    def members(self) -> list[str]:
        return [f"r{i}" for i in range(self.nodes)]

    @property
    def quorum(self) -> int:
        return 1

    def choose_byzantine(self, rng: random.Random, kinds: tuple[str, ...]) -> dict[str, str]:
        return {}  # Raft does not tolerate Byzantine replicas: no campaign asks it to

    def app(self, observer: Observer) -> App:
        from novacron.consensus.raft import RaftNode, RaftSettings

        settings = RaftSettings.for_mode("datacenter", unsafe_commit_old_terms=self.broken, snapshot_every=64)
        members = self.members()

        def start(rt: Runtime) -> Any:
            sm = KVStore()
            return RaftNode(rt, members=members, state_machine=sm, settings=settings, observer=observer)

        return start

    def logs(self, replicas: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
        return {node: r.log_terms() for node, r in replicas.items()}

    def leader(self, replicas: dict[str, Any]) -> str | None:
        """The leader of the highest term among ``replicas`` (None during an election)."""
        leaders = [(r.term, node) for node, r in replicas.items() if r.role == "leader"]
        return max(leaders)[1] if leaders else None

    def state(self, replica: Any) -> tuple[int, bytes]:
        return replica.applied_index, replica.state_machine.snapshot()


@dataclass
class PBFTTarget:
    """PBFT with n = 3f + 1 replicas, up to f of them Byzantine (chosen per seed)."""

    nodes: int = 4
    auth: str = "ed25519"
    name: str = "pbft"
    byzantine: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes < 4 or (self.nodes - 1) % 3:
            raise ValueError(f"PBFT needs n = 3f + 1 >= 4 replicas, got {self.nodes}")

    @property
    def f(self) -> int:
        return (self.nodes - 1) // 3

    def members(self) -> list[str]:
        return [f"r{i}" for i in range(self.nodes)]

    @property
    def quorum(self) -> int:
        return self.f + 1

    def choose_byzantine(self, rng: random.Random, kinds: tuple[str, ...]) -> dict[str, str]:
        if not kinds:
            return {}
        count = rng.randint(0, self.f)
        return {node: rng.choice(kinds) for node in sorted(rng.sample(self.members(), count))}

    def app(self, observer: Observer) -> App:
        from novacron.consensus.pbft import Keyring, PBFTReplica, PBFTSettings

        members = self.members()
        settings = PBFTSettings.for_mode("datacenter", auth=self.auth)
        keyring = Keyring.generate(members, seed=0)
        byzantine = dict(self.byzantine)

        def start(rt: Runtime) -> Any:
            return PBFTReplica(
                rt,
                members=members,
                state_machine=KVStore(),
                settings=settings,
                keyring=keyring,
                observer=observer,
                byzantine=byzantine.get(rt.node_id),
            )

        return start

    def logs(self, replicas: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
        return {}  # PBFT has no Raft-style log to match; state machine safety covers it

    def leader(self, replicas: dict[str, Any]) -> str | None:
        """The primary of the highest view any replica is in."""
        if not replicas:
            return None
        view, primary = max((r.view, r.primary) for r in replicas.values())
        return primary

    def state(self, replica: Any) -> tuple[int, bytes]:
        return replica.last_executed, replica.state_machine.snapshot()


def make_target(protocol: str, **options: Any) -> RaftTarget | PBFTTarget:
    if protocol == "raft":
        return RaftTarget(**options)
    if protocol == "pbft":
        return PBFTTarget(**options)
    raise ValueError(f"unknown protocol {protocol!r}: choose raft or pbft")
