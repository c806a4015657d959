"""Flow-level bulk transfer model: max-min fair sharing with per-flow caps.

As in SimGrid's flow model, a bulk stream is not simulated packet by packet:
it is a *flow* with a remaining byte count and a rate. Rates are the max-min
fair allocation of link capacities (progressive filling), where a flow never
exceeds its own congestion-control cap. Rates change only when a flow
starts or ends or a link's capacity changes, so the model recomputes then,
advances every flow's progress, and schedules one event for the next flow to
finish. Stale completion events are recognised by a generation counter.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..kernel import LAST, Call
from .topology import Link

_EPS_BYTES = 1e-6


@dataclass(eq=False)
class Flow:
    """One stream of bytes over a fixed path."""

    links: tuple[Link, ...]
    remaining: float
    cap: float  # bytes/s from the congestion-control model
    on_done: Callable[[Flow], None]
    stalled: bool = False  # True while a partition blocks the path
    rate: float = 0.0
    meta: Any = None
    sent: float = field(default=0.0)


def max_min_rates(flows: list[Flow]) -> None:
    """Set ``flow.rate`` for every non-stalled flow (progressive filling with caps)."""
    active = [f for f in flows if not f.stalled]
    for f in flows:
        f.rate = 0.0
    left: dict[Link, float] = {}
    users: dict[Link, int] = {}
    for f in active:
        for link in f.links:
            if link not in left:
                left[link] = link.capacity
                users[link] = 0
            users[link] += 1
    unfixed = set(active)
    while unfixed:
        # The tightest constraint: the smallest fair share on any link, or a flow's cap.
        share, bottleneck = math.inf, None
        for link, n in users.items():
            if n > 0:
                s = left[link] / n
                if s < share:
                    share, bottleneck = s, link
        capped = [f for f in unfixed if f.cap <= share]
        if capped:
            fixed = capped
        elif bottleneck is not None:
            fixed = [f for f in unfixed if bottleneck in f.links]
        else:  # flows that cross no link at all (cannot happen with a valid topology)
            fixed = list(unfixed)
            share = math.inf
        for f in fixed:
            f.rate = min(f.cap, share)
            unfixed.discard(f)
            for link in f.links:
                left[link] = max(0.0, left[link] - f.rate)
                users[link] -= 1


class FlowModel:
    """All flows in one simulation; fires ``on_done`` when a flow's last byte is sent.

    Two things keep it fast when streams send chunk after chunk:

    * changes are *coalesced*: flows starting, ending or changing at one
      instant trigger a single recomputation, at the end of that instant
      (a :data:`~novacron.sim.kernel.LAST`-priority event);
    * max-min fairness gives identical flows (same path, cap and stall
      state) identical rates, so when the multiset of flow kinds is the
      same as at the last computation (one stream's chunk ending and its
      next chunk starting), the previous rates are reused without solving
      again. Capacity changes (:meth:`changed`) always solve again.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.flows: list[Flow] = []
        self._last_update = 0.0
        self._generation = 0
        self._dirty = False
        self._must_solve = True
        self._signature: Counter = Counter()
        self._rate_of: dict[tuple, float] = {}
        self.recomputations = 0  # schedules of the next completion
        self.solves = 0  # max-min solutions actually computed

    def start(self, flow: Flow) -> Flow:
        self._advance()
        self.flows.append(flow)
        self._mark_dirty()
        return flow

    def remove(self, flows: list[Flow]) -> None:
        """Abort flows (a crash or a failed stream); their callbacks do not fire."""
        self._advance()
        doomed = set(map(id, flows))
        self.flows = [f for f in self.flows if id(f) not in doomed]
        self._mark_dirty()

    def changed(self) -> None:
        """Capacities, caps or stalls changed: solve the rates again from now on."""
        self._advance()
        self._must_solve = True
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        if not self._dirty:
            self._dirty = True
            Call(self.env, 0.0, self._reschedule, (), None, LAST)

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last_update
        if dt > 0:
            for f in self.flows:
                if f.rate > 0:
                    moved = min(f.remaining, f.rate * dt)
                    f.remaining -= moved
                    f.sent += moved
        self._last_update = now

    def _assign_rates(self) -> None:
        keys = [(f.links, f.cap, f.stalled) for f in self.flows]
        signature = Counter(keys)
        if not self._must_solve and signature == self._signature:
            rate_of = self._rate_of
            for f, key in zip(self.flows, keys, strict=True):
                f.rate = rate_of[key]
            return
        max_min_rates(self.flows)
        self.solves += 1
        self._must_solve = False
        self._signature = signature
        self._rate_of = {key: f.rate for f, key in zip(self.flows, keys, strict=True)}

    def _reschedule(self) -> None:
        self._dirty = False
        self._advance()
        self._generation += 1
        self.recomputations += 1
        self._assign_rates()
        soonest = math.inf
        for f in self.flows:
            if f.rate > 0:
                soonest = min(soonest, f.remaining / f.rate)
        if soonest < math.inf:
            Call(self.env, max(0.0, soonest), self._on_timer, (self._generation,))

    def _on_timer(self, generation: int) -> None:
        if generation != self._generation:
            return  # superseded by a later recomputation
        self._advance()
        finished = [f for f in self.flows if f.remaining <= _EPS_BYTES * max(1.0, f.rate)]
        if finished:
            gone = set(map(id, finished))
            self.flows = [f for f in self.flows if id(f) not in gone]
        self._mark_dirty()
        for f in finished:
            f.sent += f.remaining
            f.remaining = 0.0
            f.on_done(f)
