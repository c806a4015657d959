"""From "this key is not linearizable" to "these few operations are why": shrinking a failing history.

A failing key may have thousands of operations; a person needs the handful
that conflict. We shrink with delta debugging (Zeller's *ddmin*): try to drop
chunks of operations, ever smaller, keeping a drop only if what is left is
still not linearizable. Dropping an operation can turn a failing history into
a passing one or not (either way is possible), so every candidate is simply
searched again.

One rule keeps the windows meaningful. Dropping the write of a value that a
read saw would leave a read of a "never written" value: still not
linearizable, but it blames the wrong thing (a stale read would shrink to the
read alone; a read of "absent" after a delete, to an older put and that read).
So a candidate must be *supported*: every ``ok`` operation that observed the
key (a get; a cas, which saw the expected value or not) keeps one of the
writes that plausibly explain what it saw in the original history: invoked
before it returned, and not certainly overwritten before it was invoked. If
no write is plausible, it keeps one that is at least possible (invoked before
it returned): that is the stale read, and the window shows both writes. If no
write is even possible, nothing is kept: a read of a value nobody wrote
shrinks to that read alone, which is then the whole story. The initial state
explains "absent" as long as no other value was certainly written before.

Before ddmin, the tail that the search never reached is cut off for free:
operations invoked after the furthest event the failed search looked at could
not have changed its course, so without them it fails the same way.

Shrinking has its own step budget; when it runs out we report the smallest
failing window found so far, which is still a failing history, just maybe not
a 1-minimal one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..history import Operation
from .budget import Budget
from .search import SearchResult, search


@dataclass(frozen=True)
class Window:
    """The smallest failing set of operations found, sorted by invocation.

    ``minimal`` is True when removing any single operation of it (while keeping
    it supported) makes it linearizable; False when the budget ran out first.
    """

    operations: list[Operation]
    minimal: bool
    stuck_at: Operation | None
    steps: int


def smallest_failing_window(ops: Sequence[Operation], failed: SearchResult, budget: Budget) -> Window:
    """Shrink ``ops`` (one key's operations, no ``fail`` ones) to a small failing window.

    ``failed`` is the search that found ``ops`` not linearizable; every search
    here is charged to ``budget``.
    """
    supported = _support_rule(ops)
    start = budget.used

    hint = {"stuck": None if failed.stuck_at is None else ops[failed.stuck_at]}

    def fails(candidate: list[Operation]) -> bool | None:
        if not supported(candidate):
            return False
        result = search(candidate, budget)
        if result.linearizable is False:
            # ddmin keeps every candidate that fails: remember the search's hint for the window.
            hint["stuck"] = None if result.stuck_at is None else candidate[result.stuck_at]
        return None if result.linearizable is None else not result.linearizable

    current = _by_invocation(ops)
    reached = _by_invocation([ops[i] for i in failed.relevant])
    if 0 < len(reached) < len(ops) and supported(reached):
        current = reached  # no search needed: see the module docstring
    current, minimal = _ddmin(current, fails)
    stuck = hint["stuck"]
    return Window(current, minimal, stuck, budget.used - start)


def _by_invocation(ops: Sequence[Operation]) -> list[Operation]:
    return sorted(ops, key=lambda op: (op.invoke, op.id))


def _ddmin(
    items: list[Operation], fails: Callable[[list[Operation]], bool | None]
) -> tuple[list[Operation], bool]:
    """Zeller's ddmin: a 1-minimal failing subsequence of ``items`` (which must fail).

    Split into ``n`` chunks; if one chunk fails on its own keep it (and split
    in two again), else if dropping one chunk still fails keep the rest, else
    split finer. ``fails`` returns None when the budget is spent: we then
    return the smallest failing subsequence so far, with False for "maybe not
    minimal".
    """
    n = 2
    while len(items) >= 2:
        size, extra = divmod(len(items), n)
        bounds = [i * size + min(i, extra) for i in range(n + 1)]
        chunks = [items[bounds[i] : bounds[i + 1]] for i in range(n)]
        complements = [[op for j, c in enumerate(chunks) if j != i for op in c] for i in range(n)]
        # With two chunks each complement is the other chunk: already tried.
        candidates = chunks + complements if n > 2 else chunks
        for k, candidate in enumerate(candidates):
            verdict = fails(candidate)
            if verdict is None:
                return items, False
            if verdict:
                items, n = candidate, (2 if k < n else max(n - 1, 2))
                break
        else:
            if n >= len(items):
                return items, True
            n = min(2 * n, len(items))
    return items, True


def _support_rule(ops: Sequence[Operation]) -> Callable[[Sequence[Operation]], bool]:
    """The "supported" test of the module docstring, for subsets of ``ops``.

    Quadratic in the number of operations of the key, which is fine for the
    shrinker: it runs once per failing key.
    """
    writers = [op for op in ops if op.kind != "get" and not (op.kind == "cas" and op.swapped is False)]
    # A cas whose outcome is unknown writes only if the key held its expected value; when no
    # operation could have written that value, it never took effect and explains nothing
    # (keeping it as a read's explanation would let ddmin drop the write that really was).
    writers = [w for w in writers if _may_take_effect(w, writers)]
    certain = [w for w in writers if w.status == "ok"]
    needs: dict[int, frozenset[int]] = {}  # id(observer) -> ids of writers that must not all go
    for op in ops:
        seen = _observation(op)
        if seen is None:
            continue
        assert op.complete is not None
        # Certain writes of something else that returned before op was invoked: they
        # overwrite any explanation that returned before they were invoked.
        overwritten_before = max(
            (x.invoke for x in certain if x is not op and x.complete < op.invoke and not seen(_written(x))),
            default=None,
        )
        if overwritten_before is None and seen(None):
            continue  # the initial "absent" explains it
        possible = [w for w in writers if w is not op and w.invoke <= op.complete and seen(_written(w))]
        plausible = [
            w
            for w in possible
            if overwritten_before is None or w.complete is None or w.complete >= overwritten_before
        ]
        if plausible or possible:
            needs[id(op)] = frozenset(id(w) for w in (plausible or possible))

    def supported(candidate: Sequence[Operation]) -> bool:
        present = {id(op) for op in candidate}
        return all(not present.isdisjoint(needs[id(op)]) for op in candidate if id(op) in needs)

    return supported


def _may_take_effect(op: Operation, writers: Sequence[Operation]) -> bool:
    """Whether ``op`` (a write) may have changed the key: unconditional writes and swapped cas
    did; a cas of unknown outcome did only if its expected value may have been there (the
    initial "absent", or a value some other write put there before the cas returned)."""
    if op.kind != "cas" or op.swapped is True or op.expected is None:
        return True
    deadline = float("inf") if op.complete is None else op.complete
    return any(w is not op and w.invoke <= deadline and _written(w) == op.expected for w in writers)


def _observation(op: Operation) -> Callable[[bytes | None], bool] | None:
    """For an ``ok`` operation that observed the key: which values it is consistent with."""
    if op.status != "ok":
        return None
    if op.kind == "get":
        return lambda v: v == op.read
    if op.kind == "cas" and op.swapped is True:
        return lambda v: v == op.expected
    if op.kind == "cas" and op.swapped is False:
        return lambda v: v != op.expected
    return None


def _written(op: Operation) -> bytes | None:
    return None if op.kind == "delete" else op.value


def _certainly_writes(op: Operation) -> bool:
    return op.kind in ("put", "delete") or (op.kind == "cas" and op.swapped is True)
