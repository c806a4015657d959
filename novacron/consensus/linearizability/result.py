"""What the checker reports: a verdict per history, and for each failing key the operations to blame."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..history import Operation


@dataclass(frozen=True)
class KeyFailure:
    """One key whose operations have no linearization.

    ``window`` is the smallest failing set of that key's operations the
    shrinker found, sorted by invocation: a history of its own that is not
    linearizable. ``minimal`` says whether removing any one operation of it
    would make it linearizable (False if the shrinking budget ran out first).
    ``stuck_at`` is the completed operation that no linearization of the
    window could place before its response: usually the read that saw the
    impossible value.
    """

    key: str
    operations: int
    window: list[Operation]
    minimal: bool
    stuck_at: Operation | None = None

    def explain(self) -> str:
        size = f"{len(self.window)} operation{'s' if len(self.window) != 1 else ''}"
        quality = "minimal" if self.minimal else "not shrunk to the end: shrinking budget spent"
        lines = [
            f"key {self.key!r}: not linearizable ({self.operations} operations checked).",
            f"  Smallest failing window ({size}, {quality}); no order of these that respects real time",
            "  and the register semantics exists:",
        ]
        lines += [f"    {op.describe()}" for op in self.window]
        if self.stuck_at is not None:
            lines.append(f"  No linearization gets past the response of: {self.stuck_at.describe()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """The verdict on a whole history, key by key (keys are independent registers).

    ``ok`` is True if every key is linearizable, False if at least one is not
    (a definite answer even if other keys were left undecided), and None if no
    key failed but the budget ran out before ``undecided`` keys were decided.
    ``steps`` counts the search steps spent on verdicts (not on shrinking).
    """

    ok: bool | None
    keys_checked: int
    failures: list[KeyFailure] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    operations: int = 0
    steps: int = 0
    budget: str = "no limit"

    def failure(self, key: str) -> KeyFailure:
        """The failure reported for ``key`` (KeyError if that key did not fail)."""
        for f in self.failures:
            if f.key == key:
                return f
        raise KeyError(key)

    def explain(self) -> str:
        """A readable report: the verdict, then each failing key's window."""
        keys = f"{self.keys_checked} key{'s' if self.keys_checked != 1 else ''}"
        summary = f"{self.operations} operations, {keys} decided, {self.steps} search steps"
        if self.ok:
            return f"Linearizable ({summary})."
        lines = []
        if self.ok is False:
            lines.append(f"NOT linearizable: {len(self.failures)} key(s) failed ({summary}).")
        else:
            lines.append(f"Undecided: no key failed, but the budget ran out ({summary}).")
        if self.undecided:
            names = ", ".join(repr(k) for k in self.undecided)
            lines.append(f"Gave up ({self.budget}) on key(s): {names}.")
        lines += [f.explain() for f in self.failures]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()
