"""How long the checker may search: a number of search steps, and optionally a caller's clock.

Linearizability checking is NP-complete, so every search needs a way to give
up. Protocol code under ``novacron/`` may not read the OS clock (see
``tests/test_architecture.py``), so the budget counts search steps, which also
makes a verdict reproducible on any machine. A caller who wants wall-clock
time passes ``clock`` (e.g. ``time.perf_counter``) with ``timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable

CLOCK_EVERY = 4096
"""Search steps between two readings of the caller's clock (reading it is slower than a step)."""


class Budget:
    """Search steps left, and a deadline on the caller's clock, shared by every search that uses it."""

    def __init__(
        self,
        max_steps: int | None = None,
        *,
        timeout: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if timeout is not None and clock is None:
            raise ValueError(
                "timeout needs clock= (e.g. time.perf_counter): checker code may not read the OS clock"
            )
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, not {max_steps}")
        self.max_steps = max_steps
        self.timeout = timeout
        self._clock = clock
        self._deadline = None if timeout is None or clock is None else clock() + timeout
        self.used = 0
        self.exhausted = False

    def allowance(self) -> int | None:
        """Steps the next search may take before it must call :meth:`charge` (None: unlimited)."""
        if self.max_steps is None:
            return None if self._deadline is None else CLOCK_EVERY
        left = max(self.max_steps - self.used, 0)
        return left if self._deadline is None else min(left, CLOCK_EVERY)

    def charge(self, steps: int) -> bool:
        """Record ``steps`` taken; False (and :attr:`exhausted` set) once the budget is spent."""
        self.used += steps
        if self.max_steps is not None and self.used >= self.max_steps:
            self.exhausted = True
        elif self._deadline is not None and self._clock is not None and self._clock() >= self._deadline:
            self.exhausted = True
        return not self.exhausted

    def child(self, max_steps: int | None) -> Budget:
        """A budget of at most ``max_steps`` more steps that also stops at this budget's deadline."""
        sub = Budget(max_steps)
        sub._clock = self._clock
        sub._deadline = self._deadline
        sub.timeout = self.timeout
        return sub

    def describe(self) -> str:
        limits = []
        if self.max_steps is not None:
            limits.append(f"max_steps={self.max_steps}")
        if self.timeout is not None:
            limits.append(f"timeout={self.timeout}s")
        return ", ".join(limits) or "no limit"
