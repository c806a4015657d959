"""Entry points: :func:`check` a list of operations, or :func:`check_history` a recorded :class:`History`.

Keys of a key-value store are independent registers, and linearizability is
*local* (Herlihy & Wing's P-compositionality): a history is linearizable iff
each key's sub-history is. So we split by key and search each key alone,
which turns one search exponential in the whole history's concurrency into
many small ones.

Before searching, the operations that cannot matter are dropped: ``fail``
operations (they certainly did not take effect) and gets with an unknown
outcome (they change nothing and their output is unconstrained).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from ..history import History, Operation
from .budget import Budget
from .model import compile_step, has_effect
from .result import CheckResult, KeyFailure
from .search import search
from .shrink import smallest_failing_window

DEFAULT_SHRINK_STEPS = 2_000_000
"""Search steps the shrinker may spend per failing key (about a second or two of CPU)."""


def check(
    operations: Iterable[Operation],
    *,
    max_steps: int | None = None,
    timeout: float | None = None,
    clock: Callable[[], float] | None = None,
    shrink_steps: int | None = DEFAULT_SHRINK_STEPS,
) -> CheckResult:
    """Is this key-value history linearizable? Every key starts absent.

    ``max_steps`` bounds the search steps over all keys; ``timeout`` seconds
    bounds it on ``clock`` (required with ``timeout``, e.g.
    ``time.perf_counter``, since checker code may not read the OS clock). A key
    not decided within the budget is listed in ``undecided``. Each failing key
    is then shrunk to a small failing window, within ``shrink_steps`` steps per
    key (and the same deadline).
    """
    budget = Budget(max_steps, timeout=timeout, clock=clock)
    by_key: dict[str, list[Operation]] = defaultdict(list)
    total = 0
    for op in operations:
        total += 1
        if op.status != "fail" and has_effect(compile_step(op)):
            by_key[op.key].append(op)

    failures: list[KeyFailure] = []
    undecided: list[str] = []
    decided = 0
    for key in sorted(by_key):
        ops = by_key[key]
        if budget.exhausted:
            undecided.append(key)
            continue
        result = search(ops, budget)
        if result.linearizable is None:
            undecided.append(key)
            continue
        decided += 1
        if not result.linearizable:
            window = smallest_failing_window(ops, result, budget.child(shrink_steps))
            failures.append(KeyFailure(key, len(ops), window.operations, window.minimal, window.stuck_at))

    ok = False if failures else (None if undecided else True)
    return CheckResult(
        ok=ok,
        keys_checked=decided,
        failures=failures,
        undecided=undecided,
        operations=total,
        steps=budget.used,
        budget=budget.describe(),
    )


def check_history(
    history: History,
    *,
    max_steps: int | None = None,
    timeout: float | None = None,
    clock: Callable[[], float] | None = None,
    shrink_steps: int | None = DEFAULT_SHRINK_STEPS,
) -> CheckResult:
    """:func:`check` the operations recorded so far; still-pending ones count as ``info``."""
    return check(
        history.operations, max_steps=max_steps, timeout=timeout, clock=clock, shrink_steps=shrink_steps
    )
