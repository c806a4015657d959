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
- at a return event, the operation that returned has not been linearized yet,
  so only the operations called before it can go next. Once those are tried,
  this branch is dead: undo the last choice and try the next call after it.

It succeeds when every ``ok`` operation is linearized (the remaining unknown
ones then never took effect), and fails when it must undo with nothing to undo.
Lowe's memoisation makes it practical: a configuration (which operations are
linearized, as a bitset int, and the key's state) that was explored once is
never explored again, since it would end the same way.

Three refinements, each needed for real campaign histories:

- *Unknown-outcome operations go last.* They sit in a list of their own, tried
  only after every ``ok`` candidate, since "it never took effect" is the usual
  truth and the cheaper branch.
- *Dominance.* A configuration that differs from an explored one only by
  having linearized more unknown-outcome operations (same ``ok`` operations,
  same state) can do nothing the explored one could not, so it is pruned too.
  Without this, every timed-out write doubles the work of a failing search.
- *Read-only operations are forced moves.* If an ``ok`` get (or an ``ok`` cas
  that did not swap) is legal now, linearizing it now is never worse than
  later: it changes nothing, and nothing pending has to precede it (or the
  walk would have stopped at that operation's return first). When what
  follows fails, we undo past it instead of trying alternatives at that point.

The lists are doubly linked lists in int arrays, so lifting and unlifting are
O(1), and the search is a loop with an explicit stack, so a long history
cannot overflow Python's recursion limit.
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

    # Nodes 1..n are the events in time order, so comparing nodes compares times. Two
    # lists run through them: the main one (head 0) holds ok calls and returns, the
    # other (head n + 1) unknown-outcome calls. Both end at the same tail, n + 2.
    n = len(events)
    main_head, info_head, tail = 0, n + 1, n + 2
    nxt = [0] * (n + 3)
    prv = [0] * (n + 3)
    is_return = [False] * (n + 3)
    is_info = [False] * (n + 3)
    op_of = [0] * (n + 3)
    match = [0] * (n + 3)  # ok call node -> its return node
    call_node = [0] * len(ops)
    last = {False: main_head, True: info_head}
    for node, (_, kind, i) in enumerate(events, start=1):
        op_of[node] = i
        info = not steps[i].must
        is_info[node] = info
        if kind == 0:
            call_node[i] = node
        else:
            is_return[node] = True
            match[call_node[i]] = node
        nxt[last[info]], prv[node] = node, last[info]
        last[info] = node
    nxt[last[False]] = nxt[last[True]] = tail

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
    must_bits = info_bits = 0  # the linearized operations, as bitsets over their indices
    # (ok operations linearized, state) -> the sets of unknown-outcome ones linearized with them
    explored: dict[tuple[int, bytes | None], list[int]] = {}
    # (call node lifted, state before it, whether that move was forced, limit then)
    undo: list[tuple[int, bytes | None, bool, int]] = []
    furthest = 0  # the furthest node any branch looked at: the rest never mattered
    stuck = 0  # the furthest return node a branch died at
    limit = 0  # while walking the unknown-outcome list: the first return node of the main list
    node = nxt[main_head]
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
        if node > furthest and node != tail and node != info_head:
            furthest = node
        if is_return[node]:
            # Only operations called before this return can go next: the unknown-outcome ones now.
            if node > stuck:
                stuck = node
            limit = node
            node = nxt[info_head]
            continue
        if node == tail or (is_info[node] and node > limit):
            pass  # every candidate was tried: dead end, handled below
        else:
            i = op_of[node]
            s = steps[i]
            legal, after = step(state, s)
            if not legal or (not s.must and after == state):
                # Illegal; or an unknown-outcome operation that would change nothing now
                # (better left for later, or never).
                node = nxt[node]
                continue
            forced = s.read_only
            if s.must:
                new_must, new_info = must_bits | (1 << i), info_bits
            else:
                new_must, new_info = must_bits, info_bits | (1 << i)
            masks = explored.get((new_must, after))
            if masks is None or all(m & ~new_info for m in masks):
                if masks is None:
                    explored[(new_must, after)] = [new_info]
                else:
                    masks.append(new_info)
                undo.append((node, state, forced, limit))
                must_bits, info_bits, state = new_must, new_info, after
                lift(node)
                if s.must:
                    must_left -= 1
                    if must_left == 0:
                        budget.charge(taken)
                        return SearchResult(True, spent + taken)
                node = nxt[main_head]
                continue
            if not forced:
                node = nxt[node]
                continue
            # A forced move into an explored (hence failed) configuration: this one fails too.
        # Dead end: undo the last choice (and the forced moves after it), try the next candidate.
        while True:
            if not undo:
                budget.charge(taken)
                relevant = tuple(j for j in range(len(ops)) if call_node[j] <= furthest)
                return SearchResult(
                    False, spent + taken, stuck_at=op_of[stuck] if stuck else None, relevant=relevant
                )
            node, state, forced, limit = undo.pop()
            i = op_of[node]
            if steps[i].must:
                must_bits &= ~(1 << i)
                must_left += 1
            else:
                info_bits &= ~(1 << i)
            unlift(node)
            if not forced:
                break
        node = nxt[node]
