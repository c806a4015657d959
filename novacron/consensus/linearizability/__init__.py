"""A linearizability checker for key-value histories (Wing & Gong, Lowe; as Porcupine/Knossos).

Usage::

    from novacron.consensus.linearizability import check_history

    result = check_history(history, max_steps=10_000_000)
    if not result.ok:
        print(result.explain())

Reading order for newcomers: :mod:`.checker` (split by key, the entry
points), :mod:`.model` (what one key may do), :mod:`.search` (the search for a
linearization), :mod:`.shrink` (from a failing key to the few operations to
blame), :mod:`.result` (what is reported), :mod:`.budget` (when to give up).
"""

from .budget import Budget
from .checker import DEFAULT_SHRINK_STEPS, check, check_history
from .result import CheckResult, KeyFailure

__all__ = ["DEFAULT_SHRINK_STEPS", "Budget", "CheckResult", "KeyFailure", "check", "check_history"]
