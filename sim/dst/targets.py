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


#: Deliberately broken Raft variants (settings flags) that a campaign must catch.
BROKEN_RAFT = {
    # Figure 8 of the Raft paper: a leader commits entries of earlier terms by counting replicas
    "commit-old-terms": {"unsafe_commit_old_terms": True},
    # no election restriction (§5.4.1): a candidate with a stale log can win and overwrite
    "vote-any-log": {"unsafe_vote_for_any_log": True},
}


@dataclass
class RaftTarget:
    """Raft with datacenter-mode timeouts; ``broken`` names one of :data:`BROKEN_RAFT`."""

    nodes: int = 5
    broken: str = ""
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

        if self.broken and self.broken not in BROKEN_RAFT:
            raise ValueError(f"unknown broken variant {self.broken!r}; known: {', '.join(BROKEN_RAFT)}")
        flags = BROKEN_RAFT.get(self.broken, {})
        settings = RaftSettings.for_mode("datacenter", snapshot_every=64, **flags)
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
