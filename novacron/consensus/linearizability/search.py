"""Is one key's history linearizable? The Wing & Gong search, with Lowe's memoisation, as in Porcupine.

The history becomes one list of events sorted by time: a *call* event at each
operation's invocation and a *return* event at each ``ok`` operation's
response. Operations with an unknown outcome (``info``/``pending``) get no
return event: they may take effect at any time after their call, or never.

The search walks that list from the front, looking for an operation to
linearize next:

- at a call event, it tries to let that operation take effect now (the model
  says whether that is legal and what the key holds afterwards). If so, it
  removes the operation's events from the list ("lifts" it), remembers how to
  undo that, and starts again from the front;
- at a return event, the operation that returned has not been linearized yet
  and nothing left can be linearized before it, so this branch is dead: undo
  the last choice and try the next call after it.

It succeeds when every ``ok`` operation is linearized (the remaining unknown
ones then never took effect), and fails when it must undo with nothing to undo.
Lowe's memoisation makes it practical: a configuration (which operations are
linearized, as a bitset int, and the key's state) that was explored once is
never explored again, since it would end the same way.

One more pruning, specific to read-only operations (an ``ok`` get, an ``ok``
cas that did not swap): if one is legal now, linearizing it now is never
worse than later (it changes nothing, and nothing pending has to precede it,
or the walk would have stopped at that operation's return first). So it is a
forced move: when what follows fails, we undo past it instead of trying the
alternatives at that point, which removes most of the backtracking reads cause.

The list is a doubly linked list in two int arrays, so lifting and
unlifting are O(1), and the search is a loop with an explicit stack, so a
long history cannot overflow Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..history import Operation
from .budget import Budget
from .model import INITIAL, compile_step, step


@dataclass(frozen=True)
class SearchResult:
    """The verdict on one key's operations.

    ``linearizable`` is None if the budget ran out first. ``stuck_at`` (only
    when not linearizable) indexes the operation whose response was the
    furthest any linearization attempt got to without being able to place it:
    the best single hint at where the history goes wrong. ``relevant`` (only
    when not linearizable) indexes the operations whose call event the search
    ever looked at: the others could not have changed its course, so without
    them the history fails the same way.
    """

    linearizable: bool | None
    steps: int
    stuck_at: int | None = None
    relevant: tuple[int, ...] = ()


def search(ops: Sequence[Operation], budget: Budget | None = None) -> SearchResult:
    """Search for a linearization of ``ops``: one key's operations, none of them ``fail``."""
    budget = budget or Budget()
    steps = [compile_step(op) for op in ops]
    must_left = sum(s.must for s in steps)
    if must_left == 0:
        return SearchResult(True, 0)

    # Events sorted by time; at equal times calls come first, so operations that
    # merely touch at one instant count as concurrent (the lenient reading, as Porcupine).
    events: list[tuple[float, int, int]] = []
    for i, (op, s) in enumerate(zip(ops, steps, strict=True)):
        events.append((op.invoke, 0, i))
        if s.must:
            if op.complete is None:
                raise ValueError(f"ok operation without a completion time: {op.describe()}")
            events.append((op.complete, 1, i))
    events.sort()

    # Node 0 is the head, node `tail` the end; nodes 1..len(events) are the events in order.
    n = len(events)
    tail = n + 1
    nxt = list(range(1, n + 2)) + [tail]
    prv = [0] + list(range(0, n + 1))
    is_call = [False] * (n + 2)
    op_of = [0] * (n + 2)
    match = [0] * (n + 2)  # call node -> its return node (0 for unknown-outcome operations)
    call_node = [0] * len(ops)
    for node, (_, kind, i) in enumerate(events, start=1):
        op_of[node] = i
        if kind == 0:
            is_call[node] = True
            call_node[i] = node
        else:
            match[call_node[i]] = node

    def lift(node: int) -> None:
        p, q = prv[node], nxt[node]
        nxt[p], prv[q] = q, p
        r = match[node]
        if r:
            p, q = prv[r], nxt[r]
            nxt[p], prv[q] = q, p

    def unlift(node: int) -> None:
        r = match[node]
        if r:
            nxt[prv[r]] = r
            prv[nxt[r]] = r
        nxt[prv[node]] = node
        prv[nxt[node]] = node

    state = INITIAL
    linearized = 0
    seen: set[tuple[int, bytes | None]] = set()
    # (call node lifted, state before it, whether that choice was forced: see below)
    undo: list[tuple[int, bytes | None, bool]] = []
    furthest = 0  # the furthest node any branch looked at: the rest never mattered
    stuck = 0  # the furthest return node a branch died at
    node = nxt[0]
    chunk = budget.allowance()
    taken = 0  # steps since the budget was last charged
    spent = 0  # steps charged so far
    while True:
        if chunk is not None and taken >= chunk:
            spent += taken
            if not budget.charge(taken):
                return SearchResult(None, spent)
            taken = 0
            chunk = budget.allowance()
        taken += 1
        if node > furthest:
            furthest = node
        if is_call[node]:
            i = op_of[node]
            s = steps[i]
            legal, after = step(state, s)
            if not legal:
                node = nxt[node]
                continue
            # A read-only operation (a get, a cas that did not swap) that is legal now can
            # always go now: any linearization that places it later still works with it
            # here. So it is a forced move, never a choice to come back to. An
            # unknown-outcome operation that would change nothing now is left for later.
            forced = s.read_only
            if after == state and not s.must:
                node = nxt[node]
                continue
            config = (linearized | (1 << i), after)
            if config not in seen:
                seen.add(config)
                undo.append((node, state, forced))
                linearized, state = config
                lift(node)
                if s.must:
                    must_left -= 1
                    if must_left == 0:
                        budget.charge(taken)
                        return SearchResult(True, spent + taken)
                node = nxt[0]
                continue
            if not forced:
                node = nxt[node]
                continue
            # A forced move into an explored (hence failed) configuration: this one fails too.
        elif node > stuck:
            # A return event: its operation is not linearized yet and nothing left can go first.
            # (Never the tail while an ok operation is left: that one's return comes first.)
            stuck = node
        # Dead end: undo the last choice (and the forced moves after it), try the next call.
        while True:
            if not undo:
                budget.charge(taken)
                relevant = tuple(j for j in range(len(ops)) if call_node[j] <= furthest)
                return SearchResult(
                    False, spent + taken, stuck_at=op_of[stuck] if stuck else None, relevant=relevant
                )
            node, state, forced = undo.pop()
            i = op_of[node]
            linearized &= ~(1 << i)
            if steps[i].must:
                must_left += 1
            unlift(node)
            if not forced:
                break
        node = nxt[node]
