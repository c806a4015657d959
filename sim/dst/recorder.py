"""What the replicas did, as they report it through the consensus :class:`Observer` hooks.

The recorder lives outside the replicas, so a crash does not erase what a
replica applied before it: a node that applies a different command at an
index after a restart is caught like any other disagreement.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from novacron.consensus import Command


def digest(command: Command) -> str:
    """A short, stable name for a command (to compare across replicas and print)."""
    h = hashlib.blake2b(f"{command.client}|{command.seq}|".encode() + command.op, digest_size=6)
    return h.hexdigest()


class Recorder:
    """An :class:`~novacron.consensus.Observer` that keeps everything the checks need."""

    def __init__(self) -> None:
        #: index -> {command digest: nodes that applied that command at that index}
        self.by_index: dict[int, dict[str, set[str]]] = defaultdict(dict)
        self.commands: dict[str, Command] = {}
        #: term (Raft) or view (PBFT) -> nodes that became leader/primary in it
        self.leaders: dict[int, set[str]] = defaultdict(set)
        self.restores: list[tuple[str, int]] = []
        self.misbehaviours: list[tuple[str, str, str]] = []
        self.applies = 0
        #: the first index at which two replicas applied different commands (None: none yet);
        #: a campaign stops a run there, since everything after is noise
        self.conflict: int | None = None
        self.ignore: frozenset[str] = frozenset()  # replicas whose word does not count (Byzantine)

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        name = digest(command)
        self.commands.setdefault(name, command)
        seen = self.by_index[index]
        seen.setdefault(name, set()).add(node)
        self.applies += 1
        if self.conflict is None and node not in self.ignore and len(seen) > 1:
            if sum(1 for nodes in seen.values() if nodes - self.ignore) > 1:
                self.conflict = index

    def leader(self, node: str, term: int) -> None:
        self.leaders[term].add(node)

    def restored(self, node: str, index: int) -> None:
        self.restores.append((node, index))

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        self.misbehaviours.append((node, culprit, what))
