"""Mode-change events, their subscribers, and the time reconfiguring them takes.

Components that depend on the mode (AMST's stream counts, HDE's codec, later
consensus) subscribe a callback and reconfigure when it is called. Callbacks
are plain synchronous functions: reconfiguring is deciding new parameters,
which should be quick. One that must do I/O to reconfigure spawns a task on
its runtime and returns.

All events of one detection round are delivered together, per-peer changes
first and the node-level change last, and the wall-clock time the whole
delivery took is recorded as a :class:`SwitchRecord`: the "time to switch"
that the original NovaCron design reports as 3.4 ms. A subscriber that
raises is logged and skipped; it never stops the others or the detector.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .measurement import Measurement
from .modes import Mode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModeChange:
    """The mode of ``peer`` (``None``: the node as a whole) went from ``old`` to ``new``.

    ``old`` is ``None`` for the first decision (and for the current state
    replayed to a new subscriber). ``at`` is the detecting node's clock.
    ``measurements`` is the window that completed the change: the peer's own,
    or for a node-level change the window of the peer that caused it (``None``
    for forced and replayed modes).
    """

    peer: str | None
    old: Mode | None
    new: Mode
    at: float
    measurements: Measurement | None = None

    @property
    def node_level(self) -> bool:
        return self.peer is None


ModeCallback = Callable[[ModeChange], object]


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    """One delivery of a round's changes: when, what, to how many subscribers, how long."""

    at: float
    events: tuple[ModeChange, ...]
    subscribers: int
    seconds: float


class Subscribers:
    """The callbacks of one detector, called in subscription order, timed per delivery.

    ``perf_counter`` measures the delivery (seconds, any epoch); see
    :class:`~novacron.mode.ModeDetector` for what it defaults to.
    """

    def __init__(self, perf_counter: Callable[[], float], keep_records: int = 1000) -> None:
        self._callbacks: list[ModeCallback] = []
        self._perf_counter = perf_counter
        self.records: deque[SwitchRecord] = deque(maxlen=keep_records)

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, callback: ModeCallback) -> Callable[[], None]:
        """Subscribe; returns a function that unsubscribes (idempotent)."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def call(self, callback: ModeCallback, event: ModeChange) -> None:
        try:
            callback(event)
        except Exception:
            log.exception("mode subscriber %r failed on %s", callback, event)

    def deliver(self, at: float, events: Sequence[ModeChange]) -> SwitchRecord | None:
        """Call every subscriber with every event, in order; record how long it took."""
        if not events:
            return None
        callbacks = list(self._callbacks)  # a callback may unsubscribe itself
        start = self._perf_counter()
        for event in events:
            for callback in callbacks:
                self.call(callback, event)
        record = SwitchRecord(at, tuple(events), len(callbacks), self._perf_counter() - start)
        self.records.append(record)
        return record
