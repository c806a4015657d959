"""Histories for the linearizability tests: a small builder, and a generator of correct histories.

``HistoryBuilder`` writes histories the way papers draw them: one call per
operation with its interval, values as short strings. ``simulate`` runs clients
against a sequential key-value model, each operation taking effect at one
instant inside its interval, so its histories are linearizable by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from novacron.consensus.history import Operation, Status


def b(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


class HistoryBuilder:
    """Operations with consecutive ids; ``end=None`` means the outcome is unknown (``info``)."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(self, kind, key, start, end, status, client, **fields) -> Operation:
        if status is None:
            status = "info" if end is None else "ok"
        op = Operation(len(self.ops), client, kind, key, start, complete=end, status=status, **fields)
        self.ops.append(op)
        return op

    def put(self, key, value, start, end=None, *, status: Status | None = None, client="c"):
        return self._add("put", key, start, end, status, client, value=b(value))

    def get(self, key, read, start, end=None, *, status: Status | None = None, client="c"):
        return self._add("get", key, start, end, status, client, read=b(read))

    def delete(self, key, start, end=None, *, status: Status | None = None, client="c"):
        return self._add("delete", key, start, end, status, client)

    def cas(self, key, expected, new, swapped, start, end=None, *, status=None, client="c"):
        fields = {"value": b(new), "expected": b(expected), "swapped": swapped}
        return self._add("cas", key, start, end, status, client, **fields)


@dataclass(frozen=True)
class Plan:
    """One client operation before it runs: what it does, its timing, and how it ends.

    ``outcome``: ``ok``; ``info`` (took effect, client never heard back);
    ``lost`` (info, but never took effect); ``fail`` (did not take effect);
    ``pending`` (took effect, still waiting when the history was taken).
    """

    client: int
    kind: str
    key: int
    choice: int  # cas: which known value to expect (0 = absent)
    think: float  # client's pause before invoking
    before: float  # invoke -> linearization point
    after: float  # linearization point -> response
    outcome: str = "ok"


def simulate(plans: list[Plan]) -> list[Operation]:
    """Run ``plans`` (in each client's order) against a sequential model: a linearizable history."""
    clock: dict[int, float] = {}
    known: dict[str, list[bytes]] = {}  # values written at a key so far, for cas to expect
    timed = []
    for i, plan in enumerate(plans):
        key = f"k{plan.key}"
        invoke = clock.get(plan.client, 0.0) + plan.think
        point = invoke + plan.before
        complete = point + plan.after
        clock[plan.client] = complete
        value = expected = None
        if plan.kind in ("put", "cas"):
            value = f"v{i}".encode()
        if plan.kind == "cas":
            options = [None, *known.get(key, [])]
            expected = options[plan.choice % len(options)]
        if value is not None:
            known.setdefault(key, []).append(value)
        op = Operation(i, f"c{plan.client}", plan.kind, key, invoke, value=value, expected=expected)
        timed.append((point, i, op, complete, plan.outcome))

    state: dict[str, bytes] = {}
    ops = []
    for _, _, op, complete, outcome in sorted(timed, key=lambda t: (t[0], t[1])):
        if outcome in ("fail", "lost"):
            status: Status = "fail" if outcome == "fail" else "info"
            ops.append(replace(op, status=status, complete=complete if outcome == "fail" else None))
            continue
        current = state.get(op.key)
        read = swapped = None
        if op.kind == "get":
            read = current
        elif op.kind == "put":
            state[op.key] = op.value
        elif op.kind == "delete":
            state.pop(op.key, None)
        else:
            swapped = current == op.expected
            if swapped:
                state[op.key] = op.value
        if outcome == "ok":
            ops.append(replace(op, status="ok", complete=complete, read=read, swapped=swapped))
        else:
            ops.append(replace(op, status=outcome, complete=None))
    return sorted(ops, key=lambda op: op.id)


KINDS = ("get", "get", "get", "put", "put", "cas", "delete")


def campaign(
    seed: int, operations: int, keys: int, clients: int, *, info_rate: float = 0.01, fail_rate: float = 0.01
) -> list[Operation]:
    """A linearizable history like a simulation campaign's: ``clients`` closed-loop clients."""
    rng = random.Random(seed)
    plans = []
    for _ in range(operations):
        roll = rng.random()
        outcome = "ok"
        if roll < info_rate:
            outcome = rng.choice(["info", "lost"])
        elif roll < info_rate + fail_rate:
            outcome = "fail"
        plans.append(
            Plan(
                client=rng.randrange(clients),
                kind=rng.choice(KINDS),
                key=rng.randrange(keys),
                choice=rng.randrange(4),
                think=rng.expovariate(1 / 0.002),
                before=rng.expovariate(1 / 0.005),
                after=rng.expovariate(1 / 0.005),
                outcome=outcome,
            )
        )
    return simulate(plans)
