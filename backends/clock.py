"""The real runtime's clock: ``time.monotonic`` at full resolution, and timers that never fire early on it.

Why not ``loop.time()``: uvloop's is libuv's cached *millisecond* clock. On a node running uvloop
(the default) every interval shorter than a millisecond read as 0 or 1 ms — a 50 µs loopback round
trip measured as 0, a transfer's delivery times rounded, mode detection's jitter quantised — and
libuv rounds each timer's delay to whole milliseconds from that cached clock, so a timer or a
``sleep`` could end up to a millisecond *before* its delay had passed on any finer clock.

The contract promises what the simulator gives exactly: once a timer fires (or a sleep returns),
``now()`` has reached its due time. So ``now()`` reads ``time.monotonic()`` (the clock asyncio's own
loop uses, and libuv's source), and a timer that the loop runs early is re-armed for the rest of
its delay. On a millisecond loop the re-armed delay is rounded *up* to the next millisecond, so
an early timer costs one more wake-up instead of a busy loop; it fires at most about a
millisecond late, as it always could.
"""

from __future__ import annotations

import asyncio
import math
import time

#: Timer granularity of uvloop (libuv counts milliseconds); asyncio's own loop has none to speak of.
_UVLOOP_STEP = 0.001


def timer_step(loop: asyncio.AbstractEventLoop) -> float:
    """The smallest delay the loop's timers tell apart (0 when finer than we can care about)."""
    return _UVLOOP_STEP if type(loop).__module__.startswith("uvloop") else 0.0


class LoopClock:
    """Seconds since ``epoch`` (a ``time.monotonic()`` reading), and the delays that reach a due time."""

    __slots__ = ("epoch", "step")

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float | None = None) -> None:
        self.epoch = time.monotonic() if epoch is None else epoch
        self.step = timer_step(loop)

    def now(self) -> float:
        return time.monotonic() - self.epoch

    def due(self, delay: float) -> float:
        """The ``time.monotonic()`` reading at which ``delay`` seconds from now have passed."""
        return time.monotonic() + delay

    def remaining(self, due: float) -> float:
        """Seconds to ask the loop for so that it wakes no earlier than ``due``; 0 once it is reached."""
        left = due - time.monotonic()
        if left <= 0:
            return 0.0
        if self.step:
            return math.ceil(left / self.step) * self.step
        return left

    async def sleep(self, delay: float) -> None:
        """``asyncio.sleep`` that does not return before ``delay`` has passed on :meth:`now`."""
        due = self.due(delay)
        await asyncio.sleep(self.remaining(due) if self.step else delay)
        while (left := self.remaining(due)) > 0:
            await asyncio.sleep(left)
