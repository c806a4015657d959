"""The safety and liveness properties a campaign checks after each run.

Each check returns a list of :class:`Violation`; an empty list means the
property held. They read only what the recorder, the history and the
replicas' final state show, never the protocol's internals, so the same
checks judge Raft and PBFT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from novacron.consensus import Operation
from novacron.consensus.linearizability import check as check_linearizability

from .recorder import Recorder


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


class Verdict:
    """What every campaign seed's result shares (``SeedResult``, ``SyncSeedResult``): it is ``ok``
    without violations, and its table row is the seed, the verdict, the protocol's own
    :meth:`figures` and the number of faults."""

    seed: int
    violations: list[Violation]
    faults: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations

    def figures(self) -> dict:
        raise NotImplementedError

    def row(self) -> dict:
        return {
            "seed": self.seed,
            "ok": self.ok,
            "violations": "; ".join(v.check for v in self.violations),
            **self.figures(),
            "faults": len(self.faults),
        }


def election_safety(recorder: Recorder) -> list[Violation]:
    """At most one leader per term (Raft's Election Safety; one primary per view for PBFT)."""
    return [
        Violation("election safety", f"term {term} had leaders {sorted(nodes)}")
        for term, nodes in sorted(recorder.leaders.items())
        if len(nodes) > 1
    ]


def state_machine_safety(recorder: Recorder, ignore: frozenset[str] = frozenset()) -> list[Violation]:
    """No two (correct) replicas apply different commands at the same index, ever
    (a replica re-applying after a restart counts too)."""
    out = []
    for index in sorted(recorder.by_index):
        seen = {d: nodes - ignore for d, nodes in recorder.by_index[index].items()}
        seen = {d: nodes for d, nodes in seen.items() if nodes}
        if len(seen) > 1:
            parts = "; ".join(f"{sorted(nodes)} applied {d}" for d, nodes in sorted(seen.items()))
            out.append(Violation("state machine safety", f"index {index}: {parts}"))
    return out


def log_matching(logs: Mapping[str, Sequence[tuple[int, int]]]) -> list[Violation]:
    """Raft's Log Matching: if two logs hold an entry with the same index and term,
    they are identical in every entry up to that index (over what both still hold)."""
    out = []
    names = sorted(logs)
    terms = {n: dict(logs[n]) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(terms[a]) & set(terms[b]))
            matched = [idx for idx in common if terms[a][idx] == terms[b][idx]]
            if not matched:
                continue
            last = matched[-1]
            differ = [idx for idx in common if idx <= last and terms[a][idx] != terms[b][idx]]
            if differ:
                out.append(
                    Violation(
                        "log matching",
                        f"{a} and {b} agree at index {last} (term {terms[a][last]}) but differ at "
                        f"index {differ[0]} (terms {terms[a][differ[0]]} vs {terms[b][differ[0]]})",
                    )
                )
    return out


def same_state(states: Mapping[str, tuple[int, bytes]]) -> list[Violation]:
    """Replicas that applied the same prefix hold byte-identical state.

    ``states`` maps a node to (applied index, snapshot of its state machine).
    """
    by_index: dict[int, dict[bytes, list[str]]] = {}
    for node, (index, snapshot) in sorted(states.items()):
        by_index.setdefault(index, {}).setdefault(snapshot, []).append(node)
    return [
        Violation("state agreement", f"at applied index {index}, states differ: {list(groups.values())}")
        for index, groups in sorted(by_index.items())
        if len(groups) > 1
    ]


def linearizable(operations: Sequence[Operation], max_steps: int | None = None) -> list[Violation]:
    result = check_linearizability(operations, max_steps=max_steps)
    if result.ok is None:
        return [Violation("linearizability", f"checker gave up: {result.explain()}")]
    if not result.ok:
        return [Violation("linearizability", result.explain())]
    return []


def progress(operations: Sequence[Operation], healed_at: float, within: float) -> list[Violation]:
    """After the faults heal, some operation invoked afterwards completes within ``within`` s."""
    recovered = [
        op
        for op in operations
        if op.status == "ok"
        and op.invoke >= healed_at
        and op.complete is not None
        and op.complete <= healed_at + within
    ]
    if recovered:
        return []
    return [Violation("progress", f"no operation completed within {within:g}s after the faults healed")]
